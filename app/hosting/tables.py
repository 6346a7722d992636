"""Per-table row counts and checksums: what a backup records and a restore must reproduce.

A checksum is the SHA-256 over a table's rows in primary-key order, each row in a canonical
text form (length-prefixed, so no row can run into the next). The same function runs when the
backup is taken and after it is restored, on the same engine: a PostgreSQL row is its
`row::text` under fixed session settings (time zone, date and float output), a SQLite row is
the `repr` of its Python values. Text keys sort with the "C" collation on PostgreSQL, so a
server with another default collation orders (and so hashes) the same rows the same way.

Only ordinary tables are checked: views, and SQLite's virtual tables and their shadow tables
(the search index, rebuilt from `posts` by its triggers), hold nothing a restore could lose
that their source tables do not.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

MIGRATIONS_TABLE = "tortoise_migrations"
"""Filled by `holdfast migrate`: a freshly migrated database has rows only here, and counts as
empty for a restore."""

USERS_TABLE = "users"
"""Everything a user writes hangs off an account: a database without one holds no user data,
whatever the service wrote by itself (migrations, jobs, leases, fleet nodes, the configured
plans every web node records at start-up)."""


def holds_user_data(tables: Mapping[str, TableCheck]) -> bool:
    """Whether the database these checks describe has at least one account. Defined by what
    is there rather than by a list of the service's own tables, which the next table the
    service fills by itself would silently break."""
    users = tables.get(USERS_TABLE)
    return users is not None and users.rows > 0


_POSTGRES_SESSION = (
    "SET LOCAL TIME ZONE 'UTC'",
    "SET LOCAL datestyle = 'ISO, YMD'",
    "SET LOCAL intervalstyle = 'postgres'",
    "SET LOCAL extra_float_digits = 1",
    "SET LOCAL bytea_output = 'hex'",
)
_FETCH = 1000


@dataclass(frozen=True, slots=True)
class TableCheck:
    """A table's row count and the checksum over its rows."""

    rows: int
    checksum: str


class _Digest:
    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, row: bytes) -> None:
        self._hash.update(len(row).to_bytes(8, "big"))
        self._hash.update(row)
        self.rows += 1

    def check(self) -> TableCheck:
        return TableCheck(self.rows, self._hash.hexdigest())


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# PostgreSQL (a connection inside a transaction: one snapshot for every table)


async def postgres_tables(conn: asyncpg.Connection) -> list[str]:
    """The ordinary tables of the `public` schema, by name."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY c.relname"
    )
    return [row[0] for row in rows]


async def _postgres_order(conn: asyncpg.Connection, table: str) -> str:
    columns = await conn.fetch(
        "SELECT a.attname, t.typcollation <> 0 FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE i.indrelid = ('public.' || quote_ident($1))::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
        table,
    )
    if not columns:  # no primary key: the whole row orders it
        return 't::text COLLATE "C"'
    return ", ".join(
        f"t.{quote(name)}" + (' COLLATE "C"' if collatable else "") for name, collatable in columns
    )


async def postgres_checks(conn: asyncpg.Connection) -> dict[str, TableCheck]:
    """Row counts and checksums of every table, read in the connection's open transaction."""
    for statement in _POSTGRES_SESSION:
        await conn.execute(statement)
    checks: dict[str, TableCheck] = {}
    for table in await postgres_tables(conn):
        order = await _postgres_order(conn, table)
        digest = _Digest()
        query = f"SELECT t::text FROM public.{quote(table)} AS t ORDER BY {order}"
        async for record in conn.cursor(query, prefetch=_FETCH):
            digest.add(record[0].encode())
        checks[table] = digest.check()
    return checks


async def postgres_nonempty(conn: asyncpg.Connection) -> str | None:
    """The first table holding rows (the migrations' own record aside), or None."""
    for table in await postgres_tables(conn):
        if table == MIGRATIONS_TABLE:
            continue
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM public.{quote(table)})"):
            return table
    return None


async def postgres_migration_head(conn: asyncpg.Connection) -> str | None:
    if MIGRATIONS_TABLE not in await postgres_tables(conn):
        return None
    head: str | None = await conn.fetchval(
        f"SELECT name FROM public.{MIGRATIONS_TABLE} ORDER BY name DESC LIMIT 1"
    )
    return head


# SQLite (a connection with isolation_level=None: BEGIN gives one snapshot)


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    """The ordinary tables of the main database, by name (not virtual or shadow tables)."""
    rows = conn.execute("PRAGMA main.table_list").fetchall()
    return sorted(
        name
        for schema, name, kind, *_ in rows
        if schema == "main" and kind == "table" and not name.startswith("sqlite_")
    )


def _sqlite_order(conn: sqlite3.Connection, table: str) -> str:
    columns = conn.execute(f"PRAGMA main.table_info({quote(table)})").fetchall()
    keys = sorted((column[5], column[1]) for column in columns if column[5])
    chosen = [name for _, name in keys] or [column[1] for column in columns]
    return ", ".join(quote(name) for name in chosen)


def _sqlite_row(row: tuple[Any, ...]) -> bytes:
    return repr(row).encode()


def sqlite_checks(conn: sqlite3.Connection) -> dict[str, TableCheck]:
    """Row counts and checksums of every table, in one read transaction."""
    conn.execute("BEGIN")
    try:
        checks: dict[str, TableCheck] = {}
        for table in sqlite_tables(conn):
            digest = _Digest()
            cursor = conn.execute(
                f"SELECT * FROM main.{quote(table)} ORDER BY {_sqlite_order(conn, table)}"
            )
            while batch := cursor.fetchmany(_FETCH):
                for row in batch:
                    digest.add(_sqlite_row(row))
            checks[table] = digest.check()
        return checks
    finally:
        conn.execute("ROLLBACK")


def sqlite_nonempty(conn: sqlite3.Connection) -> str | None:
    """The first table holding rows (the migrations' own record aside), or None."""
    for table in sqlite_tables(conn):
        if table == MIGRATIONS_TABLE:
            continue
        if conn.execute(f"SELECT EXISTS (SELECT 1 FROM main.{quote(table)})").fetchone()[0]:
            return table
    return None


def sqlite_migration_head(conn: sqlite3.Connection) -> str | None:
    if MIGRATIONS_TABLE not in sqlite_tables(conn):
        return None
    row = conn.execute(
        f"SELECT name FROM main.{MIGRATIONS_TABLE} ORDER BY name DESC LIMIT 1"
    ).fetchone()
    return None if row is None else str(row[0])
