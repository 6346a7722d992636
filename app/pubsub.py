"""Publish/subscribe for live updates: in-process by default, Redis across processes.

Events are small: a kind and ids (`Event`); whoever delivers one loads and permission-checks
what it refers to. A subscriber reads its channels through a bounded queue: one that stops
reading overflows its queue and is cut off (`SlowConsumer`) instead of holding up the
publisher or anyone else. A subscriber that may have missed events (the Redis connection
dropped and came back) receives `MISSED`, so that its client can refetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, by id: `kind` (e.g. "post.created") and `data` (ids and small
    values only)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps({"kind": self.kind, "data": self.data})

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        value = orjson.loads(raw)
        return cls(kind=str(value["kind"]), data=dict(value.get("data") or {}))


# Delivered to every subscriber after a gap in which events may have been lost.
MISSED = Event("missed")

DEFAULT_QUEUE_SIZE = 256


class SlowConsumer(Exception):
    """The subscriber's queue overflowed: it read too slowly and was cut off."""


class Subscription:
    """One subscriber's events, in order, from the channels it asked for."""

    def __init__(self, channels: frozenset[str], max_queue: int) -> None:
        self.channels = channels
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(max_queue + 1)
        self._max_queue = max_queue
        self.overflowed = False
        self.closed = False

    def offer(self, event: Event) -> None:
        """Queue an event without waiting; a full queue cuts the subscriber off."""
        if self.closed:
            return
        if self._queue.qsize() >= self._max_queue:
            self.overflowed = True
            self.close()
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)  # the spare slot: always room for the end marker

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            if event is None:
                if self.overflowed:
                    raise SlowConsumer
                return
            yield event


class Hub:
    """This process's subscribers by channel: what every pub/sub backend delivers into."""

    def __init__(self) -> None:
        self._by_channel: dict[str, set[Subscription]] = {}

    @property
    def channels(self) -> list[str]:
        return list(self._by_channel)

    def add(self, subscription: Subscription) -> list[str]:
        """Register a subscriber; returns the channels that had no subscriber before."""
        fresh = []
        for channel in subscription.channels:
            subscribers = self._by_channel.setdefault(channel, set())
            if not subscribers:
                fresh.append(channel)
            subscribers.add(subscription)
        return fresh

    def remove(self, subscription: Subscription) -> list[str]:
        """Unregister a subscriber; returns the channels that have no subscriber left."""
        emptied = []
        for channel in subscription.channels:
            subscribers = self._by_channel.get(channel)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_channel[channel]
                emptied.append(channel)
        return emptied

    def deliver(self, channel: str, event: Event) -> None:
        for subscription in list(self._by_channel.get(channel, ())):
            subscription.offer(event)

    def deliver_all(self, event: Event) -> None:
        """To every subscriber once (e.g. `MISSED`)."""
        everyone = {s for subscribers in self._by_channel.values() for s in subscribers}
        for subscription in everyone:
            subscription.offer(event)

    def close_all(self) -> None:
        for subscribers in list(self._by_channel.values()):
            for subscription in list(subscribers):
                subscription.close()


class PubSub(Protocol):
    async def start(self) -> None:
        """Connect (and start listening); called by the application's lifespan."""

    async def close(self) -> None:
        """Stop listening and end every subscription."""

    async def publish(self, channel: str, event: Event) -> None:
        """Send an event to every subscriber of `channel`, in every process."""

    async def publish_many(self, messages: Iterable[tuple[str, Event]]) -> None:
        """Send several events at once (one round trip where the backend allows)."""

    def subscribe(
        self, channels: Iterable[str], *, max_queue: int = DEFAULT_QUEUE_SIZE
    ) -> Any:  # an async context manager of Subscription
        """`async with pubsub.subscribe([...]) as events: async for event in events: ...`"""


class LocalPubSub:
    """Every subscriber in this process: the embedded default (one process plays every role)."""

    def __init__(self) -> None:
        self.hub = Hub()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.hub.close_all()

    async def publish(self, channel: str, event: Event) -> None:
        self.hub.deliver(channel, event)

    async def publish_many(self, messages: Iterable[tuple[str, Event]]) -> None:
        for channel, event in messages:
            self.hub.deliver(channel, event)

    @asynccontextmanager
    async def subscribe(
        self, channels: Iterable[str], *, max_queue: int = DEFAULT_QUEUE_SIZE
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(frozenset(channels), max_queue)
        self.hub.add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()
            self.hub.remove(subscription)


def pubsub_from_url(redis_url: str | None) -> PubSub:
    """In-process without a Redis URL; Redis (every process sharing it) with one."""
    if redis_url is None:
        return LocalPubSub()
    from app.redis_pubsub import RedisPubSub

    return RedisPubSub(redis_url)
