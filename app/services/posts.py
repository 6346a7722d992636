"""Writing posts: create (with entities, counters, notifications and fan-out), edit with
history, delete to a tombstone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from app import live, sql
from app.changes import Change, Changes
from app.errors import DomainError, ErrorCode
from app.models import (
    Bookmark,
    HomeEntry,
    Like,
    Mention,
    Notification,
    NotificationKind,
    Post,
    PostEdit,
    PostTag,
    Repost,
    Role,
    User,
    Visibility,
)
from app.services import fanout
from app.services.accounts import Viewer
from app.services.billing import Perks
from app.services.entities import Entity, parse_entities
from app.services.media import attach_to_post
from app.services.media_purge import purge_media
from app.services.notifications import notify
from app.services.views import (
    PostView,
    hydrate,
    in_version_audience,
    posts_by_ids,
    viewer_states,
)
from app.settings import Settings
from app.text import TextRule, clean_text

CONTENT_WARNING_MAX = 200
EDIT_HISTORY_MAX = 50  # earlier versions `edit_history` returns, the latest ones
CONTENT_WARNING = TextRule(
    field="contentWarning",
    label="Content warnings",
    max_length=CONTENT_WARNING_MAX,
    too_long=ErrorCode.TEXT_TOO_LONG,
)


def _now() -> datetime:
    return datetime.now(UTC)


PerksOf = Callable[[int], Awaitable[Perks]]
"""An account's perks (`BillingService.perks`): how long its posts and how many media."""


