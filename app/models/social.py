"""The social graph: follows, follow requests, blocks and mutes."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index

from app.models.account import User
from app.models.base import SnowflakeModel


class Follow(SnowflakeModel):
    follower: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    followee: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    follower_id: int
    followee_id: int

    class Meta:
        table = "follows"
        unique_together = (("follower_id", "followee_id"),)
        indexes = (Index(fields=("followee_id", "id")), Index(fields=("follower_id", "id")))


class FollowRequest(SnowflakeModel):
    requester: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    target: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    requester_id: int
    target_id: int

    class Meta:
        table = "follow_requests"
        unique_together = (("requester_id", "target_id"),)
        indexes = (Index(fields=("target_id", "id")),)


class Block(SnowflakeModel):
    blocker: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    blocked: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "blocks"
        unique_together = (("blocker_id", "blocked_id"),)
        indexes = (Index(fields=("blocked_id", "blocker_id")),)


class Mute(SnowflakeModel):
    muter: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    muted: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "mutes"
        unique_together = (("muter_id", "muted_id"),)
