"""The social graph and notifications over GraphQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import strawberry
from strawberry.types import Info

from app.errors import DomainError, ErrorCode
from app.services import notifications
from app.services.paging import decode_cursor
from schema.context import Context
from schema.results import INPUT, MutationTypes, decode_id
from schema.types import FollowState, User


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


@strawberry.type(description="The read mark moved.")
class MarkReadPayload:
    unread_count: int = strawberry.field(description="Notifications still unread.")


_CODES = [ErrorCode.NOT_AUTHENTICATED, ErrorCode.NOT_FOUND]

FOLLOW_USER = MutationTypes(
    "followUser",
    FollowPayload,
    [*_CODES, ErrorCode.CANNOT_FOLLOW_SELF, ErrorCode.BLOCKED],
    success="Following, or a follow request sent to a locked account.",
    failure="followUser failed.",
)
UNFOLLOW_USER = MutationTypes(
    "unfollowUser",
    FollowPayload,
    _CODES,
    success="Not following (any pending request withdrawn).",
    failure="unfollowUser failed.",
)
ACCEPT_FOLLOW_REQUEST = MutationTypes(
    "acceptFollowRequest",
    RelationPayload,
    _CODES,
    success="The account now follows the viewer.",
    failure="acceptFollowRequest failed.",
)
REJECT_FOLLOW_REQUEST = MutationTypes(
    "rejectFollowRequest",
    RelationPayload,
    _CODES,
    success="The request is gone.",
    failure="rejectFollowRequest failed.",
)
BLOCK_USER = MutationTypes(
    "blockUser",
    RelationPayload,
    [*_CODES, ErrorCode.INVALID_INPUT],
    success="Blocked: follows both ways are gone; neither sees the other.",
    failure="blockUser failed.",
)
UNBLOCK_USER = MutationTypes(
    "unblockUser",
    RelationPayload,
    _CODES,
    success="Unblocked (follows are not restored).",
    failure="unblockUser failed.",
)
MUTE_USER = MutationTypes(
    "muteUser",
    RelationPayload,
    [*_CODES, ErrorCode.INVALID_INPUT, ErrorCode.BLOCKED],
    success="Muted: hidden from the viewer's timelines and notifications.",
    failure="muteUser failed.",
)
UNMUTE_USER = MutationTypes(
    "unmuteUser",
    RelationPayload,
    _CODES,
    success="Unmuted.",
    failure="unmuteUser failed.",
)
MARK_NOTIFICATIONS_READ = MutationTypes(
    "markNotificationsRead",
    MarkReadPayload,
    [ErrorCode.NOT_AUTHENTICATED, ErrorCode.INVALID_CURSOR],
    success="Notifications up to the cursor are read.",
    failure="markNotificationsRead failed.",
)

if TYPE_CHECKING:
    FollowUserResult: TypeAlias = Any
    UnfollowUserResult: TypeAlias = Any
    AcceptFollowRequestResult: TypeAlias = Any
    RejectFollowRequestResult: TypeAlias = Any
    BlockUserResult: TypeAlias = Any
    UnblockUserResult: TypeAlias = Any
    MuteUserResult: TypeAlias = Any
    UnmuteUserResult: TypeAlias = Any
    MarkNotificationsReadResult: TypeAlias = Any
else:
    FollowUserResult = FOLLOW_USER.result
    UnfollowUserResult = UNFOLLOW_USER.result
    AcceptFollowRequestResult = ACCEPT_FOLLOW_REQUEST.result
    RejectFollowRequestResult = REJECT_FOLLOW_REQUEST.result
    BlockUserResult = BLOCK_USER.result
    UnblockUserResult = UNBLOCK_USER.result
    MuteUserResult = MUTE_USER.result
    UnmuteUserResult = UNMUTE_USER.result
    MarkNotificationsReadResult = MARK_NOTIFICATIONS_READ.result


async def _relation(
    info: Info[Context, None], input: UserRefInput, types: MutationTypes, verb: str, **kw: Any
) -> Any:
    async def action() -> dict[str, Any]:
        viewer = info.context.require_viewer()
        user_id = decode_id(input.user_id, "User", "userId")
        await getattr(info.context.services.graph, verb)(viewer, user_id, **kw)
        return {"user_id": strawberry.ID(str(input.user_id))}

    return await types.run(action)


async def _follow(
    info: Info[Context, None], input: UserRefInput, types: MutationTypes, verb: str
) -> Any:
    async def action() -> dict[str, Any]:
        viewer = info.context.require_viewer()
        user_id = decode_id(input.user_id, "User", "userId")
        state = await getattr(info.context.services.graph, verb)(viewer, user_id)
        user = (await info.context.accounts.users_by_ids(viewer.user.id, [user_id])).get(user_id)
        if user is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such account.", "userId")
        return {"user": user, "follow_state": FollowState(state.value)}

    return await types.run(action)


@strawberry.type
class SocialMutation:
    @strawberry.mutation(description="Follow an account (a request, if it is locked).")
    async def follow_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> FollowUserResult:
        return await _follow(info, input, FOLLOW_USER, "follow")

    @strawberry.mutation(description="Stop following an account, or withdraw a request.")
    async def unfollow_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnfollowUserResult:
        return await _follow(info, input, UNFOLLOW_USER, "unfollow")

    @strawberry.mutation(description="Let an account that asked follow the viewer.")
    async def accept_follow_request(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> AcceptFollowRequestResult:
        return await _relation(info, input, ACCEPT_FOLLOW_REQUEST, "answer_request", accept=True)

    @strawberry.mutation(description="Turn down a follow request.")
    async def reject_follow_request(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> RejectFollowRequestResult:
        return await _relation(info, input, REJECT_FOLLOW_REQUEST, "answer_request", accept=False)

    @strawberry.mutation(description="Block an account.")
    async def block_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> BlockUserResult:
        return await _relation(info, input, BLOCK_USER, "block")

    @strawberry.mutation(description="Unblock an account.")
    async def unblock_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnblockUserResult:
        return await _relation(info, input, UNBLOCK_USER, "unblock")

    @strawberry.mutation(description="Mute an account.")
    async def mute_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> MuteUserResult:
        return await _relation(info, input, MUTE_USER, "mute")

    @strawberry.mutation(description="Unmute an account.")
    async def unmute_user(
        self, info: Info[Context, None], input: Annotated[UserRefInput, INPUT]
    ) -> UnmuteUserResult:
        return await _relation(info, input, UNMUTE_USER, "unmute")

    @strawberry.mutation(description="Mark notifications read up to a cursor.")
    async def mark_notifications_read(
        self, info: Info[Context, None], input: Annotated[MarkNotificationsReadInput, INPUT]
    ) -> MarkNotificationsReadResult:
        async def action() -> dict[str, Any]:
            viewer = info.context.require_viewer()
            up_to = decode_cursor("notifications", input.up_to, "upTo")
            return {"unread_count": await notifications.mark_read(viewer.user, up_to)}

        return await MARK_NOTIFICATIONS_READ.run(action)
