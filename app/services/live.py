"""Live updates, the subscriber's side. Each stream listens to its channels (app/live.py) and
turns every event into what its viewer may see of it now, checked with the rules the queries
use (`views.visible`, `views.not_muted`, the home rule of `timelines`, the notification
readability of `notifications`), or into nothing.

Delivery is batched: the subscribers in this process that one event reaches ask for it
within a few milliseconds of each other, and `Batches` loads it for all their viewers in one
statement (the rule fragments take the viewer as a column there), instead of one each.

A stream whose events may have been lost (pub/sub lost Redis for a while) ends with
EVENTS_MISSED, so that its client refetches and subscribes again; one whose subscriber read
too slowly raises `SlowConsumer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app import live, sql
from app.errors import DomainError, ErrorCode
from app.models import User
from app.pubsub import MISSED, Event, PubSub
from app.services.home import merged_posts
from app.services.notifications import NotificationService, NotificationView
from app.services.timelines import (
    REPOSTER_COLUMNS,
    big_followees,
    hashtag_key,
    home_post_from_row,
    reposter_not_muted,
)
from app.services.views import (
    PostView,
    audience,
    not_muted,
    page_columns,
    page_post_from_row,
    posts_by_ids,
    related_joins,
    visible,
)
from app.settings import Settings

T = TypeVar("T")

# How long the first subscriber of an event waits for the others to ask for it too.
BATCH_WINDOW = 0.002
# Viewers per statement (bound parameters stay far below both databases' limits).
BATCH_MAX = 2_048
# The viewer of a batched statement, as a column; no rule fragment uses this alias.
_VIEWER = "lv.id"
_POST = "posts p JOIN users u ON u.id = p.author_id"


@dataclass(frozen=True, slots=True, eq=False)
class Delivery(Generic[T]):
    """How to load one kind of event for its viewers: `source` and `where` are SQL taking the
    viewer as an expression (`:viewer`, or a column when one statement serves many), for at
    most one row per viewer, which `convert` turns into what is delivered."""

    name: str
    columns: Callable[[str], str]
    source: Callable[[str], str]
    where: Callable[[str], str]
    convert: Callable[[sql.Row], T]

    def for_many(self) -> str:
        return (
            f"SELECT {_VIEWER} AS live_viewer, {self.columns(_VIEWER)} "
            f"FROM users lv CROSS JOIN {self.source(_VIEWER)} "
            f"WHERE {_VIEWER} IN (:viewers) AND {self.where(_VIEWER)}"
        )

    def for_one(self) -> str:
        return (
            f"SELECT {self.columns(':viewer')} FROM {self.source(':viewer')} "
            f"WHERE {self.where(':viewer')}"
        )


def _new_post(name: str, condition: str) -> Delivery[PostView]:
    """A new post as a page row, for viewers who see it in a timeline of posts: `condition`
    (SQL on `p`), visible to them and not by an account they muted."""
    return Delivery(
        name,
        columns=page_columns,
        source=lambda viewer: f"{_POST} {related_joins(viewer)}",
        where=lambda viewer: (
            f"p.id = :post AND {condition} AND {visible('p', viewer)} AND {not_muted('p', viewer)}"
        ),
        convert=page_post_from_row,
    )


PUBLIC_POST = _new_post("public", "p.visibility = 'public'")
HASHTAG_POST = _new_post(
    "hashtag", "EXISTS (SELECT 1 FROM post_tags t WHERE t.post_id = p.id AND t.tag = :tag)"
)
# Posts of big accounts, merged into their followers' home timelines as the query merges them.
MERGED_HOME_POST = Delivery(
    "home-merged",
    columns=lambda viewer: f"{page_columns(viewer)}, p.id AS sort_key",
    source=lambda viewer: f"{_POST} {related_joins(viewer)}",
    where=lambda viewer: (
        f"p.id = :post AND {merged_posts(viewer)} AND {visible('p', viewer)} "
        f"AND {not_muted('p', viewer)}"
    ),
    convert=page_post_from_row,
)
# An entry of the fan-out, as the home timeline query reads it.
HOME_ENTRY = Delivery(
    "home-entry",
    columns=lambda viewer: (
        f"{page_columns(viewer)}, e.entry_id AS sort_key, e.reposter_id, {REPOSTER_COLUMNS}"
    ),
    source=lambda viewer: (
        f"home_entries e JOIN posts p ON p.id = e.post_id JOIN users u ON u.id = p.author_id "
        f"LEFT JOIN users rb ON rb.id = e.reposter_id {related_joins(viewer)}"
    ),
    where=lambda viewer: (
        f"e.owner_id = {viewer} AND e.entry_id = :entry AND {visible('p', viewer)} "
        f"AND {not_muted('p', viewer)} AND {reposter_not_muted(viewer)}"
    ),
    convert=home_post_from_row,
)
# A post as `node(id:)` shows it: a deleted one as a tombstone, to its audience only.
POST_NOW = Delivery(
    "post",
    columns=page_columns,
    source=lambda viewer: f"{_POST} {related_joins(viewer)}",
    where=lambda viewer: f"p.id = :post AND {audience('p', viewer)}",
    convert=page_post_from_row,
)


def _padded(ids: list[int]) -> list[int]:
    """`ids` repeated up to a power of two: a few statement texts serve every batch size, so
    the databases' statement caches keep them."""
    size = 1
    while size < len(ids):
        size *= 2
    return ids + [ids[-1]] * (size - len(ids))


