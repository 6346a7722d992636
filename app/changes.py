"""A change: one database transaction and the work it owes.

Services write through `async with changes.begin() as change:` instead of a bare transaction.
Inside, `change.conn` is the transaction; `change.publish(channel, event)` queues a live-update
event and `change.after_commit(callback)` queues any other follow-up. They run only once the
transaction has committed, so nothing is announced that a rollback undoes; if the transaction
fails, they are dropped with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from app.pubsub import Event, PubSub

log = logging.getLogger("holdfast.changes")


class Change:
    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.events: list[tuple[str, Event]] = []
        self.callbacks: list[Callable[[], Awaitable[None]]] = []

    def publish(self, channel: str, event: Event) -> None:
        """Announce `event` on `channel` once the transaction has committed."""
        self.events.append((channel, event))

    def after_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.callbacks.append(callback)


class Changes:
    """Begins changes; what they publish goes to this process's pub/sub."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Change]:
        async with in_transaction() as conn:
            change = Change(conn)
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
        if change.events:
            try:
                await self.pubsub.publish_many(change.events)
            except Exception:
                log.exception("publishing %d events failed", len(change.events))
