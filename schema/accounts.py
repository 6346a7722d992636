"""Accounts over GraphQL: users, the viewer, sign-up, sign-in sessions and profile."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.errors import DomainError, ErrorCode
from app.services.accounts import SessionTokens, SignedIn
from schema.context import Context
from schema.errors import MutationError, code, error_result
from schema.types import User, as_user

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


def _signed_in_fields(signed_in: SignedIn, info: Info[Context, None]) -> dict[str, Any]:
    # From here on this request acts as the signed-in account (it sees its own email).
    info.context.viewer = signed_in.viewer
    return {
        "user": signed_in.user,
        "session": AuthSession.from_tokens(signed_in.tokens),
    }


# --- signUp --------------------------------------------------------------------------------


@strawberry.input(description="A new account.")
class SignUpInput:
    username: str = strawberry.field(description="3 to 30 letters, digits or underscores.")
    email: str = strawberry.field(description="An email address of the account's owner.")
    password: str = strawberry.field(description="8 to 1,024 characters, not a common one.")
    display_name: str = strawberry.field(description="1 to 50 characters.")


@strawberry.type(description="The account was created and signed in.")
class SignUpSuccess:
    user: User = strawberry.field(description="The new account.")
    session: AuthSession = strawberry.field(description="Its first sign-in session.")


@strawberry.enum(description="Why signUp failed.")
class SignUpErrorCode(Enum):
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    INVALID_USERNAME = code(ErrorCode.INVALID_USERNAME)
    USERNAME_TAKEN = code(ErrorCode.USERNAME_TAKEN)
    INVALID_EMAIL = code(ErrorCode.INVALID_EMAIL)
    EMAIL_TAKEN = code(ErrorCode.EMAIL_TAKEN)
    WEAK_PASSWORD = code(ErrorCode.WEAK_PASSWORD)


@strawberry.type(description="signUp failed; no account was created.")
class SignUpError(MutationError):
    code: SignUpErrorCode = strawberry.field(description="What went wrong.")


SignUpResult = Annotated[
    SignUpSuccess | SignUpError, strawberry.union("SignUpResult", description="signUp's result.")
]

# --- logIn ---------------------------------------------------------------------------------


@strawberry.input(description="Credentials of an existing account.")
class LogInInput:
    login: str = strawberry.field(description="The username or the email address.")
    password: str = strawberry.field(description="The account's password.")


@strawberry.type(description="Signed in.")
class LogInSuccess:
    user: User = strawberry.field(description="The signed-in account.")
    session: AuthSession = strawberry.field(description="The new session's tokens.")


@strawberry.enum(description="Why logIn failed.")
class LogInErrorCode(Enum):
    INVALID_CREDENTIALS = code(ErrorCode.INVALID_CREDENTIALS)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="logIn failed.")
class LogInError(MutationError):
    code: LogInErrorCode = strawberry.field(description="What went wrong.")


LogInResult = Annotated[
    LogInSuccess | LogInError, strawberry.union("LogInResult", description="logIn's result.")
]

# --- refreshSession ------------------------------------------------------------------------


@strawberry.input(description="A refresh token to trade for new tokens.")
class RefreshSessionInput:
    refresh_token: str = strawberry.field(description="The latest refresh token of a session.")


@strawberry.type(description="New tokens for the same session; the old refresh token is spent.")
class RefreshSessionSuccess:
    user: User = strawberry.field(description="The session's account.")
    session: AuthSession = strawberry.field(description="The new tokens.")


@strawberry.enum(description="Why refreshSession failed.")
class RefreshSessionErrorCode(Enum):
    INVALID_TOKEN = code(ErrorCode.INVALID_TOKEN)
    TOKEN_EXPIRED = code(ErrorCode.TOKEN_EXPIRED)
    TOKEN_REUSED = code(ErrorCode.TOKEN_REUSED)


@strawberry.type(description="refreshSession failed; sign in again.")
class RefreshSessionError(MutationError):
    code: RefreshSessionErrorCode = strawberry.field(description="What went wrong.")


RefreshSessionResult = Annotated[
    RefreshSessionSuccess | RefreshSessionError,
    strawberry.union("RefreshSessionResult", description="refreshSession's result."),
]

# --- logOut, logOutEverywhere --------------------------------------------------------------


@strawberry.type(description="Sessions were revoked.")
class LogOutSuccess:
    revoked_sessions: int = strawberry.field(description="How many sessions were revoked.")


@strawberry.enum(description="Why logOut or logOutEverywhere failed.")
class LogOutErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)


@strawberry.type(description="logOut failed.")
class LogOutError(MutationError):
    code: LogOutErrorCode = strawberry.field(description="What went wrong.")


LogOutResult = Annotated[
    LogOutSuccess | LogOutError,
    strawberry.union("LogOutResult", description="logOut's and logOutEverywhere's result."),
]

# --- changePassword ------------------------------------------------------------------------


@strawberry.input(description="The current password and its replacement.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="The password in use now.")
    new_password: str = strawberry.field(description="8 to 1,024 characters, not a common one.")


@strawberry.type(description="The password changed; every other session was signed out.")
class ChangePasswordSuccess:
    user: User = strawberry.field(description="The viewer.")


@strawberry.enum(description="Why changePassword failed.")
class ChangePasswordErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    WRONG_PASSWORD = code(ErrorCode.WRONG_PASSWORD)
    WEAK_PASSWORD = code(ErrorCode.WEAK_PASSWORD)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="changePassword failed; the password is unchanged.")
class ChangePasswordError(MutationError):
    code: ChangePasswordErrorCode = strawberry.field(description="What went wrong.")


ChangePasswordResult = Annotated[
    ChangePasswordSuccess | ChangePasswordError,
    strawberry.union("ChangePasswordResult", description="changePassword's result."),
]

# --- deleteAccount -------------------------------------------------------------------------


@strawberry.input(description="Confirmation of deleting the viewer's account.")
class DeleteAccountInput:
    password: str = strawberry.field(description="The account's password.")


@strawberry.type(description="The account and its sessions are gone.")
class DeleteAccountSuccess:
    deleted_user_id: strawberry.ID = strawberry.field(description="The global ID the account had.")


@strawberry.enum(description="Why deleteAccount failed.")
class DeleteAccountErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    WRONG_PASSWORD = code(ErrorCode.WRONG_PASSWORD)
    RATE_LIMITED = code(ErrorCode.RATE_LIMITED)


@strawberry.type(description="deleteAccount failed; the account remains.")
class DeleteAccountError(MutationError):
    code: DeleteAccountErrorCode = strawberry.field(description="What went wrong.")


DeleteAccountResult = Annotated[
    DeleteAccountSuccess | DeleteAccountError,
    strawberry.union("DeleteAccountResult", description="deleteAccount's result."),
]

# --- updateProfile -------------------------------------------------------------------------


@strawberry.input(description="Profile fields to change; omitted fields keep their value.")
class UpdateProfileInput:
    display_name: str | None = strawberry.field(default=None, description="1 to 50 characters.")
    bio: str | None = strawberry.field(default=None, description="Up to 300 characters.")
    is_locked: bool | None = strawberry.field(
        default=None, description="Whether follows need approval."
    )


@strawberry.type(description="The profile changed.")
class UpdateProfileSuccess:
    user: User = strawberry.field(description="The viewer as now.")


@strawberry.enum(description="Why updateProfile failed.")
class UpdateProfileErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)


@strawberry.type(description="updateProfile failed; nothing changed.")
class UpdateProfileError(MutationError):
    code: UpdateProfileErrorCode = strawberry.field(description="What went wrong.")


UpdateProfileResult = Annotated[
    UpdateProfileSuccess | UpdateProfileError,
    strawberry.union("UpdateProfileResult", description="updateProfile's result."),
]

# --- root fields -----------------------------------------------------------------------------


INPUT = strawberry.argument(description="The mutation's input.")


def _not_signed_in() -> DomainError:
    return DomainError(ErrorCode.NOT_AUTHENTICATED, "Sign in first.")


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
        username: Annotated[str, strawberry.argument(description="The handle, without the @.")],
    ) -> User | None:
        user = await info.context.accounts.user_by_username(info.context.viewer_id, username)
        return as_user(user) if user else None


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="Create an account and sign it in.")
    async def sign_up(
        self,
        info: Info[Context, None],
        input: Annotated[SignUpInput, INPUT],
    ) -> SignUpResult:
        ctx = info.context
        try:
            signed_in = await ctx.accounts.sign_up(
                username=input.username,
                email=input.email,
                password=input.password,
                display_name=input.display_name,
                user_agent=ctx.user_agent,
            )
        except DomainError as exc:
            return error_result(SignUpError, SignUpErrorCode, exc)
        return SignUpSuccess(**_signed_in_fields(signed_in, info))

    @strawberry.mutation(description="Sign in with a username or email and a password.")
    async def log_in(
        self,
        info: Info[Context, None],
        input: Annotated[LogInInput, INPUT],
    ) -> LogInResult:
        ctx = info.context
        try:
            signed_in = await ctx.accounts.log_in(
                login=input.login,
                password=input.password,
                client_ip=ctx.client_ip,
                user_agent=ctx.user_agent,
            )
        except DomainError as exc:
            return error_result(LogInError, LogInErrorCode, exc)
        return LogInSuccess(**_signed_in_fields(signed_in, info))

    @strawberry.mutation(description="Trade a refresh token for new tokens (rotation).")
    async def refresh_session(
        self, info: Info[Context, None], input: Annotated[RefreshSessionInput, INPUT]
    ) -> RefreshSessionResult:
        try:
            signed_in = await info.context.accounts.refresh_session(input.refresh_token)
        except DomainError as exc:
            return error_result(RefreshSessionError, RefreshSessionErrorCode, exc)
        return RefreshSessionSuccess(**_signed_in_fields(signed_in, info))

    @strawberry.mutation(description="Sign out the session of this request.")
    async def log_out(self, info: Info[Context, None]) -> LogOutResult:
        viewer = info.context.viewer
        if viewer is None:
            return error_result(LogOutError, LogOutErrorCode, _not_signed_in())
        await info.context.accounts.log_out(viewer)
        return LogOutSuccess(revoked_sessions=1)

    @strawberry.mutation(description="Sign out every session of the viewer, this one included.")
    async def log_out_everywhere(self, info: Info[Context, None]) -> LogOutResult:
        viewer = info.context.viewer
        if viewer is None:
            return error_result(LogOutError, LogOutErrorCode, _not_signed_in())
        revoked = await info.context.accounts.log_out_everywhere(viewer)
        return LogOutSuccess(revoked_sessions=revoked)

    @strawberry.mutation(description="Change the password; every other session is signed out.")
    async def change_password(
        self, info: Info[Context, None], input: Annotated[ChangePasswordInput, INPUT]
    ) -> ChangePasswordResult:
        ctx = info.context
        try:
            if ctx.viewer is None:
                raise _not_signed_in()
            await ctx.accounts.change_password(
                ctx.viewer,
                current_password=input.current_password,
                new_password=input.new_password,
                client_ip=ctx.client_ip,
            )
        except DomainError as exc:
            return error_result(ChangePasswordError, ChangePasswordErrorCode, exc)
        return ChangePasswordSuccess(user=as_user(ctx.viewer.user))

    @strawberry.mutation(description="Delete the viewer's account for good.")
    async def delete_account(
        self, info: Info[Context, None], input: Annotated[DeleteAccountInput, INPUT]
    ) -> DeleteAccountResult:
        ctx = info.context
        try:
            if ctx.viewer is None:
                raise _not_signed_in()
            await ctx.accounts.delete_account(
                ctx.viewer, password=input.password, client_ip=ctx.client_ip
            )
        except DomainError as exc:
            return error_result(DeleteAccountError, DeleteAccountErrorCode, exc)
        return DeleteAccountSuccess(
            deleted_user_id=strawberry.ID(str(relay.to_base64(User, ctx.viewer.user.id)))
        )

    @strawberry.mutation(description="Change the viewer's display name, bio or lock.")
    async def update_profile(
        self, info: Info[Context, None], input: Annotated[UpdateProfileInput, INPUT]
    ) -> UpdateProfileResult:
        ctx = info.context
        try:
            if ctx.viewer is None:
                raise _not_signed_in()
            user = await ctx.accounts.update_profile(
                ctx.viewer,
                display_name=input.display_name,
                bio=input.bio,
                is_locked=input.is_locked,
            )
        except DomainError as exc:
            return error_result(UpdateProfileError, UpdateProfileErrorCode, exc)
        return UpdateProfileSuccess(user=as_user(user))
