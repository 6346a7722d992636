"""Posts, their edit history, entities and the interactions on them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.models.account import User
from app.models.base import SnowflakeModel


class Visibility(StrEnum):
    PUBLIC = "public"
    FOLLOWERS = "followers"
    SUBSCRIBERS = "subscribers"
    DIRECT = "direct"


class Post(SnowflakeModel):
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="posts", on_delete=fields.CASCADE
    )
    text = fields.TextField()
    content_warning = fields.CharField(max_length=200, default="")
    visibility = fields.CharEnumField(Visibility, max_length=16, default=Visibility.PUBLIC)
    reply_to: fields.ForeignKeyNullableRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    quote_of: fields.ForeignKeyNullableRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    # Mentions, hashtags and links with their character ranges, as clients render them.
    entities: fields.Field[list[dict[str, object]]] = fields.JSONField(default=list)
    # Kept exact in the transaction of each action. Replies and quotes count only public
    # ones, so a count never reveals a post its reader may not see.
    like_count = fields.IntField(default=0)
    repost_count = fields.IntField(default=0)
    reply_count = fields.IntField(default=0)
    quote_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    edited_at = fields.DatetimeField(null=True)
    # A deleted post stays as a tombstone so that its replies keep their thread.
    deleted_at = fields.DatetimeField(null=True)

    author_id: int
    reply_to_id: int | None
    quote_of_id: int | None

    class Meta:
        table = "posts"
        indexes = (
            Index(fields=("author_id", "id")),
            Index(fields=("reply_to_id", "id")),
            Index(fields=("visibility", "id")),
        )


class PostEdit(SnowflakeModel):
    """An earlier version of a post, kept when it is edited."""

    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name="edits", on_delete=fields.CASCADE
    )
    text = fields.TextField()
    content_warning = fields.CharField(max_length=200, default="")
    # When this version was first published (the post's creation or an earlier edit).
    published_at = fields.DatetimeField()
    # The accounts this version mentioned (for a DIRECT post, its audience with the author);
    # NULL on versions kept before it was recorded, which only their author sees then.
    mentioned_ids: fields.Field[list[int] | None] = fields.JSONField(null=True)

    post_id: int

    class Meta:
        table = "post_edits"
        indexes = (Index(fields=("post_id", "id")),)


class Mention(Model):
    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name="mentions", on_delete=fields.CASCADE
    )
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "mentions"
        unique_together = (("post_id", "user_id"),)
        indexes = (Index(fields=("user_id", "post_id")),)


class PostTag(Model):
    id = fields.BigIntField(primary_key=True)
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name="tags", on_delete=fields.CASCADE
    )
    tag = fields.CharField(max_length=100)  # lower-cased, without the #

    class Meta:
        table = "post_tags"
        unique_together = (("post_id", "tag"),)
        indexes = (Index(fields=("tag", "post_id")),)


class Like(SnowflakeModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "likes"
        unique_together = (("user_id", "post_id"),)
        indexes = (Index(fields=("user_id", "id")), Index(fields=("post_id",)))


class Repost(SnowflakeModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "reposts"
        unique_together = (("user_id", "post_id"),)
        indexes = (Index(fields=("post_id",)),)


class Bookmark(SnowflakeModel):
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    post: fields.ForeignKeyRelation[Post] = fields.ForeignKeyField(
        "models.Post", related_name=False, on_delete=fields.CASCADE
    )

    class Meta:
        table = "bookmarks"
        unique_together = (("user_id", "post_id"),)
        indexes = (Index(fields=("user_id", "id")),)
