"""A worker: claims due jobs from the table, runs each handler in the transaction that marks
its job done, retries failures with backoff, and sweeps (expired leases, old done rows)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from app.jobs import outbox
from app.jobs.queue import JOBS_CHANNEL, DeadJob, backoff
from app.nodes import process_name
from app.pubsub import SlowConsumer

if TYPE_CHECKING:
    from app.changes import Changes
    from app.jobs.queue import JobQueue

log = logging.getLogger("holdfast.jobs")

ERROR_PAUSE_FIRST = 0.1
ERROR_PAUSE_MAX = 10.0
# After the grace period: how long cancelled jobs may take to roll back before they are given
# back (part of the longest stop, which infra/*.service's TimeoutStopSec must cover).
CANCEL_WAIT_SECONDS = 10.0


class _LostClaim(Exception):
    """The job was taken over by another worker after this one's lease ran out."""


class Worker:
    def __init__(self, queue: JobQueue, changes: Changes, *, owner: str | None = None) -> None:
        self.queue = queue
        self.settings = queue.settings
        self.changes = changes
        self.owner = owner or process_name("jobs")
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: dict[int, tuple[outbox.Claimed, asyncio.Task[None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._listen_task = asyncio.create_task(self._listen(), name="holdfast-jobs-wakeups")
        self._loop_task = asyncio.create_task(self._work(), name="holdfast-jobs-worker")
        log.info("job worker started: %s", self.owner)

    async def stop(self) -> None:
        """Stop claiming, give running jobs (and a claim under way) the grace period, then
        cancel what is left and give those jobs back."""
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace_seconds
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        if self._loop_task is not None:
            # A claim cut short could leave rows claimed that only their lease brings back.
            await asyncio.wait([self._loop_task], timeout=self.settings.shutdown_grace_seconds)
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        running = [task for _, task in self._running.values()]
        if running:
            log.info("waiting for %d running jobs", len(running))
            await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
        unfinished = [(job, task) for job, task in self._running.values() if not task.done()]
        for _, task in unfinished:
            task.cancel()
        if unfinished:
            # Cancelling leaves a running SQLite statement going in aiosqlite's thread.
            with contextlib.suppress(Exception):
                await outbox.interrupt_sqlite()
            await asyncio.wait([task for _, task in unfinished], timeout=CANCEL_WAIT_SECONDS)
            try:
                released = await outbox.release([job for job, _ in unfinished])
                log.info("gave %d unfinished jobs back to the queue", released)
            except Exception:
                # Their leases run out and another worker takes them.
                log.exception("could not give %d jobs back", len(unfinished))
        log.info("job worker stopped: %s", self.owner)

    async def run_due(self) -> int:
        """Run the jobs due now, one at a time, until none is (those they record included);
        returns how many ran. Failed ones are retried later, as by a worker."""
        ran = 0
        lease = self.settings.lease_seconds
        while claimed := await outbox.claim(self.owner, 1, lease, names=self.queue.names):
            for job in claimed:
                await self._attempt(job)
                ran += 1
        return ran

    async def _listen(self) -> None:
        """Turn wake-ups from every process into this worker's event; resubscribe after a gap
        (and look in the table then, since wake-ups may have been missed)."""
        pause = ERROR_PAUSE_FIRST
        while not self._stopping:
            try:
                async with self.queue.pubsub.subscribe([JOBS_CHANNEL], max_queue=64) as events:
                    self._wake.set()
                    pause = ERROR_PAUSE_FIRST
                    async for _ in events:
                        self._wake.set()
                return  # the pub/sub closed
            except SlowConsumer:
                self._wake.set()
            except (RedisError, OSError) as exc:
                log.warning("job wake-ups unavailable (%s); polling meanwhile", exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, ERROR_PAUSE_MAX)

    async def _work(self) -> None:
        pause = ERROR_PAUSE_FIRST
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self.settings.poll_seconds
                    await self._sweep()
                if self._stopping:
                    break
                free = self.settings.concurrency - len(self._running)
                claimed = await outbox.claim(
                    self.owner, free, self.settings.lease_seconds, names=self.queue.names
                )
                for job in claimed:
                    self._run(job)
                pause = ERROR_PAUSE_FIRST
                # Woken by a hand-over, a freed slot or a retry coming due; else the next sweep.
                timeout = max(0.0, next_sweep - loop.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job worker could not reach the jobs table; retrying in %.1fs", pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)  # stop() wakes it too
                pause = min(pause * 2, ERROR_PAUSE_MAX)

    async def _sweep(self) -> None:
        expired = await outbox.expire_leases(self.settings.max_attempts)
        if expired:
            log.warning("%d jobs lost their worker (lease expired)", expired)
        await outbox.purge_done(self.settings.keep_done_seconds)

    def _run(self, job: outbox.Claimed) -> None:
        task = asyncio.create_task(self._attempt(job), name=f"holdfast-job-{job.id}")
        self._running[job.id] = (job, task)

        def finished(_: asyncio.Task[None]) -> None:
            self._running.pop(job.id, None)
            self._wake.set()  # a slot is free

        task.add_done_callback(finished)

    async def _attempt(self, job: outbox.Claimed) -> None:
        try:
            async with self._renewing(job):
                commit = await self.queue.prepare(job.name, job.payload)
            async with self.changes.begin() as change:
                if not await outbox.hold(change.conn, job):
                    raise _LostClaim
                await commit(change)
                await outbox.complete(change.conn, job)
        except _LostClaim:
            log.warning("job %s (%s) was taken over by another worker", job.id, job.name)
        except asyncio.CancelledError:
            raise  # stop() gives the job back
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Being cancelled can surface as another error (on SQLite the interrupted
                # statement takes the transaction with it, and the savepoint's rollback
                # fails): not the job's failure; stop() gives it back.
                raise asyncio.CancelledError from exc
            dead = isinstance(exc, DeadJob) or job.attempts >= self.settings.max_attempts
            await self._failed(job, exc, retry=not dead)
        else:
            log.debug("job %s (%s) done", job.id, job.name)

    @contextlib.asynccontextmanager
    async def _renewing(self, job: outbox.Claimed) -> AsyncIterator[None]:
        """Renew the job's lease while its stage runs: no row lock holds it then, and a
        stage may outlast a lease (a slow vendor, a big image)."""
        if not self.queue.is_staged(job.name):
            yield
            return
        lease = self.settings.lease_seconds

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                try:
                    if not await outbox.extend(job, lease):
                        return  # taken over: the commit step's hold() will say so
                except Exception:
                    log.warning("could not renew the lease of job %s", job.id, exc_info=True)

        renewal = asyncio.create_task(renew(), name=f"holdfast-job-{job.id}-lease")
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal

    async def _failed(self, job: outbox.Claimed, exc: Exception, *, retry: bool) -> None:
        error = outbox.describe(exc)
        delay = backoff(job.attempts, self.settings) if retry else None
        retry_at = outbox.now() + timedelta(seconds=delay) if delay is not None else None
        if retry:
            log.warning(
                "job %s (%s) failed on attempt %d; retrying in %.2fs: %s",
                job.id,
                job.name,
                job.attempts,
                delay,
                error,
            )
        else:
            log.error(
                "job %s (%s) is dead after attempt %d: %s", job.id, job.name, job.attempts, error
            )
        # The traceback only at DEBUG: its frames may quote secrets that `describe` cuts out.
        log.debug("job %s (%s) failed", job.id, job.name, exc_info=exc)
        try:
            await outbox.fail(job, error, retry_at)
        except Exception:
            # The lease runs out and the job is taken again.
            log.exception("could not record the failure of job %s", job.id)
            return
        if delay is not None and delay < self.settings.poll_seconds:
            asyncio.get_running_loop().call_later(delay, self._wake.set)
