"""Accounts and their sign-in sessions."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields

from app.models.base import SnowflakeModel

if TYPE_CHECKING:
    from app.models.media import Media


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


class User(SnowflakeModel):
    username = fields.CharField(max_length=30)
    # Lower-cased username: uniqueness and look-up ignore case.
    username_key = fields.CharField(max_length=30, unique=True)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    display_name = fields.CharField(max_length=50)
    # Case-folded display name for prefix search (SQLite's LOWER folds ASCII only).
    display_name_key = fields.CharField(max_length=200, default="", db_default="")
    bio = fields.CharField(max_length=300, default="")
    is_locked = fields.BooleanField(default=False)
    role = fields.CharEnumField(Role, max_length=16, default=Role.USER)
    # Kept exact with each follow and unfollow; accounts with very many followers are merged
    # into home timelines at read time instead of fanned out.
    follower_count = fields.IntField(default=0)
    following_count = fields.IntField(default=0)
    # Notifications up to this id have been read.
    notifications_read_id = fields.BigIntField(default=0)
    # Ready media of purpose avatar and header (app/services/media.py).
    avatar: fields.ForeignKeyNullableRelation[Media] = fields.ForeignKeyField(
        "models.Media", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    header: fields.ForeignKeyNullableRelation[Media] = fields.ForeignKeyField(
        "models.Media", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    avatar_id: int | None
    header_id: int | None
    sessions: fields.ReverseRelation[Session]

    class Meta:
        table = "users"


class Session(SnowflakeModel):
    """One sign-in: a family of refresh tokens, each used once. Revoking it signs it out."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)
    user_agent = fields.CharField(max_length=255, default="")

    user_id: int
    refresh_tokens: fields.ReverseRelation[RefreshToken]

    class Meta:
        table = "sessions"


class RefreshToken(SnowflakeModel):
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    # SHA-256 of the token: the token itself is never stored.
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    session_id: int

    class Meta:
        table = "refresh_tokens"
