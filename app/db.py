"""The Tortoise configuration shared by the app, migrations and tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url

from app.models import MODEL_MODULES
from app.settings import Settings

MIGRATIONS_MODULE = "app.migrations"


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled PostgreSQL connection that is not reset when returned to the pool.

    asyncpg resets every released connection (advisory unlocks, CLOSE ALL, UNLISTEN, RESET ALL):
    a round trip after every statement Tortoise runs outside a transaction. We take no advisory
    locks on pooled connections (the migration lock has a connection of its own), declare no
    cursors, LISTEN nowhere and SET nothing per session, so there is nothing to reset.
    """

    def get_reset_query(self) -> str:
        return ""


# Per-connection PostgreSQL settings. Our statements are all parameterised OLTP queries: plan
# them once per connection (re-planning the timeline statement cost 1.1 ms of database CPU a
# call, ../shared/PERFORMANCE.md) and never JIT-compile them (75 ms a call for a generic plan).
POSTGRES_SERVER_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "jit": "off",
    "application_name": "holdfast",
}


def connection_config(url: str) -> str | dict[str, Any]:
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        return url
    config = expand_db_url(url)
    credentials = config["credentials"]
    credentials["server_settings"] = {
        **POSTGRES_SERVER_SETTINGS,
        **credentials.get("server_settings", {}),
    }
    credentials["connection_class"] = PooledConnection
    return config


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.effective_database_url
    if url.startswith("sqlite://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": connection_config(url)},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# The PostgreSQL advisory lock `holdfast migrate` holds while it migrates (any constant no
# other code uses: "Hold" in ASCII).
MIGRATION_LOCK_KEY = 0x486F6C64


async def migrate(settings: Settings) -> None:
    """Apply every committed migration that the database lacks.

    On PostgreSQL it first takes a session advisory lock: migrators started together (every
    web node's ExecStartPre on a fresh fleet, a Kubernetes Job beside the pods' init
    containers) run one after another, and each after the first finds nothing left to do.
    Without it two would apply one migration side by side (Tortoise records a migration only
    after applying it), and a data migration would run twice."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as apply_migrations

    async with _migration_lock(settings.effective_database_url):
        try:
            await apply_migrations(config=tortoise_config(settings))
        finally:
            await Tortoise.close_connections()


@asynccontextmanager
async def _migration_lock(url: str) -> AsyncIterator[None]:
    """Held on a connection of its own, so that the lock lasts exactly as long as its session:
    a migrator that dies releases it with its connection."""
    if not url.startswith(("postgres://", "postgresql://", "asyncpg://")):
        yield  # SQLite: one file on one machine, written one transaction at a time
        return
    credentials = expand_db_url(url)["credentials"]
    connection = await asyncpg.connect(
        host=credentials.get("host"),
        port=credentials.get("port"),
        user=credentials.get("user"),
        password=credentials.get("password"),
        database=credentials.get("database"),
        ssl=credentials.get("ssl"),
        server_settings={"application_name": "holdfast migrate"},
    )
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        yield
    finally:
        await connection.close()


def __getattr__(name: str) -> Any:
    # `tortoise -c app.db.TORTOISE_ORM makemigrations` during development reads this lazily,
    # so importing the module never reads settings.
    if name == "TORTOISE_ORM":
        from app.settings import load_settings

        return tortoise_config(load_settings())
    raise AttributeError(name)
