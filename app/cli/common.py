"""What every `holdfast` command shares: the Typer app, settings, the database, services."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

from app.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from app.services import Services

T = TypeVar("T")

# No locals in tracebacks: they may hold passwords and keys.
cli = typer.Typer(
    help="Holdfast: a social network backend that can leave any vendor.",
    pretty_exceptions_show_locals=False,
)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(make: Callable[[], Awaitable[T]]) -> T:
    from app.nodes import NodeLeaseError

    async def wrapped() -> T:
        return await make()

    try:
        return asyncio.run(wrapped())
    except NodeLeaseError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None


@asynccontextmanager
async def _database(settings: Settings, *, role: str | None) -> AsyncIterator[None]:
    """The database open, and a node id held for `role`; None for a command that makes no
    ids (it would only keep a node id from others, and fail when all are held)."""
    from tortoise import Tortoise

    from app import nodes
    from app.db import tortoise_config

    await Tortoise.init(config=tortoise_config(settings))
    try:
        if role is None:
            yield
        else:
            async with nodes.hold(settings, role=role):
                yield
    finally:
        await Tortoise.close_connections()


@asynccontextmanager
async def _services(settings: Settings, *, role: str | None) -> AsyncIterator[Services]:
    """The database, the services and their pub/sub, as a serving process has them (a bad
    provider or option: exit 2, naming it)."""
    from app.services import Services
    from providers.errors import ConfigurationError

    try:
        services = Services.from_settings(settings)
    except ConfigurationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    async with _database(settings, role=role):
        await services.pubsub.start()
        try:
            yield services
        finally:
            await services.close()


def _size(count: int) -> str:
    if count < 1000:
        return f"{count:,} B"
    value = count / 1000
    units = ["KB", "MB", "GB"]
    while value >= 1000 and len(units) > 1:
        value /= 1000
        units.pop(0)
    return f"{value:,.1f} {units[0]}"


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a long-running role to stop gracefully (call
    inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
