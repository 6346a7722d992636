"""Expected failures as data: each mutation returns `<Verb>Success | <Verb>Error`, where the
error carries a code from an enum of that mutation's own, a message and the input field."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Protocol, TypeVar

import strawberry
from strawberry.types.enum import EnumValueDefinition

from app.errors import DomainError, ErrorCode

_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.INVALID_INPUT: (
        "A field of the input is not acceptable (control characters, only invisible "
        "characters, too long); see `field`."
    ),
    ErrorCode.INVALID_USERNAME: "The username is malformed or reserved.",
    ErrorCode.USERNAME_TAKEN: "Another account has this username (ignoring case).",
    ErrorCode.INVALID_EMAIL: "The email address is malformed.",
    ErrorCode.EMAIL_TAKEN: "Another account has this email address.",
    ErrorCode.WEAK_PASSWORD: (
        "The password is too short, too long, too common or has control characters."
    ),
    ErrorCode.INVALID_CREDENTIALS: "No account matches this login and password.",
    ErrorCode.WRONG_PASSWORD: "The password given to confirm this action is wrong.",
    ErrorCode.RATE_LIMITED: "Too many attempts in a short time; try again later.",
    ErrorCode.INVALID_TOKEN: "The token is unknown or its session has ended.",
    ErrorCode.TOKEN_EXPIRED: "The token has expired.",
    ErrorCode.TOKEN_REUSED: "The refresh token was already used; its session is now revoked.",
    ErrorCode.NOT_AUTHENTICATED: "This needs a signed-in viewer.",
    ErrorCode.FORBIDDEN: "The viewer may not do this.",
    ErrorCode.NOT_FOUND: "The object does not exist or the viewer may not see it.",
    ErrorCode.INVALID_CURSOR: "The cursor is malformed or belongs to another list.",
    ErrorCode.TEXT_TOO_LONG: "The text is longer than allowed.",
    ErrorCode.EMPTY_TEXT: "The text is empty.",
    ErrorCode.CANNOT_FOLLOW_SELF: "An account cannot follow itself.",
    ErrorCode.BLOCKED: "The viewer blocks this account; unblock it first.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Only JPEG, PNG, WebP and GIF images are accepted.",
    ErrorCode.MEDIA_TOO_LARGE: "The file is larger than the upload limit (an operator setting).",
    ErrorCode.UPLOAD_MISSING: "No file was uploaded for this media yet.",
    ErrorCode.UPLOAD_NOT_PENDING: (
        "This media was already uploaded (it is being processed, processed or failed)."
    ),
    ErrorCode.MEDIA_NOT_READY: "The media is not processed (yet, or it failed).",
    ErrorCode.MEDIA_IN_USE: "The media is attached to another post.",
    ErrorCode.WRONG_MEDIA_PURPOSE: "The media was uploaded for another use (post, avatar, header).",
    ErrorCode.TOO_MANY_ATTACHMENTS: "More media than a post may have (an operator setting).",
    ErrorCode.UNAVAILABLE: (
        "A service this needs (storage, a payment provider) is unavailable; try again later."
    ),
    ErrorCode.PAYMENT_DECLINED: "The payment method was refused; try another.",
    ErrorCode.PAYMENT_IN_PROGRESS: (
        "A payment for this subscription is being made right now; wait for it to finish."
    ),
    ErrorCode.ALREADY_SUBSCRIBED: (
        "The viewer already has a subscription that renews; cancel it or let it end first."
    ),
    ErrorCode.NOT_SUBSCRIBED: "The viewer has no subscription this applies to.",
    ErrorCode.PROVIDER_NOT_ACCEPTED: (
        "This payment provider takes no new payments (or is not configured); use one of "
        "paymentProviders."
    ),
    ErrorCode.EVENTS_MISSED: (
        "A live stream may have lost events: refetch the query it mirrors, then subscribe again."
    ),
}


def code(error_code: ErrorCode) -> EnumValueDefinition:
    """An enum member for a mutation's error-code enum, described once for all of them."""
    return strawberry.enum_value(error_code.value, description=_DESCRIPTIONS[error_code])


C = TypeVar("C", bound=Enum)


def error_codes(verb: str) -> Callable[[type[C]], type[C]]:
    """Make a mutation's error-code enum (members `NAME = code(ErrorCode.NAME)`), checking that
    each member is named after the code it carries: a DomainError maps to it by name."""

    def make(codes: type[C]) -> type[C]:
        for member in codes:
            value = member.value
            carried = ErrorCode(value.value) if isinstance(value, EnumValueDefinition) else None
            if carried is None or carried.name != member.name:
                raise TypeError(
                    f"{codes.__name__}.{member.name} is not code(ErrorCode.{member.name})"
                )
        return strawberry.enum(codes, description=f"Why {verb} failed.")

    return make


@strawberry.interface(description="Why a mutation failed. Nothing was changed.")
class MutationError:
    message: str = strawberry.field(description="What went wrong, for people.")
    field: str | None = strawberry.field(
        description="The input field at fault (its GraphQL name), if one is."
    )


C_contra = TypeVar("C_contra", bound=Enum, contravariant=True)
E_co = TypeVar("E_co", bound=MutationError, covariant=True)
E = TypeVar("E", bound=MutationError)


class ErrorType(Protocol[C_contra, E_co]):
    """A mutation's error type (its constructor), whose `code` is of its own enum."""

    def __call__(self, *, code: C_contra, message: str, field: str | None) -> E_co: ...


def error_result(error_type: ErrorType[C, E], codes: type[C], exc: DomainError) -> E:
    """Map a service's DomainError to a mutation's error type (a code it cannot return is a bug
    and surfaces as a masked unexpected error)."""
    return error_type(code=codes[exc.code.name], message=exc.message, field=exc.field)
