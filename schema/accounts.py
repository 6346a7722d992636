"""Accounts over GraphQL: the viewer, sign-up, sign-in sessions and profile."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info
from strawberry.types.unset import UNSET, UnsetType

from app.errors import ErrorCode
from app.services.accounts import SessionTokens, SignedIn
from app.services.media import UNCHANGED, Unchanged
from schema.context import Context
from schema.errors import MutationError, code, error_codes
from schema.media import media_id
from schema.results import INPUT, ResultTypes, result_union
from schema.users import User, as_user

# --- types -------------------------------------------------------------------------------


@strawberry.type(description="Tokens of a sign-in session.")
class AuthSession:
    access_token: str = strawberry.field(
        description="Send as `Authorization: Bearer <token>`; short-lived."
    )
    access_token_expires_at: datetime = strawberry.field(
        description="When the access token stops working."
    )
    refresh_token: str = strawberry.field(
        description="Trade it once, with refreshSession, for new tokens. Keep it secret."
    )
    refresh_token_expires_at: datetime = strawberry.field(
        description="When the refresh token stops working."
    )

    @classmethod
    def from_tokens(cls, tokens: SessionTokens) -> AuthSession:
        return cls(
            access_token=tokens.access_token,
            access_token_expires_at=tokens.access_token_expires_at,
            refresh_token=tokens.refresh_token,
            refresh_token_expires_at=tokens.refresh_token_expires_at,
        )


@strawberry.type(description="A signed-in account and its session's tokens.")
class SessionPayload:
    user: User = strawberry.field(description="The signed-in account.")
    session: AuthSession = strawberry.field(description="The session's tokens.")


S = TypeVar("S", bound=SessionPayload)


def _signed_in(signed_in: SignedIn, info: Info[Context, None], success: type[S]) -> S:
    # From here on this request acts as the signed-in account (it sees its own email).
    info.context.viewer = signed_in.viewer
    return success(user=as_user(signed_in.user), session=AuthSession.from_tokens(signed_in.tokens))


@strawberry.type(description="The viewer's account.")
class UserPayload:
    user: User = strawberry.field(description="The viewer as now.")


@strawberry.type(description="Sessions were revoked.")
class LogOutPayload:
    revoked_sessions: int = strawberry.field(description="How many sessions were revoked.")


@strawberry.input(description="A new account.")
class SignUpInput:
    username: str = strawberry.field(description="3 to 30 letters, digits or underscores.")
    email: str = strawberry.field(
        description="An email address of the account's owner, up to 254 characters."
    )
    password: str = strawberry.field(
        description="8 to 1,024 characters, not a common one, no control characters."
    )
    display_name: str = strawberry.field(
        description="1 to 50 characters, some visible; no control or bidirectional characters."
    )


@strawberry.input(description="Credentials of an existing account.")
class LogInInput:
    login: str = strawberry.field(
        description="The username or the email address (up to 254 characters)."
    )
    password: str = strawberry.field(description="The account's password.")


@strawberry.input(description="A refresh token to trade for new tokens.")
class RefreshSessionInput:
    refresh_token: str = strawberry.field(description="The latest refresh token of a session.")


@strawberry.input(description="The current password and its replacement.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="The password in use now.")
    new_password: str = strawberry.field(
        description="8 to 1,024 characters, not a common one, no control characters."
    )


@strawberry.input(description="Confirmation of deleting the viewer's account.")
class DeleteAccountInput:
    password: str = strawberry.field(description="The account's password.")


@strawberry.input(description="Profile fields to change; omitted fields keep their value.")
class UpdateProfileInput:
    display_name: str | None = strawberry.field(
        default=None,
        description="1 to 50 characters, some visible; no control or bidirectional characters.",
    )
    bio: str | None = strawberry.field(
        default=None,
        description="Up to 300 characters; line breaks and tabs are the only control characters.",
    )
    is_locked: bool | None = strawberry.field(
        default=None, description="Whether follows need approval."
    )
    avatar_id: strawberry.ID | None = strawberry.field(
        default=UNSET,
        description="A ready medium of the viewer's uploaded as an avatar; null removes the "
        "avatar, omitted keeps it.",
    )
    header_id: strawberry.ID | None = strawberry.field(
        default=UNSET,
        description="A ready medium of the viewer's uploaded as a header; null removes the "
        "header, omitted keeps it.",
    )


# --- results ------------------------------------------------------------------------------


@strawberry.type(description="The account was created and signed in.")
class SignUpSuccess(SessionPayload):
    pass


@error_codes("signUp")
class SignUpErrorCode(Enum):
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    INVALID_USERNAME = code(ErrorCode.INVALID_USERNAME)
    USERNAME_TAKEN = code(ErrorCode.USERNAME_TAKEN)
    INVALID_EMAIL = code(ErrorCode.INVALID_EMAIL)
    EMAIL_TAKEN = code(ErrorCode.EMAIL_TAKEN)
    WEAK_PASSWORD = code(ErrorCode.WEAK_PASSWORD)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="signUp failed; no account was created.")
class SignUpError(MutationError):
    code: SignUpErrorCode = strawberry.field(description="What went wrong.")


SignUpResult = Annotated[SignUpSuccess | SignUpError, result_union("signUp")]
SIGN_UP = ResultTypes(SignUpSuccess, SignUpError, SignUpErrorCode)


@strawberry.type(description="Signed in.")
class LogInSuccess(SessionPayload):
    pass


@error_codes("logIn")
class LogInErrorCode(Enum):
    INVALID_CREDENTIALS = code(ErrorCode.INVALID_CREDENTIALS)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="logIn failed.")
class LogInError(MutationError):
    code: LogInErrorCode = strawberry.field(description="What went wrong.")


LogInResult = Annotated[LogInSuccess | LogInError, result_union("logIn")]
LOG_IN = ResultTypes(LogInSuccess, LogInError, LogInErrorCode)


@strawberry.type(description="New tokens for the same session; the old refresh token is spent.")
class RefreshSessionSuccess(SessionPayload):
    pass


@error_codes("refreshSession")
class RefreshSessionErrorCode(Enum):
    INVALID_TOKEN = code(ErrorCode.INVALID_TOKEN)
    TOKEN_EXPIRED = code(ErrorCode.TOKEN_EXPIRED)
    TOKEN_REUSED = code(ErrorCode.TOKEN_REUSED)


@strawberry.type(description="refreshSession failed; sign in again.")
class RefreshSessionError(MutationError):
    code: RefreshSessionErrorCode = strawberry.field(description="What went wrong.")


RefreshSessionResult = Annotated[
    RefreshSessionSuccess | RefreshSessionError, result_union("refreshSession")
]
REFRESH_SESSION = ResultTypes(RefreshSessionSuccess, RefreshSessionError, RefreshSessionErrorCode)


@strawberry.type(description="This session is signed out.")
class LogOutSuccess(LogOutPayload):
    pass


@error_codes("logOut")
class LogOutErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)


@strawberry.type(description="logOut failed.")
class LogOutError(MutationError):
    code: LogOutErrorCode = strawberry.field(description="What went wrong.")


LogOutResult = Annotated[LogOutSuccess | LogOutError, result_union("logOut")]
LOG_OUT = ResultTypes(LogOutSuccess, LogOutError, LogOutErrorCode)


@strawberry.type(description="Every session of the viewer is signed out.")
class LogOutEverywhereSuccess(LogOutPayload):
    pass


@error_codes("logOutEverywhere")
class LogOutEverywhereErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)


@strawberry.type(description="logOutEverywhere failed.")
class LogOutEverywhereError(MutationError):
    code: LogOutEverywhereErrorCode = strawberry.field(description="What went wrong.")


LogOutEverywhereResult = Annotated[
    LogOutEverywhereSuccess | LogOutEverywhereError, result_union("logOutEverywhere")
]
LOG_OUT_EVERYWHERE = ResultTypes(
    LogOutEverywhereSuccess, LogOutEverywhereError, LogOutEverywhereErrorCode
)


@strawberry.type(description="The password changed; every other session was signed out.")
class ChangePasswordSuccess(UserPayload):
    pass


@error_codes("changePassword")
class ChangePasswordErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    WRONG_PASSWORD = code(ErrorCode.WRONG_PASSWORD)
    WEAK_PASSWORD = code(ErrorCode.WEAK_PASSWORD)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="changePassword failed; the password is unchanged.")
class ChangePasswordError(MutationError):
    code: ChangePasswordErrorCode = strawberry.field(description="What went wrong.")


ChangePasswordResult = Annotated[
    ChangePasswordSuccess | ChangePasswordError, result_union("changePassword")
]
CHANGE_PASSWORD = ResultTypes(ChangePasswordSuccess, ChangePasswordError, ChangePasswordErrorCode)


@strawberry.type(description="The account and its sessions are gone.")
class DeleteAccountSuccess:
    deleted_user_id: strawberry.ID = strawberry.field(description="The global ID the account had.")


@error_codes("deleteAccount")
class DeleteAccountErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    WRONG_PASSWORD = code(ErrorCode.WRONG_PASSWORD)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="deleteAccount failed; the account remains.")
class DeleteAccountError(MutationError):
    code: DeleteAccountErrorCode = strawberry.field(description="What went wrong.")


DeleteAccountResult = Annotated[
    DeleteAccountSuccess | DeleteAccountError, result_union("deleteAccount")
]
DELETE_ACCOUNT = ResultTypes(DeleteAccountSuccess, DeleteAccountError, DeleteAccountErrorCode)


@strawberry.type(description="The profile changed.")
class UpdateProfileSuccess(UserPayload):
    pass


@error_codes("updateProfile")
class UpdateProfileErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    WRONG_MEDIA_PURPOSE = code(ErrorCode.WRONG_MEDIA_PURPOSE)
    MEDIA_NOT_READY = code(ErrorCode.MEDIA_NOT_READY)


@strawberry.type(description="updateProfile failed; nothing changed.")
class UpdateProfileError(MutationError):
    code: UpdateProfileErrorCode = strawberry.field(description="What went wrong.")


UpdateProfileResult = Annotated[
    UpdateProfileSuccess | UpdateProfileError, result_union("updateProfile")
]
UPDATE_PROFILE = ResultTypes(UpdateProfileSuccess, UpdateProfileError, UpdateProfileErrorCode)


def _profile_media(value: str | UnsetType | None, field: str) -> int | Unchanged | None:
    if value is UNSET or isinstance(value, UnsetType):
        return UNCHANGED
    return media_id(value, field) if value is not None else None


@strawberry.type
class AccountQuery:
    @strawberry.field(description="The signed-in account, or null when signed out.")
    def viewer(self, info: Info[Context, None]) -> User | None:
        viewer = info.context.viewer
        return as_user(viewer.user) if viewer else None

    @strawberry.field(description="The account with this username (ignoring case), if any.")
    async def user(
        self,
        info: Info[Context, None],
        username: Annotated[
            str,
            strawberry.argument(description="The handle, without the @ (no account: null)."),
        ],
    ) -> User | None:
        user = await info.context.accounts.user_by_username(info.context.viewer_id, username)
        return as_user(user) if user else None


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="Create an account and sign it in.")
    async def sign_up(
        self, info: Info[Context, None], input: Annotated[SignUpInput, INPUT]
    ) -> SignUpResult:
        async def action() -> SignUpSuccess:
            signed_in = await info.context.accounts.sign_up(
                username=input.username,
                email=input.email,
                password=input.password,
                display_name=input.display_name,
                client_ip=info.context.client_ip,
                user_agent=info.context.user_agent,
            )
            return _signed_in(signed_in, info, SignUpSuccess)

        return await SIGN_UP.run(action)

    @strawberry.mutation(description="Sign in with a username or email and a password.")
    async def log_in(
        self, info: Info[Context, None], input: Annotated[LogInInput, INPUT]
    ) -> LogInResult:
        async def action() -> LogInSuccess:
            signed_in = await info.context.accounts.log_in(
                login=input.login,
                password=input.password,
                client_ip=info.context.client_ip,
                user_agent=info.context.user_agent,
            )
            return _signed_in(signed_in, info, LogInSuccess)

        return await LOG_IN.run(action)

    @strawberry.mutation(description="Trade a refresh token for new tokens (rotation).")
    async def refresh_session(
        self, info: Info[Context, None], input: Annotated[RefreshSessionInput, INPUT]
    ) -> RefreshSessionResult:
        async def action() -> RefreshSessionSuccess:
            signed_in = await info.context.accounts.refresh_session(input.refresh_token)
            return _signed_in(signed_in, info, RefreshSessionSuccess)

        return await REFRESH_SESSION.run(action)

    @strawberry.mutation(description="Sign out the session of this request.")
    async def log_out(self, info: Info[Context, None]) -> LogOutResult:
        async def action() -> LogOutSuccess:
            await info.context.accounts.log_out(info.context.require_viewer())
            return LogOutSuccess(revoked_sessions=1)

        return await LOG_OUT.run(action)

    @strawberry.mutation(description="Sign out every session of the viewer, this one included.")
    async def log_out_everywhere(self, info: Info[Context, None]) -> LogOutEverywhereResult:
        async def action() -> LogOutEverywhereSuccess:
            revoked = await info.context.accounts.log_out_everywhere(info.context.require_viewer())
            return LogOutEverywhereSuccess(revoked_sessions=revoked)

        return await LOG_OUT_EVERYWHERE.run(action)

    @strawberry.mutation(description="Change the password; every other session is signed out.")
    async def change_password(
        self, info: Info[Context, None], input: Annotated[ChangePasswordInput, INPUT]
    ) -> ChangePasswordResult:
        async def action() -> ChangePasswordSuccess:
            viewer = info.context.require_viewer()
            await info.context.accounts.change_password(
                viewer,
                current_password=input.current_password,
                new_password=input.new_password,
                client_ip=info.context.client_ip,
            )
            return ChangePasswordSuccess(user=as_user(viewer.user))

        return await CHANGE_PASSWORD.run(action)

    @strawberry.mutation(description="Delete the viewer's account for good.")
    async def delete_account(
        self, info: Info[Context, None], input: Annotated[DeleteAccountInput, INPUT]
    ) -> DeleteAccountResult:
        async def action() -> DeleteAccountSuccess:
            viewer = info.context.require_viewer()
            await info.context.accounts.delete_account(
                viewer, password=input.password, client_ip=info.context.client_ip
            )
            deleted = strawberry.ID(relay.to_base64(User, viewer.user.id))
            return DeleteAccountSuccess(deleted_user_id=deleted)

        return await DELETE_ACCOUNT.run(action)

    @strawberry.mutation(description="Change the viewer's display name, bio or lock.")
    async def update_profile(
        self, info: Info[Context, None], input: Annotated[UpdateProfileInput, INPUT]
    ) -> UpdateProfileResult:
        async def action() -> UpdateProfileSuccess:
            user = await info.context.accounts.update_profile(
                info.context.require_viewer(),
                display_name=input.display_name,
                bio=input.bio,
                is_locked=input.is_locked,
                avatar_id=_profile_media(input.avatar_id, "avatarId"),
                header_id=_profile_media(input.header_id, "headerId"),
            )
            return UpdateProfileSuccess(user=as_user(user))

        return await UPDATE_PROFILE.run(action)
