"""Guard rails on every request: limits, transport rules, masking, request ids."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from strawberry.extensions.validation_cache import _get_validate_cache

from app.models import User
from app.services import Services
from app.services.accounts import AccountService
from app.settings import Environment, Settings
from schema import build_schema
from tests.support import GraphQLClient

SIGN_UP_MUTATION = (
    'mutation { signUp(input: {username: "mallory", email: "m@example.org", '
    'password: "correct horse battery", displayName: "M"}) { __typename } }'
)


def _nested(depth: int) -> str:
    # Depth as graphql-depth-limit counts it: `{ a { b } }` has depth 1. The rule runs with
    # the other validation rules and reports whether or not the fields exist.
    return "{ " + "f { " * depth + "id" + " }" * (depth + 1)


def _depth_errors(response: httpx.Response) -> list[str]:
    return [e["message"] for e in response.json()["errors"] if "depth" in e["message"]]


async def test_query_depth_above_twelve_is_refused(http: httpx.AsyncClient) -> None:
    ok = await http.post("/graphql", json={"query": _nested(12)})
    too_deep = await http.post("/graphql", json={"query": _nested(13)})

    assert _depth_errors(ok) == []
    assert _depth_errors(too_deep) == ["'anonymous' exceeds maximum operation depth of 12"]


async def test_more_than_fifteen_aliases_are_refused(http: httpx.AsyncClient) -> None:
    def aliases(n: int) -> str:
        return "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(n)) + " }"

    ok = await http.post("/graphql", json={"query": aliases(15)})
    too_many = await http.post("/graphql", json={"query": aliases(16)})

    assert "errors" not in ok.json()
    assert "aliases found" in too_many.json()["errors"][0]["message"]


async def test_documents_over_two_thousand_tokens_are_refused(http: httpx.AsyncClient) -> None:
    def query(fragments: int) -> str:
        # 6 tokens per fragment, 6 more with <SOF> and <EOF>.
        return "{ viewer { " + "... on User { id } " * fragments + "} }"

    ok = (await http.post("/graphql", json={"query": query(332)})).json()
    body = (await http.post("/graphql", json={"query": query(334)})).json()

    assert ok == {"data": {"viewer": None}}
    assert "more than 2000 tokens" in body["errors"][0]["message"]
    assert body.get("data") is None


async def test_mutations_over_get_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": SIGN_UP_MUTATION})

    assert response.status_code == 400
    assert response.text == "mutations are not allowed when using GET"
    assert await User.all().count() == 0


async def test_queries_over_get_work(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": "{ viewer { id } }"})

    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": None}}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_non_json_posts_are_refused(http: httpx.AsyncClient, content_type: str) -> None:
    # The shapes a cross-site form can send without a CORS preflight.
    body = json.dumps({"query": SIGN_UP_MUTATION})

    response = await http.post("/graphql", content=body, headers={"content-type": content_type})

    assert response.status_code in (400, 415)
    assert await User.all().count() == 0


async def test_batched_requests_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json=[{"query": "{ viewer { id } }"}, {"query": "{ viewer { id } }"}]
    )

    assert response.status_code == 400
    assert "batch" in response.text.lower()


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(self: AccountService, viewer_id: int | None, username: str) -> User | None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(AccountService, "user_by_username", explode)

    with caplog.at_level(logging.ERROR, logger="holdfast.graphql"):
        response = await gql.post('{ user(username: "alice") { id } }')

    body = response.json()
    assert body["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in response.text
    request_id = response.headers["x-request-id"]
    logged = [r for r in caplog.records if r.name == "holdfast.graphql"]
    assert len(logged) == 1
    event = logged[0].msg
    assert isinstance(event, dict)
    assert event["event"] == "graphql.unexpected_error"
    assert event["request_id"] == request_id
    assert "hunter2" in str(event["exc_info"][1])  # the operator sees what the client did not


async def test_client_request_id_is_kept(http: httpx.AsyncClient) -> None:
    rid = "2f1e7c2a-3f5c-4b8e-9a53-1c0d2e3f4a5b"

    response = await http.get("/healthz", headers={"X-Request-ID": rid})
    forged = await http.get("/healthz", headers={"X-Request-ID": 'x", "level": "fake'})

    assert response.headers["x-request-id"] == rid
    assert forged.headers["x-request-id"] != 'x", "level": "fake'
    assert len(forged.headers["x-request-id"]) == 32  # a fresh uuid4 in hex


async def test_validation_is_cached_across_requests(http: httpx.AsyncClient) -> None:
    cache = _get_validate_cache(1_024)
    query = "{ viewer { id username } }"
    await http.post("/graphql", json={"query": query})
    before = cache.cache_info()

    for _ in range(3):
        await http.post("/graphql", json={"query": query})

    after = cache.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses


async def test_healthz_reports_the_database(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up"}


async def test_development_serves_graphiql_and_introspection(http: httpx.AsyncClient) -> None:
    page = await http.get("/graphql", headers={"accept": "text/html"})
    introspection = await http.post(
        "/graphql", json={"query": "{ __schema { queryType { name } } }"}
    )

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert introspection.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_production_turns_off_graphiql_and_introspection(
    app: Starlette, settings: Settings
) -> None:
    from schema.view import GraphQLView

    production = settings.model_copy(update={"env": Environment.PRODUCTION})
    assert production.is_production
    services = Services.from_settings(production)
    view = GraphQLView(build_schema(production), services)
    transport = httpx.ASGITransport(app=view)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        introspection = await client.post(
            "/graphql", json={"query": "{ __schema { queryType { name } } }"}
        )
        ordinary = await client.post("/graphql", json={"query": "{ viewer { id } }"})

    assert page.status_code == 404
    assert "introspection" in introspection.json()["errors"][0]["message"].lower()
    assert ordinary.json() == {"data": {"viewer": None}}
