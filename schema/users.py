"""Accounts as others see them: the User type, its enums and its connections.

User reads prefetched data (the `User` model or the services' `AccountCard`) straight off
attributes, so scalar fields have no resolvers; relations that are not prefetched go through
per-request DataLoaders.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from app.models import Role as RoleModel
from app.models import User as UserModel
from app.services.accounts import can_see_email
from app.services.graph import FollowState as FollowStateModel
from app.services.paging import Page
from app.services.views import ACCOUNT_READS, AccountCard
from schema.context import Context
from schema.media import Media, as_media
from schema.nodes import LoadedNode
from schema.paging import After, Before, First, Last, edges_of, page_info, page_request
from schema.rowplan import RowView

if TYPE_CHECKING:
    from schema.billing import PremiumSubscription
    from schema.posts.types import PostConnection


@strawberry.enum(description="What an account may do beyond posting.")
class Role(Enum):
    USER = strawberry.enum_value(RoleModel.USER.value, description="A member.")
    MODERATOR = strawberry.enum_value(
        RoleModel.MODERATOR.value, description="May act on reported content."
    )
    ADMIN = strawberry.enum_value(RoleModel.ADMIN.value, description="Runs the network.")


@strawberry.enum(description="The viewer's relation to an account.")
class FollowState(Enum):
    NOT_FOLLOWING = strawberry.enum_value(
        FollowStateModel.NOT_FOLLOWING.value, description="Not following."
    )
    REQUESTED = strawberry.enum_value(
        FollowStateModel.REQUESTED.value, description="A follow request awaits approval."
    )
    FOLLOWING = strawberry.enum_value(FollowStateModel.FOLLOWING.value, description="Following.")


@strawberry.type(description="An account on the network.")
class User(LoadedNode, relay.Node):
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
    ) -> Annotated[PostConnection, strawberry.lazy("schema.posts.types")]:
        from schema.posts.types import PostConnection

        name = "user-posts-replies" if with_replies else "user-posts"
        request = page_request(name, first, after, last, before)
        page = await info.context.services.timelines.user_posts(
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
    def node_loader(cls, info: Info[Context, None]) -> DataLoader[int, Any]:
        return info.context.loaders.user_by_id


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
            edges=edges_of(page, lambda cursor, item: UserEdge(cursor=cursor, node=as_user(item))),
            page_info=page_info(page),
        )


def as_user(user: UserModel | AccountCard) -> User:
    """User reads these objects' attributes directly (see `is_type_of`)."""
    return cast("User", user)


def as_user_or_none(user: UserModel | AccountCard | None) -> User | None:
    return cast("User | None", user)


# User read from a page row's account columns (schema.rowplan), as `account_from_row` reads them.
USER_ROWS = RowView(reads=ACCOUNT_READS, objects={}, flags={})
