"""Log lines stay small and never carry a secret, whatever a request sends."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.logs import MAX_VALUE, json_formatter
from app.services.accounts import AccountService, Viewer
from tests.support import GraphQLClient, serve, server_log

CHANGE_PASSWORD = """
mutation($input: ChangePasswordInput!) {
  changePassword(input: $input) { __typename }
}"""


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The JSON lines the app writes (its own formatter), while the test runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def test_an_unexpected_error_with_a_huge_value_is_logged_cut_and_without_secrets(
    gql: GraphQLClient, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = "x" * 200_000

    async def explode(self: AccountService, viewer: Viewer, **_: Any) -> None:
        raise RuntimeError(f"cannot store {huge} for this account")

    monkeypatch.setattr(AccountService, "change_password", explode)
    alice = await gql.sign_up("alice")
    secret = "the current secret 8472"

    response = await gql.post(
        CHANGE_PASSWORD,
        {"input": {"currentPassword": secret, "newPassword": huge}},
        token=alice.access_token,
    )

    assert response.json()["errors"][0]["message"] == "Unexpected error."
    lines = log_lines.getvalue().splitlines()
    events = [orjson.loads(line) for line in lines]
    [error] = [e for e in events if e["event"] == "graphql.unexpected_error"]
    assert error["request_id"] == response.headers["x-request-id"]
    exception = error["exception"]
    assert "RuntimeError: cannot store xxx" in exception
    assert "more characters]" in exception
    assert all(len(line) <= MAX_VALUE for line in exception.splitlines())
    assert max(len(line) for line in lines) < 30_000
    for event in events:
        assert all(secret not in text and huge not in text for text in _strings(event))
        assert all(len(text) <= 25_000 for text in _strings(event))


@pytest.mark.no_database
def test_a_served_process_logs_no_query_string(tmp_path: Path) -> None:
    # GET requests put GraphQL variables in the query string, and uvicorn logs the target.
    variables = orjson.dumps({"input": {"login": "alice", "password": "hunter2-SECRET"}})
    query = "mutation($input: LogInInput!) { logIn(input: $input) { __typename } }"
    with serve(tmp_path / "data") as base:
        refused = httpx.get(f"{base}/graphql", params={"query": query, "variables": variables})
        answered = httpx.get(f"{base}/graphql", params={"query": "{ viewer { id } }"})

    lines = server_log(tmp_path / "data").read_text().splitlines()
    access = [
        orjson.loads(line) for line in lines if '"uvicorn.access"' in line and "/graphql" in line
    ]
    assert refused.status_code == 400
    assert answered.status_code == 200
    assert len(access) == 2
    assert all("GET /graphql HTTP/1.1" in a["event"] for a in access)
    assert not any("hunter2" in line or "viewer" in line for line in lines)
