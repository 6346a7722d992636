"""Subscriptions: live versions of the timelines, notifications and one post, over WebSocket.

Each yields what the query of the same name shows, one edge (or post) at a time, with the
cursor that query would give it. The resolvers are thin: app/services/live.py decides what
each viewer may see; here each item gets fresh loaders and its GraphQL shape, and a
subscriber too slow to keep up has its connection closed (4008).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Annotated, TypeVar

import strawberry
from strawberry.types import Info

from app.pubsub import SlowConsumer
from app.services.notifications import NotificationView
from app.services.paging import encode_cursor
from app.services.views import PostView
from schema.context import Context
from schema.notifications import NotificationEdge
from schema.posts.types import Post, PostEdge, as_post
from schema.results import decode_id
from schema.socket import CloseCode

T = TypeVar("T")
R = TypeVar("R")


async def _deliver(
    info: Info[Context, None], items: AsyncGenerator[T, None], shape: Callable[[T], R]
) -> AsyncGenerator[R, None]:
    context = info.context
    try:
        async with aclosing(items) as stream:
            async for item in stream:
                # What the previous event loaded (and cached) is not this event's business.
                context.fresh_loaders()
                yield shape(item)
    except SlowConsumer:
        if context.socket is not None:
            context.socket.close_soon(CloseCode.SLOW_CONSUMER, "Too slow: events were not read")


def _post_edge(connection: str) -> Callable[[PostView], PostEdge]:
    def shape(post: PostView) -> PostEdge:
        return PostEdge.from_view(encode_cursor(connection, post.sort_key), post)

    return shape


def _notification_edge(item: NotificationView) -> NotificationEdge:
    return NotificationEdge.from_view(encode_cursor("notifications", item.id), item)


@strawberry.type(
    description=(
        "Live updates over WebSocket (graphql-transport-ws, or the legacy graphql-ws), signed "
        "in by the access token in connection_init. Each item is checked against the viewer's "
        "permissions when it is delivered. A stream that may have lost events ends with the "
        "error code EVENTS_MISSED: refetch the query it mirrors, then subscribe again."
    )
)
class Subscription:
    @strawberry.subscription(
        description=(
            "New entries of the viewer's home timeline, as homeTimeline edges (newest first "
            "there: put each before the first edge). Needs a signed-in connection."
        )
    )
    async def home_timeline(self, info: Info[Context, None]) -> AsyncGenerator[PostEdge, None]:
        viewer = info.context.require_viewer()
        items = await info.context.services.live.home_timeline(viewer.user.id)
        return _deliver(info, items, _post_edge("home"))

    @strawberry.subscription(description="New public posts, as publicTimeline edges.")
    async def public_timeline(self, info: Info[Context, None]) -> AsyncGenerator[PostEdge, None]:
        items = await info.context.services.live.public_timeline(info.context.viewer_id)
        return _deliver(info, items, _post_edge("public"))

    @strawberry.subscription(
        description="New posts with a hashtag that the viewer may see, as hashtagTimeline edges."
    )
    async def hashtag_timeline(
        self,
        info: Info[Context, None],
        tag: Annotated[
            str, strawberry.argument(description="The tag, with or without #; up to 100.")
        ],
    ) -> AsyncGenerator[PostEdge, None]:
        live = info.context.services.live
        items = await live.hashtag_timeline(info.context.viewer_id, tag)
        return _deliver(info, items, _post_edge("hashtag"))

    @strawberry.subscription(
        description=(
            "The viewer's new notifications, as notifications edges. Needs a signed-in connection."
        )
    )
    async def notifications(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[NotificationEdge, None]:
        viewer = info.context.require_viewer()
        items = await info.context.services.live.notifications(viewer.user)
        return _deliver(info, items, _notification_edge)

    @strawberry.subscription(
        description=(
            "One post, again whenever its counts or text change, and its tombstone when it is "
            "deleted (the stream then completes). NOT_FOUND for a post the viewer may not see."
        )
    )
    async def post_updated(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="The post's global ID.")],
    ) -> AsyncGenerator[Post, None]:
        post_id = decode_id(id, "Post", "id")
        items = await info.context.services.live.post_updated(info.context.viewer_id, post_id)
        return _deliver(info, items, as_post)
