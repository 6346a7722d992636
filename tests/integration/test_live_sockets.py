"""The WebSocket endpoint as a client meets it: signing in over connection_init, sockets that
close when their session ends, malformed messages, the per-connection cap and the request
budget, operations over the socket held to the HTTP rules, slow consumers, both protocols."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import auth, live
from app.main import create_app
from app.pubsub import Event
from schema.socket import LiveSocket
from tests.conftest import TEST_SECRET, make_settings
from tests.live import (
    LEGACY_WS,
    Closed,
    LiveClient,
    db_id,
    eventually,
    live_client,
    served_in_loop,
    subscribed,
)
from tests.social import post
from tests.support import STRONG_PASSWORD, GraphQLClient

PUBLIC = "subscription { publicTimeline { node { text } } }"


@dataclass
class Server:
    base: str
    app: Starlette
    gql: GraphQLClient

    @property
    def sockets(self) -> set[LiveSocket]:
        sockets: set[LiveSocket] = self.app.state.graphql.sockets
        return sockets


ServerWith = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
def server_with(app: Starlette, data_dir: Path, database_url: str) -> ServerWith:
    """Another app on the test database, with other settings, served in this loop (mutations
    through it reach its subscribers: each app has its own in-process pub/sub)."""

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Server]:
        application = create_app(make_settings(data_dir, database_url, **overrides))
        transport = httpx.ASGITransport(app=application)
        async with (
            served_in_loop(application) as base,
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        ):
            yield Server(base, application, GraphQLClient.settling(http, application))

    return make


async def signed_in(client: LiveClient, token: str) -> None:
    assert await client.init(token) == {"type": "connection_ack"}


async def still_delivers(app: Starlette, client: LiveClient, gql: GraphQLClient) -> None:
    """The connection is open and its new subscriptions work."""
    author = await gql.sign_up("still" + secrets.token_hex(4))
    await client.subscribe("still", PUBLIC)
    await subscribed(app, live.PUBLIC)
    await post(gql, author, "still delivering")
    assert (await client.next_data("still"))["publicTimeline"]["node"]["text"] == (
        "still delivering"
    )


# --- signing in --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"authorization": "Bearer not-a-token"},
        {"authorization": "Basic abc"},
        {"Authorization": 42},
    ],
)
async def test_a_bad_token_is_refused_with_4403(live_server: str, payload: object) -> None:
    async with live_client(live_server) as client:
        await client.send({"type": "connection_init", "payload": payload})
        closed = await client.closed()

    assert closed.code == 4403


async def test_the_legacy_protocol_refuses_a_bad_token_with_connection_error(
    live_server: str,
) -> None:
    async with live_client(live_server, LEGACY_WS) as client:
        answer = await client.init("not-a-token")
        closed = await client.closed()

    assert answer["type"] == "connection_error"
    assert answer["payload"]["extensions"] == {"code": "FORBIDDEN"}
    assert closed.code == 1011  # strawberry's close for this protocol


async def test_a_signed_in_connection_reads_as_its_viewer(
    live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with live_client(live_server) as anonymous, live_client(live_server) as client:
        await anonymous.init()
        await signed_in(client, alice.access_token)
        for each in (anonymous, client):
            await each.subscribe("v", "{ viewer { username } }")
        data = [await each.next_data("v") for each in (anonymous, client)]

    assert data == [{"viewer": None}, {"viewer": {"username": "alice"}}]


# --- the end of a session ------------------------------------------------------------------


async def _closed_within_a_second(client: LiveClient) -> Closed:
    started = time.monotonic()
    closed = await client.closed()
    assert time.monotonic() - started < 1.0
    return closed


async def test_logging_out_closes_the_sessions_sockets_with_4403(
    live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with live_client(live_server) as client:
        await signed_in(client, alice.access_token)
        await client.subscribe("p", PUBLIC)
        await gql("mutation { logOut { __typename } }", token=alice.access_token)
        closed = await _closed_within_a_second(client)

    assert (closed.code, closed.reason) == (4403, "Session ended")


async def test_a_password_change_closes_the_other_sessions_only(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    other = (await gql.log_in("alice"))["session"]["accessToken"]
    async with live_client(live_server) as this, live_client(live_server) as that:
        await signed_in(this, alice.access_token)
        await signed_in(that, other)
        changed = await gql(
            "mutation($input: ChangePasswordInput!) { changePassword(input: $input) "
            "{ __typename } }",
            {"input": {"currentPassword": STRONG_PASSWORD, "newPassword": "a new long phrase"}},
            token=alice.access_token,
        )
        closed = await _closed_within_a_second(that)
        await still_delivers(app, this, gql)

    assert changed["changePassword"]["__typename"] == "ChangePasswordSuccess"
    assert closed.code == 4403


@pytest.mark.parametrize("how", ["logOutEverywhere", "deleteAccount"])
async def test_ending_every_session_closes_every_socket(
    live_server: str, gql: GraphQLClient, how: str
) -> None:
    alice = await gql.sign_up("alice")
    second = (await gql.log_in("alice"))["session"]["accessToken"]
    async with live_client(live_server) as one, live_client(live_server) as two:
        await signed_in(one, alice.access_token)
        await signed_in(two, second)
        if how == "logOutEverywhere":
            await gql("mutation { logOutEverywhere { __typename } }", token=alice.access_token)
        else:
            await gql(
                "mutation($p: String!) { deleteAccount(input: {password: $p}) { __typename } }",
                {"p": STRONG_PASSWORD},
                token=alice.access_token,
            )
        closed = [await _closed_within_a_second(each) for each in (one, two)]

    assert [c.code for c in closed] == [4403, 4403]


async def test_reusing_a_refresh_token_closes_the_sockets_of_its_session(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    second = (await gql.log_in("alice"))["session"]
    refresh = "mutation($t: String!) { refreshSession(input: {refreshToken: $t}) { __typename } }"
    async with live_client(live_server) as one, live_client(live_server) as two:
        await signed_in(one, alice.access_token)
        await signed_in(two, second["accessToken"])
        await gql(refresh, {"t": second["refreshToken"]})
        reused = await gql(refresh, {"t": second["refreshToken"]})
        closed = await _closed_within_a_second(two)
        await still_delivers(app, one, gql)

    assert reused["refreshSession"]["__typename"] == "RefreshSessionError"
    assert closed.code == 4403


async def test_a_connection_closes_when_its_access_token_expires(
    live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    claims = auth.read_access_token(TEST_SECRET, alice.access_token)
    assert claims is not None
    token, _ = auth.issue_access_token(
        TEST_SECRET, claims.user_id, claims.session_id, timedelta(seconds=2)
    )
    async with live_client(live_server) as client:
        await signed_in(client, token)
        started = time.monotonic()
        closed = await client.closed()

    # Tokens carry whole seconds: it expires within two seconds of being issued.
    assert (closed.code, closed.reason) == (4403, "Token expired")
    assert time.monotonic() - started < 2.0


async def test_an_ended_session_cannot_connect(live_server: str, gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await gql("mutation { logOut { __typename } }", token=alice.access_token)
    async with live_client(live_server) as client:
        await client.send(
            {
                "type": "connection_init",
                "payload": {"authorization": f"Bearer {alice.access_token}"},
            }
        )
        closed = await client.closed()

    assert closed.code == 4403


# --- protocol messages ---------------------------------------------------------------------

SUBSCRIBE = {"type": "subscribe", "id": "1", "payload": {"query": PUBLIC}}


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        b"\x00binary",
        "[]",
        '"a string"',
        "null",
        "{}",
        {"type": 1},
        {"type": "no such type"},
        {**SUBSCRIBE, "id": 1},
        {**SUBSCRIBE, "id": ""},
        {**SUBSCRIBE, "id": "x" * 129},
        {**SUBSCRIBE, "payload": "query"},
        {**SUBSCRIBE, "payload": {"query": 5}},
        {**SUBSCRIBE, "payload": {"query": PUBLIC, "variables": []}},
        {**SUBSCRIBE, "payload": {"query": PUBLIC, "operationName": 5}},
        {**SUBSCRIBE, "payload": {"query": PUBLIC, "extensions": "x"}},
        {"type": "complete", "id": ["1"]},
    ],
)
async def test_a_malformed_message_closes_with_4400_and_harms_nobody(
    app: Starlette, live_server: str, gql: GraphQLClient, message: object
) -> None:
    async with live_client(live_server) as bad, live_client(live_server) as good:
        await bad.init()
        await good.init()
        await bad.send(message)
        closed = await bad.closed()
        await still_delivers(app, good, gql)

    assert closed.code == 4400


@pytest.mark.parametrize(
    "message",
    [
        "[]",
        {"type": 1},
        {"type": "start", "id": 1, "payload": {"query": PUBLIC}},
        {"type": "start", "id": "1", "payload": ["query"]},
        {"type": "start", "id": "1", "payload": {"query": None}},
        {"type": "stop", "id": {}},
    ],
)
async def test_a_malformed_legacy_message_closes_with_4400(
    live_server: str, message: object
) -> None:
    async with live_client(live_server, LEGACY_WS) as client:
        await client.init()
        await client.send(message)
        closed = await client.closed()

    assert closed.code == 4400


async def test_a_bad_connection_init_payload_closes_with_4400(live_server: str) -> None:
    async with live_client(live_server) as client:
        await client.send({"type": "connection_init", "payload": "token"})
        closed = await client.closed()

    assert closed.code == 4400


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", LEGACY_WS])
async def test_subscribing_before_connection_init_closes_with_4401(
    live_server: str, protocol: str
) -> None:
    async with live_client(live_server, protocol) as client:
        await client.subscribe("1", PUBLIC)
        closed = await client.closed()

    assert closed.code == 4401


async def test_a_second_connection_init_is_refused(live_server: str) -> None:
    async with (
        live_client(live_server) as client,
        live_client(live_server, LEGACY_WS) as legacy,
    ):
        await client.init()
        await legacy.init()
        await client.send({"type": "connection_init", "payload": {}})
        await legacy.send({"type": "connection_init", "payload": {}})
        closed = await client.closed()
        answer = await legacy.receive()

    assert closed.code == 4429
    assert answer["type"] == "connection_error"


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", LEGACY_WS])
async def test_a_connection_that_never_initialises_closes_with_4408(
    server_with: ServerWith, protocol: str
) -> None:
    async with (
        server_with(live={"init_timeout": 0.2}) as server,
        live_client(server.base, protocol) as client,
    ):
        closed = await client.closed()

    assert closed.code == 4408


# --- limits per connection -----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", LEGACY_WS])
async def test_too_many_subscriptions_on_one_connection_are_refused_with_a_code(
    server_with: ServerWith, protocol: str
) -> None:
    async with (
        server_with(live={"max_subscriptions": 2}) as server,
        live_client(server.base, protocol) as client,
    ):
        await client.init()
        for operation_id in ("1", "2", "3"):
            await client.subscribe(operation_id, PUBLIC)
        refused = await client.receive()
        await client.complete("1")
        if protocol == LEGACY_WS:
            assert await client.receive() == {"type": "complete", "id": "1"}
        await eventually(lambda: _running(server, 1))
        await client.subscribe("4", PUBLIC)
        author = await server.gql.sign_up("author")
        await subscribed(server.app, live.PUBLIC)
        await post(server.gql, author, "to 2 and 4")
        delivered = {(await client.receive())["id"] for _ in range(2)}

    payload = refused["payload"]
    error = payload[0] if isinstance(payload, list) else payload
    assert refused["id"] == "3"
    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
    assert delivered == {"2", "4"}


async def _read_until_closed(client: LiveClient) -> tuple[int, Closed]:
    received = 0
    while True:
        try:
            await client.receive()
        except Closed as closed:
            return received, closed
        received += 1


async def _running(server: Server, count: int) -> bool:
    return len(server.app.state.services.pubsub.hub._by_channel.get(live.PUBLIC, ())) == count


async def test_every_operation_spends_the_request_budget(server_with: ServerWith) -> None:
    async with server_with(graphql={"requests_per_viewer": "3/minute"}) as server:
        alice = await server.gql.sign_up("alice")  # counted for the address, not for alice
        async with live_client(server.base) as client:
            await signed_in(client, alice.access_token)
            for operation_id in ("1", "2", "3", "4"):
                await client.subscribe(operation_id, "{ viewer { username } }")
            # Each query answers `next` then `complete`.
            answers = [await client.receive() for _ in range(7)]

    results = [a for a in answers if a["type"] == "next"]
    refused = [a for a in answers if a["type"] == "error"]
    assert len(results) == 3
    assert [r["id"] for r in refused] == ["4"]
    assert refused[0]["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert refused[0]["payload"][0]["extensions"]["retryAfter"] > 0


# --- operations over the socket ------------------------------------------------------------


async def test_queries_over_the_socket_are_held_to_the_document_limits(
    live_server: str,
) -> None:
    huge = """{ publicTimeline(first: 100) { edges { node { id
      replies(first: 100) { edges { node { id
        replies(first: 100) { edges { node { id } } } } } } } } } }"""
    async with live_client(live_server) as client:
        await client.init()
        await client.subscribe("cost", huge)
        await client.subscribe("syntax", "{ viewer ")
        await client.subscribe("big", "{ viewer { id } }" + " " * 40_000)
        await client.subscribe("empty", "")  # a document that does not parse, as over HTTP
        answers = {a["id"]: a for a in [await client.receive() for _ in range(4)]}

    codes = {
        key: [error["extensions"]["code"] for error in answer["payload"]]
        for key, answer in answers.items()
    }
    assert codes == {
        "cost": ["COST_LIMIT_EXCEEDED"],
        "syntax": ["GRAPHQL_PARSE_FAILED"],
        "big": ["DOCUMENT_TOO_LARGE"],
        "empty": ["GRAPHQL_PARSE_FAILED"],
    }
    assert all(answer["type"] == "error" for answer in answers.values())


async def test_unexpected_errors_over_the_socket_are_masked(
    app: Starlette, live_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(viewer_id: int | None) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(app.state.services.live, "public_timeline", broken)
    async with live_client(live_server) as client:
        await client.init()
        await client.subscribe("1", PUBLIC)
        answer = await client.receive()

    assert answer["type"] == "error"
    assert answer["payload"] == [
        {
            "message": "Unexpected error.",
            "locations": [{"line": 1, "column": 16}],
            "path": ["publicTimeline"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]


async def test_signing_in_over_the_socket_does_not_sign_the_connection_in(
    live_server: str, gql: GraphQLClient
) -> None:
    await gql.sign_up("alice")
    log_in = (
        'mutation { logIn(input: {login: "alice", password: "correct horse battery staple"}) '
        "{ __typename } }"
    )
    async with live_client(live_server) as client:
        await client.init()
        await client.subscribe("in", log_in)
        signed = await client.next_data("in")
        assert await client.receive() == {"id": "in", "type": "complete"}
        await client.subscribe("who", "{ viewer { username } }")
        viewer = await client.next_data("who")

    assert signed == {"logIn": {"__typename": "LogInSuccess"}}
    assert viewer == {"viewer": None}


# --- the legacy protocol -------------------------------------------------------------------


async def test_the_legacy_protocol_streams_without_keep_alive_chatter(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with live_client(live_server, LEGACY_WS) as client:
        await signed_in(client, alice.access_token)
        await client.subscribe("1", "subscription { homeTimeline { node { text } } }")
        await subscribed(app, live.home_channel(db_id(alice.id)))
        await post(gql, alice, "over graphql-ws")
        raw = await client.ws.recv()  # no `ka` messages: uvicorn pings instead
        await client.complete("1")
        stopped = await client.receive()

    assert raw == (
        '{"type":"data","id":"1","payload":{"data":{"homeTimeline":{"node":'
        '{"text":"over graphql-ws"}}}}}'
    )
    assert stopped == {"type": "complete", "id": "1"}


# --- slow consumers ------------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_cut_off_and_slows_nobody_else(
    server_with: ServerWith,
) -> None:
    async with server_with(live={"queue_size": 4}, posts={"max_length": 20_000}) as server:
        author = await server.gql.sign_up("author")
        # 14 copies of a long, incompressible text make each message about 280 kB.
        fields = " ".join(f"t{i}: text" for i in range(14))
        # A small receive buffer, and a client library that stops reading the socket once
        # it holds one unread message: what a stalled phone looks like.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", int(server.base.rsplit(":", 1)[1])))
        async with (
            live_client(server.base) as healthy,
            live_client(server.base, sock=raw, max_queue=1, compression=None) as stalled,
        ):
            await healthy.init()
            await stalled.init()
            await healthy.subscribe("1", "subscription { publicTimeline { cursor } }")
            await stalled.subscribe(
                "1", f"subscription {{ publicTimeline {{ node {{ {fields} }} }} }}"
            )
            await eventually(lambda: _running(server, 2))
            published, slowest = 0, 0.0
            while not any(s.close_code for s in server.sockets) and published < 200:
                await post(server.gql, author, secrets.token_urlsafe(15_000)[:20_000])
                started = time.monotonic()
                await healthy.next_data("1")
                slowest = max(slowest, time.monotonic() - started)
                published += 1
            # The stalled client reads again: what was in flight, then the close.
            received, closed = await _read_until_closed(stalled)

    assert closed.code == 4008
    assert received < published < 200
    assert slowest < 1.0


async def test_an_unknown_subprotocol_is_closed_with_4406_and_leaves_nothing_behind(
    app: Starlette, live_server: str
) -> None:
    async with live_client(live_server, "graphql-over-carrier-pigeon") as client:
        closed = await client.closed()

    assert closed.code == 4406
    assert app.state.graphql.sockets == set()


async def test_shutting_the_application_down_closes_its_sockets_with_1012(
    server_with: ServerWith,
) -> None:
    # What the lifespan does on the way out (uvicorn itself closes with 1012 on SIGTERM
    # first: see test_live_processes).
    async with server_with() as server, live_client(server.base) as client:
        await client.init()
        await client.subscribe("1", PUBLIC)
        await eventually(lambda: _running(server, 1))
        await server.app.state.graphql.close_sockets(1012, "Server restarting")
        closed = await client.closed()

    assert (closed.code, closed.reason) == (1012, "Server restarting")


async def test_a_subscription_whose_events_pile_up_closes_its_socket_with_4008(
    server_with: ServerWith,
) -> None:
    async with server_with(live={"queue_size": 2}) as server, live_client(server.base) as client:
        author = await server.gql.sign_up("author")
        created = await post(server.gql, author, "again and again")
        await client.init()
        await client.subscribe("1", PUBLIC)
        await eventually(lambda: _running(server, 1))
        # A burst faster than the subscription loads its events: in-process pub/sub offers
        # all of them before the subscriber runs once.
        event = Event(live.Kind.POST_CREATED, {"id": db_id(created["id"])})
        pubsub = server.app.state.services.pubsub
        await pubsub.publish_many([(live.PUBLIC, event)] * 10)
        closed = await client.closed()

    assert (closed.code, closed.reason) == (4008, "Too slow: events were not read")


async def test_the_legacy_protocol_refuses_queries_and_mutations_with_a_code(
    live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with live_client(live_server, LEGACY_WS) as client:
        await signed_in(client, alice.access_token)
        for number, document in enumerate(
            ("{ viewer { username } }", "mutation { logOut { __typename } }"), start=1
        ):
            await client.subscribe(str(number), document)
            answer = await client.receive()
            assert answer["type"] == "error", answer
            assert answer["payload"]["extensions"]["code"] == "BAD_USER_INPUT"
            assert "subscriptions only" in answer["payload"]["message"]
    # The mutation never ran: the session is still open.
    assert await gql.viewer(alice.access_token) is not None
