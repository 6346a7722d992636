"""Likes, reposts and bookmarks. Repeating an action is harmless; counters change in the same
transaction as the row they count, and only when the row really changed."""

from __future__ import annotations

from app import live, sql
from app.changes import Changes
from app.errors import DomainError, ErrorCode
from app.ids import new_id
from app.models import NotificationKind, Visibility
from app.services import fanout
from app.services.accounts import Viewer
from app.services.notifications import notify
from app.services.posts import PostService
from app.services.views import PostView

_INSERT_ONCE = (
    "INSERT INTO {table} (id, user_id, post_id) VALUES (:id, :user, :post) "
    "ON CONFLICT (user_id, post_id) DO NOTHING"
)


class InteractionService:
    def __init__(self, posts: PostService, changes: Changes) -> None:
        self._posts = posts
        self._changes = changes

    async def like(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        async with self._changes.begin() as change:
            conn = change.conn
            params = {"id": new_id(), "user": viewer.user.id, "post": post.id}
            if await sql.execute(_INSERT_ONCE.format(table="likes"), params, conn):
                await sql.execute(
                    "UPDATE posts SET like_count = like_count + 1 WHERE id = :post", params, conn
                )
                await notify(
                    [post.author.id], viewer.user.id, NotificationKind.LIKE, post.id, change
                )
                live.publish_post_changed(change, post.id)
        return await self._posts.reload(viewer.user.id, post.id)

    async def unlike(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        params = {"user": viewer.user.id, "post": post.id}
        async with self._changes.begin() as change:
            conn = change.conn
            removed = await sql.execute(
                "DELETE FROM likes WHERE user_id = :user AND post_id = :post", params, conn
            )
            if removed:
                await sql.execute(
                    "UPDATE posts SET like_count = like_count - 1 "
                    "WHERE id = :post AND like_count > 0",
                    params,
                    conn,
                )
                await sql.execute(
                    "DELETE FROM notifications WHERE actor_id = :user AND post_id = :post "
                    "AND kind = 'like'",
                    params,
                    conn,
                )
                live.publish_post_changed(change, post.id)
        return await self._posts.reload(viewer.user.id, post.id)

    async def repost(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        if post.visibility is not Visibility.PUBLIC:
            raise DomainError(ErrorCode.FORBIDDEN, "Only public posts can be reposted.", "postId")
        repost_id = new_id()
        params = {"id": repost_id, "user": viewer.user.id, "post": post.id}
        async with self._changes.begin() as change:
            conn = change.conn
            if await sql.execute(_INSERT_ONCE.format(table="reposts"), params, conn):
                await sql.execute(
                    "UPDATE posts SET repost_count = repost_count + 1 WHERE id = :post",
                    params,
                    conn,
                )
                await notify(
                    [post.author.id], viewer.user.id, NotificationKind.REPOST, post.id, change
                )
                await change.enqueue(fanout.FAN_OUT_REPOST, {"repost": repost_id})
                live.publish_post_changed(change, post.id)
        return await self._posts.reload(viewer.user.id, post.id)

    async def unrepost(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        params = {"user": viewer.user.id, "post": post.id}
        async with self._changes.begin() as change:
            conn = change.conn
            removed = await sql.fetch(
                "DELETE FROM reposts WHERE user_id = :user AND post_id = :post RETURNING id",
                params,
                conn,
            )
            if removed:
                await sql.execute(
                    "UPDATE posts SET repost_count = repost_count - 1 "
                    "WHERE id = :post AND repost_count > 0",
                    params,
                    conn,
                )
                await change.enqueue(
                    fanout.RETRACT_REPOST,
                    {"repost": removed[0]["id"], "reposter": viewer.user.id, "post": post.id},
                )
                await sql.execute(
                    "DELETE FROM notifications WHERE actor_id = :user AND post_id = :post "
                    "AND kind = 'repost'",
                    params,
                    conn,
                )
                live.publish_post_changed(change, post.id)
        return await self._posts.reload(viewer.user.id, post.id)

    async def bookmark(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        await sql.execute(
            _INSERT_ONCE.format(table="bookmarks"),
            {"id": new_id(), "user": viewer.user.id, "post": post.id},
        )
        return await self._posts.reload(viewer.user.id, post.id)

    async def unbookmark(self, viewer: Viewer, post_id: int) -> PostView:
        post = await self._posts.visible_post(viewer.user.id, post_id, "postId")
        await sql.execute(
            "DELETE FROM bookmarks WHERE user_id = :user AND post_id = :post",
            {"user": viewer.user.id, "post": post.id},
        )
        return await self._posts.reload(viewer.user.id, post.id)
