"""`holdfast backup` and `holdfast scheduler` (README: Backups)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import T, _run, _services, _settings, _size, cli, stop_on_signals
from app.settings import RESTORE_DATABASE_URL_ENV

if TYPE_CHECKING:
    from app.hosting.backup import BackupInfo, RestoreReport
    from providers.storage.base import StorageProvider


# Backups and the scheduler (README: Backups)

backup_cli = typer.Typer(help="Database backups in a storage backend: create, list, restore.")
cli.add_typer(backup_cli, name="backup")


def _backup_run(make: Callable[[StorageProvider], Awaitable[T]]) -> T:
    """Run `make` with the backup storage open; a BackupError is a message and exit 1."""
    from app.hosting.backup import BackupError, backup_storage

    settings = _settings()

    async def run() -> T:
        storage = backup_storage(settings)
        try:
            return await make(storage)
        finally:
            await storage.close()

    try:
        return _run(run)
    except BackupError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None


def _backup_line(backup: BackupInfo) -> str:
    when = backup.created_at.isoformat(timespec="seconds")
    head = backup.migration_head or "-"
    return (
        f"{backup.id}  {when}  {backup.engine:8}  {_size(backup.size):>9}  "
        f"{len(backup.tables)} tables  {backup.rows:,} rows  migration {head}"
        + ("" if backup.user_data else "  (no user data: `restore latest` skips it)")
    )


@backup_cli.command("create")
def backup_create() -> None:
    """Back up the database into the backup storage (backup.storage, else storage.default):
    the dump, then its manifest with every table's row count and checksum."""
    from app.hosting.backup import create_backup

    settings = _settings()
    backup = _backup_run(lambda storage: create_backup(settings, storage))
    typer.echo(f"created {_backup_line(backup)}")


@backup_cli.command("list")
def backup_list() -> None:
    """The backups in the backup storage, newest first (needs no database)."""
    from app.hosting.backup import list_backups

    settings = _settings()
    backups = _backup_run(lambda storage: list_backups(settings, storage))
    if not backups:
        typer.echo("no backups")
    for backup in backups:
        typer.echo(_backup_line(backup))


@backup_cli.command("restore")
def backup_restore(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="A backup id, or `latest`.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar=RESTORE_DATABASE_URL_ENV,
            show_envvar=True,
            help="The empty database to restore into (default: the configured one). Give a "
            f"URL with a password in {RESTORE_DATABASE_URL_ENV}: a command line is visible to "
            "every user (ps).",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Restore a backup into an empty database (a freshly migrated one is fine), then verify
    every table's row count and checksum against the backup's manifest. Exit 1, with the
    reason, when the database holds rows, the dump is corrupt or a table differs."""
    from urllib.parse import urlsplit

    from app.hosting.backup import BackupError, latest_backup, list_backups, restore_backup
    from app.hosting.databases import display_url

    if (
        database_url is not None
        and database_url != os.environ.get(RESTORE_DATABASE_URL_ENV)
        and urlsplit(database_url).password
    ):
        typer.echo(
            f"holdfast: --database-url has a password, which `ps` shows every user: set "
            f"{RESTORE_DATABASE_URL_ENV} to the URL instead",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings()
    url = database_url or settings.effective_database_url

    async def run(storage: StorageProvider) -> RestoreReport:
        latest = await latest_backup(settings, storage) if backup_id == "latest" else None
        if latest is not None:
            backup = latest
        else:
            backups = await list_backups(settings, storage)
            matching = [backup for backup in backups if backup.id == backup_id]
            if not matching:
                if backup_id == "latest" and backups:
                    raise BackupError("no backup holds user data (holdfast backup list)")
                raise BackupError(f"no backup {backup_id!r} (holdfast backup list)")
            backup = matching[0]
        target = display_url(url)
        if not yes and not typer.confirm(f"Restore backup {backup.id} into {target}?"):
            raise typer.Exit(1)
        return await restore_backup(settings, storage, backup, database_url=url)

    report = _backup_run(run)
    rows = sum(check.rows for check in report.tables.values())
    typer.echo(
        f"restored backup {report.backup.id} into {report.database}: "
        f"{len(report.tables)} tables, {rows:,} rows verified"
    )


@backup_cli.command("prune")
def backup_prune() -> None:
    """Delete the backups the retention policy lets go (all but the newest backup.keep,
    except those younger than backup.keep_days) and dumps of failed backups."""
    from app.hosting.backup import prune

    settings = _settings()
    pruned = _backup_run(lambda storage: prune(settings, storage))
    typer.echo(f"pruned {len(pruned)} backups")
    for backup in pruned:
        typer.echo(f"  {_backup_line(backup)}")


@cli.command()
def scheduler() -> None:
    """Run the fleet's one scheduler until SIGTERM or SIGINT: it enqueues a backup every
    backup.every_hours. A second scheduler started by mistake waits for the first's lease."""
    from app.hosting.schedule import run_scheduler
    from app.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)

    async def schedule() -> None:
        async with _services(settings, role="scheduler") as services:
            stop = stop_on_signals()
            await run_scheduler(settings, services.changes, stop)

    _run(schedule)
