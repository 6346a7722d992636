"""The Post type, its parts and its connections.

Post reads the services' slotted `PostView` straight off attributes, so scalar fields have no
resolvers; the viewer's state and the replied-to and quoted posts come prefetched on timeline
pages (`metadata={PREFETCHED: ...}`, read by schema/executor.py), else through per-request
DataLoaders.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from app.models import Visibility as VisibilityModel
from app.services.paging import Page
from app.services.posts import EDIT_HISTORY_MAX
from app.services.timelines import ANCESTORS_MAX
from app.services.views import (
    PAGE_OBJECTS,
    POST_READS,
    VIEWER_STATE_LOADED,
    PostView,
    shows_referred,
)
from schema.context import Context
from schema.executor import PREFETCHED
from schema.limits import LIST_SIZE, SettingSize
from schema.media import Media, as_media
from schema.nodes import LoadedNode
from schema.paging import After, Before, First, Last, edges_of, page_info, page_request
from schema.rowplan import RowView
from schema.users import User, as_user_or_none

# A post's media, as the cost of a query counts them: media.max_attachments (build_schema
# gives its value).
MEDIA_LIST_SIZE = SettingSize("media.max_attachments", 4)


@strawberry.enum(description="Who may see a post.")
class Visibility(Enum):
    PUBLIC = strawberry.enum_value(VisibilityModel.PUBLIC.value, description="Everyone.")
    FOLLOWERS = strawberry.enum_value(
        VisibilityModel.FOLLOWERS.value, description="The author's followers."
    )
    SUBSCRIBERS = strawberry.enum_value(
        VisibilityModel.SUBSCRIBERS.value,
        description="The author and accounts with premium access now (active subscribers, "
        "those in a grace period after a failed renewal, complimentary grants).",
    )
    DIRECT = strawberry.enum_value(
        VisibilityModel.DIRECT.value, description="Only the accounts mentioned in it."
    )


@strawberry.enum(description="What an entity in a post's text is.")
class EntityKind(Enum):
    MENTION = strawberry.enum_value("mention", description="@username")
    HASHTAG = strawberry.enum_value("hashtag", description="#tag")
    LINK = strawberry.enum_value("link", description="A web address.")


@strawberry.type(description="A mention, hashtag or link in a post's text.")
class Entity:
    kind: EntityKind = strawberry.field(description="What it is.")
    start: int = strawberry.field(description="Where it starts, in code points of the text.")
    end: int = strawberry.field(description="Where it ends (exclusive), in code points.")
    value: str = strawberry.field(
        description="The username, the tag (lower case, without #) or the URL."
    )


@strawberry.type(description="An earlier version of an edited post.")
class PostVersion:
    text: str = strawberry.field(description="The text then.")
    content_warning: str = strawberry.field(description="The content warning then.")
    published_at: datetime = strawberry.field(description="When this version was published.")


@strawberry.type(description="A post, or the tombstone of a deleted one.")
class Post(LoadedNode, relay.Node):
    id: relay.NodeID[int]
    author: User = strawberry.field(description="Who wrote it.")
    text: str = strawberry.field(description="The text; empty for a deleted post.")
    content_warning: str = strawberry.field(
        description="A warning to show before the text; empty when none."
    )
    visibility: Visibility = strawberry.field(description="Who may see it.")
    like_count: int = strawberry.field(description="How many accounts like it.")
    repost_count: int = strawberry.field(description="How many accounts reposted it.")
    reply_count: int = strawberry.field(description="How many public replies it has.")
    quote_count: int = strawberry.field(description="How many public posts quote it.")
    created_at: datetime = strawberry.field(description="When it was posted.")
    edited_at: datetime | None = strawberry.field(description="When it was last edited.")
    is_deleted: bool = strawberry.field(description="Whether this is a deleted post's tombstone.")

    @classmethod
    def is_type_of(cls, obj: object, info: Info[Context, None]) -> bool:
        return isinstance(obj, (cls, PostView))

    @strawberry.field(
        description="Whether the viewer likes it.",
        metadata={PREFETCHED: ("viewer_state_loaded", "viewer_has_liked")},
    )
    async def viewer_has_liked(self, info: Info[Context, None]) -> bool:
        return (await _viewer_state(self, info))[0]

    @strawberry.field(
        description="Whether the viewer reposted it.",
        metadata={PREFETCHED: ("viewer_state_loaded", "viewer_has_reposted")},
    )
    async def viewer_has_reposted(self, info: Info[Context, None]) -> bool:
        return (await _viewer_state(self, info))[1]

    @strawberry.field(
        description="Whether the viewer bookmarked it.",
        metadata={PREFETCHED: ("viewer_state_loaded", "viewer_has_bookmarked")},
    )
    async def viewer_has_bookmarked(self, info: Info[Context, None]) -> bool:
        return (await _viewer_state(self, info))[2]

    @strawberry.field(
        description="Images attached to it, in order; none on a deleted post.",
        metadata={LIST_SIZE: MEDIA_LIST_SIZE},
    )
    async def media(self, info: Info[Context, None]) -> list[Media]:
        post = _view(self)
        if post.is_deleted:
            return []
        return [as_media(m) for m in await info.context.loaders.media_by_post_id.load(post.id)]

    @strawberry.field(description="Mentions, hashtags and links in the text, in order.")
    def entities(self) -> list[Entity]:
        return [
            Entity(kind=EntityKind(e["kind"]), start=e["start"], end=e["end"], value=e["value"])
            for e in _view(self).entities
        ]

    @strawberry.field(
        description="The post this replies to, if the viewer may see it.",
        metadata={PREFETCHED: ("related_loaded", "reply_to")},
    )
    def reply_to(self, info: Info[Context, None]) -> Post | None:
        post = _view(self)
        return _related(post, post.reply_to, post.reply_to_id, info)

    @strawberry.field(
        description="The post this quotes, if the viewer may see it.",
        metadata={PREFETCHED: ("related_loaded", "quote_of")},
    )
    def quote_of(self, info: Info[Context, None]) -> Post | None:
        post = _view(self)
        return _related(post, post.quote_of, post.quote_of_id, info)

    @strawberry.field(description="Replies the viewer may see, oldest first.")
    async def replies(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        request = page_request("replies", first, after, last, before)
        page = await info.context.services.timelines.replies(
            info.context.viewer_id, self.id, request
        )
        return PostConnection.from_page(page)

    @strawberry.field(
        description="The posts this one replies to, from the thread's root down (the nearest 40).",
        metadata={LIST_SIZE: ANCESTORS_MAX},
    )
    async def ancestors(self, info: Info[Context, None]) -> list[Post]:
        posts = await info.context.services.timelines.ancestors(info.context.viewer_id, self.id)
        return [as_post(post) for post in posts]

    @strawberry.field(
        description="Earlier versions, oldest first (the latest 50); empty if never edited.",
        metadata={LIST_SIZE: EDIT_HISTORY_MAX},
    )
    async def edit_history(self, info: Info[Context, None]) -> list[PostVersion]:
        edits = await info.context.services.posts.edit_history(info.context.viewer_id, self.id)
        return [
            PostVersion(text=e.text, content_warning=e.content_warning, published_at=e.published_at)
            for e in edits
        ]

    @classmethod
    def node_loader(cls, info: Info[Context, None]) -> DataLoader[int, Any]:
        return info.context.loaders.post_by_id


@strawberry.type(description="A post in a list.")
class PostEdge:
    cursor: str = strawberry.field(description="Where this post is in the list.")
    node: Post = strawberry.field(description="The post.")
    reposted_by: User | None = strawberry.field(
        description="In a home timeline: the followed account whose repost brought it here."
    )

    @classmethod
    def from_view(cls, cursor: str, post: PostView) -> PostEdge:
        return cls(cursor=cursor, node=as_post(post), reposted_by=as_user_or_none(post.reposted_by))


@strawberry.type(description="A page of posts.")
class PostConnection:
    edges: list[PostEdge] = strawberry.field(description="The posts with their cursors.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def from_page(cls, page: Page[PostView]) -> PostConnection:
        return cls(
            edges=edges_of(page, PostEdge.from_view),
            page_info=page_info(page),
        )


# Post read from a page row (schema.rowplan): its fields as `post_from_row` reads them, its
# author and referred posts where `page_post_from_row` finds them, and the prefetch flags page
# rows answer (the referred posts are loaded; the viewer's state when its column is there).
POST_ROWS = RowView(
    reads=POST_READS,
    objects={
        "author": ("User", PAGE_OBJECTS["author"]),
        "reply_to": ("Post", PAGE_OBJECTS["reply_to"]),
        "quote_of": ("Post", PAGE_OBJECTS["quote_of"]),
    },
    flags={"related_loaded": None, "viewer_state_loaded": VIEWER_STATE_LOADED},
)


def as_post(post: PostView) -> Post:
    """Post reads the view's attributes directly (see `is_type_of`)."""
    return cast("Post", post)


def as_post_or_none(post: PostView | None) -> Post | None:
    return cast("Post | None", post)


def _view(post: Post) -> PostView:
    """What a Post resolver's `self` is (see `is_type_of`)."""
    return cast("PostView", post)


async def _viewer_state(post: Post, info: Info[Context, None]) -> tuple[bool, bool, bool]:
    view = _view(post)
    if view.viewer_state_loaded:
        return (view.viewer_has_liked, view.viewer_has_reposted, view.viewer_has_bookmarked)
    return await info.context.loaders.viewer_state_by_post_id.load(view.id)


def _related(
    post: PostView, prefetched: PostView | None, referenced: int | None, info: Info[Context, None]
) -> Post | None:
    """A replied-to or quoted post: prefetched on timeline pages, else one batched load. The
    load is returned as the loader's future, which graphql-core awaits: the resolver stays
    synchronous, so that a prefetched post costs no coroutine."""
    if post.related_loaded:
        return as_post_or_none(prefetched)
    if referenced is None or not shows_referred(post):
        return None
    return cast("Post | None", info.context.loaders.post_by_id.load(referenced))
