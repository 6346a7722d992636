"""SIGTERM to `holdfast serve`: a request in flight finishes and commits before the process
leaves (within HOLDFAST_HTTP__GRACEFUL_SHUTDOWN_SECONDS), while new connections are refused.

The request is made slow for real: the test holds a PostgreSQL row lock on the post that an
`editPost` mutation locks too, so the edit waits inside its transaction until the test lets go.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import BACKEND, TEST_SECRET, fresh_database
from tests.support import (
    HOLDFAST,
    SIGN_UP,
    Server,
    holdfast_env,
    sign_up_input,
    start_server,
    stop_server,
    wait_until_up,
)

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres", reason="holds a PostgreSQL row lock (the PostgreSQL pass)"
)

CREATE_POST = """
mutation { createPost(input: {text: "first words"}) { ... on CreatePostSuccess { post { id } } } }
"""
EDIT_POST = """
mutation($id: ID!) {
  editPost(input: {id: $id, text: "second thoughts"}) {
    __typename
    ... on EditPostSuccess { post { id text editedAt } }
  }
}"""


@dataclass
class EditInFlight:
    server: Server
    lock: asyncpg.Connection
    post_id: int
    response: asyncio.Task[httpx.Response]

    async def text(self) -> tuple[str, int]:
        """The post's committed text, and how many earlier versions it keeps."""
        row = await self.lock.fetchrow(
            "SELECT text, (SELECT COUNT(*) FROM post_edits WHERE post_id = $1) AS edits "
            "FROM posts WHERE id = $1",
            self.post_id,
        )
        assert row is not None
        return row["text"], row["edits"]


async def _poll(check: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    for _ in range(int(within / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within} s")


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database(tmp_path, "shutdown") as url:
        migrated = await asyncio.to_thread(
            subprocess.run,
            [HOLDFAST, "migrate"],
            env=holdfast_env(tmp_path, HOLDFAST_DATABASE_URL=url),
            capture_output=True,
            text=True,
        )
        assert migrated.returncode == 0, migrated.stderr
        yield url


@asynccontextmanager
async def _terminated_during_an_edit(
    tmp_path: Path, database_url: str, grace: int
) -> AsyncIterator[EditInFlight]:
    server = start_server(
        tmp_path / "data",
        "--no-migrate",
        HOLDFAST_DATABASE_URL=database_url,
        HOLDFAST_SECRET_KEY=TEST_SECRET,
        HOLDFAST_HTTP__GRACEFUL_SHUTDOWN_SECONDS=str(grace),
        # No job worker: the post's fan-out job would wait on the row lock the test holds,
        # and the shutdown on it (these tests are about requests; tests/integration/
        # test_job_processes.py stops workers mid-job).
        HOLDFAST_JOBS__WORK_IN_WEB="false",
    )
    lock = await asyncpg.connect(database_url)
    try:
        wait_until_up(server)
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
            signed_up = await client.post(
                "/graphql", json={"query": SIGN_UP, "variables": sign_up_input()}
            )
            token = signed_up.json()["data"]["signUp"]["session"]["accessToken"]
            auth = {"Authorization": f"Bearer {token}"}
            created = await client.post("/graphql", json={"query": CREATE_POST}, headers=auth)
            global_id = created.json()["data"]["createPost"]["post"]["id"]
            post_id = int(base64.b64decode(global_id).decode().split(":")[1])

            await lock.execute("BEGIN")
            await lock.execute("SELECT id FROM posts WHERE id = $1 FOR UPDATE", post_id)
            edit = asyncio.create_task(
                client.post(
                    "/graphql",
                    json={"query": EDIT_POST, "variables": {"id": global_id}},
                    headers=auth,
                )
            )

            async def edit_waits() -> bool:
                waiting = await lock.fetchval(
                    "SELECT COUNT(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return bool(waiting)

            await _poll(edit_waits)
            server.process.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return "Waiting for connections to close" in server.log_text()

            await _poll(draining)
            try:
                yield EditInFlight(server, lock, post_id, edit)
            finally:
                if lock.is_in_transaction():
                    await lock.execute("ROLLBACK")
                if not edit.done():
                    edit.cancel()
    finally:
        await lock.close()
        stop_server(server)


async def test_a_request_in_flight_finishes_and_commits(tmp_path: Path, database_url: str) -> None:
    async with _terminated_during_an_edit(tmp_path, database_url, grace=30) as flight:
        still_running = flight.server.process.poll() is None
        async with httpx.AsyncClient(base_url=flight.server.base) as newcomer:
            with pytest.raises(httpx.ConnectError):
                await newcomer.get("/healthz")  # no new connections meanwhile
        await flight.lock.execute("COMMIT")
        response = await flight.response
        exit_code = await asyncio.to_thread(flight.server.process.wait, 20)
        committed = await flight.text()

    assert still_running
    assert response.status_code == 200
    result = response.json()["data"]["editPost"]
    assert result["__typename"] == "EditPostSuccess"
    assert result["post"]["text"] == "second thoughts"
    assert committed == ("second thoughts", 1)
    # uvicorn raises the signal again once it has shut down (systemd counts it a clean stop).
    assert exit_code == -signal.SIGTERM
    events = [json.loads(line)["event"] for line in flight.server.log_text().splitlines()]
    draining = events.index("Waiting for connections to close. (CTRL+C to force quit)")
    answered = max(i for i, e in enumerate(events) if '"POST /graphql HTTP/1.1" 200' in e)
    assert draining < answered < events.index("Application shutdown complete.")


async def test_a_request_past_the_grace_period_is_cut_and_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    async with _terminated_during_an_edit(tmp_path, database_url, grace=1) as flight:
        exit_code = await asyncio.to_thread(flight.server.process.wait, 20)
        cut = await flight.response
        await flight.lock.execute("ROLLBACK")
        kept = await flight.text()

    assert exit_code == -signal.SIGTERM
    assert cut.status_code == 500  # uvicorn's answer for a request it cancelled
    assert kept == ("first words", 0)
    assert "timeout graceful shutdown exceeded" in flight.server.log_text()
