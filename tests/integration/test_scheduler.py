"""The scheduler role (app/hosting/schedule.py): `backup.create` enqueued once per
`backup.every_hours`, judged from the backups themselves and the job still waiting; a second
scheduler waits for the first's lease; the job backs up and prunes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from starlette.applications import Starlette

from app.hosting.backup import backup_storage, list_backups
from app.hosting.schedule import CREATE_BACKUP, LEASE, run_scheduler
from app.models import Job, JobState
from app.services import Services
from app.settings import Settings
from app.storage import lease
from tests.support import GraphQLClient

LEASE_SECONDS = 1.5


@pytest.fixture
def services(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
async def clean_backups(services: Services) -> AsyncIterator[None]:
    """The shared app's backups (the job handler uses its settings) removed afterwards."""
    yield
    storage = backup_storage(services.settings)
    try:
        for obj in (await storage.list(services.settings.backup.prefix)).objects:
            await storage.delete(obj.key)
    finally:
        await storage.close()


@contextlib.asynccontextmanager
async def scheduling(settings: Settings, services: Services) -> AsyncIterator[asyncio.Event]:
    """A scheduler running while inside; setting the event it yields stops it (as SIGTERM
    does), and it must then end cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_scheduler(settings, services.changes, stop, lease_seconds=LEASE_SECONDS)
    )
    try:
        yield stop
        assert stop.is_set() or not task.done()  # it ran until asked to stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)  # stops cleanly when asked


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def jobs() -> int:
    return await Job.filter(name=CREATE_BACKUP).count()


def every(settings: Settings, hours: float) -> Settings:
    backup = settings.backup.model_copy(update={"every_hours": hours})
    return settings.model_copy(update={"backup": backup})


async def test_one_backup_job_per_period(
    services: Services, clean_backups: None, gql: GraphQLClient
) -> None:
    settings = services.settings  # the job's handler backs up with these
    # An empty database (a fresh fleet's) is not backed up: the job runs and stores nothing.
    async with services.changes.begin() as change:
        await change.enqueue(CREATE_BACKUP, {"requested_at": "2000-01-01T00:00:00+00:00"})
    assert await services.jobs.run_due(services.changes) == 1
    storage = backup_storage(settings)
    try:
        assert await list_backups(settings, storage) == []
    finally:
        await storage.close()
    await Job.filter(name=CREATE_BACKUP).delete()
    await gql.sign_up("alice")  # user data
    # No backup yet: one job at once, and no second within the period.
    async with scheduling(settings, services):
        await eventually(lambda: has(1))
        await asyncio.sleep(LEASE_SECONDS)
        assert await jobs() == 1
    # Restarted while the job still waits: not enqueued again.
    async with scheduling(settings, services):
        await asyncio.sleep(LEASE_SECONDS)
        assert await jobs() == 1

    # A worker runs it: a backup, made outside the job's transaction (a staged job).
    assert services.jobs.is_staged(CREATE_BACKUP)
    assert await services.jobs.run_due(services.changes) == 1
    assert await Job.filter(name=CREATE_BACKUP, state=JobState.DONE).count() == 1
    storage = backup_storage(settings)
    try:
        (backup,) = await list_backups(settings, storage)
        assert backup.tables["jobs"].rows >= 1
        # Run again (a job runs at least once): a backup newer than it was asked for exists.
        async with services.changes.begin() as change:
            await change.enqueue(CREATE_BACKUP, {"requested_at": backup.created_at.isoformat()})
        assert await services.jobs.run_due(services.changes) == 1
        assert await list_backups(settings, storage) == [backup]

        # Restarted with that backup younger than the period: nothing to do.
        before = await jobs()
        async with scheduling(settings, services):
            await asyncio.sleep(LEASE_SECONDS)
            assert await jobs() == before
        # A period of a second and a half, the backup older than that: one job now, the
        # next a period later.
        short = every(settings, LEASE_SECONDS / 3600)
        await asyncio.sleep(LEASE_SECONDS)
        async with scheduling(short, services):
            await eventually(lambda: has(before + 1))
            await asyncio.sleep(LEASE_SECONDS * 0.5)
            assert await jobs() == before + 1
    finally:
        await storage.close()


async def has(n: int) -> bool:
    return await jobs() >= n


async def test_a_second_scheduler_waits_for_the_lease(
    services: Services, clean_backups: None
) -> None:
    settings = services.settings
    async with scheduling(settings, services) as stop_first:
        await eventually(lambda: has(1))
        holding = await lease.holder(LEASE)
        assert holding is not None
        async with scheduling(settings, services):
            await asyncio.sleep(LEASE_SECONDS * 2)  # more than a lease: the first renews it
            assert await lease.holder(LEASE) is not None
            assert (await lease.holder(LEASE) or ("",))[0] == holding[0]
            assert await jobs() == 1
            # The first stops (SIGTERM): the second takes over, and does not enqueue the job
            # that is still waiting.
            stop_first.set()

            async def taken_over() -> bool:
                current = await lease.holder(LEASE)
                return current is not None and current[0] != holding[0]

            await eventually(taken_over)
            await asyncio.sleep(LEASE_SECONDS / 2)
            assert await jobs() == 1
    assert await lease.holder(LEASE) is None  # given back on a clean stop


@pytest.mark.no_database
def test_the_scheduler_command_stops_on_sigterm(tmp_path: Path) -> None:
    """Checked by the process tests' pattern: started, then SIGTERM, exit 0."""
    import os
    import signal
    import subprocess
    import sys

    from tests.support import holdfast_env

    holdfast = str(Path(sys.executable).with_name("holdfast"))
    env = holdfast_env(tmp_path, HOLDFAST_BACKUP__EVERY_HOURS="1", HOLDFAST_LOG_LEVEL="INFO")
    subprocess.run([holdfast, "migrate"], env=env, check=True, capture_output=True)
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        process = subprocess.Popen([holdfast, "scheduler"], env=env, stderr=out, stdout=out)
        try:
            deadline = time.monotonic() + 30
            while "backup job enqueued" not in log.read_text(errors="replace"):
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.1)
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(20) == 0, log.read_text(errors="replace")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.no_database
@pytest.mark.parametrize("schedule_in_web", [True, False])
def test_serve_schedules_backups_unless_told_not_to(tmp_path: Path, schedule_in_web: bool) -> None:
    """The embedded default plays every role: `holdfast serve` runs the scheduler loop (under
    the same lease) unless `jobs.schedule_in_web` is off, as the infra files set it where a
    scheduler runs."""
    import os
    import signal
    import subprocess
    import sys

    from tests.support import free_port, holdfast_env

    holdfast = str(Path(sys.executable).with_name("holdfast"))
    env = holdfast_env(
        tmp_path,
        HOLDFAST_BACKUP__EVERY_HOURS="1",
        HOLDFAST_LOG_LEVEL="INFO",
        HOLDFAST_PORT=str(free_port()),
        HOLDFAST_JOBS__SCHEDULE_IN_WEB=str(schedule_in_web).lower(),
    )
    subprocess.run([holdfast, "migrate"], env=env, check=True, capture_output=True)
    log = tmp_path / "serve.log"
    wanted = "backup job enqueued" if schedule_in_web else "Application startup complete"
    with log.open("wb") as out:
        process = subprocess.Popen([holdfast, "serve"], env=env, stderr=out, stdout=out)
        try:
            deadline = time.monotonic() + 30
            while wanted not in log.read_text(errors="replace"):
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.1)
            if not schedule_in_web:
                time.sleep(1)  # room for a scheduler that should not be there to start
            os.kill(process.pid, signal.SIGTERM)
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert process.wait(30) == -signal.SIGTERM, log.read_text(errors="replace")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text(errors="replace")
    assert ("scheduler lease taken" in text) is schedule_in_web, text
