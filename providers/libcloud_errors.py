"""libcloud's errors as `providers.errors`, for the storage, compute and DNS providers on
libcloud: one mapping, so that a refused key, a missing object or an overloaded vendor
means the same to the caller whichever kind of provider met it.

libcloud reports HTTP failures two ways: `BaseHTTPError` (with `code`) and its own
`ProviderError` family (with `http_code`: GCE's `ResourceNotFoundError`, `InvalidCredsError`,
`ServiceUnavailableError`, ...). Both are mapped by their HTTP status. Messages are kept out
of what is not HTTP: libcloud's messages may embed the driver's repr or echo the request.
"""

from __future__ import annotations

import contextlib
from typing import Any

import requests.exceptions
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError, ServiceUnavailableError
from libcloud.common.types import ProviderError as LibcloudProviderError

from providers.errors import ConfigurationError, NotFound, ProviderError, Unavailable

_NOT_FOUND_CODES = ("NotFound", "InvalidAMIID", "does not exist", "not found")
"""Vendors answering a missing object with a 400 (EC2) name it in the message."""
_THROTTLED_CODES = ("RequestLimitExceeded", "Throttling", "ServiceUnavailable", "Unavailable")

_TRANSIENT: tuple[type[BaseException], ...] = (
    RateLimitReachedError,
    ServiceUnavailableError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)
_OTHER: tuple[type[BaseException], ...] = (
    LibcloudError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
)
"""Failures inside a driver (a malformed answer, an argument it does not take): a provider
error naming the type only."""


def is_not_found(exc: BaseHTTPError) -> bool:
    return exc.code == 404 or any(code in str(exc.message) for code in _NOT_FOUND_CODES)


def map_error(operation: str, exc: BaseException) -> ProviderError | None:
    """`exc`, met while doing `operation` through libcloud, as a `providers.errors` error;
    None when it is none of libcloud's, the transport's or a driver's (let it propagate)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, InvalidCredsError):
        return ConfigurationError(f"libcloud {operation}: credentials refused")
    if isinstance(exc, _TRANSIENT):
        return Unavailable(f"libcloud {operation}: {type(exc).__name__}")
    if isinstance(exc, BaseHTTPError):
        message = str(exc.message).splitlines()[0][:200] if exc.message else ""
        return _by_status(operation, exc.code, message, not_found=is_not_found(exc))
    if isinstance(exc, LibcloudProviderError):
        code = _int(exc.http_code)
        return _by_status(operation, code, "", not_found=code == 404)
    if isinstance(exc, _OTHER):
        return ProviderError(f"libcloud {operation}: {type(exc).__name__}")
    return None


def _by_status(operation: str, code: int, message: str, *, not_found: bool) -> ProviderError:
    detail = f"libcloud {operation}: HTTP {code} {message}".rstrip()
    if code in (401, 403):
        return ConfigurationError(f"libcloud {operation}: credentials refused (HTTP {code})")
    if not_found:
        return NotFound(detail)
    if code == 429 or code >= 500 or any(c in message for c in _THROTTLED_CODES):
        return Unavailable(detail)
    return ProviderError(detail)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def close_session(driver: Any) -> None:
    """Close a driver's HTTP session (drivers without one, like the dummy, have nothing to
    close); never fails, as it runs on the way out."""
    connection = getattr(driver, "connection", None)
    session = getattr(getattr(connection, "connection", None), "session", None)
    close = getattr(session, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()
