"""Background jobs in one process, on the test run's database: a job exists exactly when its
change committed, runs once when it succeeds, retries with growing delays until dead, is taken
again when its worker's lease runs out, and is never run by two workers at once."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette

from app import sql
from app.changes import Change, Changes
from app.jobs import DeadJob, JobQueue, backoff, outbox
from app.models import Job, JobState, User
from app.pubsub import LocalPubSub, PubSub
from app.settings import JobSettings

FAST = {
    "lease_seconds": 0.5,
    "backoff_first_seconds": 0.1,
    "backoff_max_seconds": 5,
    "poll_seconds": 0.1,
    "shutdown_grace_seconds": 0.3,
    "max_attempts": 4,
}


def job_settings(**overrides: Any) -> JobSettings:
    return JobSettings(**{**FAST, **overrides})


def make_queue(pubsub: PubSub | None = None, **overrides: Any) -> tuple[JobQueue, Changes]:
    pubsub = pubsub or LocalPubSub()
    queue = JobQueue(job_settings(**overrides), pubsub)
    return queue, Changes(pubsub, queue)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def job_row(job_id: int) -> Job:
    return await Job.get(id=job_id)


async def state_is(job_id: int, state: JobState) -> bool:
    return (await job_row(job_id)).state is state


@pytest.fixture
async def user(app: Starlette) -> User:
    return await User.create(
        username="worker_test",
        username_key="worker_test",
        email="worker_test@example.org",
        password_hash="x",
        display_name="W",
    )


async def append_to_bio(change: Change, user_id: int) -> None:
    """Not idempotent on purpose: each committed run leaves one more mark."""
    await sql.execute(
        "UPDATE users SET bio = bio || 'x' WHERE id = :id", {"id": user_id}, change.conn
    )


async def bio(user_id: int) -> str:
    return str((await User.get(id=user_id)).bio)


@pytest.fixture
async def running() -> AsyncIterator[list[JobQueue]]:
    """Queues whose workers a test started; stopped at the end whatever happens."""
    queues: list[JobQueue] = []
    yield queues
    for queue in queues:
        await queue.stop()


async def test_a_job_recorded_in_a_rolled_back_change_never_exists_nor_runs(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue()
    calls: list[dict[str, Any]] = []

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        calls.append(payload)

    queue.register("test.record", handler)
    await queue.start(changes)
    running.append(queue)

    async def enqueue_then_fail() -> None:
        async with changes.begin() as change:
            await change.enqueue("test.record", {"user": user.id})
            await append_to_bio(change, user.id)
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError, match="undo"):
        await enqueue_then_fail()
    await asyncio.sleep(0.5)  # several polls

    assert await Job.all().count() == 0
    assert calls == []
    assert await bio(user.id) == ""


async def test_a_committed_job_runs_once_and_commits_with_its_effects(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue()
    calls: list[dict[str, Any]] = []

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        calls.append(payload)
        await append_to_bio(change, payload["user"])

    queue.register("test.bio", handler)
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        job_id = await change.enqueue("test.bio", {"user": user.id})
    await eventually(lambda: state_is(job_id, JobState.DONE))
    await asyncio.sleep(0.5)  # sweeps and polls that must not run it again

    job = await job_row(job_id)
    assert calls == [{"user": user.id}]
    assert await bio(user.id) == "x"
    assert (job.attempts, job.lease_owner, job.last_error) == (1, None, None)
    assert job.finished_at is not None


async def test_a_staged_job_works_outside_a_transaction_then_commits_its_outcome(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue()
    stages = 0

    async def stage(payload: dict[str, Any]) -> Callable[[Change], Awaitable[None]]:
        nonlocal stages
        stages += 1
        # No transaction is open while a stage runs: a write of another change commits at
        # once (on SQLite's one connection it would wait for the open one, here for ever).
        async with changes.begin() as other:
            await sql.execute(
                "UPDATE users SET display_name = :name WHERE id = :id",
                {"name": f"stage {stages}", "id": payload["user"]},
                other.conn,
            )

        async def commit(change: Change) -> None:
            await append_to_bio(change, payload["user"])
            if stages == 1:
                raise RuntimeError("the first commit fails: the stage runs again")

        return commit

    queue.register_staged("test.staged", stage)
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        job_id = await change.enqueue("test.staged", {"user": user.id})
    await asyncio.wait_for(eventually(lambda: state_is(job_id, JobState.DONE)), 10)

    stored = await User.get(id=user.id)
    assert stages == 2
    assert stored.display_name == "stage 2"
    assert stored.bio == "x"  # the failed commit rolled back with its job's attempt
    assert (await job_row(job_id)).attempts == 2


async def test_a_stage_longer_than_the_lease_keeps_its_claim(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(lease_seconds=0.5, poll_seconds=0.05)
    stages = 0

    async def stage(payload: dict[str, Any]) -> Callable[[Change], Awaitable[None]]:
        nonlocal stages
        stages += 1
        await asyncio.sleep(1.6)  # three leases: only renewals keep it from being taken back

        async def commit(change: Change) -> None:
            await append_to_bio(change, payload["user"])

        return commit

    queue.register_staged("test.slow", stage)
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        job_id = await change.enqueue("test.slow", {"user": user.id})
    await eventually(lambda: state_is(job_id, JobState.DONE))

    job = await job_row(job_id)
    assert stages == 1
    assert (job.attempts, job.last_error) == (1, None)
    assert await bio(user.id) == "x"


def test_a_job_name_takes_one_handler_plain_or_staged() -> None:
    queue, _ = make_queue()

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        return None

    async def stage(payload: dict[str, Any]) -> Callable[[Change], Awaitable[None]]:
        return functools.partial(handler, payload=payload)

    queue.register("test.one", handler)
    with pytest.raises(ValueError, match="registered already"):
        queue.register_staged("test.one", stage)
    queue.register_staged("test.two", stage)
    assert queue.names == ["test.one", "test.two"]
    assert queue.encode("test.two", {"a": 1}) == '{"a":1}'


async def test_hand_over_wakes_the_worker_before_its_next_poll(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(poll_seconds=30)
    ran = asyncio.Event()

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        ran.set()

    queue.register("test.wake", handler)
    await queue.start(changes)
    running.append(queue)
    await asyncio.sleep(0.1)  # the worker's first look found nothing; next poll in 30 s

    async with changes.begin() as change:
        await change.enqueue("test.wake", {})

    await asyncio.wait_for(ran.wait(), 2)


async def test_a_failing_job_retries_with_growing_delays_then_is_dead(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(backoff_first_seconds=0.2, max_attempts=4)
    attempts: list[float] = []

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        attempts.append(time.monotonic())
        await append_to_bio(change, payload["user"])  # rolled back with the failure
        raise ConnectionError("upstream refused postgres://admin:hunter2@db.internal/x")

    queue.register("test.flaky", handler)
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        job_id = await change.enqueue("test.flaky", {"user": user.id})
    await eventually(lambda: state_is(job_id, JobState.DEAD))

    job = await job_row(job_id)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) == 4
    assert job.attempts == 4
    # Delays double from 0.2 s, each drawn from the upper half of its step.
    for step, gap in enumerate(gaps):
        assert 0.2 * 2**step * 0.5 - 0.02 <= gap <= 0.2 * 2**step + 0.3, gaps
    assert gaps[2] > gaps[0]
    assert job.last_error is not None
    assert job.last_error.startswith("ConnectionError: upstream refused")
    assert "hunter2" not in job.last_error
    assert await bio(user.id) == ""
    assert job.finished_at is not None


async def test_dead_job_raised_by_a_handler_is_not_retried(
    app: Starlette, running: list[JobQueue]
) -> None:
    queue, changes = make_queue()
    calls = 0

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        raise DeadJob("owner must be an integer")

    queue.register("test.hopeless", handler)
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        job_id = await change.enqueue("test.hopeless", {"owner": "x"})
    await eventually(lambda: state_is(job_id, JobState.DEAD))
    await asyncio.sleep(0.3)

    job = await job_row(job_id)
    assert (calls, job.attempts) == (1, 1)
    assert job.last_error == "DeadJob: owner must be an integer"


def test_backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() -> None:
    settings = job_settings(backoff_first_seconds=2, backoff_max_seconds=60)

    highest = [backoff(n, settings, rand=lambda: 1.0) for n in range(1, 8)]
    lowest = [backoff(n, settings, rand=lambda: 0.0) for n in range(1, 8)]

    assert highest == [2, 4, 8, 16, 32, 60, 60]
    assert lowest == [1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000, settings, rand=lambda: 1.0) == 60


async def test_a_lease_that_runs_out_is_taken_again(user: User, running: list[JobQueue]) -> None:
    queue, changes = make_queue(lease_seconds=0.3)
    queue.register("test.bio", lambda change, payload: append_to_bio(change, payload["user"]))
    async with changes.begin() as change:
        job_id = await change.enqueue("test.bio", {"user": user.id})
    # A worker claims the job and dies before running it: nothing but its lease is left.
    [lost] = await outbox.claim("dead-worker", 10, lease_seconds=0.3, names=["test.bio"])
    assert lost.id == job_id

    await queue.start(changes)
    running.append(queue)
    await eventually(lambda: state_is(job_id, JobState.DONE))

    job = await job_row(job_id)
    assert job.attempts == 2
    assert await bio(user.id) == "x"
    # The dead worker's claim is void: it can no longer complete or fail the job.
    assert not await outbox.fail(lost, "late", None)
    assert (await job_row(job_id)).state is JobState.DONE


async def test_a_job_whose_workers_keep_dying_ends_dead(
    app: Starlette, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(lease_seconds=0.2, max_attempts=2)
    queue.register("test.never", lambda change, payload: asyncio.sleep(0))
    async with changes.begin() as change:
        job_id = await change.enqueue("test.never", {})
    for _ in range(2):
        await eventually(lambda: state_is(job_id, JobState.PENDING))
        assert await outbox.claim("dying-worker", 10, lease_seconds=0.2, names=["test.never"])
        await asyncio.sleep(0.25)
        await outbox.expire_leases(max_attempts=2)

    job = await job_row(job_id)
    assert job.state is JobState.DEAD
    assert job.last_error == "worker lost (lease expired) on attempt 2"


async def test_two_workers_never_run_one_job(app: Starlette, running: list[JobQueue]) -> None:
    """Several workers with several slots each race for 100 jobs: each runs exactly once."""
    in_flight: set[int] = set()
    overlaps: list[int] = []
    runs: dict[int, list[str]] = {}
    queues = [make_queue(concurrency=2)[0] for _ in range(4)]
    for number, queue in enumerate(queues):

        async def handler(change: Change, payload: dict[str, Any], name: str = str(number)) -> None:
            job = payload["n"]
            if job in in_flight:
                overlaps.append(job)
            in_flight.add(job)
            runs.setdefault(job, []).append(name)
            await asyncio.sleep(0.002)
            in_flight.discard(job)

        queue.register("test.race", handler)
    enqueuing_queue, enqueuing = make_queue()
    enqueuing_queue.register("test.race", lambda change, payload: asyncio.sleep(0))
    async with enqueuing.begin() as change:
        for n in range(100):
            await change.enqueue("test.race", {"n": n})

    for queue in queues:
        await queue.start(Changes(queue.pubsub, queue))
        running.append(queue)
    await eventually(lambda: _all_done(100))

    assert overlaps == []
    assert sorted(runs) == list(range(100))
    assert all(len(names) == 1 for names in runs.values()), runs
    assert len({names[0] for names in runs.values()}) > 1  # the work was shared


async def test_simultaneous_claims_never_share_a_job(app: Starlette) -> None:
    queue, changes = make_queue()
    queue.register("test.race", lambda change, payload: asyncio.sleep(0))
    async with changes.begin() as change:
        for n in range(100):
            await change.enqueue("test.race", {"n": n})

    claimed: list[int] = []
    while True:
        batches = await asyncio.gather(
            *(
                outbox.claim(f"worker-{n}", 7, lease_seconds=60, names=["test.race"])
                for n in range(8)
            )
        )
        if not any(batches):
            break
        claimed += [job.id for batch in batches for job in batch]

    assert len(claimed) == 100
    assert len(set(claimed)) == 100


async def _all_done(count: int) -> bool:
    return await Job.filter(state=JobState.DONE).count() == count


async def test_stop_lets_running_jobs_finish_within_the_grace_period(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(shutdown_grace_seconds=5)
    started = asyncio.Event()

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(0.3)
        await append_to_bio(change, payload["user"])

    queue.register("test.slow", handler)
    await queue.start(changes)
    async with changes.begin() as change:
        job_id = await change.enqueue("test.slow", {"user": user.id})
    await asyncio.wait_for(started.wait(), 5)

    await queue.stop()

    assert await state_is(job_id, JobState.DONE)
    assert await bio(user.id) == "x"


async def test_stop_gives_jobs_that_outlast_the_grace_period_back(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue(shutdown_grace_seconds=0.2)
    started = asyncio.Event()
    never = asyncio.Event()

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        await append_to_bio(change, payload["user"])
        started.set()
        await never.wait()

    queue.register("test.stuck", handler)
    await queue.start(changes)
    async with changes.begin() as change:
        job_id = await change.enqueue("test.stuck", {"user": user.id})
    await asyncio.wait_for(started.wait(), 5)

    await queue.stop()

    job = await job_row(job_id)
    assert (job.state, job.attempts, job.lease_owner) == (JobState.PENDING, 0, None)
    assert await bio(user.id) == ""  # its half-done work was rolled back


async def test_a_handler_may_enqueue_further_jobs(user: User, running: list[JobQueue]) -> None:
    queue, changes = make_queue()

    async def parent(change: Change, payload: dict[str, Any]) -> None:
        for _ in range(3):
            await change.enqueue("test.bio", payload)

    queue.register("test.parent", parent)
    queue.register("test.bio", lambda change, payload: append_to_bio(change, payload["user"]))
    await queue.start(changes)
    running.append(queue)

    async with changes.begin() as change:
        await change.enqueue("test.parent", {"user": user.id})
    await eventually(lambda: _all_done(4))

    assert await bio(user.id) == "xxx"


async def test_bad_jobs_are_refused_before_anything_is_written(user: User) -> None:
    queue, changes = make_queue()
    queue.register("test.known", lambda change, payload: asyncio.sleep(0))

    async def enqueue(name: str, payload: dict[str, Any]) -> None:
        async with changes.begin() as change:
            await append_to_bio(change, user.id)
            await change.enqueue(name, payload)

    with pytest.raises(ValueError, match="no handler"):
        await enqueue("test.unknown", {})
    with pytest.raises(ValueError, match="not JSON"):
        await enqueue("test.known", {"when": object()})
    with pytest.raises(ValueError, match="bytes"):
        await enqueue("test.known", {"blob": "x" * 10_000})
    with pytest.raises(ValueError, match="registered already"):
        queue.register("test.known", lambda change, payload: asyncio.sleep(0))

    assert await Job.all().count() == 0
    assert await bio(user.id) == ""


async def test_a_worker_claims_only_jobs_it_has_handlers_for(
    user: User, running: list[JobQueue]
) -> None:
    # A rolling deploy: a newer process records a kind of job that older workers do not know.
    newer, newer_changes = make_queue()
    newer.register("test.bio", lambda change, payload: append_to_bio(change, payload["user"]))
    newer.register("test.new", lambda change, payload: append_to_bio(change, payload["user"]))
    older, older_changes = make_queue()
    older.register("test.bio", lambda change, payload: append_to_bio(change, payload["user"]))
    await older.start(older_changes)
    running.append(older)

    async with newer_changes.begin() as change:
        known = await change.enqueue("test.bio", {"user": user.id})
        unknown = await change.enqueue("test.new", {"user": user.id})
    await eventually(lambda: state_is(known, JobState.DONE))
    await asyncio.sleep(0.5)  # several polls

    left = await job_row(unknown)
    assert (left.state, left.attempts, left.last_error) == (JobState.PENDING, 0, None)
    assert await bio(user.id) == "x"

    await newer.start(newer_changes)
    running.append(newer)
    await eventually(lambda: state_is(unknown, JobState.DONE))
    assert await bio(user.id) == "xx"


async def test_a_payload_that_is_not_an_object_kills_its_job_only(
    user: User, running: list[JobQueue]
) -> None:
    queue, changes = make_queue()
    queue.register("test.bio", lambda change, payload: append_to_bio(change, payload["user"]))
    async with changes.begin() as change:
        good = [await change.enqueue("test.bio", {"user": user.id}) for _ in range(3)]
        bad = await change.enqueue("test.bio", {"user": user.id})
    # Written by hand (an old version, an operator): handlers take objects only.
    await sql.execute(
        "UPDATE jobs SET payload = :payload WHERE id = :id", {"payload": "[1, 2]", "id": bad}
    )

    claimed = await outbox.claim("one-worker", 10, lease_seconds=60, names=["test.bio"])

    assert sorted(job.id for job in claimed) == good
    dead = await job_row(bad)
    assert dead.state is JobState.DEAD
    assert dead.last_error == "BadPayload: the payload is a JSON list, not an object"
    assert dead.finished_at is not None
    assert await Job.filter(state=JobState.RUNNING).count() == 3


async def test_done_jobs_are_purged_by_when_they_finished(user: User) -> None:
    queue, changes = make_queue()
    queue.register("test.bio", lambda change, payload: asyncio.sleep(0))
    long_ago = outbox.now() - timedelta(days=3)
    async with changes.begin() as change:
        # Due long ago, but finished just now (after retries, or a long queue): kept.
        recent = await change.enqueue("test.bio", {})
        old = await change.enqueue("test.bio", {})
    await Job.filter(id__in=[recent, old]).update(run_after=long_ago)
    await Job.filter(id=recent).update(state=JobState.DONE, finished_at=outbox.now())
    await Job.filter(id=old).update(state=JobState.DONE, finished_at=long_ago + timedelta(hours=1))

    purged = await outbox.purge_done(keep_seconds=86_400)

    assert purged == 1
    assert [job.id for job in await Job.all()] == [recent]


async def test_a_failed_jobs_traceback_is_logged_at_debug_only(
    user: User, running: list[JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    queue, changes = make_queue(max_attempts=1)

    async def handler(change: Change, payload: dict[str, Any]) -> None:
        raise ConnectionError("refused postgres://admin:hunter2@db.internal/x")

    queue.register("test.leaky", handler)
    with caplog.at_level(logging.DEBUG, logger="holdfast.jobs"):
        await queue.start(changes)
        running.append(queue)
        async with changes.begin() as change:
            job_id = await change.enqueue("test.leaky", {})
        await eventually(lambda: state_is(job_id, JobState.DEAD))
        await eventually(lambda: _logged_traceback(caplog))

    [traced] = [r for r in caplog.records if r.exc_info and r.name == "holdfast.jobs"]
    louder = [r for r in caplog.records if r.levelno >= logging.INFO and r.name == "holdfast.jobs"]
    assert traced.levelno == logging.DEBUG
    assert "hunter2" in str(traced.exc_info[1] if traced.exc_info else None)
    assert louder
    assert all("hunter2" not in r.getMessage() and not r.exc_info for r in louder)


async def _logged_traceback(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.exc_info for r in caplog.records if r.name == "holdfast.jobs")
