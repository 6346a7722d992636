"""Notifications: written with the action that causes them, read with mutes, blocks and
post visibility applied, so a notification never shows what its reader may not see."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app import live, sql
from app.changes import Change
from app.models import Notification, NotificationKind, User
from app.services.paging import Page, PageRequest, make_page
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


async def notify(
    recipients: list[int],
    actor_id: int,
    kind: NotificationKind,
    post_id: int | None,
    change: Change,
) -> None:
    """Notify each recipient who may see the post and is not blocked by or blocking the
    actor, in the change's transaction (announced live once it commits). Mutes apply when
    notifications are read, so unmuting brings them back."""
    conn = change.conn
    for recipient in dict.fromkeys(recipients):
        if recipient == actor_id or await blocked_either_way(recipient, actor_id, conn):
            continue
        if post_id is not None and not await sees_post(recipient, post_id, conn):
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


async def blocked_either_way(a: int, b: int, conn: BaseDBAsyncClient | None = None) -> bool:
    rows = await sql.fetch(
        "SELECT 1 AS blocked FROM blocks WHERE (blocker_id = :a AND blocked_id = :b) "
        "OR (blocker_id = :b AND blocked_id = :a)",
        {"a": a, "b": b},
        conn,
    )
    return bool(rows)


_READABLE = """
n.recipient_id = :viewer
AND NOT EXISTS (SELECT 1 FROM mutes nm WHERE nm.muter_id = :viewer AND nm.muted_id = n.actor_id)
AND NOT EXISTS (SELECT 1 FROM blocks nb
  WHERE (nb.blocker_id = :viewer AND nb.blocked_id = n.actor_id)
     OR (nb.blocker_id = n.actor_id AND nb.blocked_id = :viewer))
AND (n.post_id IS NULL OR EXISTS (SELECT 1 FROM posts p WHERE p.id = n.post_id AND {visible}))
""".replace("{visible}", VISIBLE)


_COLUMNS = f"n.id, n.kind, n.post_id, {USER_COLUMNS}"


async def notifications(viewer: User, request: PageRequest) -> Page[NotificationView]:
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


async def notification_for(viewer: User, notification_id: int) -> NotificationView | None:
    """One notification as its recipient reads it now; None once it is gone or unreadable
    (its actor muted or blocked, its post deleted or hidden)."""
    rows = await sql.fetch(
        f"SELECT {_COLUMNS} FROM notifications n JOIN users u ON u.id = n.actor_id "
        f"WHERE n.id = :id AND {_READABLE}",
        {"id": notification_id, "viewer": viewer.id},
    )
    views = await _views(viewer, rows)
    return views[0] if views else None


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


async def unread_count(viewer: User) -> int:
    rows = await sql.fetch(
        f"SELECT COUNT(*) AS unread FROM notifications n WHERE {_READABLE} AND n.id > :read",
        {"viewer": viewer.id, "read": viewer.notifications_read_id},
    )
    return int(rows[0]["unread"])


async def mark_read(viewer: User, up_to: int) -> int:
    """Mark notifications up to the id `up_to` read; the mark never moves back."""
    await sql.execute(
        "UPDATE users SET notifications_read_id = :up_to "
        "WHERE id = :viewer AND notifications_read_id < :up_to",
        {"viewer": viewer.id, "up_to": up_to},
    )
    viewer.notifications_read_id = max(viewer.notifications_read_id, up_to)
    return await unread_count(viewer)
