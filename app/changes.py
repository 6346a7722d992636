"""A change: one database transaction and the work it owes.

Services write through `async with changes.begin() as change:` instead of a bare transaction.
Inside, `change.conn` is the transaction; `change.publish(channel, event)` queues a live-update
event and `change.after_commit(callback)` queues any other follow-up. They run only once the
transaction has committed, so nothing is announced that a rollback undoes; if the transaction
fails, they are dropped with it.

`await change.enqueue(name, payload)` records a background job in the same transaction (the
transactional outbox, app/jobs): it exists exactly when the change does, and once committed it
is handed to the job queue, which runs it at least once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.jobs import outbox
from app.pubsub import Event, PubSub

if TYPE_CHECKING:
    from app.jobs.queue import JobQueue

log = logging.getLogger("holdfast.changes")


class Change:
    def __init__(self, conn: BaseDBAsyncClient, jobs: JobQueue | None = None) -> None:
        self.conn = conn
        self.events: list[tuple[str, Event]] = []
        self.callbacks: list[Callable[[], Awaitable[None]]] = []
        self.jobs: list[int] = []
        self._queue = jobs

    def publish(self, channel: str, event: Event) -> None:
        """Announce `event` on `channel` once the transaction has committed."""
        self.events.append((channel, event))

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.callbacks.append(callback)

    async def enqueue(self, name: str, payload: Mapping[str, Any], *, delay: float = 0) -> int:
        """Record the job `name` with `payload` (ids and small values) in this transaction, to
        run once it has committed (not before `delay` seconds); returns the job's id. An
        unknown name or a payload that is not small JSON raises ValueError."""
        if self._queue is None:
            raise RuntimeError("these changes have no job queue")
        encoded = self._queue.encode(name, payload)
        run_after = outbox.now() + timedelta(seconds=delay) if delay > 0 else None
        job_id = await outbox.record(self.conn, name, encoded, run_after)
        self.jobs.append(job_id)
        return job_id


class Changes:
    """Begins changes; what they publish goes to this process's pub/sub, the jobs they record
    to `jobs`."""

    def __init__(self, pubsub: PubSub, jobs: JobQueue | None = None) -> None:
        self.pubsub = pubsub
        self.jobs = jobs

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Change]:
        async with in_transaction() as conn:
            change = Change(conn, self.jobs)
            yield change
        await self.finish(change)

    async def finish(self, change: Change) -> None:
        """Run what a committed change owes. The change is already durable: a failure here
        must not fail the request (live updates are best effort; jobs are recovered from
        their outbox rows)."""
        for callback in change.callbacks:
            try:
                await callback()
            except Exception:
                log.exception("after-commit work failed")
        if change.jobs and self.jobs is not None:
            try:
                await self.jobs.hand_over()
            except Exception:
                log.exception("handing over %d jobs failed (workers find them)", len(change.jobs))
        if change.events:
            try:
                await self.pubsub.publish_many(change.events)
            except Exception:
                log.exception("publishing %d events failed", len(change.events))
