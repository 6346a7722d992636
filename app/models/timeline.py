"""Read models: the home timeline fan-out table and notifications."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.models.account import User
from app.models.base import SnowflakeModel
from app.models.post import Post


class HomeEntry(Model):
    """One post in one account's home timeline, written when the post (or a repost of it) is
    made. Rebuildable from the follow graph at any time."""

    id = fields.BigIntField(primary_key=True)
    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    # The sort key: the post's id, or the repost's id when it came in as a repost.
    entry_id = fields.BigIntField()
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, on_delete=fields.CASCADE
    )
    reposter: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.CASCADE
    )
    # Whose action put it here (the author or the reposter), for unfollow and block clean-up.
    source: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "home_entries"
        unique_together = (("owner_id", "entry_id"),)
        indexes = (Index(fields=("owner_id", "source_id")),)


class NotificationKind(StrEnum):
    FOLLOW = "follow"
    FOLLOW_REQUEST = "follow_request"
    LIKE = "like"
    REPOST = "repost"
    REPLY = "reply"
    MENTION = "mention"
    QUOTE = "quote"


class Notification(SnowflakeModel):
    recipient: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    actor: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(NotificationKind, max_length=16)
    post: fields.ForeignKeyNullableRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, null=True, on_delete=fields.CASCADE
    )

    recipient_id: int
    actor_id: int
    post_id: int | None

    class Meta:
        table = "notifications"
        indexes = (Index(fields=("recipient_id", "id")),)
