"""Expected failures of the service layer, as data the API maps to typed results."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every code a service may raise; each mutation exposes the subset it can return."""

    INVALID_INPUT = "INVALID_INPUT"
    INVALID_USERNAME = "INVALID_USERNAME"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    INVALID_EMAIL = "INVALID_EMAIL"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    WRONG_PASSWORD = "WRONG_PASSWORD"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REUSED = "TOKEN_REUSED"
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_CURSOR = "INVALID_CURSOR"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    EMPTY_TEXT = "EMPTY_TEXT"
    CANNOT_FOLLOW_SELF = "CANNOT_FOLLOW_SELF"
    BLOCKED = "BLOCKED"
    EVENTS_MISSED = "EVENTS_MISSED"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    MEDIA_TOO_LARGE = "MEDIA_TOO_LARGE"
    UPLOAD_MISSING = "UPLOAD_MISSING"
    UPLOAD_NOT_PENDING = "UPLOAD_NOT_PENDING"
    MEDIA_NOT_READY = "MEDIA_NOT_READY"
    MEDIA_IN_USE = "MEDIA_IN_USE"
    WRONG_MEDIA_PURPOSE = "WRONG_MEDIA_PURPOSE"
    TOO_MANY_ATTACHMENTS = "TOO_MANY_ATTACHMENTS"
    UNAVAILABLE = "UNAVAILABLE"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    ALREADY_SUBSCRIBED = "ALREADY_SUBSCRIBED"
    NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
    PROVIDER_NOT_ACCEPTED = "PROVIDER_NOT_ACCEPTED"
    PAYMENT_IN_PROGRESS = "PAYMENT_IN_PROGRESS"


class DomainError(Exception):
    """An expected failure: a machine-readable code, a message for people, the input field."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    @property
    def extensions(self) -> dict[str, str | None]:
        """Shown with the error when it reaches a client as a GraphQL error (queries)."""
        return {"code": self.code.value, "field": self.field}

    def __repr__(self) -> str:
        return f"DomainError({self.code!s}, {self.message!r}, field={self.field!r})"
