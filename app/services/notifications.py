"""Notifications: owed by the action that causes them (a job recorded in its transaction,
created once it commits), read with mutes, blocks and post visibility applied, so a
notification never shows what its reader may not see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app import live, sql
from app.changes import Change
from app.jobs import DeadJob
from app.models import Notification, NotificationKind, User
from app.services.paging import Page, PageRequest, make_page
from app.services.relations import blocked, blocked_either_way, muted
from app.services.views import (
    USER_COLUMNS,
    VISIBLE,
    AccountCard,
    PostView,
    account_from_row,
    hydrate,
    posts_by_ids,
)


@dataclass(slots=True)
class NotificationView:
    id: int
    kind: NotificationKind
    actor: AccountCard
    post: PostView | None
    created_id: int
    is_read: bool


NOTIFY = "notifications.create"  # {"recipients", "actor", "kind", "post"}


async def notify(
    recipients: list[int],
    actor_id: int,
    kind: NotificationKind,
    post_id: int | None,
    change: Change,
) -> None:
    """Owe the recipients a notification: a job recorded in the change's transaction, which
    creates them after it commits (`create_notifications`)."""
    wanted = [r for r in dict.fromkeys(recipients) if r != actor_id]
    if wanted:
        payload = {"recipients": wanted, "actor": actor_id, "kind": kind.value, "post": post_id}
        await change.enqueue(NOTIFY, payload)


# Whether what a notification tells of still holds when its job runs: a like taken back, a
# follow undone, a request answered or a mention edited away before the worker came to it
# notifies nobody (a post's deletion is covered by its visibility). On PostgreSQL the cause's
# row is share-locked, so an undo committing meanwhile waits, and then removes what this job
# wrote.
_CAUSE_HOLDS = {
    NotificationKind.LIKE: (
        "SELECT 1 AS holds FROM likes WHERE user_id = :actor AND post_id = :post"
    ),
    NotificationKind.REPOST: (
        "SELECT 1 AS holds FROM reposts WHERE user_id = :actor AND post_id = :post"
    ),
    NotificationKind.FOLLOW: (
        "SELECT 1 AS holds FROM follows WHERE follower_id = :actor AND followee_id = :recipient"
    ),
    NotificationKind.FOLLOW_REQUEST: (
        "SELECT 1 AS holds FROM follow_requests "
        "WHERE requester_id = :actor AND target_id = :recipient"
    ),
    NotificationKind.MENTION: (
        "SELECT 1 AS holds FROM mentions WHERE post_id = :post AND user_id = :recipient"
    ),
}
# Liking, unliking and liking again before the job runs owes two jobs for one like: one
# notification of each (kind, actor, post) at most.
_ONCE = frozenset(
    (
        NotificationKind.LIKE,
        NotificationKind.REPOST,
        NotificationKind.FOLLOW,
        NotificationKind.FOLLOW_REQUEST,
    )
)
_ALREADY = (
    "SELECT 1 AS found FROM notifications WHERE recipient_id = :recipient "
    "AND actor_id = :actor AND kind = :kind AND (post_id = :post OR (post_id IS NULL "
    "AND CAST(:post AS BIGINT) IS NULL))"
)
_RECIPIENT_EXISTS = "SELECT 1 AS found FROM users WHERE id = :recipient"


async def create_notifications(change: Change, payload: dict[str, Any]) -> None:
    """The `notifications.create` job: notify each recipient who may see the post, is not
    blocked by or blocking the actor, and whose cause still holds; announced live once the
    job's transaction commits. Mutes apply when notifications are read, so unmuting brings
    them back."""
    try:
        recipients = [int(r) for r in payload["recipients"]]
        actor_id = int(payload["actor"])
        kind = NotificationKind(payload["kind"])
        post_id = None if payload.get("post") is None else int(payload["post"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DeadJob(f"a malformed {NOTIFY} payload: {exc}") from None
    conn = change.conn
    cause = _CAUSE_HOLDS.get(kind)
    if cause is not None and sql.dialect(conn) == "postgres":
        cause += " FOR SHARE"
    for recipient in dict.fromkeys(recipients):
        if recipient == actor_id or await blocked_either_way(recipient, actor_id, conn):
            continue
        params = {"actor": actor_id, "recipient": recipient, "post": post_id, "kind": kind.value}
        # An account deleted since is nobody to notify (and one job serves every recipient).
        if not await sql.fetch(_RECIPIENT_EXISTS, params, conn):
            continue
        if post_id is not None and not await sees_post(recipient, post_id, conn):
            continue
        if cause is not None and not await sql.fetch(cause, params, conn):
            continue
        if kind in _ONCE and await sql.fetch(_ALREADY, params, conn):
            continue
        notification = await Notification.create(
            recipient_id=recipient, actor_id=actor_id, kind=kind, post_id=post_id, using_db=conn
        )
        live.publish_notification(change, recipient, notification.id)


async def sees_post(viewer_id: int, post_id: int, conn: BaseDBAsyncClient | None = None) -> bool:
    rows = await sql.fetch(
        f"SELECT 1 AS seen FROM posts p WHERE p.id = :post AND {VISIBLE}",
        {"post": post_id, "viewer": viewer_id},
        conn,
    )
    return bool(rows)


_READABLE = f"""
n.recipient_id = :viewer
AND NOT {muted(":viewer", "n.actor_id", "nm")}
AND NOT {blocked(":viewer", "n.actor_id", "nb")}
AND (n.post_id IS NULL OR EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {VISIBLE}))
"""


_COLUMNS = f"n.id, n.kind, n.post_id, {USER_COLUMNS}"


async def _views(viewer: User, rows: list[sql.Row]) -> list[NotificationView]:
    post_ids = [row["post_id"] for row in rows if row["post_id"] is not None]
    posts = await posts_by_ids(viewer.id, post_ids)
    await hydrate(viewer.id, list(posts.values()))
    return [
        NotificationView(
            id=row["id"],
            kind=NotificationKind(row["kind"]),
            actor=account_from_row(row),
            post=posts.get(row["post_id"]) if row["post_id"] is not None else None,
            created_id=row["id"],
            is_read=row["id"] <= viewer.notifications_read_id,
        )
        for row in rows
    ]


class NotificationService:
    """Reading notifications: the list, one (for live delivery), the unread count and the
    read mark, each with the readability rule applied (`_READABLE`)."""

    async def page(self, viewer: User, request: PageRequest) -> Page[NotificationView]:
        """A page of the viewer's notifications, newest first."""
        condition, order = request.keyset("n.id")
        rows = await sql.fetch(
            f"""
            SELECT {_COLUMNS}
            FROM notifications n JOIN users u ON u.id = n.actor_id
            WHERE {_READABLE} AND {condition}
            ORDER BY {order} LIMIT :limit
            """,
            {**request.params(), "viewer": viewer.id},
        )
        page = make_page(request, rows, [row["id"] for row in rows])
        items = await _views(viewer, page.items)
        return Page(items, page.keys, page.has_next, page.has_previous, page.connection)

    async def notification_for(self, viewer: User, notification_id: int) -> NotificationView | None:
        """One notification as its recipient reads it now; None once it is gone or unreadable
        (its actor muted or blocked, its post deleted or hidden)."""
        rows = await sql.fetch(
            f"SELECT {_COLUMNS} FROM notifications n JOIN users u ON u.id = n.actor_id "
            f"WHERE n.id = :id AND {_READABLE}",
            {"id": notification_id, "viewer": viewer.id},
        )
        views = await _views(viewer, rows)
        return views[0] if views else None

    async def unread_count(self, viewer: User) -> int:
        rows = await sql.fetch(
            f"SELECT COUNT(*) AS unread FROM notifications n WHERE {_READABLE} AND n.id > :read",
            {"viewer": viewer.id, "read": viewer.notifications_read_id},
        )
        return int(rows[0]["unread"])

    async def mark_read(self, viewer: User, up_to: int) -> int:
        """Mark notifications up to the id `up_to` read; the mark never moves back."""
        await sql.execute(
            "UPDATE users SET notifications_read_id = :up_to "
            "WHERE id = :viewer AND notifications_read_id < :up_to",
            {"viewer": viewer.id, "up_to": up_to},
        )
        viewer.notifications_read_id = max(viewer.notifications_read_id, up_to)
        return await self.unread_count(viewer)
