"""Helpers for live-update tests: a small GraphQL-over-WebSocket client (both protocols) on
the `websockets` library, and an app served by a real uvicorn server in the test's loop."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import free_port

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
WAIT = 5.0  # seconds anything expected may take; what should not come is awaited less


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class LiveClient:
    """One connection. `messages` are read in order; `close_code` is known once closed."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    async def send(self, message: object) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def receive(self, within: float = WAIT) -> dict[str, Any]:
        """The next message that is not a keep-alive; `Closed` when the socket closes."""
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), within)
            except ConnectionClosed as closed:
                frame = closed.rcvd
                raise Closed(frame.code if frame else None, frame.reason if frame else "") from None
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def init(self, token: str | None = None, payload: object = None) -> dict[str, Any]:
        if payload is None:
            payload = {"authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": operation_id, "type": kind, "payload": payload})

    async def complete(self, operation_id: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.send({"id": operation_id, "type": kind})

    async def next_data(self, operation_id: str, within: float = WAIT) -> dict[str, Any]:
        """The data of the next result for `operation_id` (which must carry no errors)."""
        message = await self.receive(within)
        assert message.get("id") == operation_id, message
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def results(self, count: int, within: float = WAIT) -> dict[str, dict[str, Any]]:
        """The data of the next `count` results, by operation id (operations on one
        connection deliver in no fixed order between them)."""
        found: dict[str, dict[str, Any]] = {}
        for _ in range(count):
            message = await self.receive(within)
            assert message["type"] in ("next", "data"), message
            assert "errors" not in message["payload"], message
            found[message["id"]] = message["payload"]["data"]
        return found

    async def closed(self, within: float = WAIT) -> Closed:
        """Read until the socket closes; its close code and reason."""
        deadline = time.monotonic() + within
        while True:
            try:
                await self.receive(max(0.01, deadline - time.monotonic()))
            except Closed as closed:
                return closed


@asynccontextmanager
async def live_client(
    base: str, protocol: str = TRANSPORT_WS, **options: Any
) -> AsyncIterator[LiveClient]:
    """A connection to `base` (`http://host:port`) at /graphql."""
    url = base.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=[protocol], open_timeout=WAIT, **options) as ws:  # type: ignore[list-item]
        yield LiveClient(ws, protocol)


@asynccontextmanager
async def served_in_loop(app: Starlette, **config: Any) -> AsyncIterator[str]:
    """`app` (already started) behind a real uvicorn server in this event loop; its base
    URL. Sockets are real; the database and services are the test's own."""
    port = free_port()
    server_config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        **config,
    )
    server_config.load()
    server = uvicorn.Server(server_config)
    server.lifespan = server_config.lifespan_class(server_config)
    await server.startup()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.shutdown()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll `check` until it holds (short sleeps; fails after `within` seconds)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def db_id(global_id: str) -> int:
    """The database id in a Relay global ID."""
    return int(base64.b64decode(global_id).decode().rpartition(":")[2])


async def subscribed(app: Starlette, *channels: str) -> None:
    """Wait until this process's pub/sub has subscribers on `channels` (an event published
    before that reaches nobody)."""
    hub = app.state.services.pubsub.hub

    async def ready() -> bool:
        return all(channel in hub.channels for channel in channels)

    await eventually(ready)
