"""Bulk loading, per dialect: COPY on PostgreSQL (asyncpg), executemany in one transaction on
SQLite; then the home timelines, filled in SQL by the home rule."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterable, Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.seed.generate import Posts, Users
from app.services import home

POST_COLUMNS = (
    "id",
    "author_id",
    "text",
    "content_warning",
    "visibility",
    "reply_to_id",
    "quote_of_id",
    "entities",
    "like_count",
    "repost_count",
    "reply_count",
    "quote_count",
    "created_at",
)
USER_COLUMNS = (
    "id",
    "username",
    "username_key",
    "email",
    "password_hash",
    "display_name",
    "display_name_key",
    "bio",
    "is_locked",
    "role",
    "follower_count",
    "following_count",
    "notifications_read_id",
    "created_at",
    "updated_at",
)

# Candidate rows per home_entries statement on PostgreSQL: sorted in memory (work_mem).
HOME_CHUNK_ROWS = 2_000_000


def owner_ranges(users: Users, posts: Posts, budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges of account ids, each with about `budget` fan-out candidates (the
    posts of the accounts they follow); one range for everything when budget is 0."""
    if not budget:
        return [(users.ids[0], users.ids[-1])]
    written = [0] * len(users.ids)
    for author in posts.author:
        written[author] += 1
    ranges: list[tuple[int, int]] = []
    first, load = 0, 0
    for user, followees in enumerate(users.followees):
        load += written[user] + sum(written[f] for f in followees)
        if load >= budget or user == len(users.ids) - 1:
            ranges.append((users.ids[first], users.ids[user]))
            first, load = user + 1, 0
    return ranges


SEEDED_TABLES = (
    "users",
    "plans",
    "subscriptions",
    "follows",
    "posts",
    "post_tags",
    "mentions",
    "likes",
    "reposts",
    "bookmarks",
    "home_entries",
)


class Loader:
    """Bulk loading for one dialect."""

    postgres: bool

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        raise NotImplementedError

    async def execute(self, statement: str) -> None:
        raise NotImplementedError

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        """Fill home_entries for the accounts with ids in each [lo, hi] range, by the rule
        (`app.services.home`), keeping the newest `cap` entries of each."""
        raise NotImplementedError


def _fill_home(postgres: bool, lo: int, hi: int, big: int, cap: int) -> tuple[str, list[Any]]:
    return sql.prepare_for(
        postgres, home.FILL_STATEMENT, {"lo": lo, "hi": hi, "big": big, "cap": cap}
    )


class PostgresLoader(Loader):
    postgres = True

    def __init__(self, client: BaseDBAsyncClient, raw: Any) -> None:
        self._client = client
        self._raw = raw

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        await self._raw.copy_records_to_table(table, records=rows, columns=list(columns))

    async def execute(self, statement: str) -> None:
        await self._raw.execute(statement)

    async def drop_secondary_indexes(self) -> list[str]:
        """Drop the seeded tables' plain (non-unique) indexes, returning their definitions:
        building them once after the load is much faster than keeping them up to date."""
        found = await self._raw.fetch(
            """
            SELECT i.indexrelid::regclass::text AS name,
                   pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY($1::text[])
              AND t.relnamespace = current_schema()::regnamespace
              AND NOT i.indisunique AND NOT i.indisprimary
            -- slowest first: GIN, then by table size
            ORDER BY (SELECT amname FROM pg_am WHERE oid = (
                        SELECT relam FROM pg_class WHERE oid = i.indexrelid)) = 'gin' DESC,
                     pg_relation_size(i.indrelid) DESC
            """,
            list(SEEDED_TABLES),
        )
        for row in found:
            await self._raw.execute(f"DROP INDEX {row['name']}")
        return [row["definition"] for row in found]

    async def create_indexes(self, definitions: list[str]) -> None:
        """Run CREATE INDEX statements, as many at a time as there are cores."""
        await self._parallel([(definition, []) for definition in definitions])

    async def _parallel(self, statements: list[tuple[str, list[Any]]]) -> None:
        if not statements:
            return
        queue: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        for statement in statements:
            queue.put_nowait(statement)

        async def worker() -> None:
            async with self._client.acquire_connection() as raw:
                await tune_session(raw)
                try:
                    while not queue.empty():
                        text, values = queue.get_nowait()
                        await raw.execute(text, *values)
                finally:
                    await reset_session(raw)

        workers = max(1, min(os.cpu_count() or 1, 4, len(statements)))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        # Ranges of owners, filled by as many connections as there are cores.
        await self._parallel([_fill_home(True, lo, hi, big, cap) for lo, hi in ranges])


class SqliteLoader(Loader):
    postgres = False

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (our own names)
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, 20_000)):
            await self._raw.executemany(statement, batch)

    async def execute(self, statement: str) -> None:
        await self._raw.execute(statement)

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        for lo, hi in ranges:
            await self._raw.execute(*_fill_home(False, lo, hi, big, cap))


_SESSION_SETTINGS = {
    "synchronous_commit": "off",
    "work_mem": "'256MB'",
    "maintenance_work_mem": "'512MB'",
}


async def tune_session(raw: Any) -> None:
    """Session settings for a bulk load; foreign-key triggers off when the role may do that
    (the generated rows are consistent by construction)."""
    for name, value in _SESSION_SETTINGS.items():
        await raw.execute(f"SET {name} = {value}")
    try:
        await raw.execute("SET session_replication_role = replica")
    except Exception as exc:  # asyncpg.InsufficientPrivilegeError: not a superuser
        if type(exc).__name__ != "InsufficientPrivilegeError":
            raise


async def reset_session(raw: Any) -> None:
    for name in (*_SESSION_SETTINGS, "session_replication_role"):
        await raw.execute(f"RESET {name}")
