"""Logging out is immediate across processes: the token of a session that one process ended is
refused by another on the very next request, whether that request checks the session on its
own (any operation) or in its page's statement (the home timeline, schema.runner
SESSION_FOLDED)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET, fresh_database
from tests.support import HOLDFAST, SIGN_UP, holdfast_env, serve_processes, sign_up_input

HOME = "{ homeTimeline(first: 5) { edges { node { id } } pageInfo { hasNextPage } } }"
HOME_AND_VIEWER = "{ homeTimeline(first: 5) { pageInfo { hasNextPage } } viewer { username } }"
VIEWER = "{ viewer { username } }"
LOG_OUT = "mutation { logOut { __typename } }"


def _post(base: str, query: str, token: str | None = None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{base}/graphql", json={"query": query}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _codes(body: dict[str, object]) -> list[object]:
    errors = body.get("errors") or []
    assert isinstance(errors, list)
    return [error["extensions"]["code"] for error in errors]


async def test_a_logged_out_token_is_refused_by_another_process_at_once(tmp_path: Path) -> None:
    async with fresh_database(tmp_path, "sessions") as database_url:
        await asyncio.to_thread(_log_out_across_processes, tmp_path, database_url)


def _log_out_across_processes(tmp_path: Path, database_url: str) -> None:
    settings = {"HOLDFAST_DATABASE_URL": database_url, "HOLDFAST_SECRET_KEY": TEST_SECRET}
    # Migrated once, before both start (two processes migrating one SQLite file race).
    migrate = [HOLDFAST, "migrate"]
    subprocess.run(migrate, env=holdfast_env(tmp_path / "a", **settings), check=True)
    specs = [(tmp_path / name, ("--no-migrate",), settings) for name in ("a", "b")]
    with serve_processes(*specs) as [(a, _), (b, _)]:
        signed_up = _post_variables(a, SIGN_UP, sign_up_input())
        token = signed_up["data"]["signUp"]["session"]["accessToken"]

        assert _post(b, HOME)["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"
        assert "errors" not in _post(b, HOME, token)
        assert _post(b, HOME_AND_VIEWER, token)["data"]["viewer"] == {"username": "alice"}
        assert _post(b, VIEWER, token)["data"] == {"viewer": {"username": "alice"}}

        assert _post(a, LOG_OUT, token)["data"] == {"logOut": {"__typename": "LogOutSuccess"}}

        # The very next requests to the other process: the session check folded into the
        # home page's statement, and the separate one before any other operation.
        folded = _post(b, HOME, token)
        assert folded["data"] is None
        assert _codes(folded) == ["NOT_AUTHENTICATED"]
        both = _post(b, HOME_AND_VIEWER, token)
        assert both["data"] is None
        assert _codes(both) == ["NOT_AUTHENTICATED"]
        assert _post(b, VIEWER, token)["data"] == {"viewer": None}


def _post_variables(base: str, query: str, variables: dict[str, object]) -> dict[str, object]:
    response = httpx.post(
        f"{base}/graphql", json={"query": query, "variables": variables}, timeout=10
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    assert "errors" not in body, body
    return body
