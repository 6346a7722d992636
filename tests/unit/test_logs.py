"""The log pipeline as configured: secrets redacted at any depth, long values cut, for
structlog events and standard-library records alike."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest
import structlog

from app.logs import MAX_VALUE, REDACTED, configure_logging, is_secret_key, json_formatter


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    configure_logging("INFO")
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("holdfast.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield output
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def cut_from(value: object, original: str) -> bool:
    """Whether `value` is `original` cut to MAX_VALUE characters, saying how much is left out."""
    assert isinstance(value, str)
    match = re.fullmatch(r"(.*)\.\.\. \[(\d+) more characters\]", value, re.DOTALL)
    assert match is not None, value[-60:]
    kept, left_out = match.group(1), int(match.group(2))
    return (
        len(value) <= MAX_VALUE
        and original.startswith(kept)
        and len(kept) + left_out == len(original)
        and len(kept) > MAX_VALUE - 50
    )


def _event(stream: io.StringIO) -> dict[str, object]:
    [line] = stream.getvalue().splitlines()
    event: dict[str, object] = orjson.loads(line)
    return event


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "currentPassword",
        "new_password",
        "NewPassword",
        "token",
        "accessToken",
        "refresh_token",
        "secret",
        "secret_key",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "password_hash",
    ],
)
def test_keys_that_name_secrets_are_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["username", "path", "max_tokens", "event", "request_id"])
def test_other_keys_are_not(key: str) -> None:
    assert not is_secret_key(key)


def test_secrets_are_redacted_at_any_depth(stream: io.StringIO) -> None:
    log = structlog.get_logger("holdfast.test_logs")

    log.warning(
        "signing.in",
        username="alice",
        password="hunter2",
        variables={"input": {"login": "alice", "currentPassword": "hunter3"}},
        headers=[{"Authorization": "Bearer abc.def"}, {"Cookie": "sid=1"}],
        refreshToken="rt-1",
    )

    event = _event(stream)
    text = stream.getvalue()
    assert event["username"] == "alice"
    assert event["password"] == REDACTED
    assert event["refreshToken"] == REDACTED
    assert event["variables"] == {"input": {"login": "alice", "currentPassword": REDACTED}}
    assert event["headers"] == [{"Authorization": REDACTED}, {"Cookie": REDACTED}]
    assert not any(s in text for s in ("hunter2", "hunter3", "abc.def", "sid=1", "rt-1"))


def test_long_values_are_cut(stream: io.StringIO) -> None:
    log = structlog.get_logger("holdfast.test_logs")

    log.warning("x" * 5_000, value="v" * 5_000, nested={"deep": ["d" * 5_000]})

    event = _event(stream)
    assert cut_from(event["event"], "x" * 5_000)
    assert cut_from(event["value"], "v" * 5_000)
    nested = event["nested"]
    assert isinstance(nested, dict)
    assert cut_from(nested["deep"][0], "d" * 5_000)


def test_standard_library_messages_are_cut(stream: io.StringIO) -> None:
    logging.getLogger("holdfast.test_logs").warning("statement: %s", "s" * 50_000)

    event = _event(stream)
    assert cut_from(event["event"], "statement: " + "s" * 50_000)


def test_a_traceback_keeps_its_lines_short_and_its_end(stream: io.StringIO) -> None:
    log = structlog.get_logger("holdfast.test_logs")

    message = "bad " + "b" * 100_000 + " end"
    try:
        raise ValueError(message)
    except ValueError:
        log.exception("failed")

    exception = str(_event(stream)["exception"])
    assert exception.startswith("Traceback (most recent call last):")
    assert cut_from(exception.splitlines()[-1], "ValueError: " + message)
    assert max(len(line) for line in exception.splitlines()) <= MAX_VALUE
