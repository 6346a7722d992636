"""The shared object types: User, Post, their connections, notifications.

Types read plain prefetched data (models or the services' slotted view dataclasses) straight
off attributes, so scalar fields have no resolvers; only relations that are not prefetched go
through per-request DataLoaders.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from app.ids import parse_id
from app.models import NotificationKind as NotificationKindModel
from app.models import Role as RoleModel
from app.models import User as UserModel
from app.models import Visibility as VisibilityModel
from app.services import timelines
from app.services.accounts import can_see_email
from app.services.graph import FollowState as FollowStateModel
from app.services.notifications import NotificationView
from app.services.paging import Page, PageRequest
from app.services.posts import EDIT_HISTORY_MAX
from app.services.views import AccountCard, PostView
from schema.context import Context
from schema.executor import PREFETCHED
from schema.limits import LIST_SIZE, SettingSize
from schema.media import Media, as_media

if TYPE_CHECKING:
    from schema.billing import PremiumSubscription

# A post's media, as the cost of a query counts them: media.max_attachments (build_schema
# gives its value).
MEDIA_LIST_SIZE = SettingSize("media.max_attachments", 4)

# --- enums -------------------------------------------------------------------------------


@strawberry.enum(description="What an account may do beyond posting.")
class Role(Enum):
    USER = strawberry.enum_value(RoleModel.USER.value, description="A member.")
    MODERATOR = strawberry.enum_value(
        RoleModel.MODERATOR.value, description="May act on reported content."
    )
    ADMIN = strawberry.enum_value(RoleModel.ADMIN.value, description="Runs the network.")


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


@strawberry.enum(description="The viewer's relation to an account.")
class FollowState(Enum):
    NOT_FOLLOWING = strawberry.enum_value(
        FollowStateModel.NOT_FOLLOWING.value, description="Not following."
    )
    REQUESTED = strawberry.enum_value(
        FollowStateModel.REQUESTED.value, description="A follow request awaits approval."
    )
    FOLLOWING = strawberry.enum_value(FollowStateModel.FOLLOWING.value, description="Following.")


@strawberry.enum(description="What a notification is about.")
class NotificationKind(Enum):
    FOLLOW = strawberry.enum_value(
        NotificationKindModel.FOLLOW.value, description="The actor followed you."
    )
    FOLLOW_REQUEST = strawberry.enum_value(
        NotificationKindModel.FOLLOW_REQUEST.value, description="The actor asks to follow you."
    )
    LIKE = strawberry.enum_value(
        NotificationKindModel.LIKE.value, description="The actor liked your post."
    )
    REPOST = strawberry.enum_value(
        NotificationKindModel.REPOST.value, description="The actor reposted your post."
    )
    REPLY = strawberry.enum_value(
        NotificationKindModel.REPLY.value, description="The actor replied to your post."
    )
    MENTION = strawberry.enum_value(
        NotificationKindModel.MENTION.value, description="The actor mentioned you."
    )
    QUOTE = strawberry.enum_value(
        NotificationKindModel.QUOTE.value, description="The actor quoted your post."
    )


@strawberry.enum(description="What an entity in a post's text is.")
class EntityKind(Enum):
    MENTION = strawberry.enum_value("mention", description="@username")
    HASHTAG = strawberry.enum_value("hashtag", description="#tag")
    LINK = strawberry.enum_value("link", description="A web address.")


# --- paging arguments ----------------------------------------------------------------------

First = Annotated[int | None, strawberry.argument(description="Page size going forward (1-100).")]
After = Annotated[str | None, strawberry.argument(description="Cursor to continue after.")]
Last = Annotated[int | None, strawberry.argument(description="Page size going back (1-100).")]
Before = Annotated[str | None, strawberry.argument(description="Cursor to continue before.")]


def page_request(
    connection: str, first: int | None, after: str | None, last: int | None, before: str | None
) -> PageRequest:
    return PageRequest.parse(connection, first=first, after=after, last=last, before=before)


def page_info(page: Page[Any]) -> relay.PageInfo:
    return relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=page.cursor(0) if page.items else None,
        end_cursor=page.cursor(len(page.items) - 1) if page.items else None,
    )


# --- User --------------------------------------------------------------------------------


@strawberry.type(description="An account on the network.")
class User(relay.Node):
    id: relay.NodeID[int]
    username: str = strawberry.field(description="Unique (ignoring case) handle, without the @.")
    display_name: str = strawberry.field(description="The name shown beside the handle.")
    bio: str = strawberry.field(description="Free text about the account, up to 300 characters.")
    is_locked: bool = strawberry.field(description="Whether follows need the account's approval.")
    role: Role = strawberry.field(description="The account's role.")
    created_at: datetime = strawberry.field(description="When the account was created.")
    follower_count: int = strawberry.field(description="How many accounts follow it.")
    following_count: int = strawberry.field(description="How many accounts it follows.")

    @classmethod
    def is_type_of(cls, obj: object, info: Info[Context, None]) -> bool:
        return isinstance(obj, (cls, UserModel, AccountCard))

    @strawberry.field(
        description="The account's email address: only for the account itself and admins."
    )
    def email(self, info: Info[Context, None]) -> str | None:
        root = cast("UserModel", self)
        return root.email if can_see_email(info.context.viewer, root) else None

    @strawberry.field(description="Whether the account has premium access now (the badge).")
    async def is_premium(self, info: Info[Context, None]) -> bool:
        return await info.context.loaders.premium_by_user_id.load(self.id)

    @strawberry.field(
        description="The account's premium subscription (where it stands, what to do next): "
        "only for the account itself; null when it has none."
    )
    async def subscription(
        self, info: Info[Context, None]
    ) -> Annotated[PremiumSubscription, strawberry.lazy("schema.billing")] | None:
        from schema.billing import as_subscription

        viewer = info.context.viewer
        if viewer is None or viewer.user.id != self.id:
            return None
        view = await info.context.services.billing.viewer_subscription(viewer)
        return as_subscription(view, info) if view is not None else None

    @strawberry.field(description="The account's picture, if it has one.")
    async def avatar(self, info: Info[Context, None]) -> Media | None:
        avatar, _ = await info.context.loaders.profile_media_by_user_id.load(self.id)
        return as_media(avatar) if avatar else None

    @strawberry.field(description="The account's header image, if it has one.")
    async def header(self, info: Info[Context, None]) -> Media | None:
        _, header = await info.context.loaders.profile_media_by_user_id.load(self.id)
        return as_media(header) if header else None

    @strawberry.field(description="Whether the viewer follows it, or asked to.")
    async def viewer_follow_state(self, info: Info[Context, None]) -> FollowState | None:
        viewer = info.context.viewer
        if viewer is None or viewer.user.id == self.id:
            return None
        state = await info.context.loaders.follow_state_by_user_id.load(self.id)
        return FollowState(state.value)

    @strawberry.field(description="The account's posts, newest first.")
    async def posts(
        self,
        info: Info[Context, None],
        with_replies: Annotated[
            bool, strawberry.argument(description="Include its replies to others.")
        ] = False,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        name = "user-posts-replies" if with_replies else "user-posts"
        request = page_request(name, first, after, last, before)
        page = await timelines.user_posts(
            info.context.viewer_id, self.id, request, with_replies=with_replies
        )
        return PostConnection.from_page(page)

    @strawberry.field(description="Accounts following this one, latest first.")
    async def followers(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> UserConnection:
        request = page_request("followers", first, after, last, before)
        page = await info.context.services.graph.followers(info.context.viewer_id, self.id, request)
        return UserConnection.from_page(page)

    @strawberry.field(description="Accounts this one follows, latest first.")
    async def following(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> UserConnection:
        request = page_request("following", first, after, last, before)
        page = await info.context.services.graph.following(info.context.viewer_id, self.id, request)
        return UserConnection.from_page(page)

    @classmethod
    async def resolve_nodes(
        cls,
        *,
        info: Info[Context, None],
        node_ids: Iterable[str],
        required: bool = False,
    ) -> list[Any]:
        return await _load_nodes(info.context.loaders.user_by_id, node_ids)


@strawberry.type(description="An account in a list.")
class UserEdge:
    cursor: str = strawberry.field(description="Where this account is in the list.")
    node: User = strawberry.field(description="The account.")


@strawberry.type(description="A page of accounts.")
class UserConnection:
    edges: list[UserEdge] = strawberry.field(description="The accounts with their cursors.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def from_page(cls, page: Page[AccountCard]) -> UserConnection:
        return cls(
            edges=[
                UserEdge(cursor=page.cursor(i), node=item)  # type: ignore[arg-type]
                for i, item in enumerate(page.items)
            ],
            page_info=page_info(page),
        )


# --- Post --------------------------------------------------------------------------------


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
class Post(relay.Node):
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
        post = cast("PostView", self)
        if post.is_deleted:
            return []
        return [as_media(m) for m in await info.context.loaders.media_by_post_id.load(post.id)]

    @strawberry.field(description="Mentions, hashtags and links in the text, in order.")
    def entities(self) -> list[Entity]:
        return [
            Entity(kind=EntityKind(e["kind"]), start=e["start"], end=e["end"], value=e["value"])
            for e in cast("PostView", self).entities
        ]

    @strawberry.field(
        description="The post this replies to, if the viewer may see it.",
        metadata={PREFETCHED: ("related_loaded", "reply_to")},
    )
    def reply_to(self, info: Info[Context, None]) -> Post | None:
        return cast("Post | None", _related(self, info, "reply_to"))

    @strawberry.field(
        description="The post this quotes, if the viewer may see it.",
        metadata={PREFETCHED: ("related_loaded", "quote_of")},
    )
    def quote_of(self, info: Info[Context, None]) -> Post | None:
        return cast("Post | None", _related(self, info, "quote_of"))

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
        page = await timelines.replies(info.context.viewer_id, self.id, request)
        return PostConnection.from_page(page)

    @strawberry.field(
        description="The posts this one replies to, from the thread's root down (the nearest 40).",
        metadata={LIST_SIZE: timelines.ANCESTORS_MAX},
    )
    async def ancestors(self, info: Info[Context, None]) -> list[Post]:
        return await timelines.ancestors(info.context.viewer_id, self.id)  # type: ignore[return-value]

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
    async def resolve_nodes(
        cls,
        *,
        info: Info[Context, None],
        node_ids: Iterable[str],
        required: bool = False,
    ) -> list[Any]:
        return await _load_nodes(info.context.loaders.post_by_id, node_ids)


async def _load_nodes(loader: DataLoader[int, Any], node_ids: Iterable[str]) -> list[Any]:
    """Load by global-ID node ids; one that is not a valid id is simply not found."""
    ids = [parse_id(node_id) for node_id in node_ids]
    found = await loader.load_many([i for i in ids if i is not None])
    by_id = dict(zip([i for i in ids if i is not None], found, strict=True))
    return [by_id.get(i) if i is not None else None for i in ids]


def as_user(user: UserModel | AccountCard) -> User:
    """Types read these objects' attributes directly (see `is_type_of`)."""
    return cast("User", user)


