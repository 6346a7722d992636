"""Posts over GraphQL: write, edit, delete, like, repost, bookmark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.errors import ErrorCode
from app.models import Visibility as VisibilityModel
from app.services.accounts import Viewer
from app.services.views import PostView
from schema.context import Context
from schema.errors import MutationError, code, error_codes
from schema.media import media_id
from schema.posts.types import Post, Visibility, as_post
from schema.results import INPUT, ResultTypes, decode_id, result_union


@strawberry.type(description="The post as it is now.")
class PostPayload:
    post: Post = strawberry.field(description="The post.")


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


@strawberry.type(description="The post was published.")
class CreatePostSuccess(PostPayload):
    pass


@error_codes("createPost")
class CreatePostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    EMPTY_TEXT = code(ErrorCode.EMPTY_TEXT)
    TEXT_TOO_LONG = code(ErrorCode.TEXT_TOO_LONG)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    FORBIDDEN = code(ErrorCode.FORBIDDEN)
    TOO_MANY_ATTACHMENTS = code(ErrorCode.TOO_MANY_ATTACHMENTS)
    MEDIA_NOT_READY = code(ErrorCode.MEDIA_NOT_READY)
    MEDIA_IN_USE = code(ErrorCode.MEDIA_IN_USE)
    WRONG_MEDIA_PURPOSE = code(ErrorCode.WRONG_MEDIA_PURPOSE)


@strawberry.type(description="createPost failed; nothing was published.")
class CreatePostError(MutationError):
    code: CreatePostErrorCode = strawberry.field(description="What went wrong.")


CreatePostResult = Annotated[CreatePostSuccess | CreatePostError, result_union("createPost")]
CREATE_POST = ResultTypes(CreatePostSuccess, CreatePostError, CreatePostErrorCode)


@strawberry.type(description="The post was edited; its earlier version is in editHistory.")
class EditPostSuccess(PostPayload):
    pass


@error_codes("editPost")
class EditPostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    EMPTY_TEXT = code(ErrorCode.EMPTY_TEXT)
    TEXT_TOO_LONG = code(ErrorCode.TEXT_TOO_LONG)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    TOO_MANY_ATTACHMENTS = code(ErrorCode.TOO_MANY_ATTACHMENTS)
    MEDIA_NOT_READY = code(ErrorCode.MEDIA_NOT_READY)
    MEDIA_IN_USE = code(ErrorCode.MEDIA_IN_USE)
    WRONG_MEDIA_PURPOSE = code(ErrorCode.WRONG_MEDIA_PURPOSE)


@strawberry.type(description="editPost failed; the post is unchanged.")
class EditPostError(MutationError):
    code: EditPostErrorCode = strawberry.field(description="What went wrong.")


EditPostResult = Annotated[EditPostSuccess | EditPostError, result_union("editPost")]
EDIT_POST = ResultTypes(EditPostSuccess, EditPostError, EditPostErrorCode)


@strawberry.type(description="The post is now a tombstone; its replies stay.")
class DeletePostSuccess:
    deleted_post_id: strawberry.ID = strawberry.field(description="The global ID it had.")


@error_codes("deletePost")
class DeletePostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="deletePost failed; the post remains.")
class DeletePostError(MutationError):
    code: DeletePostErrorCode = strawberry.field(description="What went wrong.")


DeletePostResult = Annotated[DeletePostSuccess | DeletePostError, result_union("deletePost")]
DELETE_POST = ResultTypes(DeletePostSuccess, DeletePostError, DeletePostErrorCode)


@strawberry.type(description="The viewer likes the post (liking twice is one like).")
class LikePostSuccess(PostPayload):
    pass


@error_codes("likePost")
class LikePostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="likePost failed.")
class LikePostError(MutationError):
    code: LikePostErrorCode = strawberry.field(description="What went wrong.")


LikePostResult = Annotated[LikePostSuccess | LikePostError, result_union("likePost")]
LIKE_POST = ResultTypes(LikePostSuccess, LikePostError, LikePostErrorCode)


@strawberry.type(description="The viewer no longer likes the post.")
class UnlikePostSuccess(PostPayload):
    pass


@error_codes("unlikePost")
class UnlikePostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unlikePost failed.")
class UnlikePostError(MutationError):
    code: UnlikePostErrorCode = strawberry.field(description="What went wrong.")


UnlikePostResult = Annotated[UnlikePostSuccess | UnlikePostError, result_union("unlikePost")]
UNLIKE_POST = ResultTypes(UnlikePostSuccess, UnlikePostError, UnlikePostErrorCode)


@strawberry.type(description="The post is reposted to the viewer's followers (once).")
class RepostPostSuccess(PostPayload):
    pass


@error_codes("repostPost")
class RepostPostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    FORBIDDEN = code(ErrorCode.FORBIDDEN)


@strawberry.type(description="repostPost failed.")
class RepostPostError(MutationError):
    code: RepostPostErrorCode = strawberry.field(description="What went wrong.")


RepostPostResult = Annotated[RepostPostSuccess | RepostPostError, result_union("repostPost")]
REPOST_POST = ResultTypes(RepostPostSuccess, RepostPostError, RepostPostErrorCode)


@strawberry.type(description="The repost was withdrawn.")
class UnrepostPostSuccess(PostPayload):
    pass


@error_codes("unrepostPost")
class UnrepostPostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unrepostPost failed.")
class UnrepostPostError(MutationError):
    code: UnrepostPostErrorCode = strawberry.field(description="What went wrong.")


UnrepostPostResult = Annotated[
    UnrepostPostSuccess | UnrepostPostError, result_union("unrepostPost")
]
UNREPOST_POST = ResultTypes(UnrepostPostSuccess, UnrepostPostError, UnrepostPostErrorCode)


@strawberry.type(description="The post is in the viewer's bookmarks.")
class BookmarkPostSuccess(PostPayload):
    pass


@error_codes("bookmarkPost")
class BookmarkPostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="bookmarkPost failed.")
class BookmarkPostError(MutationError):
    code: BookmarkPostErrorCode = strawberry.field(description="What went wrong.")


BookmarkPostResult = Annotated[
    BookmarkPostSuccess | BookmarkPostError, result_union("bookmarkPost")
]
BOOKMARK_POST = ResultTypes(BookmarkPostSuccess, BookmarkPostError, BookmarkPostErrorCode)


@strawberry.type(description="The post left the viewer's bookmarks.")
class UnbookmarkPostSuccess(PostPayload):
    pass


@error_codes("unbookmarkPost")
class UnbookmarkPostErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unbookmarkPost failed.")
class UnbookmarkPostError(MutationError):
    code: UnbookmarkPostErrorCode = strawberry.field(description="What went wrong.")


UnbookmarkPostResult = Annotated[
    UnbookmarkPostSuccess | UnbookmarkPostError, result_union("unbookmarkPost")
]
UNBOOKMARK_POST = ResultTypes(UnbookmarkPostSuccess, UnbookmarkPostError, UnbookmarkPostErrorCode)


def _media_ids(values: list[strawberry.ID] | None) -> list[int] | None:
    if values is None:
        return None
    return [media_id(value, "mediaIds") for value in values]


@strawberry.type
class PostMutation:
    @strawberry.mutation(description="Publish a post, a reply or a quote.")
    async def create_post(
        self, info: Info[Context, None], input: Annotated[CreatePostInput, INPUT]
    ) -> CreatePostResult:
        async def action() -> CreatePostSuccess:
            viewer = info.context.require_viewer()
            post = await info.context.services.posts.create_post(
                viewer,
                text=input.text,
                visibility=VisibilityModel(input.visibility.name.lower()),
                content_warning=input.content_warning,
                reply_to_id=decode_id(input.reply_to, "Post", "replyTo")
                if input.reply_to is not None
                else None,
                quote_of_id=decode_id(input.quote_of, "Post", "quoteOf")
                if input.quote_of is not None
                else None,
                media_ids=_media_ids(input.media_ids),
            )
            return CreatePostSuccess(post=as_post(post))

        return await CREATE_POST.run(action)

    @strawberry.mutation(description="Change the text of one of the viewer's posts.")
    async def edit_post(
        self, info: Info[Context, None], input: Annotated[EditPostInput, INPUT]
    ) -> EditPostResult:
        async def action() -> EditPostSuccess:
            viewer = info.context.require_viewer()
            post = await info.context.services.posts.edit_post(
                viewer,
                decode_id(input.id, "Post", "id"),
                text=input.text,
                content_warning=input.content_warning,
                media_ids=_media_ids(input.media_ids),
            )
            return EditPostSuccess(post=as_post(post))

        return await EDIT_POST.run(action)

    @strawberry.mutation(description="Delete a post (the viewer's own; moderators: any).")
    async def delete_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> DeletePostResult:
        async def action() -> DeletePostSuccess:
            viewer = info.context.require_viewer()
            deleted = await info.context.services.posts.delete_post(
                viewer, decode_id(input.post_id, "Post", "postId")
            )
            return DeletePostSuccess(deleted_post_id=strawberry.ID(relay.to_base64(Post, deleted)))

        return await DELETE_POST.run(action)

    @strawberry.mutation(description="Like a post.")
    async def like_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> LikePostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, LIKE_POST, interactions.like)

    @strawberry.mutation(description="Take back a like.")
    async def unlike_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnlikePostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, UNLIKE_POST, interactions.unlike)

    @strawberry.mutation(description="Repost a public post to the viewer's followers.")
    async def repost_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> RepostPostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, REPOST_POST, interactions.repost)

    @strawberry.mutation(description="Withdraw a repost.")
    async def unrepost_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnrepostPostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, UNREPOST_POST, interactions.unrepost)

    @strawberry.mutation(description="Keep a post in the viewer's private bookmarks.")
    async def bookmark_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> BookmarkPostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, BOOKMARK_POST, interactions.bookmark)

    @strawberry.mutation(description="Remove a post from the viewer's bookmarks.")
    async def unbookmark_post(
        self, info: Info[Context, None], input: Annotated[PostRefInput, INPUT]
    ) -> UnbookmarkPostResult:
        interactions = info.context.services.interactions
        return await _interact(info, input, UNBOOKMARK_POST, interactions.unbookmark)


P = TypeVar("P", bound=PostPayload)
C = TypeVar("C", bound=Enum)
E = TypeVar("E", bound=MutationError)


async def _interact(
    info: Info[Context, None],
    input: PostRefInput,
    types: ResultTypes[P, C, E],
    verb: Callable[[Viewer, int], Awaitable[PostView]],
) -> P | E:
    """A like, repost or bookmark, or taking one back: `verb`, a verb of the interactions
    service."""

    async def action() -> P:
        viewer = info.context.require_viewer()
        post = await verb(viewer, decode_id(input.post_id, "Post", "postId"))
        return types.success(post=as_post(post))

    return await types.run(action)
