"""Every GraphQL HTTP request spends one of its viewer's budget (the account's when signed in,
the address's when not); a spent budget is answered 429 without running the operation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Scope

from app.main import create_app
from app.models import User
from tests.conftest import make_settings
from tests.support import SIGN_UP, STRONG_PASSWORD, GraphQLClient

QUERY = {"query": "{ viewer { id } }"}
SIGN_UP_CAROL = {
    "query": SIGN_UP,
    "variables": {
        "input": {
            "username": "carol",
            "email": "carol@example.org",
            "password": STRONG_PASSWORD,
            "displayName": "Carol",
        }
    },
}

Client = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def tight_app(app: Starlette, data_dir: Path, database_url: str) -> AsyncIterator[Starlette]:
    """An app with a budget of 3 requests a minute per viewer, on the test database."""
    settings = make_settings(data_dir, database_url, graphql={"requests_per_viewer": "3/minute"})
    tight = create_app(settings)
    yield tight
    await tight.state.services.limiter.close()


@pytest.fixture
def client(tight_app: Starlette) -> Client:
    """A client of the tight app from a given address."""

    @asynccontextmanager
    async def connect(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=tight_app, client=(address, 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http

    return connect


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_responses_carry_the_ratelimit_headers(client: Client) -> None:
    async with client("198.51.100.1") as http:
        responses = [await http.post("/graphql", json=QUERY) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0"]
    for response in responses:
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-policy"] == "3;w=60"
        assert 0 <= int(response.headers["ratelimit-reset"]) <= 60
        assert "retry-after" not in response.headers
        assert response.json() == {"data": {"viewer": None}}


async def test_a_spent_budget_is_refused_without_running_the_operation(client: Client) -> None:
    async with client("198.51.100.1") as http:
        for _ in range(3):
            await http.get("/graphql", params=QUERY)
        refused = await http.post("/graphql", json=SIGN_UP_CAROL)

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/json; charset=utf-8"
    assert refused.json() == {
        "errors": [
            {
                "message": "Too many requests; try again later.",
                "extensions": {"code": "RATE_LIMITED"},
            }
        ]
    }
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-policy"] == "3;w=60"
    assert 0 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]
    assert not await User.exists(username_key="carol")


async def test_graphiql_and_healthz_are_not_counted(client: Client) -> None:
    async with client("198.51.100.1") as http:
        for _ in range(4):
            page = await http.get("/graphql", headers={"accept": "text/html"})
            health = await http.get("/healthz")
            assert page.status_code == health.status_code == 200
            assert "ratelimit-remaining" not in page.headers
        counted = await http.post("/graphql", json=QUERY)

    assert counted.headers["ratelimit-remaining"] == "2"


async def test_addresses_have_budgets_of_their_own(client: Client) -> None:
    async with client("198.51.100.1") as first, client("198.51.100.2") as second:
        for _ in range(3):
            await first.post("/graphql", json=QUERY)
        spent = await first.post("/graphql", json=QUERY)
        other = await second.post("/graphql", json=QUERY)

    assert spent.status_code == 429
    assert other.status_code == 200
    assert other.headers["ratelimit-remaining"] == "2"


async def test_a_signed_in_viewer_has_a_budget_of_its_own_from_any_address(
    gql: GraphQLClient, client: Client
) -> None:
    account = await gql.sign_up("alice")  # on the app with the big budget
    auth = _bearer(account.access_token)
    async with client("198.51.100.1") as first, client("198.51.100.2") as second:
        for _ in range(3):
            await first.post("/graphql", json=QUERY)
        anonymous = await first.post("/graphql", json=QUERY)
        signed_in = [
            await first.post("/graphql", json=QUERY, headers=auth),
            await second.post("/graphql", json=QUERY, headers=auth),
            await first.post("/graphql", json=QUERY, headers=auth),
        ]
        spent = await second.post("/graphql", json=QUERY, headers=auth)
        other_anonymous = await second.post("/graphql", json=QUERY)

    assert anonymous.status_code == 429
    assert [r.status_code for r in signed_in] == [200, 200, 200]
    assert signed_in[0].json() == {"data": {"viewer": {"id": account.id}}}
    assert [r.headers["ratelimit-remaining"] for r in signed_in] == ["2", "1", "0"]
    assert spent.status_code == 429
    assert other_anonymous.status_code == 200  # the account's requests were not the address's


async def test_a_bad_token_spends_the_address_budget(gql: GraphQLClient, client: Client) -> None:
    async with client("198.51.100.1") as http:
        await http.post("/graphql", json=QUERY)
        forged = await http.post("/graphql", json=QUERY, headers=_bearer("not-a-token"))

    assert forged.status_code == 200
    assert forged.headers["ratelimit-remaining"] == "1"


async def test_transport_errors_are_counted_and_carry_the_headers(client: Client) -> None:
    async with client("198.51.100.1") as http:
        bad_json = await http.post(
            "/graphql", content=b"{not json", headers={"content-type": "application/json"}
        )
        mutation_over_get = await http.get("/graphql", params=SIGN_UP_CAROL)

    assert bad_json.status_code == mutation_over_get.status_code == 400
    assert bad_json.headers["ratelimit-remaining"] == "2"
    assert mutation_over_get.headers["ratelimit-remaining"] == "1"
    assert mutation_over_get.headers["ratelimit-policy"] == "3;w=60"


MULTIPART = (
    b"--b\r\n"
    b'Content-Disposition: form-data; name="operations"\r\n\r\n'
    b'{"query": "mutation($f: Upload!) { x(f: $f) }", "variables": {"f": null}}\r\n'
    b"--b\r\n"
    b'Content-Disposition: form-data; name="map"\r\n\r\n{"0": ["variables.f"]}\r\n'
    b"--b\r\n"
    b'Content-Disposition: form-data; name="0"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n" + b"\x89PNG" + b"\0" * 65_536 + b"\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/json", b'{"query": "{ viewer { id } }"}'),
        (b"multipart/form-data; boundary=b", MULTIPART),
    ],
    ids=["json", "multipart"],
)
async def test_a_spent_budget_is_answered_before_the_body_is_read(
    client: Client, tight_app: Starlette, content_type: bytes, body: bytes
) -> None:
    async with client("198.51.100.1") as http:
        for _ in range(3):
            await http.post("/graphql", json=QUERY)
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await tight_app(_scope(content_type, len(body)), receive, send)

    # Neither read nor parsed, nor a multipart request's file spooled: the headers decide.
    assert sent[0]["status"] == 429
    assert reads == 0


def _scope(content_type: bytes, length: int) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", content_type),
            (b"content-length", str(length).encode()),
            (b"apollo-require-preflight", b"true"),
        ],
        "client": ("198.51.100.1", 40_000),
        "server": ("testserver", 80),
    }
