"""The job queue: handlers by name, the hand-over of committed jobs, and this process's worker."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from app.pubsub import Event, PubSub
from app.settings import JobSettings

if TYPE_CHECKING:
    from app.changes import Change, Changes
    from app.jobs.worker import Worker

Handler = Callable[["Change", dict[str, Any]], Awaitable[None]]
"""`async def handler(change, payload)`: does the job's work through `change.conn` (the
transaction that also marks the job done) and publishes through `change`. It may run more than
once for one job (a retry after a failure), so it must be idempotent."""

Commit = Callable[["Change"], Awaitable[None]]
Stage = Callable[[dict[str, Any]], Awaitable[Commit]]
"""`async def stage(payload) -> commit`: a job whose slow part (a vendor's I/O, decoding an
image) must not hold a database transaction open (on SQLite it would stop every other write).
The stage runs first, outside any transaction, and returns `commit(change)`, which runs in the
transaction that marks the job done. The worker renews the job's lease while the stage runs.
Both may run more than once, and a stage may run while another worker's stage of the same job
runs (after the lease expired all the same: a worker cut off from the database): the commit
step decides, under its row locks, whether the stage's work still applies. A stage whose claim
was lost never has its commit run."""


async def nothing(change: Change) -> None:
    """The commit step of a stage that found nothing to record."""


# Wake-ups for workers in every process; what they carry does not matter (a worker looks in the
# jobs table), so a lost one only delays a job until the next poll.
JOBS_CHANNEL = "jobs"
WAKE = Event("jobs.ready")

MAX_NAME = 100  # the column's size
MAX_PAYLOAD = 8_192  # bytes of JSON: ids and small values, like events


class DeadJob(Exception):
    """Raised by a handler for a job that can never succeed (e.g. a malformed payload): it is
    marked dead at once, keeping this message, instead of being retried."""


def backoff(
    attempt: int, settings: JobSettings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before retrying after failed attempt number `attempt` (1, 2, ...): doubling from
    `backoff_first_seconds` up to `backoff_max_seconds`, each drawn from its upper half so that
    jobs that failed together do not retry together."""
    return settings.backoff_ceiling(attempt) * (0.5 + rand() / 2)


class JobQueue:
    """What can be run (`register`), how a committed change hands its jobs over (`hand_over`),
    and this process's worker (`start` / `stop`), when it works jobs."""

    def __init__(self, settings: JobSettings, pubsub: PubSub) -> None:
        self.settings = settings
        self.pubsub = pubsub
        self._handlers: dict[str, Handler] = {}
        self._stages: dict[str, Stage] = {}
        self.worker: Worker | None = None

    def register(self, name: str, handler: Handler) -> None:
        self._check_new(name)
        self._handlers[name] = handler

    def register_staged(self, name: str, stage: Stage) -> None:
        """Register a job whose work starts outside the transaction (`Stage`)."""
        self._check_new(name)
        self._stages[name] = stage

    def _check_new(self, name: str) -> None:
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a job name has 1 to {MAX_NAME} characters: {name!r}")
        if name in self._handlers or name in self._stages:
            raise ValueError(f"a handler for {name!r} is registered already")

    def is_staged(self, name: str) -> bool:
        return name in self._stages

    async def prepare(self, name: str, payload: dict[str, Any]) -> Commit:
        """What runs in the job's transaction: a staged job's stage is run first (outside
        any transaction) for it. LookupError for a name without a handler."""
        stage = self._stages.get(name)
        if stage is not None:
            return await stage(payload)
        handler = self._handlers.get(name)
        if handler is None:
            raise LookupError(f"no handler for job {name!r} in this process")

        async def commit(change: Change) -> None:
            await handler(change, payload)

        return commit

    @property
    def names(self) -> list[str]:
        return sorted([*self._handlers, *self._stages])

    def encode(self, name: str, payload: Mapping[str, Any]) -> str:
        """The payload as stored, for a job that can be run: an unknown name or a payload that
        is not small JSON is a programming error, refused before anything is written."""
        if name not in self._handlers and name not in self._stages:
            raise ValueError(f"no handler is registered for job {name!r}")
        try:
            encoded = orjson.dumps(dict(payload))
        except TypeError as exc:
            raise ValueError(f"the payload of {name!r} is not JSON: {exc}") from None
        if len(encoded) > MAX_PAYLOAD:
            raise ValueError(f"the payload of {name!r} has more than {MAX_PAYLOAD} bytes")
        return encoded.decode()

    async def hand_over(self) -> None:
        """After a commit that recorded jobs: wake the workers of every process (with Redis;
        this process's otherwise). Best effort: workers also poll the table."""
        if self.worker is not None:
            self.worker.wake()
        await self.pubsub.publish(JOBS_CHANNEL, WAKE)

    async def start(self, changes: Changes, *, owner: str | None = None) -> None:
        """Work jobs in this process until `stop`."""
        from app.jobs.worker import Worker

        if self.worker is not None:
            raise RuntimeError("this queue's worker is running already")
        self.worker = Worker(self, changes, owner=owner)
        await self.worker.start()

    async def run_due(self, changes: Changes) -> int:
        """Run every job that is due now in this task, then return how many ran: for
        `holdfast jobs run` (work a queue from cron, or drain it before a maintenance
        window) and for tests that need a change's jobs done before they look."""
        from app.jobs.worker import Worker

        return await Worker(self, changes).run_due()

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, then give the rest
        back to the queue."""
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop()
