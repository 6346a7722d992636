"""Guard rails on every request: limits, transport rules, masking, request ids."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from app.models import User
from app.services.accounts import AccountService
from app.settings import Environment, Settings
from tests.support import GraphQLClient, graphql_endpoint

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


async def test_mutations_over_get_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": SIGN_UP_MUTATION})

    # GraphQL over HTTP, "GET": 405 whatever the media type.
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {
        "errors": [
            {
                "message": "Only queries may be sent with GET; use POST.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }
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


async def test_parsing_and_validation_are_cached_across_requests(settings: Settings) -> None:
    endpoint = graphql_endpoint(settings)
    schema = endpoint.schema
    query = "{ viewer { id username } }"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=endpoint), base_url="http://testserver"
    ) as client:
        for _ in range(4):
            assert (await client.post("/graphql", json={"query": query})).status_code == 200

    prepared = schema.pipeline._prepare.cache_info()  # type: ignore[attr-defined]
    validated = schema.pipeline.validate.cache_info()  # type: ignore[attr-defined]
    parsed = schema.pipeline.parse.cache_info()  # type: ignore[attr-defined]
    assert (prepared.hits, prepared.misses) == (3, 1)  # the document is prepared once
    assert validated.misses == parsed.misses == 1


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
    production = settings.model_copy(update={"env": Environment.PRODUCTION})
    assert production.is_production
    endpoint = graphql_endpoint(production, ide=True)
    transport = httpx.ASGITransport(app=endpoint)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/graphql", headers={"accept": "text/html"})
        introspection = await client.post(
            "/graphql", json={"query": "{ __schema { queryType { name } } }"}
        )
        ordinary = await client.post("/graphql", json={"query": "{ viewer { id } }"})

    assert page.status_code == 404
    assert "introspection" in introspection.json()["errors"][0]["message"].lower()
    assert ordinary.json() == {"data": {"viewer": None}}


@pytest.mark.parametrize("body", [b"5", b"null", b'"x"', b"true", b"[]", b'{"query": 5}'])
async def test_json_bodies_that_are_not_an_operation_get_a_coded_400(
    http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_bodies_over_the_limit_get_413_before_they_are_read(http: httpx.AsyncClient) -> None:
    body = b'{"query": "{ viewer { id } }", "variables": {"x": "' + b"a" * 1_048_576 + b'"}}'

    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/graphql-response+json", "application/graphql-response+json"),
        ("application/json", "application/json"),
        (None, "application/graphql-response+json"),
        ("text/csv", "application/json"),  # neither: the 413 still says what happened
    ],
)
async def test_a_413_from_graphql_comes_in_the_media_type_asked_for(
    http: httpx.AsyncClient, accept: str | None, content_type: str
) -> None:
    body = b'{"query": "{ viewer { id } }", "variables": {"x": "' + b"a" * 1_048_576 + b'"}}'
    request = http.build_request(
        "POST", "/graphql", content=body, headers={"content-type": "application/json"}
    )
    del request.headers["accept"]
    if accept is not None:
        request.headers["accept"] = accept

    response = await http.send(request)

    assert response.status_code == 413
    assert response.headers["content-type"] == f"{content_type}; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    assert response.json()["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}


@pytest.mark.no_database
def test_a_streamed_body_over_the_limit_gets_413_from_a_served_process(served: str) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the server only learns the size while reading.
        yield b'{"query": "{ viewer { id } }", "variables": {"x": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'"}}'

    with httpx.Client(base_url=served, timeout=10) as client:
        response = client.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        alive = client.get("/healthz")

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE"}
    assert alive.status_code == 200


async def test_node_of_a_crafted_id_is_null(gql: GraphQLClient) -> None:
    crafted = ["Node:1", "MutationError:1", "Query:1", "PageInfo:1", "Nope:1", "Post:x", ":"]
    ids = [base64.b64encode(raw.encode()).decode() for raw in crafted] + ["!!!", "x"]

    for global_id in ids:
        body = (
            await gql.post("query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
        ).json()
        assert body == {"data": {"node": None}}, global_id


@pytest.mark.no_database
async def test_a_served_process_answers_healthz_beside_hostile_requests(served: str) -> None:
    levels = 64
    parts = ["query { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ viewer {{ id }} }}")
    search = "query($q: String!) { searchPosts(query: $q) { edges { cursor } } }"
    # Before, 30 levels of this hung the process for good and a 300 KB search stalled it for
    # seconds; each request here has 10 s to answer.
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        fragments, searched, health = await asyncio.gather(
            client.post("/graphql", json={"query": "\n".join(parts)}),
            client.post("/graphql", json={"query": search, "variables": {"q": "a " * 500_000}}),
            client.get("/healthz"),
        )

    assert [e["extensions"]["code"] for e in fragments.json()["errors"]] == [
        "FRAGMENT_LIMIT_EXCEEDED"
    ]
    assert [e["extensions"]["code"] for e in searched.json()["errors"]] == ["INVALID_INPUT"]
    assert health.status_code == 200


@pytest.mark.parametrize("global_id", ["!" * 500, "x", base64.b64encode(b"User:1").decode()])
async def test_a_malformed_or_foreign_id_in_an_input_is_not_found(
    gql: GraphQLClient, global_id: str
) -> None:
    alice = await gql.sign_up("alice")
    mutation = """mutation($id: ID!) { likePost(input: {postId: $id}) {
        ... on LikePostError { code field } } }"""

    body = (await gql.post(mutation, {"id": global_id}, alice.access_token)).json()

    assert body == {"data": {"likePost": {"code": "NOT_FOUND", "field": "postId"}}}


async def test_unknown_paths_and_methods_get_coded_errors(http: httpx.AsyncClient) -> None:
    missing = await http.get("/nowhere")
    wrong_method = await http.put("/graphql", json={"query": "{ viewer { id } }"})

    assert missing.status_code == 404
    assert missing.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
    assert wrong_method.status_code == 405
    assert wrong_method.json()["errors"][0]["extensions"] == {"code": "METHOD_NOT_ALLOWED"}
    assert "POST" in wrong_method.headers["allow"]


async def test_get_variables_may_be_null(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql", params={"query": "{ viewer { id } }", "variables": "null"}
    )
    refused = await http.get("/graphql", params={"query": "{ viewer { id } }", "variables": "5"})

    assert response.json() == {"data": {"viewer": None}}
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
