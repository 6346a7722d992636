"""Maintenance of the home-timeline fan-out table: it is a cache of the rule in `home`, so it can
be trimmed to a length and rebuilt from the rule at any time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tortoise.transactions import in_transaction

from app import live, sql
from app.changes import Change
from app.jobs import DeadJob, JobQueue
from app.services import home
from app.settings import Settings


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


# --- the fan-out as owed work ------------------------------------------------------------
# A change that affects home timelines records one of these jobs in its own transaction
# (`change.enqueue`); a worker runs it after the commit, in the job's transaction, and the
# live home streams hear of each entry written once that commits. Each handler makes rows
# what the rule says now, so running one twice, or late, or after the next change, is
# harmless: a post deleted meanwhile fans out to nobody.

FAN_OUT_POST = "home.fan_out_post"  # {"post"}
FAN_OUT_REPOST = "home.fan_out_repost"  # {"repost"}
RETRACT_REPOST = "home.retract_repost"  # {"repost", "reposter", "post"}
REFRESH_POST = "home.refresh_post"  # {"post", "owners"}
FOLLOW_CHANGED = "home.follow_changed"  # {"owner", "account", "followers"}


def _id(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise DeadJob(f"the payload needs a positive integer {key!r}, not {value!r}")
    return value


# On PostgreSQL (READ COMMITTED, several workers) a fan-out could read a row that a concurrent
# undo is deleting and insert entries after the undo's own clean-up ran, which could not see
# them: the entries would stay. So a fan-out first takes share locks on the rows it fans out
# from (the post or repost, and the follows it reads); the undo's DELETE then waits for the
# fan-out to commit, and the clean-up that the undo records runs after, seeing its rows. And
# the follow maintenance of one owner runs one job at a time (a lock on the owner's row).
# SQLite has one writer at a time: nothing interleaves there.
_SHARE_POST = (
    "SELECT 1 AS held FROM posts WHERE id = :post FOR SHARE",
    "SELECT 1 AS held FROM follows f JOIN posts p ON p.author_id = f.followee_id "
    "WHERE p.id = :post FOR SHARE OF f",
)
_SHARE_REPOST = (
    "SELECT 1 AS held FROM reposts WHERE id = :repost FOR SHARE",
    "SELECT 1 AS held FROM follows f JOIN reposts r ON r.user_id = f.followee_id "
    "WHERE r.id = :repost FOR SHARE OF f",
)
_LOCK_OWNER = ("SELECT 1 AS held FROM users WHERE id = :owner FOR UPDATE",)


async def _hold(change: Change, statements: tuple[str, ...], params: Mapping[str, Any]) -> None:
    if sql.dialect(change.conn) == "postgres":
        for statement in statements:
            await sql.fetch(statement, params, change.conn)


class FanOutService:
    def __init__(self, settings: Settings) -> None:
        self._big = settings.timelines.fanout_max_followers

    def register(self, queue: JobQueue) -> None:
        queue.register(FAN_OUT_POST, self.fan_out_post)
        queue.register(FAN_OUT_REPOST, self.fan_out_repost)
        queue.register(RETRACT_REPOST, self.retract_repost)
        queue.register(REFRESH_POST, self.refresh_post)
        queue.register(FOLLOW_CHANGED, self.follow_changed)

    async def fan_out_post(self, change: Change, payload: dict[str, Any]) -> None:
        post = _id(payload, "post")
        await _hold(change, _SHARE_POST, {"post": post})
        entries = await home.fan_out_post(change.conn, post, big=self._big)
        live.publish_home_entries(change, entries)

    async def fan_out_repost(self, change: Change, payload: dict[str, Any]) -> None:
        repost = _id(payload, "repost")
        await _hold(change, _SHARE_REPOST, {"repost": repost})
        entries = await home.fan_out_repost(change.conn, repost, big=self._big)
        live.publish_home_entries(change, entries)

    async def retract_repost(self, change: Change, payload: dict[str, Any]) -> None:
        entries = await home.retract_repost(
            change.conn,
            _id(payload, "repost"),
            _id(payload, "reposter"),
            _id(payload, "post"),
            big=self._big,
        )
        live.publish_home_entries(change, entries)

    async def refresh_post(self, change: Change, payload: dict[str, Any]) -> None:
        owners = payload.get("owners")
        if not isinstance(owners, list) or not all(
            isinstance(o, int) and not isinstance(o, bool) for o in owners
        ):
            raise DeadJob(f"the payload needs a list of owner ids, not {owners!r}")
        entries = await home.refresh_post(change.conn, _id(payload, "post"), owners, big=self._big)
        live.publish_home_entries(change, entries)

    async def follow_changed(self, change: Change, payload: dict[str, Any]) -> None:
        followers = payload.get("followers")
        if not isinstance(followers, int) or isinstance(followers, bool) or followers < 0:
            raise DeadJob(f"the payload needs the follower count, not {followers!r}")
        owner = _id(payload, "owner")
        await _hold(change, _LOCK_OWNER, {"owner": owner})
        entries = await home.follow_changed(
            change.conn,
            owner,
            _id(payload, "account"),
            followers=followers,
            big=self._big,
        )
        live.publish_home_entries(change, entries)
