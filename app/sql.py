"""Raw SQL for the hot read paths, written once for PostgreSQL and SQLite.

Statements use named parameters (`:viewer`); `run` rewrites them to the connection's style
(`$1` for asyncpg, `?1` for SQLite), so one parameter may appear many times. A list value
expands to a comma-separated parameter list for `IN (:ids)`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

# Statements that bypass Tortoise's client are logged here as Tortoise logs its own.
log = logging.getLogger("holdfast.sql")

_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


def connection() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def dialect(conn: BaseDBAsyncClient | None = None) -> str:
    return str((conn or connection()).capabilities.dialect)


@lru_cache(maxsize=512)
def _compile(
    sql: str, postgres: bool, sizes: tuple[tuple[str, int], ...]
) -> tuple[str, tuple[str, ...]]:
    """Rewrite named parameters to positional ones; returns the SQL and the value order."""
    list_sizes = dict(sizes)
    order: list[str] = []
    positions: dict[str, int] = {}

    def place(name: str) -> str:
        if name not in positions:
            order.append(name)
            positions[name] = len(order)
        return f"${positions[name]}" if postgres else f"?{positions[name]}"

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in list_sizes:
            size = list_sizes[name]
            if size == 0:
                return "NULL"
            return ", ".join(place(f"{name}\x00{i}") for i in range(size))
        return place(name)

    return _PARAM.sub(replace, sql), tuple(order)


def _values(order: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    values = []
    if "now" in order and "now" not in params:
        # Rules that depend on the time (premium access, app/services/views.py) name :now;
        # the statement's time unless the caller fixes it.
        params = {**params, "now": datetime.now(UTC)}
    for key in order:
        name, _, index = key.partition("\x00")
        values.append(params[name][int(index)] if index else params[name])
    return values


def prepare(
    sql: str, params: Mapping[str, Any], conn: BaseDBAsyncClient | None = None
) -> tuple[str, list[Any]]:
    return prepare_for(dialect(conn) == "postgres", sql, params)


def prepare_for(postgres: bool, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`prepare` for a dialect, for raw driver connections (the seed's bulk loads)."""
    sizes = tuple(sorted((k, len(v)) for k, v in params.items() if isinstance(v, (list, tuple))))
    text, order = _compile(sql, postgres, sizes)
    return text, _values(order, params)


Row = Mapping[str, Any]


async def fetch(
    sql: str, params: Mapping[str, Any] | None = None, conn: BaseDBAsyncClient | None = None
) -> list[Row]:
    """Rows as read-only mappings (asyncpg records on PostgreSQL: a page row has ~90 columns,
    and copying each into a dict cost more than the rest of the row handling)."""
    conn = conn or connection()
    text, values = prepare(sql, params or {}, conn)
    if dialect(conn) == "postgres":
        log.debug("%s: %s", text, values)
        async with conn.acquire_connection() as raw:
            records: list[Row] = await raw.fetch(text, *values)
            return records
    return list(await conn.execute_query_dict(text, values))


async def execute(
    sql: str, params: Mapping[str, Any] | None = None, conn: BaseDBAsyncClient | None = None
) -> int:
    """Run a statement; returns the number of rows it changed."""
    conn = conn or connection()
    if sql.lstrip().upper().startswith("INSERT"):
        # Tortoise's asyncpg client reads the OID of "INSERT 0 n" as the count: count the
        # rows RETURNING gives instead (PostgreSQL, and SQLite since 3.35).
        text, values = prepare(sql + " RETURNING 1 AS inserted", params or {}, conn)
        return len(await conn.execute_query_dict(text, values))
    text, values = prepare(sql, params or {}, conn)
    changed, _ = await conn.execute_query(text, values)
    return int(changed)


def ids_param(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(ids))
