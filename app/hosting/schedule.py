"""The scheduler role's backups: `holdfast scheduler` enqueues the job `backup.create` every
`backup.every_hours`, and a worker runs it (a backup, then the retention policy's prune).

A fleet runs web and worker processes by the dozen but exactly one scheduler. One started by
mistake beside it must not double the work, so the scheduler holds the lease `scheduler`
(app/storage/lease.py, in the database every role shares) while it schedules: a second one
waits for the lease and takes over only when the first stops or dies (its lease runs out).

A database holding no user data (a fresh fleet's: rows only in the jobs, migrations, leases
and fleet nodes) is not backed up, so that `restore latest` never finds an empty backup newer
than the real ones (`latest_backup` skips any made by hand, too).

When the last backup was taken is read from the backups themselves (`latest_backup`), so a
restarted scheduler does not back up again before the period is over, and a job already
waiting (enqueued just before a restart) is not enqueued twice. The job is durable (a row of
the outbox, app/jobs): a scheduler that dies after enqueueing loses nothing, and the worker
that runs it may be anywhere. A job runs at least once: one asked for at `requested_at` skips
the backup when a newer one exists already, and only prunes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import BaseORMException

from app.changes import Change, Changes
from app.hosting.backup import (
    BackupError,
    NoUserData,
    backup_storage,
    create_backup,
    latest_backup,
    prune,
)
from app.jobs import DeadJob, JobQueue
from app.jobs.queue import Commit
from app.models import Job, JobState
from app.settings import Settings
from app.storage import lease
from app.storage.lease import LeaseHeld, LeaseLost

log = logging.getLogger("holdfast.scheduler")

CREATE_BACKUP = "backup.create"
LEASE = "scheduler"
LEASE_SECONDS = 60.0
_RETRY_SECONDS = 60.0  # after the backup storage could not be listed


class BackupJob:
    """The handler of `backup.create` ({"requested_at": ISO time})."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def register(self, jobs: JobQueue) -> None:
        # Staged: the dump (pg_dump, SQLite's backup API) and the uploads run outside any
        # transaction; a job's transaction would stay open for the whole backup (on SQLite,
        # holding the one connection every other write waits for).
        jobs.register_staged(CREATE_BACKUP, self.stage)

    async def stage(self, payload: dict[str, Any]) -> Commit:
        """Back up (unless a backup newer than the request exists) and prune; the commit,
        in the job's transaction, has nothing left to do."""
        try:
            requested_at = datetime.fromisoformat(str(payload["requested_at"]))
        except (KeyError, ValueError):
            raise DeadJob(f"no requested_at time: {payload!r}") from None
        storage = backup_storage(self.settings)
        try:
            newest = await latest_backup(self.settings, storage)
            if newest is not None and newest.created_at >= requested_at:
                log.info("backup %s is newer than this job: not backing up again", newest.id)
            else:
                try:
                    await create_backup(self.settings, storage, require_user_data=True)
                except NoUserData as exc:
                    log.info("%s", exc)  # a fresh fleet: its empty database is no backup
            await prune(self.settings, storage)
        finally:
            await storage.close()
        return _nothing


async def _nothing(change: Change) -> None:
    """The commit of a staged backup job: the backup is stored already."""


async def run_scheduler(
    settings: Settings,
    changes: Changes,
    stop: asyncio.Event,
    *,
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    """Schedule until `stop` is set, while holding the scheduler lease (waiting for it as
    long as another scheduler holds it)."""
    waiting = False
    while not stop.is_set():
        try:
            async with lease.hold(lease_seconds, role="scheduler", name=LEASE) as held:
                log.info("scheduler lease taken: scheduling")
                waiting = False
                await _schedule(settings, changes, stop, held)
        except LeaseHeld as exc:
            if not waiting:
                log.warning("another scheduler is running (%s): waiting for it to stop", exc)
                waiting = True
            until = (exc.expires_at - datetime.now(UTC)).total_seconds()
            await _sleep(stop, max(0.05, min(until, lease_seconds / 3)))
        except LeaseLost as exc:
            log.warning("scheduler lease lost (%s): waiting to take it again", exc)
        except (BaseORMException, OSError) as exc:
            # The database is away: the lease with it. Outlive the outage, as workers do.
            log.error("scheduler: the database failed (%s: %s); retrying", type(exc).__name__, exc)
            await _sleep(stop, lease_seconds / 3)


async def _schedule(
    settings: Settings, changes: Changes, stop: asyncio.Event, held: lease.Lease
) -> None:
    every = settings.backup.every_hours
    watch = held.seconds / 3  # how often the lease is looked at while waiting
    if every is None:
        log.info("backup.every_hours is unset: no backups are scheduled")
        while not stop.is_set():
            held.check()
            await _sleep(stop, watch)
        return
    period = timedelta(hours=every)
    next_at: datetime | None = None
    while not stop.is_set():
        held.check()
        now = datetime.now(UTC)
        if next_at is None:
            try:
                next_at = await _next_backup(settings, period, now)
            except BackupError as exc:
                log.error("cannot tell when the last backup was taken: %s", exc)
                await _sleep(stop, min(_RETRY_SECONDS, watch))
                continue
        if now >= next_at:
            held.check()
            async with changes.begin() as change:
                await change.enqueue(CREATE_BACKUP, {"requested_at": now.isoformat()})
            log.info("backup job enqueued")
            next_at = now + period
        await _sleep(stop, min((next_at - datetime.now(UTC)).total_seconds(), watch))


async def _next_backup(settings: Settings, period: timedelta, now: datetime) -> datetime:
    """When the next backup is due: a period after the newest backup, or after a backup job
    still waiting to run; now when there is neither."""
    waiting = (
        await Job.filter(name=CREATE_BACKUP, state__in=(JobState.PENDING, JobState.RUNNING))
        .order_by("-created_at")
        .first()
    )
    if waiting is not None:
        return max(waiting.created_at + period, now)
    storage = backup_storage(settings)
    try:
        newest = await latest_backup(settings, storage)
    finally:
        await storage.close()
    return newest.created_at + period if newest is not None else now


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
