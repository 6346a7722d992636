"""The social graph: follow (or request to follow a locked account), unfollow, accept and
reject requests, block and mute; follower lists. Follower counts change with the rows."""

from __future__ import annotations

from enum import StrEnum

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.changes import Change, Changes
from app.errors import DomainError, ErrorCode
from app.ids import new_id
from app.models import NotificationKind, User
from app.services import fanout
from app.services.accounts import Viewer
from app.services.notifications import notify
from app.services.paging import Page, PageRequest, make_page
from app.services.relations import blocked, blockers_between
from app.services.views import USER_COLUMNS, AccountCard, account_from_row


class FollowState(StrEnum):
    NOT_FOLLOWING = "not_following"
    REQUESTED = "requested"
    FOLLOWING = "following"


# Accounts that block :viewer or that :viewer blocks are invisible to each other.
NOT_BLOCKED_USER = f"NOT {blocked(':viewer', 'u.id', 'ub')}"


async def _visible_user(viewer_id: int, user_id: int, field: str) -> User:
    """The account, unless it is missing or blocks the viewer (both look the same: missing);
    an account the viewer blocks is BLOCKED, so they know to unblock first."""
    user = await User.get_or_none(id=user_id)
    blockers = await blockers_between(viewer_id, user_id) if user is not None else frozenset()
    if user is None or user_id in blockers:
        raise DomainError(ErrorCode.NOT_FOUND, "No such account.", field)
    if viewer_id in blockers:
        raise DomainError(ErrorCode.BLOCKED, "You block this account; unblock it first.", field)
    return user


async def _adjust_counts(follower: int, followee: int, delta: int, conn: BaseDBAsyncClient) -> int:
    """Move both counters by `delta`; returns the followee's follower count now."""
    await sql.execute(
        "UPDATE users SET following_count = following_count + :delta WHERE id = :follower",
        {"delta": delta, "follower": follower},
        conn,
    )
    rows = await sql.fetch(
        "UPDATE users SET follower_count = follower_count + :delta WHERE id = :followee "
        "RETURNING follower_count",
        {"delta": delta, "followee": followee},
        conn,
    )
    return int(rows[0]["follower_count"])


async def _follow_changed(change: Change, owner: int, account: int, followers: int) -> None:
    """Owe the home timelines what a follow added or removed (`fanout.FOLLOW_CHANGED`), with
    the account's follower count as this change left it (the threshold between stored and
    merged is crossed by one follow)."""
    await change.enqueue(
        fanout.FOLLOW_CHANGED, {"owner": owner, "account": account, "followers": followers}
    )


