"""Real `holdfast worker` and `holdfast serve` processes working `timelines.rebuild` jobs on a
database of their own (SQLite, or PostgreSQL when TEST_DATABASE=postgres).

To stop a job in the middle, the test installs a trigger on `home_entries` that counts every
row the job inserts (in the job's own transaction, so only committed work is counted) and,
after the third row, waits for something the test holds: a row lock on PostgreSQL, a statement
that never ends on SQLite (one writer at a time: no lock for a second process to wait on).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.seed import SEED_PASSWORD
from tests.conftest import BACKEND, create_database, need_service
from tests.support import (
    HOLDFAST,
    GraphQLClient,
    free_port,
    holdfast_env,
    start_server,
    stop_server,
    wait_until_up,
)

CREATE_POST = """
mutation($input: CreatePostInput!) {
  createPost(input: $input) { ... on CreatePostSuccess { post { id } } }
}"""

JOB_ENV = {
    # Short node leases: a lease store seen for the first time (an empty Redis, as in a fresh
    # CI) makes the first process wait one node lease before it gets an id, and `start` gives
    # up after 30 s; the default lease is 30 s.
    "HOLDFAST_NODES__LEASE_SECONDS": "2",
    "HOLDFAST_NODES__RENEW_SECONDS": "0.5",
    "HOLDFAST_JOBS__LEASE_SECONDS": "1",
    "HOLDFAST_JOBS__POLL_SECONDS": "0.2",
    "HOLDFAST_JOBS__BACKOFF_FIRST_SECONDS": "0.1",
}

SQLITE_TRIGGER = """
CREATE TABLE test_applied (owner_id BIGINT);
CREATE TABLE test_hold (hold INT);
INSERT INTO test_hold VALUES (1);
CREATE TABLE test_big (x INT);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows})
INSERT INTO test_big SELECT x FROM n;
CREATE TRIGGER test_count AFTER INSERT ON home_entries BEGIN
  INSERT INTO test_applied VALUES (NEW.owner_id);
  SELECT CASE WHEN (SELECT hold FROM test_hold) = 1 AND (SELECT COUNT(*) FROM test_applied) >= 3
    THEN (SELECT COUNT(*) FROM {tables}) END;
END;
"""
# On SQLite the job's transaction holds the only write lock, so the test cannot end the wait:
# it either never ends (a 27-billion-row join) or ends by itself (360,000 rows a row).
SQLITE_FOREVER = {"rows": 3000, "tables": "test_big a, test_big b, test_big c"}
SQLITE_A_WHILE = {"rows": 600, "tables": "test_big a, test_big b"}

POSTGRES_TRIGGER = """
CREATE TABLE test_applied (owner_id BIGINT);
CREATE TABLE test_hold (hold INT);
INSERT INTO test_hold VALUES (1);
CREATE FUNCTION test_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO test_applied VALUES (NEW.owner_id);
  IF (SELECT COUNT(*) FROM test_applied) >= 3 THEN
    PERFORM 1 FROM test_hold FOR UPDATE;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_count AFTER INSERT ON home_entries
  FOR EACH ROW EXECUTE FUNCTION test_count();
