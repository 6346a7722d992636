"""One GraphQL WebSocket connection: what it sends, how it ends, and the watch on its session.

Every message leaves through the connection's bounded outbox, written by one task: nothing
that produces messages (operations, the protocol handler) ever waits for the client, so a
client that stops reading stalls only its own writer. When the outbox is full the client is
too slow: its operations stop and the socket closes with `CloseCode.SLOW_CONSUMER` as soon
as the close frame can be written (a client that reads nothing at all is dropped by the
server's ping timeout).

A signed-in connection listens for the end of its session (logged out, revoked, its account
deleted) on the session's channel, in every process, and closes with 4403 when it comes or
when its access token expires; the client reconnects with a fresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from enum import IntEnum

from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter

from app import live
from app.pubsub import SlowConsumer, Subscription
from app.services import Services

# Seconds a close frame may wait for a client to read what is queued before it.
CLOSE_TIMEOUT = 1.0


class CloseCode(IntEnum):
    """Close codes of ours (strawberry's own protocol codes are in the README too)."""

    SERVICE_RESTART = 1012  # the server is shutting down: reconnect (elsewhere)
    SLOW_CONSUMER = 4008  # the client did not read its messages fast enough
    BAD_MESSAGE = 4400  # a message that is not what the protocol allows
    INIT_TIMEOUT = 4408  # no connection_init in time
    FORBIDDEN = 4403  # a rejected token, an ended session or an expired token


class LiveSocket:
    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        registry: set[LiveSocket] | None = None,
    ) -> None:
        self.websocket = websocket
        self.services = services
        self._limit = services.settings.live.queue_size
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._stack = AsyncExitStack()
        self._stop_operations: Callable[[], Awaitable[None]] | None = None
        self._registry = registry if registry is not None else set()
        self.closing = False
        self.initialised = False  # connection_init was answered
        self.close_code: int | None = None

    # --- lifetime ------------------------------------------------------------------------

    def start(self, stop_operations: Callable[[], Awaitable[None]]) -> None:
        """Start writing (the protocol handler starts); `stop_operations` ends every running
        operation (on close). From now until `finish`, the socket is in the registry."""
        self._stop_operations = stop_operations
        self._writer = asyncio.create_task(self._write(), name="holdfast-socket-writer")
        self._registry.add(self)

    async def finish(self) -> None:
        """The connection is over: stop the watch, the timers and the writer (given a moment
        to write a close frame asked for last)."""
        self.closing = True
        for timer in self._timers:
            timer.cancel()
        await self._stack.aclose()
        if self._close is not None and self._writer is not None:
            await asyncio.wait([self._writer], timeout=CLOSE_TIMEOUT)
        tasks = [*self._tasks, *([self._writer] if self._writer else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._registry.discard(self)

    @property
    def started(self) -> bool:
        return self._writer is not None

    async def closed(self) -> None:
        """Wait until the close frame is written (or the client is gone)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    # --- sending -------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self.closing:
            return
        if len(self._outbox) >= self._limit:
            self.close_soon(CloseCode.SLOW_CONSUMER, "Too slow: messages were not read")
            return
        self._outbox.append(text)
        self._wake.set()

    def close_soon(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Stop every operation and close the socket with `code`: after the messages already
        queued when `flush` (a protocol answer must reach the client before the close), else
        without them."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        if not flush:
            self._outbox.clear()
        self._close = (code, reason)
        self._wake.set()
        if self._stop_operations is not None:
            self._spawn(self._stop_operations)

    async def _write(self) -> None:
        try:
            while True:
                while self._outbox:
                    await self.websocket.send_text(self._outbox.popleft())
                if self._close is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
            await self.websocket.close(*self._close)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The client went away first; the protocol handler sees it and finishes.
            self.closing = True

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await work()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the signed-in session -----------------------------------------------------------

    async def watch_session(self, session_id: int) -> None:
        """Close with 4403 when the session ends. Subscribed before returning, so an end
        announced from now on is not missed; check the session afterwards."""
        events: Subscription = await self._stack.enter_async_context(
            self.services.pubsub.subscribe([live.session_channel(session_id)], max_queue=8)
        )
        self._spawn(lambda: self._watch(session_id, events))

    async def _watch(self, session_id: int, events: Subscription) -> None:
        accounts = self.services.accounts
        try:
            async for event in events:
                # Anything else (MISSED: pub/sub lost events) asks the database.
                if event.kind == live.Kind.SESSION_ENDED or not await accounts.session_is_open(
                    session_id
                ):
                    break
            else:
                return  # the connection (or the process) is closing
        except SlowConsumer:
            if await accounts.session_is_open(session_id):
                return
        self.close_soon(CloseCode.FORBIDDEN, "Session ended")

    def expire_at(self, expires_at: datetime | None) -> None:
        """Close with 4403 when the access token the connection signed in with expires."""
        if expires_at is None:
            return
        delay = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
        loop = asyncio.get_running_loop()
        self._timers.append(
            loop.call_later(delay, self.close_soon, CloseCode.FORBIDDEN, "Token expired")
        )

    def init_deadline(self, seconds: float) -> None:
        """Close with 4408 unless connection_init is answered within `seconds`."""

        def check() -> None:
            if not self.initialised:
                self.close_soon(CloseCode.INIT_TIMEOUT, "Connection initialisation timeout")

        self._timers.append(asyncio.get_running_loop().call_later(seconds, check))


SCOPE_KEY = "holdfast.socket"  # the scope key of a connection's LiveSocket


def socket_of(websocket: WebSocket) -> LiveSocket:
    socket: LiveSocket = websocket.scope[SCOPE_KEY]
    return socket


class SocketAdapter(ASGIWebSocketAdapter):
    """strawberry's WebSocket adapter, sending through the connection's outbox as text (JSON
    clients expect text frames; the view encodes JSON to bytes for HTTP)."""

    @property
    def socket(self) -> LiveSocket:
        return socket_of(self.ws)

    async def send_json(self, message: Mapping[str, object]) -> None:
        encoded = self.view.encode_json(message)
        self.socket.send(encoded.decode() if isinstance(encoded, bytes) else encoded)

    async def close(self, code: int, reason: str) -> None:
        if not self.socket.started:
            # No protocol handler runs (strawberry refuses the subprotocol): close it here.
            await super().close(code, reason)
            return
        # strawberry closes on protocol errors, after answering some of them: flush first.
        self.socket.close_soon(code, reason, flush=True)
