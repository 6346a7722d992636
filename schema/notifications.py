"""Notifications: the Notification type and its connection (the queries are timelines',
markNotificationsRead is social's, the live stream is subscriptions')."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry import relay

from app.models import NotificationKind as NotificationKindModel
from app.services.notifications import NotificationView
from app.services.paging import Page
from schema.paging import edges_of, page_info
from schema.posts.types import Post, as_post_or_none
from schema.users import User, as_user


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
            kind=NotificationKind(item.kind.value),
            actor=as_user(item.actor),
            post=as_post_or_none(item.post),
            is_read=item.is_read,
        )


@strawberry.type(description="A notification in the list.")
class NotificationEdge:
    cursor: str = strawberry.field(description="Where it is in the list; markRead takes it.")
    node: Notification = strawberry.field(description="The notification.")

    @classmethod
    def from_view(cls, cursor: str, item: NotificationView) -> NotificationEdge:
        return cls(cursor=cursor, node=Notification.from_view(item))


@strawberry.type(description="A page of notifications, newest first.")
class NotificationConnection:
    edges: list[NotificationEdge] = strawberry.field(description="The notifications.")
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def from_page(cls, page: Page[NotificationView]) -> NotificationConnection:
        return cls(
            edges=edges_of(page, NotificationEdge.from_view),
            page_info=page_info(page),
        )