"""


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@dataclass
class ProcessDatabase:
    """The database the processes share, and the test's own way into it."""

    data_dir: Path
    env: dict[str, str]
    url: str | None = None  # PostgreSQL; SQLite is the data dir's file
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _holder: Any = None
    _transaction: Any = None

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "holdfast.sqlite3"

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.url is None:
            db = sqlite3.connect(self.sqlite_path, timeout=10)
            try:
                return db.execute(query).fetchall()
            finally:
                db.close()
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(query)]
        finally:
            await conn.close()

    async def script(self, text: str) -> None:
        if self.url is None:
            db = sqlite3.connect(self.sqlite_path, timeout=10)
            try:
                db.executescript(text)
            finally:
                db.close()
            return
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(text)
        finally:
            await conn.close()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HOLDFAST, *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def holdfast(self, *args: str) -> str:
        """A `holdfast` command that must succeed; its output."""
        done = self.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, command: str, log_name: str, **settings: str) -> subprocess.Popen[bytes]:
        """`holdfast worker` or `holdfast serve`, once it says its worker started."""
        log = self.data_dir.parent / log_name
        with log.open("wb") as out:
            process = subprocess.Popen(
                [HOLDFAST, command],
                env={**self.env, **settings},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.processes.append(process)
        deadline = time.monotonic() + 30
        while "job worker" not in log.read_text() or "started" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return process

    # The job's blocking point.

    async def block_rebuilds(self, *, releasable: bool = False) -> None:
        """Rebuilds wait after their third row until `unblock_rebuilds` (on SQLite, with
        `releasable`, they get on by themselves after a while instead)."""
        if self.url is None:
            await self.script(
                SQLITE_TRIGGER.format(**(SQLITE_A_WHILE if releasable else SQLITE_FOREVER))
            )
            return
        await self.script(POSTGRES_TRIGGER)
        self._holder = await asyncpg.connect(self.url)
        self._transaction = self._holder.transaction()
        await self._transaction.start()
        await self._holder.execute("SELECT 1 FROM test_hold FOR UPDATE")

    async def job_is_blocked(self) -> bool:
        if self.url is None:
            # The job's transaction holds SQLite's write lock while it waits.
            probe = sqlite3.connect(self.sqlite_path, timeout=0)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.rollback()
                return False
            except sqlite3.OperationalError as exc:
                return "locked" in str(exc)
            finally:
                probe.close()
        [(waiting,)] = await self.rows(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return bool(waiting)

    async def unblock_rebuilds(self) -> None:
        if self.url is None:
            await self.script("UPDATE test_hold SET hold = 0;")  # needs the job's lock gone
            return
        await self._transaction.rollback()
        await self._holder.close()
        self._holder = None

    async def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        if self._holder is not None:
            await self._holder.close()


@dataclass(frozen=True)
class Timeline:
    owner: int
    username: str
    entries: list[tuple[Any, ...]]


async def entries_of(db: ProcessDatabase, owner: int) -> list[tuple[Any, ...]]:
    return await db.rows(
        "SELECT entry_id, post_id, reposter_id, source_id FROM home_entries "
        f"WHERE owner_id = {owner} ORDER BY entry_id"
    )


@dataclass(frozen=True)
class Template:
    """A seeded database that each test copies, and the timeline its rebuild job must make."""

    data_dir: Path
    postgres: tuple[str, str] | None  # admin URL, database name
    timeline: Timeline


def _process_database(data_dir: Path, admin_url: str | None, name: str | None) -> ProcessDatabase:
    if admin_url is None:
        db = ProcessDatabase(data_dir, holdfast_env(data_dir))
    else:
        url = f"{admin_url.rpartition('/')[0]}/{name}"
        db = ProcessDatabase(data_dir, holdfast_env(data_dir, HOLDFAST_DATABASE_URL=url), url)
    db.env.update(JOB_ENV)
    return db


async def _admin(admin_url: str, statement: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _create(admin_url: str, name: str, *, template: str | None = None) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await create_database(admin, name, template=template)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def template(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Template]:
    """Seeded once: the fullest home timeline as a rebuild makes it, then emptied (the work
    of one `timelines.rebuild` job)."""
    data_dir = tmp_path_factory.mktemp("template") / "data"
    admin_url = name = None
    if BACKEND == "postgres":
        admin_url = need_service("TEST_POSTGRES_URL")
        name = f"holdfast_jobs_{os.getpid()}_{secrets.token_hex(4)}"
        await _create(admin_url, name)
    db = _process_database(data_dir, admin_url, name)
    try:
        db.holdfast("seed", "--users", "10", "--posts", "200")
        [(owner, username)] = await db.rows(
            "SELECT u.id, u.username FROM users u JOIN home_entries h ON h.owner_id = u.id "
            "GROUP BY u.id, u.username ORDER BY COUNT(*) DESC, u.id LIMIT 1"
        )
        db.holdfast("timelines", "rebuild", "--username", username)
        expected = await entries_of(db, owner)
        assert len(expected) >= 10
        await db.script(f"DELETE FROM home_entries WHERE owner_id = {owner};")
        postgres = (admin_url, name) if admin_url is not None and name is not None else None
        yield Template(data_dir, postgres, Timeline(owner, username, expected))
    finally:
        if admin_url is not None:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(template: Template, tmp_path: Path) -> AsyncIterator[ProcessDatabase]:
    """A copy of the template of its own (its triggers must not reach other tests)."""
    data_dir = tmp_path / "data"
    admin_url = name = None
    if template.postgres is None:
        data_dir.mkdir()
        source = sqlite3.connect(template.data_dir / "holdfast.sqlite3")
        copy = sqlite3.connect(data_dir / "holdfast.sqlite3")
        try:
            source.backup(copy)  # what the WAL holds too
        finally:
            copy.close()
            source.close()
    else:
        admin_url, source = template.postgres
        name = f"{source}_{secrets.token_hex(2)}"
        await _create(admin_url, name, template=source)
    db = _process_database(data_dir, admin_url, name)
    try:
        yield db
    finally:
        await db.close()
        if admin_url is not None:
            await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def emptied(template: Template, database: ProcessDatabase) -> Timeline:
    return template.timeline


async def job(db: ProcessDatabase) -> tuple[str, int, str | None]:
    [row] = await db.rows("SELECT state, attempts, lease_owner FROM jobs")
    return row[0], row[1], row[2]


async def applied(db: ProcessDatabase) -> int:
    [(count,)] = await db.rows("SELECT COUNT(*) FROM test_applied")
    return int(count)


async def enqueue_blocked_rebuild(
    db: ProcessDatabase, timeline: Timeline, *, releasable: bool = False
) -> None:
    await db.block_rebuilds(releasable=releasable)
    out = db.holdfast("timelines", "rebuild", "--username", timeline.username, "--enqueue")
    assert out == "queued 1 home timeline rebuilds\n"


async def wait_until_blocked(db: ProcessDatabase) -> None:
    async def blocked() -> bool:
        return (await job(db))[0] == "running" and await db.job_is_blocked()

    await eventually(blocked)
    await asyncio.sleep(0.3)  # from its first statements to the third row
    assert await db.job_is_blocked()


async def test_a_worker_killed_mid_job_loses_nothing_and_applies_nothing_twice(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    await enqueue_blocked_rebuild(database, emptied)
    first = database.start("worker", "worker-1.log")
    await wait_until_blocked(database)

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    state, attempts, _ = await job(database)
    assert (state, attempts) == ("running", 1)  # claimed by a worker that is gone
    assert await applied(database) == 0  # its rows died with its transaction
    assert await entries_of(database, emptied.owner) == []

    await database.unblock_rebuilds()
    second = database.start("worker", "worker-2.log")

    async def done() -> bool:
        return (await job(database))[0] == "done"

    await eventually(done)
    assert await job(database) == ("done", 2, None)
    assert await entries_of(database, emptied.owner) == emptied.entries
    assert await applied(database) == len(emptied.entries)  # each row inserted once
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0


async def test_sigterm_lets_a_running_job_finish_within_the_grace_period(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    await enqueue_blocked_rebuild(database, emptied, releasable=True)
    worker = database.start("worker", "worker.log", HOLDFAST_JOBS__SHUTDOWN_GRACE_SECONDS="30")
    await wait_until_blocked(database)

    worker.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    if database.url is not None:
        await database.unblock_rebuilds()

    assert worker.wait(timeout=30) == 0
    # Finished by the stopping worker: one attempt (a job given back would be pending).
    assert await job(database) == ("done", 1, None)
    assert await entries_of(database, emptied.owner) == emptied.entries
    assert await applied(database) == len(emptied.entries)


async def test_sigterm_gives_a_job_that_outlasts_the_grace_period_back(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    await enqueue_blocked_rebuild(database, emptied)
    worker = database.start("worker", "worker.log", HOLDFAST_JOBS__SHUTDOWN_GRACE_SECONDS="0.5")
    await wait_until_blocked(database)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert await job(database) == ("pending", 0, None)
    assert await applied(database) == 0
    assert await entries_of(database, emptied.owner) == []

    await database.unblock_rebuilds()
    database.start("worker", "worker-2.log")

    async def done() -> bool:
        return (await job(database))[0] == "done"

    await eventually(done)
    assert await job(database) == ("done", 1, None)
    assert await entries_of(database, emptied.owner) == emptied.entries
    assert await applied(database) == len(emptied.entries)


async def test_serve_works_jobs_in_process_by_default(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    database.start("serve", "serve.log", HOLDFAST_PORT=str(free_port()))

    database.holdfast("timelines", "rebuild", "--username", emptied.username, "--enqueue")

    async def rebuilt() -> bool:
        return await entries_of(database, emptied.owner) == emptied.entries

    await eventually(rebuilt, within=15)
    assert (await job(database))[0] == "done"


@pytest.mark.redis
async def test_a_job_recorded_by_one_process_wakes_a_worker_in_another_over_redis(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    redis_url = need_service("TEST_REDIS_URL")
    database.env["HOLDFAST_REDIS_URL"] = redis_url
    # Without the wake-up the worker would not look for a minute.
    database.start("worker", "worker.log", HOLDFAST_JOBS__POLL_SECONDS="60")
    await asyncio.sleep(0.5)  # its first look is over

    database.holdfast("timelines", "rebuild", "--username", emptied.username, "--enqueue")

    async def rebuilt() -> bool:
        return await entries_of(database, emptied.owner) == emptied.entries

    await eventually(rebuilt, within=5)
    assert (await job(database))[0] == "done"


async def test_jobs_status_and_retry_dead_from_the_command_line(
    database: ProcessDatabase, emptied: Timeline
) -> None:
    database.holdfast("timelines", "rebuild", "--username", emptied.username, "--enqueue")
    queued = database.holdfast("jobs", "status")
    await database.script("UPDATE jobs SET state = 'dead', attempts = 8, last_error = 'x';")
    dead = database.holdfast("jobs", "status")
    other = database.holdfast("jobs", "retry-dead", "--name", "media.process")
    revived = database.holdfast("jobs", "retry-dead")
    refused = database.run("worker", "--concurrency", "0")

    assert queued == "pending=1 running=0 done=0 dead=0\n"
    assert dead == "pending=0 running=0 done=0 dead=1\n"
    assert other == "0 dead jobs pending again\n"
    assert revived == "1 dead jobs pending again\n"
    assert await job(database) == ("pending", 0, None)
    assert refused.returncode == 2
    assert "--concurrency" in refused.stderr

    # `jobs run` works what is due in the foreground: the rebuild, then nothing more.
    assert database.holdfast("jobs", "run") == "ran 1 jobs\n"
    assert (await job(database))[0] == "done"
    assert await entries_of(database, emptied.owner) == emptied.entries
    assert database.holdfast("jobs", "run") == "ran 0 jobs\n"


async def test_a_worker_killed_mid_fan_out_leaves_every_timeline_complete_once(
    database: ProcessDatabase,
) -> None:
    """The issue's case: a post is committed and its fan-out job recorded; the worker running
    the fan-out is SIGKILLed after writing some followers' entries; after a restart every
    follower's timeline has the post, each exactly once."""
    [(author, username)] = await database.rows(
        "SELECT u.id, u.username FROM users u JOIN follows f ON f.followee_id = u.id "
        "GROUP BY u.id, u.username ORDER BY COUNT(*) DESC, u.id LIMIT 1"
    )
    followers = {r[0] for r in await database.rows(
        f"SELECT follower_id FROM follows WHERE followee_id = {author}"
    )}  # fmt: skip
    assert len(followers) >= 4  # more entries than the trigger lets through before it blocks
    settings = {k: v for k, v in database.env.items() if k.startswith("HOLDFAST_")}
    web = start_server(database.data_dir, HOLDFAST_JOBS__WORK_IN_WEB="false", **settings)
    try:
        wait_until_up(web)
        async with httpx.AsyncClient(base_url=web.base, timeout=30) as http:
            gql = GraphQLClient(http)
            token = (await gql.log_in(username, SEED_PASSWORD))["session"]["accessToken"]
            data = await gql(CREATE_POST, {"input": {"text": "to every follower"}}, token=token)
    finally:
        stop_server(web)
    post = int(base64.b64decode(data["createPost"]["post"]["id"]).decode().partition(":")[2])
    # Committed and readable; its fan-out is owed, not done.
    assert await database.rows(f"SELECT author_id FROM posts WHERE id = {post}") == [(author,)]
    assert await database.rows("SELECT name, state FROM jobs") == [("home.fan_out_post", "pending")]
    assert await database.rows(f"SELECT owner_id FROM home_entries WHERE post_id = {post}") == []

    await database.block_rebuilds()  # the trigger holds any job after its third row
    first = database.start("worker", "fan-out-1.log")
    await wait_until_blocked(database)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert (await job(database))[:2] == ("running", 1)
    assert await applied(database) == 0  # the rows it wrote died with its transaction

    await database.unblock_rebuilds()
    second = database.start("worker", "fan-out-2.log")

    async def done() -> bool:
        return (await job(database))[0] == "done"

    await eventually(done)
    owners = await database.rows(f"SELECT owner_id FROM home_entries WHERE post_id = {post}")
    assert sorted(o for (o,) in owners) == sorted(followers | {author})  # once each
    assert await applied(database) == len(followers) + 1  # nothing inserted twice
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
