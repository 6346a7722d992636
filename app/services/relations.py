"""Blocks and mutes between two accounts, defined once: SQL fragments that take the columns
(or parameters) they compare, and the Python checks built on them.

- A block works both ways: neither account sees the other, its posts, its reposts or its
  notifications, anywhere, and neither may act on the other. It is applied when reading (the
  block clause of `views.audience`), so unblocking brings back what the block hid; blocking
  also removes the follows and follow requests between them (GraphService.block).
- A mute is one-way and read-time only: the muter's timelines and notifications leave out
  the muted account's posts, reposts and actions; what the muter looks at on purpose (the
  account's page, a thread, bookmarks) still shows them, and unmuting brings everything back.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql


def _either_way(alias: str, a: str, b: str) -> str:
    return (
        f"(({alias}.blocker_id = {a} AND {alias}.blocked_id = {b}) "
        f"OR ({alias}.blocker_id = {b} AND {alias}.blocked_id = {a}))"
    )


def blocked(a: str, b: str, alias: str = "bk") -> str:
    """SQL: `a` blocks `b` or `b` blocks `a`. The alias must be free in the enclosing
    statement's scope when fragments nest."""
    return f"EXISTS (SELECT 1 FROM blocks {alias} WHERE {_either_way(alias, a, b)})"


def muted(muter: str, account: str, alias: str = "mu") -> str:
    """SQL: `muter` mutes `account`."""
    return (
        f"EXISTS (SELECT 1 FROM mutes {alias} "
        f"WHERE {alias}.muter_id = {muter} AND {alias}.muted_id = {account})"
    )


async def blockers_between(a: int, b: int, conn: BaseDBAsyncClient | None = None) -> frozenset[int]:
    """Which of the two accounts block the other (empty: no block either way)."""
    rows = await sql.fetch(
        f"SELECT bk.blocker_id FROM blocks bk WHERE {_either_way('bk', ':a', ':b')}",
        {"a": a, "b": b},
        conn,
    )
    return frozenset(row["blocker_id"] for row in rows)


async def blocked_either_way(a: int, b: int, conn: BaseDBAsyncClient | None = None) -> bool:
    return bool(await blockers_between(a, b, conn))


async def blocked_among(
    viewer: int, accounts: list[int], conn: BaseDBAsyncClient | None = None
) -> frozenset[int]:
    """The accounts among `accounts` that block `viewer` or that it blocks."""
    rows = await sql.fetch(
        f"SELECT u.id FROM users u WHERE u.id IN (:accounts) AND {blocked(':viewer', 'u.id')}",
        {"viewer": viewer, "accounts": sql.ids_param(accounts)},
        conn,
    )
    return frozenset(row["id"] for row in rows)


async def mutes(muter: int, account: int, conn: BaseDBAsyncClient | None = None) -> bool:
    """Whether `muter` mutes `account` (for deliveries that check one event at a time)."""
    rows = await sql.fetch(
        f"SELECT 1 AS muted WHERE {muted(':muter', ':account')}",
        {"muter": muter, "account": account},
        conn,
    )
    return bool(rows)
