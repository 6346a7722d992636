"""A database's snapshot into a file, and a file back into an empty database.

PostgreSQL goes through `pg_dump --format=custom` and `pg_restore`; SQLite through its online
backup API. Either way the per-table checks (app/hosting/tables.py) come from the very
snapshot that was dumped:
- PostgreSQL: a REPEATABLE READ, READ ONLY transaction exports its snapshot
  (`pg_export_snapshot()`) and pg_dump dumps exactly that one (`--snapshot`) while the
  transaction, held open until pg_dump is done, computes the checks. So writes that land while
  the dump runs are in neither the dump nor its checks.
- SQLite: the backup API copies the database into a scratch file (a consistent copy even with
  writers), the checks are read from that copy, and the copy is what is stored (gzipped).

The password of a PostgreSQL URL goes to pg_dump and pg_restore in PGPASSWORD only, never on
a command line (`ps` shows those) nor in a message: `PostgresTarget.display` is the URL with
the password masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import sqlite3
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, Self

import anyio
import asyncpg

from app.db import PostgresURL, is_postgres
from app.hosting.tables import (
    MIGRATIONS_TABLE,
    TableCheck,
    postgres_checks,
    postgres_migration_head,
    postgres_nonempty,
    postgres_tables,
    quote,
    sqlite_checks,
    sqlite_migration_head,
    sqlite_nonempty,
)

Engine = Literal["postgres", "sqlite"]
CHUNK = 1024 * 1024
_STDERR_LIMIT = 2_000  # characters of a failed tool's output quoted in the error


class BackupError(Exception):
    """A backup could not be made, listed, restored or verified; the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a dump holds, table by table, and the newest migration applied to it."""

    tables: dict[str, TableCheck]
    migration_head: str | None


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file written while hashing it: what is stored."""

    path: Path
    size: int
    sha256: str


def engine_of(url: str) -> Engine:
    scheme = url.partition("://")[0]
    if is_postgres(url):
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    raise BackupError(f"cannot back up or restore a {scheme!r} database (postgres or sqlite)")


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite://PATH` URL (and a SQLite library that can check its tables:
    an older one ignores `PRAGMA table_list`, and would find no table to check)."""
    if sqlite3.sqlite_version_info < (3, 37):
        raise BackupError(f"SQLite {sqlite3.sqlite_version} is too old for backups (3.37+)")
    path = url.removeprefix("sqlite://").partition("?")[0]
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(path)


class PostgresTarget(PostgresURL):
    """A PostgreSQL database to dump or restore: app/db.py's one reading of the URL (`ssl`
    and `sslmode` alike), the password kept out of sight."""

    @classmethod
    def parse(cls, url: str) -> Self:
        try:
            return super().parse(url)
        except ValueError as exc:
            raise BackupError(str(exc)) from None

    def environment(self) -> dict[str, str]:
        """The environment for pg_dump, pg_restore and psql: libpq reads the connection
        from it."""
        return self.libpq_environment("holdfast-backup")

    async def connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(**self.asyncpg_options())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise BackupError(f"cannot connect to {self.display}: {exc}") from None


def display_url(url: str) -> str:
    """The database URL for messages: the password masked."""
    if engine_of(url) == "postgres":
        return PostgresTarget.parse(url).display
    return url


def compare(expected: Mapping[str, TableCheck], actual: Mapping[str, TableCheck]) -> None:
    """BackupError naming the first table (by name) whose rows differ from the backup's."""
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want == got:
            continue
        if want is None:
            problem = "is not in the backup"
        elif got is None:
            problem = "is missing"
        elif want.rows != got.rows:
            problem = f"has {got.rows} rows, the backup {want.rows}"
        else:
            problem = "has rows that differ from the backup's (checksum mismatch)"
        raise BackupError(f"verification failed: table {table!r} {problem}")


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed (Debian: apt-get install postgresql-client); "
            "it must be at least as new as the server"
        )
    return path


