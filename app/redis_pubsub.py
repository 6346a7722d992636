"""Pub/sub across processes over Redis.

One Redis connection per process listens; it is subscribed to exactly the channels this
process's subscribers want (counted in the `Hub`), and hands each message to their bounded
queues without waiting, so reading Redis never stalls on a slow subscriber (Redis would cut
off the whole process at its pub/sub output-buffer limit). The listener is supervised: when
the connection drops, it reconnects with exponential backoff, subscribes again, and tells
every subscriber `MISSED`, since events published meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.pubsub import DEFAULT_QUEUE_SIZE, MISSED, Event, Hub, Subscription

log = logging.getLogger("holdfast.pubsub")

# Pub/sub channels are global to a Redis server, not per database: the database number is part
# of the prefix, so that deployments (and test runs) on one server sharing no database do not
# hear each other.
PREFIX = "holdfast:live:{db}:"
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 5.0


class RedisPubSub:
    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        self._url = url
        db = redis.connection.parse_url(url).get("db", 0)
        self._prefix = prefix.format(db=db)
        self.hub = Hub()
        self._client: redis.Redis | None = None
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.reconnects = 0  # how many times the listener came back after losing Redis

    async def start(self) -> None:
        self._client = redis.Redis.from_url(self._url, health_check_interval=10)
        self._listener = asyncio.create_task(self._listen(), name="holdfast-pubsub-listener")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.hub.close_all()

    def _client_or_fail(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("RedisPubSub.start() was not called")
        return self._client

    async def publish(self, channel: str, event: Event) -> None:
        await self._client_or_fail().publish(self._prefix + channel, event.encode())

    async def publish_many(self, messages: Iterable[tuple[str, Event]]) -> None:
        pipeline = self._client_or_fail().pipeline(transaction=False)
        count = 0
        for channel, event in messages:
            pipeline.publish(self._prefix + channel, event.encode())
            count += 1
        if count:
            await pipeline.execute()

    @asynccontextmanager
    async def subscribe(
        self, channels: Iterable[str], *, max_queue: int = DEFAULT_QUEUE_SIZE
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(frozenset(channels), max_queue)
        fresh = self.hub.add(subscription)
        try:
            if fresh:
                await self._sync(subscribe=fresh)
            yield subscription
        finally:
            subscription.close()
            emptied = self.hub.remove(subscription)
            if emptied:
                with contextlib.suppress(RedisError, OSError):
                    await self._sync(unsubscribe=emptied)

    async def _sync(self, subscribe: Iterable[str] = (), unsubscribe: Iterable[str] = ()) -> None:
        """Tell Redis about channels gained or lost. While the listener is reconnecting there
        is no connection: it subscribes to everything the hub holds when it is back."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                if subscribe := list(subscribe):
                    await pubsub.subscribe(*(self._prefix + c for c in subscribe))
                if unsubscribe := list(unsubscribe):
                    await pubsub.unsubscribe(*(self._prefix + c for c in unsubscribe))
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # The listener notices the broken connection and resubscribes everything.
                log.warning("pub/sub connection lost while (un)subscribing")

    async def _listen(self) -> None:
        delay = BACKOFF_FIRST
        connected_before = False
        while True:
            try:
                await self._connect()
                if connected_before:
                    # Whatever was published while the connection was down is gone.
                    self.reconnects += 1
                    self.hub.deliver_all(MISSED)
                    log.info("pub/sub listener reconnected")
                connected_before = True
                delay = BACKOFF_FIRST
                await self._read()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("pub/sub listener lost Redis (%s); retrying in %.2fs", exc, delay)
            await self._drop_connection()
            await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 (jitter)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _connect(self) -> None:
        async with self._lock:
            pubsub = self._client_or_fail().pubsub(ignore_subscribe_messages=True)
            channels = self.hub.channels
            # A placeholder channel keeps the connection in subscribed mode when this process
            # has no subscribers yet, so `get_message` has a connection to wait on.
            await pubsub.subscribe(self._prefix + "-", *(self._prefix + c for c in channels))
            self._pubsub = pubsub

    async def _drop_connection(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def _read(self) -> None:
        pubsub = self._pubsub
        prefix_length = len(self._prefix)
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            try:
                event = Event.decode(message["data"])
            except (ValueError, KeyError, TypeError):
                log.warning("undecodable pub/sub message on %s", channel)
                continue
            self.hub.deliver(channel[prefix_length:], event)
