"""Maintenance of the home-timeline fan-out table: it is a cache of the rule in `home`, so it can
be trimmed to a length and rebuilt from the rule at any time."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from app import sql
from app.services import home


async def rebuild_home(owner_id: int, *, max_entries: int, big_account: int) -> int:
    """Rewrite one account's home timeline from the rule (`home`), in its own transaction;
    returns its new length."""
    async with in_transaction() as conn:
        return await home.rebuild(conn, owner_id, big=big_account, cap=max_entries)


async def trim_homes(max_entries: int) -> int:
    """Drop the entries beyond the newest `max_entries` of every home timeline; returns how
    many went."""
    return await sql.execute(
        """
        DELETE FROM home_entries WHERE id IN (
          SELECT id FROM (
            SELECT id, ROW_NUMBER() OVER (PARTITION BY owner_id ORDER BY entry_id DESC) AS place
            FROM home_entries
          ) ranked WHERE place > :cap
        )
        """,
        {"cap": max_entries},
    )