class _HashingWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def artifact(self, path: Path) -> Artifact:
        return Artifact(path, self.size, self._hash.hexdigest())


# Creating


async def dump(url: str, out: Path) -> tuple[Artifact, Snapshot]:
    """Dump the database at `url` into the file `out` (PostgreSQL's custom format, or the
    gzipped SQLite file) and check its tables in the same snapshot."""
    if engine_of(url) == "postgres":
        return await _dump_postgres(PostgresTarget.parse(url), out)
    source = sqlite_path(url)
    return await anyio.to_thread.run_sync(_dump_sqlite, source, out)


async def _dump_postgres(target: PostgresTarget, out: Path) -> tuple[Artifact, Snapshot]:
    program = _program("pg_dump")
    conn = await target.connect()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot_id = await conn.fetchval("SELECT pg_export_snapshot()")
            head = await postgres_migration_head(conn)
            process = await asyncio.create_subprocess_exec(
                program,
                "--format=custom",
                f"--snapshot={snapshot_id}",
                "--no-password",
                env=target.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    spooled = group.create_task(_spool(process, out))
                    checks = group.create_task(postgres_checks(conn))
            except* BackupError as failed:
                raise failed.exceptions[0] from None
            except* (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as failed:
                error = failed.exceptions[0]
                raise BackupError(f"reading {target.display} failed: {error}") from None
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            return spooled.result(), Snapshot(checks.result(), head)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise BackupError(f"reading {target.display} failed: {exc}") from None
    finally:
        await conn.close()


async def _spool(process: asyncio.subprocess.Process, out: Path) -> Artifact:
    """pg_dump's output into `out`, hashed as it comes: never the whole dump in memory."""
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.create_task(process.stderr.read())
    with out.open("wb") as file:
        writer = _HashingWriter(file)
        while chunk := await process.stdout.read(CHUNK):
            await anyio.to_thread.run_sync(writer.write, chunk)
    code = await process.wait()
    message = (await errors).decode(errors="replace").strip()
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {message[-_STDERR_LIMIT:]}")
    return writer.artifact(out)


def _dump_sqlite(source: Path, out: Path) -> tuple[Artifact, Snapshot]:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    copy = out.with_name(out.name + ".sqlite3")
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
        with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as conn:
            snapshot = Snapshot(sqlite_checks(conn), sqlite_migration_head(conn))
        # The file compresses well (free pages, repeated keys) and is read whole anyway.
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip framing
        with copy.open("rb") as file, out.open("wb") as target:
            writer = _HashingWriter(target)
            while chunk := file.read(CHUNK):
                writer.write(compressor.compress(chunk))
            writer.write(compressor.flush())
        return writer.artifact(out), snapshot
    except sqlite3.Error as exc:
        raise BackupError(f"reading the SQLite database {source} failed: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            copy.with_name(copy.name + suffix).unlink(missing_ok=True)


# Restoring


async def refuse_nonempty(url: str) -> None:
    """BackupError when the database at `url` has a table holding rows."""
    if engine_of(url) == "postgres":
        target = PostgresTarget.parse(url)
        conn = await target.connect()
        try:
            table = await postgres_nonempty(conn)
        finally:
            await conn.close()
        where = target.display
    else:
        path = sqlite_path(url)
        table = await anyio.to_thread.run_sync(_sqlite_nonempty, path)
        where = str(path)
    if table is not None:
        raise BackupError(
            f"{where} is not empty (table {table!r} has rows): restore into an empty "
            "database (a freshly migrated one is fine)"
        )


def _sqlite_nonempty(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return sqlite_nonempty(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the target {path}: {exc}") from None


async def restore(artifact: Path, url: str, expected: Mapping[str, TableCheck]) -> None:
    """Put the dump `artifact` into the empty database at `url` and check that its tables
    equal `expected`. The target must hold no rows (BackupError, and nothing changed)."""
    if engine_of(url) == "postgres":
        await _restore_postgres(artifact, PostgresTarget.parse(url), expected)
    else:
        await anyio.to_thread.run_sync(_restore_sqlite, artifact, sqlite_path(url), expected)


async def _restore_postgres(
    artifact: Path, target: PostgresTarget, expected: Mapping[str, TableCheck]
) -> None:
    """The migrated (empty) schema dropped and the dump restored in one transaction: psql
    runs `BEGIN`, the lock, the emptiness check and the drops, then the SQL pg_restore makes of
    the dump, and `COMMIT` only once pg_restore succeeded. A failure anywhere (a truncated
    dump, a row that landed meanwhile) rolls everything back: the target is as it was."""
    pg_restore, psql = _program("pg_restore"), _program("psql")
    conn = await target.connect()
    try:
        prelude = await _clear_postgres(conn)
    finally:
        await conn.close()
    env = target.environment()
    loader = await asyncio.create_subprocess_exec(
        psql,
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={target.database}",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    reader = await asyncio.create_subprocess_exec(
        pg_restore,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--file=-",
        str(artifact),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        restored, loaded = await _pipe(reader, loader, prelude)
    finally:
        for process in (reader, loader):
            if process.returncode is None:
                process.kill()
                await process.wait()
    if loaded is not None and _NOT_EMPTY in loaded:
        raise BackupError(
            f"{target.display} is not empty ({loaded.partition(_NOT_EMPTY)[2].strip()}): "
            "restore into an empty database (a freshly migrated one is fine)"
        )
    # psql's error first: when it stopped, pg_restore only lost its reader.
    for tool, message in (("psql", loaded), ("pg_restore", restored)):
        if message is not None:
            raise BackupError(
                f"{tool} failed (nothing was restored; the target is unchanged): "
                f"{message[-_STDERR_LIMIT:]}"
            )
    try:
        compare(expected, await verify_postgres(target))
    except BackupError as exc:
        raise BackupError(
            f"{exc} (the restored database {target.display} is not the backup's: drop it)"
        ) from None


_NOT_EMPTY = "holdfast-not-empty:"


async def _pipe(
    reader: asyncio.subprocess.Process, loader: asyncio.subprocess.Process, prelude: str
) -> tuple[str | None, str | None]:
    """pg_restore's SQL into psql after `prelude`, then `COMMIT` only if pg_restore exited
    0: without it psql ends the session and the server rolls the transaction back. Each
    tool's error output when it failed, else None."""
    assert reader.stdout is not None
    assert reader.stderr is not None
    assert loader.stdin is not None
    assert loader.stderr is not None
    reader_errors = asyncio.create_task(reader.stderr.read())
    loader_errors = asyncio.create_task(loader.stderr.read())
    sink = loader.stdin
    try:
        sink.write(prelude.encode())
        while chunk := await reader.stdout.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        restored = await reader.wait()
        if restored == 0:
            sink.write(b"\nCOMMIT;\n")
            await sink.drain()
    except (BrokenPipeError, ConnectionResetError):
        # psql stopped at an error (its output says which): nothing reads pg_restore's.
        reader.kill()
        restored = await reader.wait()
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sink.close()
            await sink.wait_closed()
    loaded = await loader.wait()
    reader_text = (await reader_errors).decode(errors="replace").strip()
    loader_text = (await loader_errors).decode(errors="replace").strip()
    return (
        None if restored == 0 else f"exit {restored}: {reader_text}",
        None if loaded == 0 else f"exit {loaded}: {loader_text}",
    )


async def _clear_postgres(conn: asyncpg.Connection) -> str:
    """The SQL that opens the restore's transaction: the tables a migration made locked
    (no row lands in between), checked empty, and the schema's objects dropped so that the
    dump's own replace them."""
    statements = ["BEGIN;"]
    tables = await postgres_tables(conn)
    if tables:
        names = ", ".join(f"public.{quote(table)}" for table in tables)
        statements.append(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE;")
    for table in tables:
        if table == MIGRATIONS_TABLE:
            continue
        literal = table.replace("'", "''")
        statements.append(  # identifiers quoted, the name a literal
            f"DO $holdfast$ BEGIN IF EXISTS (SELECT 1 FROM public.{quote(table)}) THEN "  # noqa: S608
            f"RAISE EXCEPTION '{_NOT_EMPTY} table % has rows', '{literal}'; "
            "END IF; END $holdfast$;"
        )
    relations = await conn.fetch(
        "SELECT c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT EXISTS ("
        "SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"
    )
    kinds = {"v": "VIEW", "m": "MATERIALIZED VIEW", "r": "TABLE", "p": "TABLE"}
    kinds |= {"f": "FOREIGN TABLE", "S": "SEQUENCE"}
    for kind in ("v", "m", "r", "p", "f", "S"):
        dropped = [f"public.{quote(name)}" for name, relkind in relations if relkind == kind]
        if dropped:
            statements.append(f"DROP {kinds[kind]} IF EXISTS {', '.join(dropped)} CASCADE;")
    routines = await conn.fetch(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
        "AND p.prokind IN ('f', 'p') AND NOT EXISTS ("
        "SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
    )
    statements += [f"DROP ROUTINE IF EXISTS {signature} CASCADE;" for (signature,) in routines]
    types = await conn.fetch(
        "SELECT t.typname, t.typtype::text FROM pg_type t "
        "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' "
        "AND t.typtype IN ('e', 'd') AND NOT EXISTS ("
        "SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')"
    )
    for name, kind in types:
        statement = "DOMAIN" if kind == "d" else "TYPE"
        statements.append(f"DROP {statement} IF EXISTS public.{quote(name)} CASCADE;")
    return "\n".join(statements) + "\n"


def _restore_sqlite(artifact: Path, target: Path, expected: Mapping[str, TableCheck]) -> None:
    """Unpack beside the target, check the unpacked file, then move it into place: a failure
    at any step leaves the target as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
    try:
        decompressor = zlib.decompressobj(31)
        with artifact.open("rb") as file, staged.open("wb") as out:
            while chunk := file.read(CHUNK):
                out.write(decompressor.decompress(chunk))
            out.write(decompressor.flush())
        with contextlib.closing(sqlite3.connect(staged, isolation_level=None)) as conn:
            compare(expected, sqlite_checks(conn))
        table = _sqlite_nonempty(target)
        if table is not None:
            raise BackupError(
                f"{target} is not empty (table {table!r} has rows): restore into an empty "
                "database (a freshly migrated one is fine)"
            )
        # The empty database's journal would otherwise be replayed over the restored file.
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(staged, target)
    except (zlib.error, sqlite3.Error) as exc:
        raise BackupError(f"restoring into {target} failed: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            staged.with_name(staged.name + suffix).unlink(missing_ok=True)


# Verifying


async def table_checks(url: str) -> dict[str, TableCheck]:
    """Every table's row count and checksum in the database at `url`, as they are now."""
    if engine_of(url) == "postgres":
        return await verify_postgres(PostgresTarget.parse(url))
    return await anyio.to_thread.run_sync(_sqlite_tables_of, sqlite_path(url))


async def verify(url: str, expected: Mapping[str, TableCheck]) -> dict[str, TableCheck]:
    """The database's tables, checked against `expected` (BackupError naming the first that
    differs)."""
    actual = await table_checks(url)
    compare(expected, actual)
    return actual


async def verify_postgres(target: PostgresTarget) -> dict[str, TableCheck]:
    conn = await target.connect()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await postgres_checks(conn)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise BackupError(f"reading {target.display} failed: {exc}") from None
    finally:
        await conn.close()


def _sqlite_tables_of(path: Path) -> dict[str, TableCheck]:
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            return sqlite_checks(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"reading the SQLite database {path} failed: {exc}") from None