def as_post(post: PostView) -> Post:
    return cast("Post", post)


async def _viewer_state(post: Any, info: Info[Context, None]) -> tuple[bool, bool, bool]:
    if getattr(post, "viewer_state_loaded", False):
        return (post.viewer_has_liked, post.viewer_has_reposted, post.viewer_has_bookmarked)
    return await info.context.loaders.viewer_state_by_post_id.load(post.id)


def _related(post: Any, info: Info[Context, None], attribute: str) -> Any:
    """A replied-to or quoted post: prefetched on timeline pages, else one batched load."""
    if getattr(post, "related_loaded", False):
        return getattr(post, attribute)
    referenced = getattr(post, f"{attribute}_id", None)
    if referenced is None or getattr(post, "is_deleted", False):
        return None
    return info.context.loaders.post_by_id.load(referenced)


@strawberry.type(description="A post in a list.")
class PostEdge:
    cursor: str = strawberry.field(description="Where this post is in the list.")
    node: Post = strawberry.field(description="The post.")
    reposted_by: User | None = strawberry.field(
        description="In a home timeline: the followed account whose repost brought it here."
    )


@strawberry.type(description="A page of posts.")
class PostConnection:
    edges: list[PostEdge] = strawberry.field(description="The posts with their cursors.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def from_page(cls, page: Page[PostView]) -> PostConnection:
        return cls(
            edges=[
                PostEdge(
                    cursor=page.cursor(i),
                    node=item,  # type: ignore[arg-type]
                    reposted_by=item.reposted_by,  # type: ignore[arg-type]
                )
                for i, item in enumerate(page.items)
            ],
            page_info=page_info(page),
        )


# --- notifications ---------------------------------------------------------------------------


@strawberry.type(description="Something that happened to the viewer.")
class Notification:
    id: strawberry.ID = strawberry.field(description="The notification's id.")
    kind: NotificationKind = strawberry.field(description="What happened.")
    actor: User = strawberry.field(description="Who did it.")
    post: Post | None = strawberry.field(description="The post it is about, if any.")
    is_read: bool = strawberry.field(description="Whether it is at or before the read mark.")

    @classmethod
    def from_view(cls, item: NotificationView) -> Notification:
        return cls(
            id=strawberry.ID(str(item.id)),
            kind=item.kind,  # type: ignore[arg-type]
            actor=item.actor,  # type: ignore[arg-type]
            post=item.post,  # type: ignore[arg-type]
            is_read=item.is_read,
        )


@strawberry.type(description="A notification in the list.")
class NotificationEdge:
    cursor: str = strawberry.field(description="Where it is in the list; markRead takes it.")
    node: Notification = strawberry.field(description="The notification.")


@strawberry.type(description="A page of notifications, newest first.")
class NotificationConnection:
    edges: list[NotificationEdge] = strawberry.field(description="The notifications.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")


@strawberry.type(description="A hashtag and how many public posts use it.")
class Hashtag:
    tag: str = strawberry.field(description="The tag, lower case, without #.")
    public_posts: int = strawberry.field(description="Public posts using it.")