class PostService:
    def __init__(self, settings: Settings, changes: Changes, perks: PerksOf) -> None:
        self._changes = changes
        self._perks = perks
        self._max_attachments = settings.media.max_attachments
        self._text = TextRule(
            field="text",
            label="Posts",
            max_length=settings.posts.max_length,
            required=True,
            multiline=True,
            too_long=ErrorCode.TEXT_TOO_LONG,
            empty=ErrorCode.EMPTY_TEXT,
        )

    # --- reading one post --------------------------------------------------------------

    async def visible_post(self, viewer_id: int | None, post_id: int, field: str) -> PostView:
        """The post if the viewer may see it; NOT_FOUND whether it is missing, deleted or
        hidden, so that its existence is not revealed."""
        found = (await posts_by_ids(viewer_id, [post_id])).get(post_id)
        if found is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such post.", field)
        return found

    async def post_for_viewer(self, viewer_id: int | None, post_id: int) -> PostView | None:
        found = (await posts_by_ids(viewer_id, [post_id])).get(post_id)
        if found is None:
            return None
        return (await hydrate(viewer_id, [found]))[0]

    # --- reading posts by id (the API's per-request loaders) ----------------------------

    async def posts_with_tombstones(
        self, viewer_id: int | None, post_ids: list[int]
    ) -> dict[int, PostView]:
        """The posts among `post_ids` the viewer may see, deleted ones as tombstones (a thread
        keeps their place), with the posts they reply to and quote: at most two statements."""
        found = await posts_by_ids(viewer_id, post_ids, tombstones=True)
        await hydrate(viewer_id, list(found.values()))
        return found

    async def viewer_states_of(
        self, viewer_id: int, post_ids: list[int]
    ) -> dict[int, tuple[bool, bool, bool]]:
        """Whether the viewer likes, reposted and bookmarked each post: one statement."""
        return await viewer_states(viewer_id, post_ids)

    # --- writing -----------------------------------------------------------------------

    async def _validate(
        self, author_id: int, text: str, content_warning: str | None, media_ids: list[int] | None
    ) -> tuple[str, str, int]:
        """The text and content warning cleaned, and how many media the post may have: the
        network's limits, raised by the author's perks. The perks are looked up (once) only
        for a post beyond the network's limits, so most posts cost no statement more."""
        perks: Perks | None = None
        try:
            cleaned = clean_text(text, self._text)
        except DomainError as error:
            if error.code is not ErrorCode.TEXT_TOO_LONG:
                raise
            perks = await self._perks(author_id)
            if perks.max_post_length <= self._text.max_length:
                raise
            cleaned = clean_text(text, replace(self._text, max_length=perks.max_post_length))
        warning = clean_text(content_warning or "", CONTENT_WARNING)
        limit = self._max_attachments
        if media_ids and len(media_ids) > limit:
            perks = perks or await self._perks(author_id)
            limit = max(limit, perks.max_attachments)
        return cleaned, warning, limit

    async def create_post(
        self,
        viewer: Viewer,
        *,
        text: str,
        visibility: Visibility = Visibility.PUBLIC,
        content_warning: str | None = None,
        reply_to_id: int | None = None,
        quote_of_id: int | None = None,
        media_ids: list[int] | None = None,
    ) -> PostView:
        author = viewer.user
        text, warning, max_attachments = await self._validate(
            author.id, text, content_warning, media_ids
        )
        parent = await self.visible_post(author.id, reply_to_id, "replyTo") if reply_to_id else None
        quoted = await self.visible_post(author.id, quote_of_id, "quoteOf") if quote_of_id else None
        if quoted is not None and quoted.visibility is not Visibility.PUBLIC:
            raise DomainError(ErrorCode.FORBIDDEN, "Only public posts can be quoted.", "quoteOf")
        entities = parse_entities(text)
        mentioned = await self._mentioned_users(entities)
        public = visibility is Visibility.PUBLIC
        async with self._changes.begin() as change:
            conn = change.conn
            post = await Post.create(
                author_id=author.id,
                text=text,
                content_warning=warning,
                visibility=visibility,
                reply_to_id=reply_to_id,
                quote_of_id=quote_of_id,
                entities=[e.as_json() for e in entities],
                using_db=conn,
            )
            tags = await self._save_entities(post.id, entities, mentioned, conn)
            if media_ids:
                # A refusal rolls the whole post back.
                await attach_to_post(
                    change,
                    author_id=author.id,
                    post_id=post.id,
                    media_ids=media_ids,
                    limit=max_attachments,
                )
            if parent is not None and public:
                await sql.execute(
                    "UPDATE posts SET reply_count = reply_count + 1 WHERE id = :id",
                    {"id": parent.id},
                    conn,
                )
                live.publish_post_changed(change, parent.id)
            if quoted is not None and public:
                await sql.execute(
                    "UPDATE posts SET quote_count = quote_count + 1 WHERE id = :id",
                    {"id": quoted.id},
                    conn,
                )
                live.publish_post_changed(change, quoted.id)
            await self._notify_new_post(post, parent, quoted, mentioned, change)
            # Fan-out is owed work: a job recorded with the post, run once it has committed.
            await change.enqueue(fanout.FAN_OUT_POST, {"post": post.id})
            live.publish_new_post(change, post.id, author.id, visibility, tags)
        return await self.reload(author.id, post.id)

    async def edit_post(
        self,
        viewer: Viewer,
        post_id: int,
        *,
        text: str,
        content_warning: str | None = None,
        media_ids: list[int] | None = None,
    ) -> PostView:
        """New text for a post; `media_ids`, when given, become its media (None keeps
        them)."""
        text, warning, max_attachments = await self._validate(
            viewer.user.id, text, content_warning, media_ids
        )
        entities = parse_entities(text)
        mentioned = await self._mentioned_users(entities)
        async with self._changes.begin() as change:
            conn = change.conn
            # The version kept in the history is the one this edit replaces: read it, and its
            # audience, with the row locked, so that concurrent edits each keep their own.
            post = (
                await Post.filter(id=post_id, deleted_at=None)
                .select_for_update()
                .using_db(conn)
                .first()
            )
            if post is None or post.author_id != viewer.user.id:
                # Someone else's post is as good as missing to an editor.
                raise DomainError(ErrorCode.NOT_FOUND, "No such post of yours.", "id")
            already: set[int] = {
                row["user_id"]
                for row in await Mention.filter(post_id=post.id).using_db(conn).values("user_id")
            }
            await PostEdit.create(
                post_id=post.id,
                text=post.text,
                content_warning=post.content_warning,
                published_at=post.edited_at or post.created_at,
                mentioned_ids=sorted(already),
                using_db=conn,
            )
            updated = await (
                Post.filter(id=post.id, deleted_at=None)
                .using_db(conn)
                .update(
                    text=text,
                    content_warning=warning,
                    entities=[e.as_json() for e in entities],
                    edited_at=_now(),
                )
            )
            if not updated:
                # Deleted meanwhile: the transaction rolls back the history row too.
                raise DomainError(ErrorCode.NOT_FOUND, "No such post of yours.", "id")
            await PostTag.filter(post_id=post.id).using_db(conn).delete()
            # The post's mentions are the ones in its text now: for a DIRECT post, an account
            # no longer mentioned no longer sees it.
            still = {u.id for u in mentioned}
            await (
                Mention.filter(post_id=post.id)
                .exclude(user_id__in=list(still))
                .using_db(conn)
                .delete()
            )
            new_mentions = [u for u in mentioned if u.id not in already]
            await self._save_entities(post.id, entities, new_mentions, conn)
            if media_ids is not None:
                await attach_to_post(
                    change,
                    author_id=viewer.user.id,
                    post_id=post.id,
                    media_ids=media_ids,
                    limit=max_attachments,
                )
            # For a DIRECT post, the accounts mentioned or no longer mentioned gain or lose it.
            changed = sorted(already ^ still)
            if changed:
                await change.enqueue(fanout.REFRESH_POST, {"post": post.id, "owners": changed})
            await notify(
                [u.id for u in new_mentions],
                viewer.user.id,
                NotificationKind.MENTION,
                post.id,
                change,
            )
            live.publish_post_changed(change, post.id)
        return await self.reload(viewer.user.id, post.id)

    async def delete_post(self, viewer: Viewer, post_id: int) -> int:
        """Leave a tombstone: the content, edits, entities, interactions, notifications and
        media go; replies stay in their thread. Authors delete their own posts; moderators
        any."""
        post = await Post.get_or_none(id=post_id, deleted_at=None)
        moderator = viewer.user.role in (Role.MODERATOR, Role.ADMIN)
        if post is None or (post.author_id != viewer.user.id and not moderator):
            raise DomainError(ErrorCode.NOT_FOUND, "No such post of yours.", "postId")
        async with self._changes.begin() as change:
            conn = change.conn
            # Claim the deletion first so two concurrent deletes adjust counters once.
            claimed = (
                await Post.filter(id=post.id, deleted_at=None)
                .using_db(conn)
                .update(deleted_at=_now(), text="", content_warning="", entities=[])
            )
            if not claimed:
                raise DomainError(ErrorCode.NOT_FOUND, "No such post of yours.", "postId")
            if post.visibility is Visibility.PUBLIC:
                for column, target in (
                    ("reply_count", post.reply_to_id),
                    ("quote_count", post.quote_of_id),
                ):
                    if target is not None:
                        await sql.execute(
                            f"UPDATE posts SET {column} = {column} - 1 "
                            f"WHERE id = :id AND {column} > 0",
                            {"id": target},
                            conn,
                        )
                        live.publish_post_changed(change, target)
            for model in (PostEdit, PostTag, Mention, Like, Repost, Bookmark, HomeEntry):
                await model.filter(post_id=post.id).using_db(conn).delete()
            await Notification.filter(post_id=post.id).using_db(conn).delete()
            await purge_media(change, post_id=post.id)
            await Post.filter(id=post.id).using_db(conn).update(like_count=0, repost_count=0)
            live.publish_post_deleted(change, post.id)
        return int(post.id)

    async def edit_history(self, viewer_id: int | None, post_id: int) -> list[PostEdit]:
        """The latest `EDIT_HISTORY_MAX` earlier versions of a visible post that the viewer was
        in the audience of, oldest first. Only a DIRECT post's audience changes with its text
        (the author and the accounts a version mentions), so an account mentioned by a later
        edit does not see what was addressed to others before."""
        post = (await posts_by_ids(viewer_id, [post_id])).get(post_id)
        if post is None:
            return []
        latest = await PostEdit.filter(post_id=post_id).order_by("-id").limit(EDIT_HISTORY_MAX)
        edits = reversed(latest)
        return [e for e in edits if in_version_audience(post, e.mentioned_ids, viewer_id)]

    # --- helpers -----------------------------------------------------------------------

    async def reload(self, viewer_id: int, post_id: int) -> PostView:
        """The post as its author (or an actor who may see it) now sees it."""
        view = await self.post_for_viewer(viewer_id, post_id)
        assert view is not None  # the author always sees their own live post
        return view

    async def _mentioned_users(self, entities: list[Entity]) -> list[User]:
        names = {e.value.lower() for e in entities if e.kind == "mention"}
        if not names:
            return []
        return await User.filter(username_key__in=list(names))

    async def _save_entities(
        self, post_id: int, entities: list[Entity], mentioned: list[User], conn: BaseDBAsyncClient
    ) -> list[str]:
        """Save the post's hashtags and mentions; returns its tags."""
        tags = sorted({e.value for e in entities if e.kind == "hashtag"})
        if tags:
            await PostTag.bulk_create(
                [PostTag(post_id=post_id, tag=tag) for tag in tags], using_db=conn
            )
        if mentioned:
            await Mention.bulk_create(
                [Mention(post_id=post_id, user_id=user.id) for user in mentioned], using_db=conn
            )
        return tags

    async def _notify_new_post(
        self,
        post: Post,
        parent: PostView | None,
        quoted: PostView | None,
        mentioned: list[User],
        change: Change,
    ) -> None:
        author_id = post.author_id
        if parent is not None:
            await notify([parent.author.id], author_id, NotificationKind.REPLY, post.id, change)
        if quoted is not None:
            await notify([quoted.author.id], author_id, NotificationKind.QUOTE, post.id, change)
        already = {parent.author.id if parent else None, quoted.author.id if quoted else None}
        await notify(
            [u.id for u in mentioned if u.id not in already],
            author_id,
            NotificationKind.MENTION,
            post.id,
            change,
        )
