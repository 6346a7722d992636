"""Structured JSON logs: one JSON object a line, each with the request id of its request.

Lines stay small and free of secrets: every value is cut to `MAX_VALUE` characters (a
traceback line by line, and as a whole to `MAX_EXCEPTION`), and values under keys that name
a secret (passwords, tokens, cookies, ...), in nested mappings too, are replaced by
`REDACTED`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog
from asgi_correlation_id import correlation_id


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = correlation_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


MAX_VALUE = 1_000
MAX_EXCEPTION = 20_000
REDACTED = "[redacted]"
_SECRET_NAMES = frozenset(("authorization", "cookie", "setcookie", "apikey", "xapikey"))
_SECRET_ENDINGS = ("password", "passwd", "passwordhash", "token", "secret", "secretkey")
_MULTILINE_KEYS = frozenset(("exception", "stack"))
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_MAX_DEPTH = 8


def is_secret_key(key: object) -> bool:
    """Whether a key names a secret: password, currentPassword, new_password, refreshToken,
    Authorization, Cookie, ... (case, `_` and `-` ignored)."""
    if not isinstance(key, str):
        return False
    name = _NOT_ALNUM.sub("", key.lower())
    return name in _SECRET_NAMES or name.endswith(_SECRET_ENDINGS)


def truncate(text: str, limit: int = MAX_VALUE) -> str:
    """`text` if it has at most `limit` characters; else its start and how much was cut, in
    `limit` characters all told (so cutting again changes nothing)."""
    if len(text) <= limit:
        return text
    keep = limit - 40  # room for the note
    return f"{text[:keep]}... [{len(text) - keep} more characters]"


def _truncate_lines(text: str) -> str:
    # A traceback: each line bounded, and the whole, keeping its end (where the error is).
    text = "\n".join(truncate(line) for line in text.split("\n"))
    if len(text) <= MAX_EXCEPTION:
        return text
    return f"[{len(text) - MAX_EXCEPTION} characters left out]...{text[-MAX_EXCEPTION:]}"


def _bounded(value: Any, depth: int, final: bool) -> Any:
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_key(key) else _bounded(item, depth + 1, final)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_bounded(item, depth + 1, final) for item in value]
    # Other objects are rendered with str() at the end; bound that text.
    return truncate(str(value)) if final else value


class BoundValues:
    """A processor: redacts secrets and cuts long values of an event. Before rendering
    (`final`), other objects are turned to bounded text too; earlier they are kept (the
    exception info must reach the formatter intact)."""

    def __init__(self, *, final: bool) -> None:
        self._final = final

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        for key, value in event.items():
            if key.startswith("_") or key == "exc_info":
                continue  # structlog's own (the log record, the exception to format)
            if is_secret_key(key):
                event[key] = REDACTED
            elif key in _MULTILINE_KEYS and isinstance(value, str):
                event[key] = _truncate_lines(value)
            else:
                event[key] = _bounded(value, 0, self._final)
        return event


def _dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def json_formatter() -> logging.Formatter:
    """The formatter of every log line: structlog events and standard-library records alike."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            BoundValues(final=True),
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_request_id,
        BoundValues(final=False),
    ]


class PathWithoutQuery(logging.Filter):
    """uvicorn's access and WebSocket lines carry the request target with its query string,
    where a GET request may hold GraphQL variables (passwords, tokens): keep only the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(arg: object) -> object:
    # A request target is the one argument that starts with "/" (uvicorn passes the client,
    # the method, the target, the HTTP version and the status separately).
    return arg.partition("?")[0] if isinstance(arg, str) and arg.startswith("/") else arg


def configure_logging(level: str = "INFO") -> None:
    """Send structlog and standard-library logs (uvicorn, tortoise) out as JSON lines."""
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in ("uvicorn.access", "uvicorn.error"):
        target = logging.getLogger(name)
        target.filters[:] = [f for f in target.filters if not isinstance(f, PathWithoutQuery)]
        target.addFilter(PathWithoutQuery())
