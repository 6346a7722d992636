"""PostgreSQL dumps and restores: `pg_dump --format=custom`, and `pg_restore`'s SQL through
`psql` in one transaction.

The checks (app/hosting/tables.py) come from the very snapshot that is dumped: a REPEATABLE
READ, READ ONLY transaction exports its snapshot (`pg_export_snapshot()`) and pg_dump dumps
exactly that one (`--snapshot`) while the transaction, held open until pg_dump is done,
computes the checks. So writes that land while the dump runs are in neither the dump nor its
checks.

The password goes to pg_dump, pg_restore and psql in PGPASSWORD only, never on a command line
(`ps` shows those) nor in a message: `PostgresTarget.display` is the URL with the password
masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import anyio
import asyncpg

from app.db import PostgresURL
from app.hosting.dumps import (
    CHUNK,
    STDERR_LIMIT,
    Artifact,
    BackupError,
    HashingWriter,
    Snapshot,
    compare,
)
from app.hosting.tables import (
    MIGRATIONS_TABLE,
    TableCheck,
    postgres_checks,
    postgres_migration_head,
    postgres_nonempty,
    postgres_tables,
    quote,
)


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


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed (Debian: apt-get install postgresql-client); "
            "it must be at least as new as the server"
        )
    return path


async def dump_postgres(target: PostgresTarget, out: Path) -> tuple[Artifact, Snapshot]:
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
        writer = HashingWriter(file)
        while chunk := await process.stdout.read(CHUNK):
            await anyio.to_thread.run_sync(writer.write, chunk)
    code = await process.wait()
    message = (await errors).decode(errors="replace").strip()
    if code != 0:
        raise BackupError(f"pg_dump failed (exit {code}): {message[-STDERR_LIMIT:]}")
    return writer.artifact(out)


async def postgres_nonempty_at(target: PostgresTarget) -> str | None:
    """The first table of the database holding rows (the migrations' record aside), or None."""
    conn = await target.connect()
    try:
        return await postgres_nonempty(conn)
    finally:
        await conn.close()


async def restore_postgres(
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
                f"{message[-STDERR_LIMIT:]}"
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


async def verify_postgres(target: PostgresTarget) -> dict[str, TableCheck]:
    conn = await target.connect()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await postgres_checks(conn)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise BackupError(f"reading {target.display} failed: {exc}") from None
    finally:
        await conn.close()
