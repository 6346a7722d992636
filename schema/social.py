"""The social graph and notifications over GraphQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from functools import partial
from typing import Annotated, TypeVar

import strawberry
from strawberry.types import Info

from app.errors import DomainError, ErrorCode
from app.services.accounts import Viewer
from app.services.graph import FollowState as FollowStateModel
from app.services.paging import decode_cursor
from schema.context import Context
from schema.errors import MutationError, code, error_codes
from schema.results import INPUT, ResultTypes, decode_id, result_union
from schema.users import FollowState, User, as_user


@strawberry.input(description="An account to act on.")
class UserRefInput:
    user_id: strawberry.ID = strawberry.field(description="The account.")


@strawberry.input(description="How far the viewer has read.")
class MarkNotificationsReadInput:
    up_to: str = strawberry.field(
        description="A notification edge's cursor: it and everything older become read."
    )


@strawberry.type(description="The viewer's relation to the account now.")
class FollowPayload:
    user: User = strawberry.field(description="The account.")
    follow_state: FollowState = strawberry.field(description="Following, requested or not.")


@strawberry.type(description="The account acted on.")
class RelationPayload:
    user_id: strawberry.ID = strawberry.field(description="The account's global ID.")


# --- results ------------------------------------------------------------------------------


@strawberry.type(description="Following, or a follow request sent to a locked account.")
class FollowUserSuccess(FollowPayload):
    pass


@error_codes("followUser")
class FollowUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    CANNOT_FOLLOW_SELF = code(ErrorCode.CANNOT_FOLLOW_SELF)
    BLOCKED = code(ErrorCode.BLOCKED)


@strawberry.type(description="followUser failed.")
class FollowUserError(MutationError):
    code: FollowUserErrorCode = strawberry.field(description="What went wrong.")


FollowUserResult = Annotated[FollowUserSuccess | FollowUserError, result_union("followUser")]
FOLLOW_USER = ResultTypes(FollowUserSuccess, FollowUserError, FollowUserErrorCode)


@strawberry.type(description="Not following (any pending request withdrawn).")
class UnfollowUserSuccess(FollowPayload):
    pass


@error_codes("unfollowUser")
class UnfollowUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unfollowUser failed.")
class UnfollowUserError(MutationError):
    code: UnfollowUserErrorCode = strawberry.field(description="What went wrong.")


UnfollowUserResult = Annotated[
    UnfollowUserSuccess | UnfollowUserError, result_union("unfollowUser")
]
UNFOLLOW_USER = ResultTypes(UnfollowUserSuccess, UnfollowUserError, UnfollowUserErrorCode)


@strawberry.type(description="The account now follows the viewer.")
class AcceptFollowRequestSuccess(RelationPayload):
    pass


@error_codes("acceptFollowRequest")
class AcceptFollowRequestErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="acceptFollowRequest failed.")
class AcceptFollowRequestError(MutationError):
    code: AcceptFollowRequestErrorCode = strawberry.field(description="What went wrong.")


AcceptFollowRequestResult = Annotated[
    AcceptFollowRequestSuccess | AcceptFollowRequestError, result_union("acceptFollowRequest")
]
ACCEPT_FOLLOW_REQUEST = ResultTypes(
    AcceptFollowRequestSuccess, AcceptFollowRequestError, AcceptFollowRequestErrorCode
)


@strawberry.type(description="The request is gone.")
class RejectFollowRequestSuccess(RelationPayload):
    pass


@error_codes("rejectFollowRequest")
class RejectFollowRequestErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="rejectFollowRequest failed.")
class RejectFollowRequestError(MutationError):
    code: RejectFollowRequestErrorCode = strawberry.field(description="What went wrong.")


RejectFollowRequestResult = Annotated[
    RejectFollowRequestSuccess | RejectFollowRequestError, result_union("rejectFollowRequest")
]
REJECT_FOLLOW_REQUEST = ResultTypes(
    RejectFollowRequestSuccess, RejectFollowRequestError, RejectFollowRequestErrorCode
)


@strawberry.type(description="Blocked: follows both ways are gone; neither sees the other.")
class BlockUserSuccess(RelationPayload):
    pass


@error_codes("blockUser")
class BlockUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)


@strawberry.type(description="blockUser failed.")
class BlockUserError(MutationError):
    code: BlockUserErrorCode = strawberry.field(description="What went wrong.")


BlockUserResult = Annotated[BlockUserSuccess | BlockUserError, result_union("blockUser")]
BLOCK_USER = ResultTypes(BlockUserSuccess, BlockUserError, BlockUserErrorCode)


@strawberry.type(description="Unblocked (follows are not restored).")
class UnblockUserSuccess(RelationPayload):
    pass


@error_codes("unblockUser")
class UnblockUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unblockUser failed.")
class UnblockUserError(MutationError):
    code: UnblockUserErrorCode = strawberry.field(description="What went wrong.")


UnblockUserResult = Annotated[UnblockUserSuccess | UnblockUserError, result_union("unblockUser")]
UNBLOCK_USER = ResultTypes(UnblockUserSuccess, UnblockUserError, UnblockUserErrorCode)


@strawberry.type(description="Muted: hidden from the viewer's timelines and notifications.")
class MuteUserSuccess(RelationPayload):
    pass


@error_codes("muteUser")
class MuteUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    BLOCKED = code(ErrorCode.BLOCKED)


@strawberry.type(description="muteUser failed.")
class MuteUserError(MutationError):
    code: MuteUserErrorCode = strawberry.field(description="What went wrong.")


MuteUserResult = Annotated[MuteUserSuccess | MuteUserError, result_union("muteUser")]
MUTE_USER = ResultTypes(MuteUserSuccess, MuteUserError, MuteUserErrorCode)


@strawberry.type(description="Unmuted.")
class UnmuteUserSuccess(RelationPayload):
    pass


@error_codes("unmuteUser")
class UnmuteUserErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)


@strawberry.type(description="unmuteUser failed.")
class UnmuteUserError(MutationError):
    code: UnmuteUserErrorCode = strawberry.field(description="What went wrong.")


UnmuteUserResult = Annotated[UnmuteUserSuccess | UnmuteUserError, result_union("unmuteUser")]
UNMUTE_USER = ResultTypes(UnmuteUserSuccess, UnmuteUserError, UnmuteUserErrorCode)


@strawberry.type(description="Notifications up to the cursor are read.")
class MarkNotificationsReadSuccess:
    unread_count: int = strawberry.field(description="Notifications still unread.")


@error_codes("markNotificationsRead")
class MarkNotificationsReadErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    INVALID_CURSOR = code(ErrorCode.INVALID_CURSOR)


@strawberry.type(description="markNotificationsRead failed.")
class MarkNotificationsReadError(MutationError):
    code: MarkNotificationsReadErrorCode = strawberry.field(description="What went wrong.")


MarkNotificationsReadResult = Annotated[
    MarkNotificationsReadSuccess | MarkNotificationsReadError,
    result_union("markNotificationsRead"),
]
MARK_NOTIFICATIONS_READ = ResultTypes(
    MarkNotificationsReadSuccess, MarkNotificationsReadError, MarkNotificationsReadErrorCode
)

# --- mutations ----------------------------------------------------------------------------

# Verbs of the graph service on the viewer and another account.
Relate = Callable[[Viewer, int], Awaitable[None]]
Follow = Callable[[Viewer, int], Awaitable[FollowStateModel]]

R = TypeVar("R", bound=RelationPayload)
F = TypeVar("F", bound=FollowPayload)
C = TypeVar("C", bound=Enum)
E = TypeVar("E", bound=MutationError)


async def _relation(
    info: Info[Context, None], input: UserRefInput, types: ResultTypes[R, C, E], verb: Relate
) -> R | E:
    async def action() -> R:
        viewer = info.context.require_viewer()
        await verb(viewer, decode_id(input.user_id, "User", "userId"))
        return types.success(user_id=strawberry.ID(str(input.user_id)))

    return await types.run(action)


async def _follow(
    info: Info[Context, None], input: UserRefInput, types: ResultTypes[F, C, E], verb: Follow
) -> F | E:
    async def action() -> F:
        viewer = info.context.require_viewer()
        user_id = decode_id(input.user_id, "User", "userId")
        state = await verb(viewer, user_id)
        user = (await info.context.accounts.users_by_ids(viewer.user.id, [user_id])).get(user_id)
        if user is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such account.", "userId")
        return types.success(user=as_user(user), follow_state=FollowState(state.value))

    return await types.run(action)


@strawberry.type
class SocialMutation:
    @strawberry.mutation(description="Follow an account (a request, if it is locked).")
    async def follow_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> FollowUserResult:
        graph = info.context.services.graph
        return await _follow(info, input, FOLLOW_USER, graph.follow)

    @strawberry.mutation(description="Stop following an account, or withdraw a request.")
    async def unfollow_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnfollowUserResult:
        graph = info.context.services.graph
        return await _follow(info, input, UNFOLLOW_USER, graph.unfollow)

    @strawberry.mutation(description="Let an account that asked follow the viewer.")
    async def accept_follow_request(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> AcceptFollowRequestResult:
        answer = partial(info.context.services.graph.answer_request, accept=True)
        return await _relation(info, input, ACCEPT_FOLLOW_REQUEST, answer)

    @strawberry.mutation(description="Turn down a follow request.")
    async def reject_follow_request(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> RejectFollowRequestResult:
        answer = partial(info.context.services.graph.answer_request, accept=False)
        return await _relation(info, input, REJECT_FOLLOW_REQUEST, answer)

    @strawberry.mutation(description="Block an account.")
    async def block_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> BlockUserResult:
        graph = info.context.services.graph
        return await _relation(info, input, BLOCK_USER, graph.block)

    @strawberry.mutation(description="Unblock an account.")
    async def unblock_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnblockUserResult:
        graph = info.context.services.graph
        return await _relation(info, input, UNBLOCK_USER, graph.unblock)

    @strawberry.mutation(description="Mute an account.")
    async def mute_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> MuteUserResult:
        graph = info.context.services.graph
        return await _relation(info, input, MUTE_USER, graph.mute)

    @strawberry.mutation(description="Unmute an account.")
    async def unmute_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnmuteUserResult:
        graph = info.context.services.graph
        return await _relation(info, input, UNMUTE_USER, graph.unmute)

    @strawberry.mutation(description="Mark notifications read up to a cursor.")
    async def mark_notifications_read(
        self, info: Info[Context, None], input: Annotated[MarkNotificationsReadInput, INPUT]
    ) -> MarkNotificationsReadResult:
        async def action() -> MarkNotificationsReadSuccess:
            viewer = info.context.require_viewer()
            up_to = decode_cursor("notifications", input.up_to, "upTo")
            unread = await info.context.services.notifications.mark_read(viewer.user, up_to)
            return MarkNotificationsReadSuccess(unread_count=unread)

        return await MARK_NOTIFICATIONS_READ.run(action)
