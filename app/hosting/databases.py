"""A database's snapshot into a file, and a file back into an empty database, whichever the
engine: PostgreSQL (app/hosting/pg_dumps.py: pg_dump, and pg_restore through psql) or SQLite
(app/hosting/sqlite_dumps.py: its online backup API). Either way the per-table checks
(app/hosting/tables.py) come from the very snapshot that was dumped, and a restore ends by
comparing every table with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import anyio

from app.db import is_postgres
from app.hosting.dumps import CHUNK, Artifact, BackupError, Snapshot, compare
from app.hosting.pg_dumps import (
    PostgresTarget,
    dump_postgres,
    postgres_nonempty_at,
    restore_postgres,
    verify_postgres,
)
from app.hosting.sqlite_dumps import (
    dump_sqlite,
    restore_sqlite,
    sqlite_nonempty_at,
    sqlite_path,
    sqlite_tables_of,
)
from app.hosting.tables import TableCheck

__all__ = [
    "CHUNK",
    "Artifact",
    "BackupError",
    "Engine",
    "PostgresTarget",
    "Snapshot",
    "compare",
    "display_url",
    "dump",
    "engine_of",
    "refuse_nonempty",
    "restore",
    "sqlite_path",
    "table_checks",
    "verify",
]

Engine = Literal["postgres", "sqlite"]


def engine_of(url: str) -> Engine:
    scheme = url.partition("://")[0]
    if is_postgres(url):
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    raise BackupError(f"cannot back up or restore a {scheme!r} database (postgres or sqlite)")


def display_url(url: str) -> str:
    """The database URL for messages: the password masked."""
    if engine_of(url) == "postgres":
        return PostgresTarget.parse(url).display
    return url


async def dump(url: str, out: Path) -> tuple[Artifact, Snapshot]:
    """Dump the database at `url` into the file `out` (PostgreSQL's custom format, or the
    gzipped SQLite file) and check its tables in the same snapshot."""
    if engine_of(url) == "postgres":
        return await dump_postgres(PostgresTarget.parse(url), out)
    source = sqlite_path(url)
    return await anyio.to_thread.run_sync(dump_sqlite, source, out)


async def refuse_nonempty(url: str) -> None:
    """BackupError when the database at `url` has a table holding rows."""
    if engine_of(url) == "postgres":
        target = PostgresTarget.parse(url)
        table = await postgres_nonempty_at(target)
        where = target.display
    else:
        path = sqlite_path(url)
        table = await anyio.to_thread.run_sync(sqlite_nonempty_at, path)
        where = str(path)
    if table is not None:
        raise BackupError(
            f"{where} is not empty (table {table!r} has rows): restore into an empty "
            "database (a freshly migrated one is fine)"
        )


async def restore(artifact: Path, url: str, expected: Mapping[str, TableCheck]) -> None:
    """Put the dump `artifact` into the empty database at `url` and check that its tables
    equal `expected`. The target must hold no rows (BackupError, and nothing changed)."""
    if engine_of(url) == "postgres":
        await restore_postgres(artifact, PostgresTarget.parse(url), expected)
    else:
        await anyio.to_thread.run_sync(restore_sqlite, artifact, sqlite_path(url), expected)


async def table_checks(url: str) -> dict[str, TableCheck]:
    """Every table's row count and checksum in the database at `url`, as they are now."""
    if engine_of(url) == "postgres":
        return await verify_postgres(PostgresTarget.parse(url))
    return await anyio.to_thread.run_sync(sqlite_tables_of, sqlite_path(url))


async def verify(url: str, expected: Mapping[str, TableCheck]) -> dict[str, TableCheck]:
    """The database's tables, checked against `expected` (BackupError naming the first that
    differs)."""
    actual = await table_checks(url)
    compare(expected, actual)
    return actual
