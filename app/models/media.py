"""Uploaded media: the upload waiting to be processed, its renditions once it is, and where
it is used (a post, an avatar, a header)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index

from app.models.account import User
from app.models.base import SnowflakeModel
from app.models.post import Post
from app.models.storage import StoredObject


class MediaPurpose(StrEnum):
    POST = "post"
    AVATAR = "avatar"
    HEADER = "header"


class MediaState(StrEnum):
    PENDING = "pending"  # created; the original bytes are on their way
    PROCESSING = "processing"  # the bytes are there; the `media.process` job owes its result
    READY = "ready"  # re-encoded renditions stored
    FAILED = "failed"  # refused (error_code says why); nothing of it stored


class Media(SnowflakeModel):
    """One uploaded image. The original bytes wait under `upload_key` in `upload_backend`
    until processing, and are deleted then: only the re-encoded renditions (`full`, `thumb`,
    each a StoredObject) are ever served."""

    owner: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    purpose = fields.CharEnumField(MediaPurpose, max_length=16)
    state = fields.CharEnumField(MediaState, max_length=16, default=MediaState.PENDING)
    error_code = fields.CharField(max_length=32, null=True)
    error_message = fields.CharField(max_length=300, null=True)
    upload_key = fields.CharField(max_length=512)
    upload_backend = fields.CharField(max_length=64)
    declared_type = fields.CharField(max_length=100)
    declared_size = fields.BigIntField()
    alt_text = fields.CharField(max_length=1500, default="")
    # The point to keep in view when cropping, each in -1..1 (0, 0: the centre).
    focus_x = fields.FloatField(default=0.0)
    focus_y = fields.FloatField(default=0.0)
    width = fields.IntField(null=True)
    height = fields.IntField(null=True)
    blurhash = fields.CharField(max_length=100, null=True)
    animated = fields.BooleanField(default=False)
    full: fields.ForeignKeyNullableRelation[StoredObject] = fields.ForeignKeyField(
        "models.StoredObject", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    thumb: fields.ForeignKeyNullableRelation[StoredObject] = fields.ForeignKeyField(
        "models.StoredObject", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    post: fields.ForeignKeyNullableRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    position = fields.SmallIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    owner_id: int
    full_id: int | None
    thumb_id: int | None
    post_id: int | None

    class Meta:
        table = "media"
        indexes = (
            Index(fields=("post_id", "position")),
            Index(fields=("owner_id", "id")),
            Index(fields=("state", "id")),
        )