class GraphService:
    def __init__(self, changes: Changes) -> None:
        self._changes = changes

    async def _remove_follow(self, follower: int, followee: int, change: Change) -> bool:
        conn = change.conn
        removed = await sql.execute(
            "DELETE FROM follows WHERE follower_id = :follower AND followee_id = :followee",
            {"follower": follower, "followee": followee},
            conn,
        )
        if removed:
            followers = await _adjust_counts(follower, followee, -1, conn)
            await _follow_changed(change, follower, followee, followers)
        return bool(removed)

    async def _add_follow(self, follower: int, followee: int, change: Change) -> bool:
        conn = change.conn
        added = await sql.execute(
            "INSERT INTO follows (id, follower_id, followee_id) "
            "VALUES (:id, :follower, :followee) "
            "ON CONFLICT (follower_id, followee_id) DO NOTHING",
            {"id": new_id(), "follower": follower, "followee": followee},
            conn,
        )
        if added:
            followers = await _adjust_counts(follower, followee, 1, conn)
            await notify([followee], follower, NotificationKind.FOLLOW, None, change)
            # The new follower's home timeline gets the account's recent posts.
            await _follow_changed(change, follower, followee, followers)
        return bool(added)

    async def follow(self, viewer: Viewer, target_id: int) -> FollowState:
        me = viewer.user.id
        if target_id == me:
            raise DomainError(ErrorCode.CANNOT_FOLLOW_SELF, "You cannot follow yourself.", "userId")
        target = await _visible_user(me, target_id, "userId")
        async with self._changes.begin() as change:
            conn = change.conn
            if await self._state(me, target.id, conn) is FollowState.FOLLOWING:
                return FollowState.FOLLOWING
            if target.is_locked:
                added = await sql.execute(
                    "INSERT INTO follow_requests (id, requester_id, target_id) "
                    "VALUES (:id, :me, :target) "
                    "ON CONFLICT (requester_id, target_id) DO NOTHING",
                    {"id": new_id(), "me": me, "target": target.id},
                    conn,
                )
                if added:
                    await notify([target.id], me, NotificationKind.FOLLOW_REQUEST, None, change)
                return FollowState.REQUESTED
            await self._add_follow(me, target.id, change)
        return FollowState.FOLLOWING

    async def unfollow(self, viewer: Viewer, target_id: int) -> FollowState:
        me = viewer.user.id
        async with self._changes.begin() as change:
            conn = change.conn
            await self._remove_follow(me, target_id, change)
            await sql.execute(
                "DELETE FROM follow_requests WHERE requester_id = :me AND target_id = :target",
                {"me": me, "target": target_id},
                conn,
            )
        return FollowState.NOT_FOLLOWING

    async def answer_request(self, viewer: Viewer, requester_id: int, *, accept: bool) -> None:
        me = viewer.user.id
        async with self._changes.begin() as change:
            conn = change.conn
            removed = await sql.execute(
                "DELETE FROM follow_requests WHERE requester_id = :requester AND target_id = :me",
                {"requester": requester_id, "me": me},
                conn,
            )
            if not removed:
                raise DomainError(
                    ErrorCode.NOT_FOUND, "No follow request from this account.", "userId"
                )
            await sql.execute(
                "DELETE FROM notifications WHERE recipient_id = :me AND actor_id = :requester "
                "AND kind = 'follow_request'",
                {"requester": requester_id, "me": me},
                conn,
            )
            if accept:
                await self._add_follow(requester_id, me, change)

    async def block(self, viewer: Viewer, target_id: int) -> None:
        """Blocking removes follows and requests both ways; each then sees nothing of the
        other anywhere, and neither can interact with the other. The rest is applied when
        reading (`relations`), so unblocking shows again what the block hid."""
        me = viewer.user.id
        if target_id == me:
            raise DomainError(ErrorCode.INVALID_INPUT, "You cannot block yourself.", "userId")
        if not await User.exists(id=target_id):
            raise DomainError(ErrorCode.NOT_FOUND, "No such account.", "userId")
        params = {"id": new_id(), "me": me, "target": target_id}
        async with self._changes.begin() as change:
            conn = change.conn
            await sql.execute(
                "INSERT INTO blocks (id, blocker_id, blocked_id) VALUES (:id, :me, :target) "
                "ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
                params,
                conn,
            )
            await self._remove_follow(me, target_id, change)
            await self._remove_follow(target_id, me, change)
            await sql.execute(
                "DELETE FROM follow_requests WHERE (requester_id = :me AND target_id = :target) "
                "OR (requester_id = :target AND target_id = :me)",
                params,
                conn,
            )

    async def unblock(self, viewer: Viewer, target_id: int) -> None:
        await sql.execute(
            "DELETE FROM blocks WHERE blocker_id = :me AND blocked_id = :target",
            {"me": viewer.user.id, "target": target_id},
        )

    async def mute(self, viewer: Viewer, target_id: int) -> None:
        me = viewer.user.id
        if target_id == me:
            raise DomainError(ErrorCode.INVALID_INPUT, "You cannot mute yourself.", "userId")
        await _visible_user(me, target_id, "userId")
        await sql.execute(
            "INSERT INTO mutes (id, muter_id, muted_id) VALUES (:id, :me, :target) "
            "ON CONFLICT (muter_id, muted_id) DO NOTHING",
            {"id": new_id(), "me": me, "target": target_id},
        )

    async def unmute(self, viewer: Viewer, target_id: int) -> None:
        await sql.execute(
            "DELETE FROM mutes WHERE muter_id = :me AND muted_id = :target",
            {"me": viewer.user.id, "target": target_id},
        )

    async def states(self, viewer_id: int, target_ids: list[int]) -> dict[int, FollowState]:
        """The viewer's follow state towards each of `target_ids` (absent: not following)."""
        rows = await sql.fetch(
            "SELECT followee_id AS target, 'following' AS state FROM follows "
            "WHERE follower_id = :me AND followee_id IN (:targets) "
            "UNION ALL SELECT target_id, 'requested' FROM follow_requests "
            "WHERE requester_id = :me AND target_id IN (:targets)",
            {"me": viewer_id, "targets": sql.ids_param(target_ids)},
        )
        states: dict[int, FollowState] = {}
        for row in rows:
            state = FollowState(row["state"])
            if states.get(row["target"]) is not FollowState.FOLLOWING:
                states[row["target"]] = state
        return states

    async def _state(self, me: int, target: int, conn: BaseDBAsyncClient | None) -> FollowState:
        rows = await sql.fetch(
            "SELECT 'following' AS state FROM follows "
            "WHERE follower_id = :me AND followee_id = :target "
            "UNION ALL SELECT 'requested' FROM follow_requests "
            "WHERE requester_id = :me AND target_id = :target",
            {"me": me, "target": target},
            conn,
        )
        states = {row["state"] for row in rows}
        if "following" in states:
            return FollowState.FOLLOWING
        if "requested" in states:
            return FollowState.REQUESTED
        return FollowState.NOT_FOLLOWING

    # --- lists ---------------------------------------------------------------------------

    async def followers(
        self, viewer_id: int | None, user_id: int, request: PageRequest
    ) -> Page[AccountCard]:
        return await self._accounts(
            viewer_id,
            request,
            "follows f JOIN users u ON u.id = f.follower_id",
            "f.followee_id = :user",
            "f.id",
            {"user": user_id},
        )

    async def following(
        self, viewer_id: int | None, user_id: int, request: PageRequest
    ) -> Page[AccountCard]:
        return await self._accounts(
            viewer_id,
            request,
            "follows f JOIN users u ON u.id = f.followee_id",
            "f.follower_id = :user",
            "f.id",
            {"user": user_id},
        )

    async def follow_requests(self, viewer: Viewer, request: PageRequest) -> Page[AccountCard]:
        return await self._accounts(
            viewer.user.id,
            request,
            "follow_requests f JOIN users u ON u.id = f.requester_id",
            "f.target_id = :viewer",
            "f.id",
            {},
        )

    async def _accounts(
        self,
        viewer_id: int | None,
        request: PageRequest,
        source: str,
        where: str,
        sort_column: str,
        params: dict[str, int],
    ) -> Page[AccountCard]:
        condition, order = request.keyset(sort_column)
        rows = await sql.fetch(
            f"SELECT {USER_COLUMNS}, {sort_column} AS sort_key FROM {source} "
            f"WHERE {where} AND {condition} AND {NOT_BLOCKED_USER} "
            f"ORDER BY {order} LIMIT :limit",
            {**params, **request.params(), "viewer": viewer_id},
        )
        return make_page(
            request, [account_from_row(r) for r in rows], [r["sort_key"] for r in rows]
        )
