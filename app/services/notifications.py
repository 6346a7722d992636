"""Notifications: written with the action that causes them, read with mutes, blocks and
post visibility applied, so a notification never shows what its reader may not see."""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.models import Notification, NotificationKind, User
from app.services.paging import Page, PageRequest, make_page
from app.services.relations import blocked, blocked_either_way, muted
from app.services.views import (
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
    conn: BaseDBAsyncClient,
) -> None:
    """Notify each recipient who may see the post and is not blocked by or blocking the
    actor. Mutes apply when notifications are read, so unmuting brings them back."""
    for recipient in dict.fromkeys(recipients):
        if recipient == actor_id or await blocked_either_way(recipient, actor_id, conn):
            continue
        if post_id is not None and not await sees_post(recipient, post_id, conn):
            continue
        await Notification.create(
            recipient_id=recipient, actor_id=actor_id, kind=kind, post_id=post_id, using_db=conn
        )


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


async def notifications(viewer: User, request: PageRequest) -> Page[NotificationView]:
    condition, order = request.keyset("n.id")
    rows = await sql.fetch(
        f"""
        SELECT n.id, n.kind, n.post_id, u.id AS a_id, u.username AS a_username,
               u.display_name AS a_display_name, u.bio AS a_bio, u.is_locked AS a_is_locked,
               u.role AS a_role, u.email AS a_email, u.created_at AS a_created_at,
               u.follower_count AS a_follower_count, u.following_count AS a_following_count
        FROM notifications n JOIN users u ON u.id = n.actor_id
        WHERE {_READABLE} AND {condition}
        ORDER BY {order} LIMIT :limit
        """,
        {**request.params(), "viewer": viewer.id},
    )
    page = make_page(request, rows, [row["id"] for row in rows])
    post_ids = [row["post_id"] for row in page.items if row["post_id"] is not None]
    posts = await posts_by_ids(viewer.id, post_ids)
    await hydrate(viewer.id, list(posts.values()))
    items = [
        NotificationView(
            id=row["id"],
            kind=NotificationKind(row["kind"]),
            actor=account_from_row(row),
            post=posts.get(row["post_id"]) if row["post_id"] is not None else None,
            created_id=row["id"],
            is_read=row["id"] <= viewer.notifications_read_id,
        )
        for row in page.items
    ]
    return Page(items, page.keys, page.has_next, page.has_previous, page.connection)


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
