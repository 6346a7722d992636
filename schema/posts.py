"""Posts over GraphQL: write, edit, delete, like, repost, bookmark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.errors import ErrorCode
from app.models import Visibility as VisibilityModel
from app.services.views import PostView
from schema.context import Context
from schema.results import INPUT, MutationTypes, decode_id
from schema.types import Post, Visibility


@strawberry.type(description="The post as it is now.")
class PostPayload:
    post: Post = strawberry.field(description="The post.")


@strawberry.type(description="The deleted post.")
class DeletePostPayload:
    deleted_post_id: strawberry.ID = strawberry.field(description="The global ID it had.")


@strawberry.input(description="A new post.")
class CreatePostInput:
    text: str = strawberry.field(
        description="1 to 500 characters (an operator setting), some visible; line breaks "
        "and tabs are the only control characters."
    )
    visibility: Visibility = strawberry.field(
        default=Visibility.PUBLIC, description="Who may see it."
    )
    content_warning: str | None = strawberry.field(
        default=None,
        description="A warning shown before the text, up to 200 characters on one line.",
    )
    reply_to: strawberry.ID | None = strawberry.field(
        default=None, description="The post this replies to."
    )
    quote_of: strawberry.ID | None = strawberry.field(
        default=None, description="A public post this quotes."
    )
    media_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Ready media of the viewer's, uploaded for posts and on no other post, "
        "in order (at most 4, an operator setting).",
    )


@strawberry.input(description="New text for one of the viewer's posts.")
class EditPostInput:
    id: strawberry.ID = strawberry.field(description="The post.")
    text: str = strawberry.field(description="The new text, as createPost's text.")
    content_warning: str | None = strawberry.field(
        default=None, description="The new content warning; none when omitted."
    )
    media_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="The post's media from now on, as createPost's mediaIds (an empty list "
        "removes them); null keeps them.",
    )


@strawberry.input(description="A post to act on.")
class PostRefInput:
    post_id: strawberry.ID = strawberry.field(description="The post.")


_POST_CODES = [ErrorCode.NOT_AUTHENTICATED, ErrorCode.NOT_FOUND]
_ATTACH_CODES = [
    ErrorCode.TOO_MANY_ATTACHMENTS,
    ErrorCode.MEDIA_NOT_READY,
    ErrorCode.MEDIA_IN_USE,
    ErrorCode.WRONG_MEDIA_PURPOSE,
]

CREATE_POST = MutationTypes(
    "createPost",
    PostPayload,
    [
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.EMPTY_TEXT,
        ErrorCode.TEXT_TOO_LONG,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        ErrorCode.FORBIDDEN,
        *_ATTACH_CODES,
    ],
    success="The post was published.",
    failure="createPost failed; nothing was published.",
)
EDIT_POST = MutationTypes(
    "editPost",
    PostPayload,
    [
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.EMPTY_TEXT,
        ErrorCode.TEXT_TOO_LONG,
        ErrorCode.INVALID_INPUT,
        ErrorCode.NOT_FOUND,
        *_ATTACH_CODES,
    ],
    success="The post was edited; its earlier version is in editHistory.",
    failure="editPost failed; the post is unchanged.",
)
DELETE_POST = MutationTypes(
    "deletePost",
    DeletePostPayload,
    _POST_CODES,
    success="The post is now a tombstone; its replies stay.",
    failure="deletePost failed; the post remains.",
)
LIKE_POST = MutationTypes(
    "likePost",
    PostPayload,
    _POST_CODES,
    success="The viewer likes the post (liking twice is one like).",
    failure="likePost failed.",
)
UNLIKE_POST = MutationTypes(
    "unlikePost",
    PostPayload,
    _POST_CODES,
    success="The viewer no longer likes the post.",
    failure="unlikePost failed.",
)
REPOST_POST = MutationTypes(
    "repostPost",
    PostPayload,
    [*_POST_CODES, ErrorCode.FORBIDDEN],
    success="The post is reposted to the viewer's followers (once).",
    failure="repostPost failed.",
)
UNREPOST_POST = MutationTypes(
    "unrepostPost",
    PostPayload,
    _POST_CODES,
    success="The repost was withdrawn.",
    failure="unrepostPost failed.",
)
BOOKMARK_POST = MutationTypes(
    "bookmarkPost",
    PostPayload,
    _POST_CODES,
    success="The post is in the viewer's bookmarks.",
    failure="bookmarkPost failed.",
)
UNBOOKMARK_POST = MutationTypes(
    "unbookmarkPost",
    PostPayload,
    _POST_CODES,
    success="The post left the viewer's bookmarks.",
    failure="unbookmarkPost failed.",
)

if TYPE_CHECKING:
    CreatePostResult: TypeAlias = Any
    EditPostResult: TypeAlias = Any
    DeletePostResult: TypeAlias = Any
    LikePostResult: TypeAlias = Any
    UnlikePostResult: TypeAlias = Any
    RepostPostResult: TypeAlias = Any
    UnrepostPostResult: TypeAlias = Any
    BookmarkPostResult: TypeAlias = Any
    UnbookmarkPostResult: TypeAlias = Any
else:
    CreatePostResult = CREATE_POST.result
    EditPostResult = EDIT_POST.result
    DeletePostResult = DELETE_POST.result
    LikePostResult = LIKE_POST.result
    UnlikePostResult = UNLIKE_POST.result
    RepostPostResult = REPOST_POST.result
    UnrepostPostResult = UNREPOST_POST.result
    BookmarkPostResult = BOOKMARK_POST.result
    UnbookmarkPostResult = UNBOOKMARK_POST.result


def _media_ids(values: list[strawberry.ID] | None) -> list[int] | None:
    if values is None:
        return None
    return [decode_id(value, "Media", "mediaIds") for value in values]


def _post(view: PostView) -> dict[str, Any]:
    return {"post": view}


@strawberry.type
class PostMutation:
    @strawberry.mutation(description="Publish a post, a reply or a quote.")
    async def create_post(
        self, info: Info[Context, None], input: Annotated[CreatePostInput, INPUT]
    ) -> CreatePostResult:
        async def action() -> dict[str, Any]:
            viewer = info.context.require_viewer()
            return _post(
                await info.context.services.posts.create_post(
                    viewer,
                    text=input.text,
                    visibility=VisibilityModel(input.visibility.name.lower()),
                    content_warning=input.content_warning,
                    reply_to_id=decode_id(input.reply_to, "Post", "replyTo")
                    if input.reply_to
                    else None,
                    quote_of_id=decode_id(input.quote_of, "Post", "quoteOf")
                    if input.quote_of
                    else None,
                    media_ids=_media_ids(input.media_ids),
                )
            )

        return await CREATE_POST.run(action)

    @strawberry.mutation(description="Change the text of one of the viewer's posts.")
    async def edit_post(
        self, info: Info[Context, None], input: Annotated[EditPostInput, INPUT]
    ) -> EditPostResult:
        async def action() -> dict[str, Any]:
            viewer = info.context.require_viewer()
            return _post(
                await info.context.services.posts.edit_post(
                    viewer,
                    decode_id(input.id, "Post", "id"),
                    text=input.text,
                    content_warning=input.content_warning,
                    media_ids=_media_ids(input.media_ids),
                )
            )

        return await EDIT_POST.run(action)

    @strawberry.mutation(description="Delete a post (the viewer's own; moderators: any).")
    async def delete_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> DeletePostResult:
        async def action() -> dict[str, Any]:
            viewer = info.context.require_viewer()
            deleted = await info.context.services.posts.delete_post(
                viewer, decode_id(input.post_id, "Post", "postId")
            )
            return {"deleted_post_id": strawberry.ID(relay.to_base64(Post, deleted))}

        return await DELETE_POST.run(action)

    @strawberry.mutation(description="Like a post.")
    async def like_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> LikePostResult:
        return await _interact(info, input, LIKE_POST, "like")

    @strawberry.mutation(description="Take back a like.")
    async def unlike_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnlikePostResult:
        return await _interact(info, input, UNLIKE_POST, "unlike")

    @strawberry.mutation(description="Repost a public post to the viewer's followers.")
    async def repost_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> RepostPostResult:
        return await _interact(info, input, REPOST_POST, "repost")

    @strawberry.mutation(description="Withdraw a repost.")
    async def unrepost_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnrepostPostResult:
        return await _interact(info, input, UNREPOST_POST, "unrepost")

    @strawberry.mutation(description="Keep a post in the viewer's private bookmarks.")
    async def bookmark_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> BookmarkPostResult:
        return await _interact(info, input, BOOKMARK_POST, "bookmark")

    @strawberry.mutation(description="Remove a post from the viewer's bookmarks.")
    async def unbookmark_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnbookmarkPostResult:
        return await _interact(info, input, UNBOOKMARK_POST, "unbookmark")


async def _interact(
    info: Info[Context, None], input: PostRefInput, types: MutationTypes, verb: str
) -> Any:
    async def action() -> dict[str, Any]:
        viewer = info.context.require_viewer()
        service = getattr(info.context.services.interactions, verb)
        return _post(await service(viewer, decode_id(input.post_id, "Post", "postId")))

    return await types.run(action)