class Batches:
    """Loads for many viewers at once: every request for the same delivery and parameters
    made within `window` seconds of the first is answered by one statement (two when some
    viewers are signed out)."""

    def __init__(self, window: float = BATCH_WINDOW) -> None:
        self._window = window
        self._pending: dict[tuple[Delivery[Any], tuple[tuple[str, Any], ...]], _Batch] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.statements = 0  # run so far (for tests and benchmarks)

    async def load(self, delivery: Delivery[T], viewer_id: int | None, **params: Any) -> T | None:
        key = (delivery, tuple(sorted(params.items())))
        batch = self._pending.get(key)
        if batch is None:
            batch = self._pending[key] = _Batch()
            asyncio.get_running_loop().call_later(self._window, self._flush, key)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        batch.waiting.setdefault(viewer_id, []).append(future)
        result: T | None = await future
        return result

    def _flush(self, key: tuple[Delivery[Any], tuple[tuple[str, Any], ...]]) -> None:
        batch = self._pending.pop(key)
        task = asyncio.create_task(self._run(key[0], dict(key[1]), batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, delivery: Delivery[Any], params: dict[str, Any], batch: _Batch) -> None:
        try:
            found = await self._fetch(delivery, params, list(batch.waiting))
        except Exception as exc:
            for futures in batch.waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for viewer_id, futures in batch.waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(found.get(viewer_id))

    async def _fetch(
        self, delivery: Delivery[Any], params: dict[str, Any], viewers: list[int | None]
    ) -> dict[int | None, Any]:
        found: dict[int | None, Any] = {}
        signed_in = [viewer for viewer in viewers if viewer is not None]
        for start in range(0, len(signed_in), BATCH_MAX):
            chunk = _padded(signed_in[start : start + BATCH_MAX])
            self.statements += 1
            for row in await sql.fetch(delivery.for_many(), {**params, "viewers": chunk}):
                found[row["live_viewer"]] = delivery.convert(row)
        if None in viewers:
            self.statements += 1
            rows = await sql.fetch(delivery.for_one(), {**params, "viewer": None})
            if rows:
                # Every signed-out subscriber gets the same object: nothing downstream
                # changes what it delivers.
                found[None] = delivery.convert(rows[0])
        return found


class _Batch:
    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: dict[int | None, list[asyncio.Future[Any]]] = {}


def _event_id(event: Event, key: str = "id") -> int | None:
    value = event.data.get(key)
    # Only our own events are on these channels, but a bad one must not end a stream.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _missed() -> DomainError:
    return DomainError(
        ErrorCode.EVENTS_MISSED,
        "Live updates may have been lost; refetch, then subscribe again.",
    )


class LiveService:
    """The streams. Each method checks that the viewer may read the stream (raising
    DomainError before anything is subscribed) and returns its items as an async iterator."""

    def __init__(
        self, settings: Settings, pubsub: PubSub, notifications: NotificationService
    ) -> None:
        self._pubsub = pubsub
        self._notifications = notifications
        self._queue_size = settings.live.queue_size
        self._big_account = settings.timelines.fanout_max_followers
        self.batches = Batches()

    async def public_timeline(self, viewer_id: int | None) -> AsyncGenerator[PostView, None]:
        async def deliver(event: Event) -> PostView | None:
            post_id = _event_id(event)
            if event.kind != live.Kind.POST_CREATED or post_id is None:
                return None
            return await self.batches.load(PUBLIC_POST, viewer_id, post=post_id)

        return self._stream([live.PUBLIC], deliver)

    async def hashtag_timeline(
        self, viewer_id: int | None, tag: str
    ) -> AsyncGenerator[PostView, None]:
        key = hashtag_key(tag)

        async def deliver(event: Event) -> PostView | None:
            post_id = _event_id(event)
            if event.kind != live.Kind.POST_CREATED or post_id is None:
                return None
            return await self.batches.load(HASHTAG_POST, viewer_id, post=post_id, tag=key)

        return self._stream([live.hashtag_channel(key)], deliver)

    async def home_timeline(self, viewer_id: int) -> AsyncGenerator[PostView, None]:
        """Entries fanned out to the viewer, and new posts of the big accounts they follow
        (those followed when the stream starts), which the query merges in at read time."""
        rows = await sql.fetch(big_followees(), {"viewer": viewer_id, "big": self._big_account})
        channels = [live.home_channel(viewer_id)]
        channels += [live.author_channel(row["followee_id"]) for row in rows]

        async def deliver(event: Event) -> PostView | None:
            if event.kind == live.Kind.HOME_ENTRY:
                entry = _event_id(event, "entry")
                if entry is None:
                    return None
                return await self.batches.load(HOME_ENTRY, viewer_id, entry=entry)
            post_id = _event_id(event)
            if event.kind != live.Kind.POST_CREATED or post_id is None:
                return None
            return await self.batches.load(
                MERGED_HOME_POST, viewer_id, post=post_id, big=self._big_account
            )

        return self._stream(channels, deliver)

    async def post_updated(
        self, viewer_id: int | None, post_id: int
    ) -> AsyncGenerator[PostView, None]:
        """The post again whenever its counts or text change, and its tombstone when it is
        deleted (the stream ends there). NOT_FOUND for a post the viewer may not see."""
        if post_id not in await posts_by_ids(viewer_id, [post_id]):
            raise DomainError(ErrorCode.NOT_FOUND, "No such post.", "id")

        async def deliver(event: Event) -> PostView | None:
            if event.kind not in (live.Kind.POST_CHANGED, live.Kind.POST_DELETED):
                return None
            return await self.batches.load(POST_NOW, viewer_id, post=post_id)

        return self._stream(
            [live.post_channel(post_id)], deliver, last=lambda post: post.is_deleted
        )

    async def notifications(self, viewer: User) -> AsyncGenerator[NotificationView, None]:
        async def deliver(event: Event) -> NotificationView | None:
            notification_id = _event_id(event)
            if event.kind != live.Kind.NOTIFICATION or notification_id is None:
                return None
            # One recipient per notification: nothing to batch.
            return await self._notifications.notification_for(viewer, notification_id)

        return self._stream([live.notifications_channel(viewer.id)], deliver)

    async def _stream(
        self,
        channels: list[str],
        deliver: Callable[[Event], Awaitable[T | None]],
        last: Callable[[T], bool] = lambda item: False,
    ) -> AsyncGenerator[T, None]:
        async with self._pubsub.subscribe(channels, max_queue=self._queue_size) as events:
            async for event in events:
                if event.kind == MISSED.kind:
                    raise _missed()
                item = await deliver(event)
                if item is not None:
                    yield item
                    if last(item):
                        return
