"""Live updates across real `holdfast serve` processes: two sharing PostgreSQL and Redis (the
PostgreSQL pass, with TEST_REDIS_URL), and one on the embedded defaults for keep-alive and
shutdown. Clients are real WebSocket clients, our own and gql's."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from app import live
from app.redis_pubsub import PREFIX
from tests.conftest import BACKEND, TEST_SECRET, create_database, need_service
from tests.live import LEGACY_WS, TRANSPORT_WS, LiveClient, db_id, eventually, live_client
from tests.social import follow, post
from tests.support import (
    HOLDFAST,
    Account,
    GraphQLClient,
    holdfast_env,
    serve_process,
    serve_processes,
)

HOME = "subscription { homeTimeline { cursor node { text author { username } } } }"
HASHTAG = 'subscription { hashtagTimeline(tag: "news") { node { text } } }'
PUBLIC = "subscription { publicTimeline { node { text } } }"


@dataclass
class Pair:
    a: str  # base URLs of the two processes
    b: str
    redis: redis.Redis
    prefix: str

    async def listening(self, *channels: str) -> None:
        """Wait until some process subscribed to each channel in Redis."""

        async def ready() -> bool:
            counts = await self.redis.pubsub_numsub(*(self.prefix + c for c in channels))
            return all(count > 0 for _, count in counts)

        await eventually(ready)


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    if BACKEND != "postgres":
        pytest.skip("two processes share PostgreSQL: the PostgreSQL pass runs these")
    redis_url = need_service("TEST_REDIS_URL")
    admin_url = need_service("TEST_POSTGRES_URL")
    name = f"holdfast_live_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await create_database(admin, name)
    settings = {
        "HOLDFAST_DATABASE_URL": admin_url.rpartition("/")[0] + "/" + name,
        "HOLDFAST_REDIS_URL": redis_url,
        "HOLDFAST_SECRET_KEY": TEST_SECRET,
        "HOLDFAST_GRAPHQL__REQUESTS_PER_VIEWER": "100000/minute",
        "HOLDFAST_AUTH__SIGNUPS_PER_IP": "1000/minute",
        "HOLDFAST_LOG_LEVEL": "WARNING",
        # Keep-alive as `holdfast serve` configures uvicorn: a ping every 0.2 s, 0.3 s to answer.
        "HOLDFAST_LIVE__PING_INTERVAL": "0.2",
        "HOLDFAST_LIVE__PING_TIMEOUT": "0.3",
    }
    root = tmp_path_factory.mktemp("pair")
    client = redis.Redis.from_url(redis_url)
    try:
        migrated = await asyncio.to_thread(
            subprocess.run,
            [HOLDFAST, "migrate"],
            env=holdfast_env(root, **settings),
            capture_output=True,
        )
        assert migrated.returncode == 0, migrated.stderr
        specs = [
            (root / f"p{n}", ("--no-migrate",), {**settings, "HOLDFAST_NODE_ID": str(n)})
            for n in (1, 2)
        ]
        with serve_processes(*specs) as [(a, _), (b, _)]:
            db = redis.connection.parse_url(redis_url).get("db", 0)
            yield Pair(a, b, client, PREFIX.format(db=db))
    finally:
        await client.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def via_b(pair: Pair) -> AsyncIterator[GraphQLClient]:
    """GraphQL over HTTP to process B."""
    async with httpx.AsyncClient(base_url=pair.b) as http:
        yield GraphQLClient(http)


async def accounts(gql: GraphQLClient, *names: str) -> list[Account]:
    suffix = secrets.token_hex(3)
    return [await gql.sign_up(f"{name}_{suffix}") for name in names]


async def connect(stack: AsyncExitStack, base: str, viewer: Account | None) -> LiveClient:
    client = await stack.enter_async_context(live_client(base))
    assert await client.init(viewer.access_token if viewer else None) == {"type": "connection_ack"}
    return client


async def received_within_a_second(client: LiveClient, operation_id: str) -> dict[str, Any]:
    started = time.monotonic()
    data = await client.next_data(operation_id)
    assert time.monotonic() - started < 1.0, "delivered too late"
    return data


@pytest.mark.redis
async def test_a_post_made_through_b_reaches_subscribers_on_a_who_may_see_it(
    pair: Pair, via_b: GraphQLClient
) -> None:
    alice, bob, carol = await accounts(via_b, "alice", "bob", "carol")
    await follow(via_b, bob, alice)
    async with AsyncExitStack() as stack:
        follower, other, anonymous = [
            await connect(stack, pair.a, viewer) for viewer in (bob, carol, None)
        ]
        for client in (follower, other):
            await client.subscribe("home", HOME)
            await client.subscribe("tag", HASHTAG)
        await anonymous.subscribe("public", PUBLIC)
        await pair.listening(
            live.home_channel(db_id(bob.id)),
            live.home_channel(db_id(carol.id)),
            live.hashtag_channel("news"),
            live.PUBLIC,
        )

        await post(via_b, alice, "#news for followers", visibility="FOLLOWERS")
        started = time.monotonic()
        both = await follower.results(2)
        assert time.monotonic() - started < 1.0, "delivered too late"
        home, tag = both["home"], both["tag"]
        await post(via_b, alice, "#news for everyone")
        # What carol and the anonymous client may not see never came: their first is this.
        first_tag = await received_within_a_second(other, "tag")
        first_public = await received_within_a_second(anonymous, "public")
        await post(via_b, carol, "carol's own")
        first_home = await received_within_a_second(other, "home")

    assert home["homeTimeline"]["node"] == {
        "text": "#news for followers",
        "author": {"username": alice.username},
    }
    assert tag["hashtagTimeline"]["node"]["text"] == "#news for followers"
    assert first_tag["hashtagTimeline"]["node"]["text"] == "#news for everyone"
    assert first_public["publicTimeline"]["node"]["text"] == "#news for everyone"
    assert first_home["homeTimeline"]["node"]["text"] == "carol's own"


@pytest.mark.redis
async def test_logging_out_through_b_closes_the_socket_on_a(
    pair: Pair, via_b: GraphQLClient
) -> None:
    (dave,) = await accounts(via_b, "dave")
    async with live_client(pair.a) as client:
        assert await client.init(dave.access_token) == {"type": "connection_ack"}
        claims_session = await _session_id(dave)
        await pair.listening(live.session_channel(claims_session))
        await via_b("mutation { logOut { __typename } }", token=dave.access_token)
        started = time.monotonic()
        closed = await client.closed()

    assert (closed.code, closed.reason) == (4403, "Session ended")
    assert time.monotonic() - started < 1.0


async def _session_id(account: Account) -> int:
    from app import auth

    claims = auth.read_access_token(TEST_SECRET, account.access_token)
    assert claims is not None
    return claims.session_id


@pytest.mark.redis
@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_gql_subscribes_on_a_to_what_b_writes_and_hears_of_missed_events(
    pair: Pair, via_b: GraphQLClient, protocol: str
) -> None:
    alice, bob = await accounts(via_b, "alice", "bob")
    await follow(via_b, bob, alice)
    transport = WebsocketsTransport(
        url=pair.a.replace("http://", "ws://") + "/graphql",
        init_payload={"authorization": f"Bearer {bob.access_token}"},
        subprotocols=[protocol],
    )
    async with Client(transport=transport) as session:
        stream = session.subscribe(gql(HOME))
        first = asyncio.ensure_future(anext(stream))
        await pair.listening(live.home_channel(db_id(bob.id)))
        await post(via_b, alice, "through b")
        received = await asyncio.wait_for(first, 5)
        # Redis drops process A's pub/sub connection: events published meanwhile are lost,
        # so the stream ends with EVENTS_MISSED for the client to refetch.
        await _drop_pubsub_connections(pair)
        with pytest.raises(TransportQueryError) as missed:
            await asyncio.wait_for(anext(stream), 5)

    assert received == {
        "homeTimeline": {
            "cursor": received["homeTimeline"]["cursor"],
            "node": {"text": "through b", "author": {"username": alice.username}},
        }
    }
    assert missed.value.errors is not None
    assert missed.value.errors[0]["extensions"]["code"] == "EVENTS_MISSED"


async def _drop_pubsub_connections(pair: Pair) -> None:
    """Kill the pub/sub connections on our Redis database only (other databases on the server
    are other people's)."""
    db = pair.prefix.split(":")[2]
    clients = await pair.redis.client_list(_type="pubsub")
    mine = [c["id"] for c in clients if str(c.get("db")) == db]
    assert mine
    for client_id in mine:
        await pair.redis.client_kill_filter(_id=client_id)


# --- keep-alive and shutdown ------------------------------------------------------------------


def _handshake(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    assert b"sec-websocket-protocol: graphql-transport-ws" in response.lower()
    return sock


def test_the_server_pings_and_drops_a_client_that_never_answers(pair: Pair) -> None:
    started = time.monotonic()
    with _handshake(pair.a) as sock:
        received = b""
        while chunk := sock.recv(1024):  # until the server closes the connection
            received += chunk

    # A ping frame first (opcode 9), then a close frame (opcode 8) with 1011. Server frames
    # are unmasked and these are short: byte 1 is the payload length (the ping's payload is
    # random bytes, so the close frame is found by walking the frames, not by searching).
    assert received[0] == 0x89
    close = 2 + received[1]
    assert received[close] == 0x88
    assert int.from_bytes(received[close + 2 : close + 4], "big") == 1011
    assert time.monotonic() - started < 3.0


def test_other_paths_refuse_websockets(pair: Pair) -> None:
    host, port = pair.b.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        status_line = sock.recv(1024).split(b"\r\n", 1)[0]

    assert status_line == b"HTTP/1.1 403 Forbidden"


async def test_sigterm_closes_every_socket_with_1012(tmp_path: Path) -> None:
    # On the embedded defaults (either pass).
    with serve_process(tmp_path / "data") as (base, process):
        async with (
            live_client(base) as modern,
            live_client(base, LEGACY_WS) as legacy,
        ):
            for client in (modern, legacy):
                await client.init()
                await client.subscribe("p", PUBLIC)
            process.send_signal(signal.SIGTERM)
            closed = [await client.closed() for client in (modern, legacy)]
        # uvicorn shuts down gracefully, then re-raises the signal.
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)

    assert [c.code for c in closed] == [1012, 1012]
