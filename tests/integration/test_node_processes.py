"""Node ids across real processes: `holdfast serve` processes (one with `--workers 2`) and CLI
commands on one database (the pass's backend) lease pairwise distinct node ids, in the database
or in Redis; a killed process's node id frees itself when its lease ends; a paused one stops
using its node id once another process took it over, and moves to another; HOLDFAST_NODE_ID is
honoured by every command that writes."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app import ids
from app.ids import ms_of, node_of
from app.node_stores import Record, RedisLeases
from tests.conftest import BACKEND, TEST_SECRET, fresh_database, need_service
from tests.support import (
    HOLDFAST,
    SIGN_UP,
    STRONG_PASSWORD,
    Server,
    holdfast_env,
    sign_up_input,
    sleep_until,
    start_server,
    stop_server,
    wait_until_up,
)

ADMIN = (
    "users",
    "create-admin",
    "--username",
    "ops",
    "--email",
    "o@example.org",
    "--password-stdin",
)
CREATE_POST = """
mutation($text: String!) {
  createPost(input: {text: $text}) { __typename ... on CreatePostSuccess { post { id } } }
}"""


@dataclass
class Shared:
    """What the processes share: a migrated database, and Redis when leases live there."""

    database_url: str
    redis_url: str | None
    data_dir: Path

    def settings(self, first: int, last: int, lease: float, **extra: str) -> dict[str, str]:
        values = {
            "HOLDFAST_DATABASE_URL": self.database_url,
            "HOLDFAST_SECRET_KEY": TEST_SECRET,
            "HOLDFAST_AUTH__SIGNUPS_PER_IP": "1000/minute",
            "HOLDFAST_NODES__FIRST_ID": str(first),
            "HOLDFAST_NODES__LAST_ID": str(last),
            "HOLDFAST_NODES__LEASE_SECONDS": str(lease),
            "HOLDFAST_NODES__RENEW_SECONDS": str(lease / 4),
            # No job workers: a process SIGSTOPped while its worker holds SQLite's write lock
            # would stop every other process writing; these tests are about ids.
            "HOLDFAST_JOBS__WORK_IN_WEB": "false",
            **extra,
        }
        if self.redis_url:
            values["HOLDFAST_REDIS_URL"] = self.redis_url
        return values

    async def fetch(self, statement: str) -> list[tuple[Any, ...]]:
        if self.database_url.startswith("sqlite://"):
            with sqlite3.connect(self.database_url.removeprefix("sqlite://")) as db:
                return db.execute(statement).fetchall()
        connection = await asyncpg.connect(self.database_url)
        try:
            return [tuple(row) for row in await connection.fetch(statement)]
        finally:
            await connection.close()

    async def records(self) -> dict[int, Record]:
        """The lease records, by node id, read from where the processes keep them."""
        if self.redis_url:
            store = RedisLeases(self.redis_url, lease_ms=1_000)
            try:
                return {r.node_id: r for r in await store.records()}
            finally:
                await store.close()
        rows = await self.fetch("SELECT node_id, holder, expires_at FROM node_leases")
        return {node: Record(node, holder, _ms(end)) for node, holder, end in rows}

    def run(self, *args: str, stdin: str = "", **settings: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HOLDFAST, *args],
            env=holdfast_env(
                self.data_dir, **{"HOLDFAST_DATABASE_URL": self.database_url, **settings}
            ),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )


def _ms(moment: datetime | str) -> int:
    if isinstance(moment, str):  # SQLite's
        moment = datetime.fromisoformat(moment)
    return round(moment.timestamp() * 1000)


def _store(name: str) -> Any:
    return pytest.param(name, marks=pytest.mark.redis) if name == "redis" else name


# Each pass runs each test once, with leases in the database (the pass's backend) or in Redis,
# the two passes between them covering both stores; the takeovers themselves are tested on
# every store in tests/integration/test_node_leases.py.
PASS_STORE = _store("redis" if BACKEND == "sqlite" else "database")
OTHER_STORE = _store("database" if BACKEND == "sqlite" else "redis")


@pytest.fixture
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Shared]:
    redis_url = need_service("TEST_REDIS_URL") if request.param == "redis" else None
    data_dir = tmp_path / "data"
    async with fresh_database(tmp_path, "nodes") as url:
        made = Shared(url, redis_url, data_dir)
        migrated = made.run("migrate")
        assert migrated.returncode == 0, migrated.stderr
        yield made


@contextmanager
def _servers() -> Iterator[Callable[..., Server]]:
    """A `start(data_dir, **settings)` whose servers are all stopped afterwards."""
    started: list[Server] = []

    def start(data_dir: Path, *args: str, **settings: str) -> Server:
        server = start_server(data_dir, "--no-migrate", *args, **settings)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.process.poll() is None:
                os.kill(server.process.pid, signal.SIGCONT)
            stop_server(server)


def _id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


async def _sign_up(server: Server, username: str) -> tuple[int, str]:
    """A new account on `server`: its id, and an access token (any server accepts it)."""
    variables = sign_up_input(username=username, email=f"{username}@example.org")
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        response = await client.post("/graphql", json={"query": SIGN_UP, "variables": variables})
    result = response.json()["data"]["signUp"]
    assert result["__typename"] == "SignUpSuccess", response.text
    return _id(result["user"]["id"]), result["session"]["accessToken"]


async def _create_post(server: Server, token: str, text: str) -> int | None:
    """The id of a new post made on `server`; None when the server could not make it."""
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={"query": CREATE_POST, "variables": {"text": text}},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    if body.get("errors"):
        return None
    return _id(body["data"]["createPost"]["post"]["id"])


async def _until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s")


def _holds(record: Record, server: Server) -> bool:
    return _pid(record) == server.process.pid


def _pid(record: Record) -> int:
    return int(record.holder.split(" pid ", 1)[1].split()[0])


def _live(records: dict[int, Record], at: int | None = None) -> dict[int, Record]:
    """The leases that had not ended at `at` (now), among node ids 0..4."""
    at = ids.now_ms() if at is None else at
    return {n: r for n, r in records.items() if n <= 4 and r.until_ms > at}


def _children(server: Server) -> list[int]:
    """The child processes of a `serve --workers N`: its workers (and multiprocessing's
    resource tracker)."""
    pid = server.process.pid
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("shared", [PASS_STORE], indirect=True)
async def test_live_processes_hold_pairwise_distinct_node_ids(
    shared: Shared, tmp_path: Path
) -> None:
    # Five node ids for five processes starting at once (three servers, and one serving with
    # two worker processes, as infra/holdfast.service does): each must get a different one.
    settings = shared.settings(0, 4, lease=2)
    with _servers() as start:
        servers = [start(tmp_path / f"server{i}", **settings) for i in range(3)]
        workers = start(tmp_path / "workers", "--workers", "2", **settings)
        for server in [*servers, workers]:
            wait_until_up(server)
        made = [await _sign_up(server, f"user{i}") for i, server in enumerate(servers)]

        async def five_held() -> bool:
            return len(_live(await shared.records())) == 5

        await _until(five_held, within=30)
        read_at = ids.now_ms()
        records = await shared.records()
        worker_pids = _children(workers)
        sixth = shared.run(*ADMIN, stdin=STRONG_PASSWORD, **settings)
        for server in [*servers, workers]:
            server.process.terminate()
        for server in [*servers, workers]:
            server.process.wait(timeout=10)
        given_back = await shared.records()

    nodes = [node_of(user_id) for user_id, _ in made]
    assert len(set(nodes)) == 3
    for server, node in zip(servers, nodes, strict=True):
        assert _holds(records[node], server)
    held_by = {_pid(record) for record in _live(records, read_at).values()}
    by_workers = held_by - {server.process.pid for server in servers}
    assert len(held_by) == 5
    assert len(by_workers) == 2
    assert by_workers <= set(worker_pids)
    assert sixth.returncode == 1
    assert "every node id in 0..4 is held by a live process" in sixth.stderr
    # A clean exit gives each node id back at once, recording where its ids ended.
    assert _live(given_back, ids.now_ms()) == {}
    for (user_id, _), node in zip(made, nodes, strict=True):
        assert ms_of(user_id) < given_back[node].until_ms


@pytest.mark.parametrize("shared", [OTHER_STORE], indirect=True)
async def test_a_killed_process_keeps_its_node_id_until_its_lease_ends(
    shared: Shared, tmp_path: Path
) -> None:
    settings = shared.settings(10, 10, lease=6)
    with _servers() as start:
        server = start(tmp_path / "server", **settings)
        wait_until_up(server)
        user_id, _ = await _sign_up(server, "alice")
        server.process.kill()
        server.process.wait()
        killed = (await shared.records())[10]

        refused = shared.run(*ADMIN, stdin=STRONG_PASSWORD, **settings)
        await sleep_until(killed.until_ms)
        created = shared.run(*ADMIN, stdin=STRONG_PASSWORD, **settings)

    assert node_of(user_id) == 10
    assert _holds(killed, server)
    assert refused.returncode == 1
    assert "every node id in 10..10 is held" in refused.stderr
    assert created.returncode == 0, created.stderr
    admin_id = int(created.stdout.rsplit("(id ", 1)[1].rstrip(")\n"))
    assert node_of(admin_id) == 10
    assert ms_of(admin_id) >= killed.until_ms
    record = (await shared.records())[10]
    assert record.holder.startswith("users create-admin ")
    assert record.until_ms <= ids.now_ms()


@pytest.mark.parametrize("shared", [PASS_STORE], indirect=True)
async def test_a_paused_process_whose_node_id_was_taken_over_moves_to_another(
    shared: Shared, tmp_path: Path
) -> None:
    settings = shared.settings(20, 21, lease=1.5)
    with _servers() as start:
        paused = start(tmp_path / "paused", **settings)
        wait_until_up(paused)
        _, token = await _sign_up(paused, "alice")
        before = await _create_post(paused, token, "before the pause")
        assert before is not None
        node = node_of(before)
        os.kill(paused.process.pid, signal.SIGSTOP)
        lapsed = (await shared.records())[node].until_ms
        await sleep_until(lapsed)
        # Another process takes the node id over while the first cannot renew.
        taker = start(tmp_path / "taker", **shared.settings(node, node, lease=1.5))
        wait_until_up(taker)
        taken = await _create_post(taker, token, "on the taken node id")
        os.kill(paused.process.pid, signal.SIGCONT)
        after: list[int | None] = []

        async def made_one() -> bool:
            after.append(await _create_post(paused, token, f"after the pause {len(after)}"))
            return after[-1] is not None

        await _until(made_one, within=15)

    assert taken is not None
    assert node_of(taken) == node
    # Until it leased the other node id, the resumed process made no id at all.
    assert [node_of(i) for i in after if i is not None] == [({20, 21} - {node}).pop()]
    posts = {i for (i,) in await shared.fetch("SELECT id FROM posts")}
    assert posts == {before, taken, after[-1]}
    assert "was taken over by another process" in paused.log_text()


@pytest.mark.parametrize("shared", ["database"], indirect=True)
async def test_node_id_setting_is_honoured_by_every_command(shared: Shared) -> None:
    # One process a time, each with the node id its operator assigned.
    seeded = shared.run("seed", "--users", "5", "--posts", "20", HOLDFAST_NODE_ID="901")
    created = shared.run(*ADMIN, stdin=STRONG_PASSWORD, HOLDFAST_NODE_ID="902")
    server = start_server(
        shared.data_dir,
        "--no-migrate",
        HOLDFAST_DATABASE_URL=shared.database_url,
        HOLDFAST_NODE_ID="903",
    )
    try:
        wait_until_up(server)
        alice, _ = await _sign_up(server, "alice")
    finally:
        stop_server(server)

    assert seeded.returncode == 0, seeded.stderr
    assert created.returncode == 0, created.stderr
    users = dict(await shared.fetch("SELECT username, id FROM users"))
    posts = {node_of(i) for (i,) in await shared.fetch("SELECT id FROM posts")}
    assert {node_of(users[f"user{i:05d}"]) for i in range(1, 6)} == {901}
    assert posts == {901}
    assert node_of(users["ops"]) == 902
    assert node_of(alice) == 903
    assert await shared.records() == {}  # an assigned node id is not leased
