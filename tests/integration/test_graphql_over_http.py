"""GraphQL over HTTP (schema/http/), to the GraphQL-over-HTTP specification: the status and
media type of every answer under both response media types, and `Accept` negotiation.

`application/graphql-response+json` (GR below) answers a request that could not run with a
4xx and no `data`; `application/json` (JSON) answers every well-formed request 200. Both
answer 4xx to a request that is not a well-formed GraphQL request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from app.models import User
from app.ratelimit import Budget, RateLimiter
from app.services.accounts import AccountService
from schema.context import Context
from schema.http import GraphQLHTTP, negotiate
from schema.operations import GraphQLRequest, PreparedDocument
from tests.support import SIGN_UP, sign_up_input

GR = "application/graphql-response+json"
JSON = "application/json"
MEDIA_TYPES = pytest.mark.parametrize("media_type", [GR, JSON])

QUERY = "{ viewer { id } }"
MUTATION = (
    'mutation { signUp(input: {username: "mallory", email: "m@example.org", '
    'password: "correct horse battery", displayName: "M"}) { __typename } }'
)


def _nested(depth: int) -> str:
    return "{ " + "f { " * depth + "id" + " }" * (depth + 1)


@dataclass(frozen=True)
class Sent:
    """A request to /graphql: a GET's parameters, or a POST's JSON or raw body."""

    method: str = "POST"
    params: dict[str, str] | None = None
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    async def send(self, http: httpx.AsyncClient, accept: str | None) -> httpx.Response:
        headers = dict(self.headers)
        if accept is not None:
            headers["Accept"] = accept
        if self.method == "GET":
            return await http.get("/graphql", params=self.params, headers=headers)
        if self.content is not None:
            return await http.post("/graphql", content=self.content, headers=headers)
        return await http.post("/graphql", json=self.json, headers=headers)


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def assert_media_type(response: httpx.Response, media_type: str) -> None:
    # The spec: the Content-Type names the media type and SHOULD name the encoding.
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"


# --- requests that are well-formed but cannot run: GR 400, JSON 200; no `data` either way ---

REQUEST_ERRORS = [
    ("unparsable", Sent(json={"query": "{ viewer { id }"}), "GRAPHQL_PARSE_FAILED"),
    ("unparsable-get", Sent("GET", {"query": "{"}), "GRAPHQL_PARSE_FAILED"),
    # spec "Request Parameters": `query` is a string, and "" is one: a document that does not
    # parse, not a request without a document.
    ("empty", Sent(json={"query": ""}), "GRAPHQL_PARSE_FAILED"),
    ("empty-get", Sent("GET", {"query": ""}), "GRAPHQL_PARSE_FAILED"),
    ("invalid", Sent(json={"query": "{ viewr { id } }"}), "GRAPHQL_VALIDATION_FAILED"),
    ("over-the-depth-limit", Sent(json={"query": _nested(13)}), "DEPTH_LIMIT_EXCEEDED"),
    ("over-the-size-limit", Sent(json={"query": QUERY + " " * 40_000}), "DOCUMENT_TOO_LARGE"),
    (
        "unknown-operation",
        Sent(json={"query": "query A { viewer { id } }", "operationName": "C"}),
        "BAD_USER_INPUT",
    ),
    (
        "ambiguous-operation",
        Sent(json={"query": "query A { viewer { id } } query B { viewer { id } }"}),
        "BAD_USER_INPUT",
    ),
    (
        "variables-that-do-not-coerce",
        Sent(
            json={
                "query": "query($n: Int) { publicTimeline(first: $n) { edges { cursor } } }",
                "variables": {"n": "x"},
            }
        ),
        "BAD_USER_INPUT",
    ),
    (
        "missing-non-null-variable",
        Sent("GET", {"query": "query($u: String!) { user(username: $u) { id } }"}),
        "BAD_USER_INPUT",
    ),
]


@MEDIA_TYPES
@pytest.mark.parametrize(
    ("sent", "code"), [c[1:] for c in REQUEST_ERRORS], ids=[c[0] for c in REQUEST_ERRORS]
)
async def test_a_request_that_cannot_run_is_400_as_graphql_response_and_200_as_json(
    http: httpx.AsyncClient, media_type: str, sent: Sent, code: str
) -> None:
    response = await sent.send(http, media_type)

    assert response.status_code == (400 if media_type == GR else 200)
    assert_media_type(response, media_type)
    body = response.json()
    assert "data" not in body
    assert codes(response) == [code]


# --- requests that are not well-formed GraphQL requests: 400 under both ------------------------

MALFORMED = [
    ("missing-query", Sent(json={"variables": {}}), "No GraphQL query"),
    ("missing-query-get", Sent("GET", {"variables": "{}"}), "No GraphQL query"),
    ("null-query", Sent(json={"query": None}), "No GraphQL query"),
    (
        "null-persisted-query",
        Sent(json={"query": None, "extensions": {"persistedQuery": None}}),
        "No GraphQL query",
    ),
    ("query-not-a-string", Sent(json={"query": 5}), "`query`"),
    ("variables-a-list", Sent(json={"query": QUERY, "variables": [7]}), "`variables`"),
    ("operation-name-a-number", Sent(json={"query": QUERY, "operationName": 5}), "operationName"),
    ("extensions-a-string", Sent(json={"query": QUERY, "extensions": "x"}), "`extensions`"),
    ("get-variables-not-json", Sent("GET", {"query": QUERY, "variables": "{x"}), "not valid JSON"),
    ("get-variables-not-object", Sent("GET", {"query": QUERY, "variables": "5"}), "`variables`"),
    ("truncated-json", Sent(content=b'{"query":', headers={"content-type": JSON}), "valid JSON"),
    ("nonsense", Sent(content=b"NONSENSE", headers={"content-type": JSON}), "valid JSON"),
    ("not-utf-8", Sent(content=b'{"query": "\xff"}', headers={"content-type": JSON}), "JSON"),
    ("empty-body", Sent(content=b"", headers={"content-type": JSON}), "valid JSON"),
    ("a-string", Sent(content=b'"{ viewer { id } }"', headers={"content-type": JSON}), "object"),
    ("batch", Sent(json=[{"query": QUERY}, {"query": QUERY}]), "Batching"),
]  # fmt: skip


@MEDIA_TYPES
@pytest.mark.parametrize(
    ("sent", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
async def test_a_request_that_is_not_well_formed_is_400_under_both(
    http: httpx.AsyncClient, media_type: str, sent: Sent, message: str
) -> None:
    response = await sent.send(http, media_type)

    assert response.status_code == 400
    assert_media_type(response, media_type)
    [error] = response.json()["errors"]
    assert message in error["message"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert "data" not in response.json()


@MEDIA_TYPES
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/json; charset=utf-16",
        "application/jsonx",
    ],
)
async def test_a_body_of_a_type_we_do_not_read_is_415(
    http: httpx.AsyncClient, media_type: str, content_type: str | None
) -> None:
    request = http.build_request("POST", "/graphql", content=orjson.dumps({"query": MUTATION}))
    request.headers["accept"] = media_type
    if content_type is not None:  # else none: httpx names none for raw content
        request.headers["content-type"] = content_type

    response = await http.send(request)

    assert response.status_code == 415
    assert_media_type(response, media_type)
    assert codes(response) == ["UNSUPPORTED_MEDIA_TYPE"]
    assert await User.all().count() == 0


async def test_json_in_utf_8_named_or_not_is_read(http: httpx.AsyncClient) -> None:
    for content_type in (JSON, "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"):
        response = await http.post(
            "/graphql",
            content=b'{"query": "{ viewer { id } }"}',
            headers={"content-type": content_type},
        )
        assert response.json() == {"data": {"viewer": None}}, content_type


@MEDIA_TYPES
async def test_a_mutation_over_get_is_405_under_both(
    http: httpx.AsyncClient, media_type: str
) -> None:
    response = await http.get(
        "/graphql", params={"query": MUTATION}, headers={"accept": media_type}
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert_media_type(response, media_type)
    assert "data" not in response.json()
    assert await User.all().count() == 0


async def test_other_methods_are_405(http: httpx.AsyncClient) -> None:
    head = await http.head("/graphql", params={"query": QUERY})
    put = await http.put("/graphql", json={"query": QUERY})

    options = await http.options("/graphql")

    # One answer for every method it does not serve, naming exactly those it does.
    for refused in (head, put, options):
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    "accept",
    [
        "text/plain",
        "application/xml",
        "application/json;q=0",
        "application/json; charset=iso-8859-1",
        "application/graphql+json",
        "application/json;q=0, application/graphql-response+json;q=0",
    ],
)
async def test_an_accept_header_allowing_neither_media_type_is_406(
    http: httpx.AsyncClient, accept: str
) -> None:
    response = await http.post("/graphql", json={"query": MUTATION}, headers={"accept": accept})

    assert response.status_code == 406
    assert codes(response) == ["NOT_ACCEPTABLE"]
    assert await User.all().count() == 0  # processing stopped


@MEDIA_TYPES
async def test_multipart_requests_that_are_not_well_formed_are_400(
    http: httpx.AsyncClient, media_type: str
) -> None:
    upload = "mutation($f: Upload!) { uploadMedia(input: {file: $f}) { __typename } }"
    headers = {"Apollo-Require-Preflight": "true", "Accept": media_type}
    operations = orjson.dumps({"query": upload, "variables": {"f": None}}).decode()
    file = {"0": ("a.png", b"x", "image/png")}
    forms = [
        ({"operations": operations, "map": '{"1": ["variables.f"]}'}, "missing"),
        ({"operations": operations, "map": '{"0": ["query"]}'}, "variable"),
        ({"operations": operations, "map": '{"0": ["variables.g"]}'}, "names no value"),
        ({"operations": operations, "map": "[]"}, "`map`"),
        ({"operations": "{", "map": "{}"}, "valid JSON"),
        ({"map": "{}"}, "`operations`"),
    ]
    for form, message in forms:
        response = await http.post("/graphql", data=form, files=file, headers=headers)

        assert response.status_code == 400, form
        assert_media_type(response, media_type)
        assert message in response.json()["errors"][0]["message"], form


# --- successes -------------------------------------------------------------------------------


@MEDIA_TYPES
async def test_get_and_post_answer_200_in_the_media_type_asked_for(
    http: httpx.AsyncClient, media_type: str
) -> None:
    get = await http.get(
        "/graphql",
        params={"query": "query Q($u: String!) { user(username: $u) { id } }",
                "variables": '{"u": "nobody"}', "operationName": "Q"},
        headers={"accept": media_type},
    )  # fmt: skip
    post = await http.post(
        "/graphql",
        json={"query": SIGN_UP, "variables": sign_up_input(), "operationName": None},
        headers={"accept": media_type},
    )
    empty_name = await http.get(
        "/graphql", params={"query": QUERY, "operationName": ""}, headers={"accept": media_type}
    )

    for response in (get, post, empty_name):
        assert response.status_code == 200
        assert_media_type(response, media_type)
        assert "ratelimit-remaining" in response.headers
    assert get.json() == {"data": {"user": None}}
    assert post.json()["data"]["signUp"]["__typename"] == "SignUpSuccess"
    assert empty_name.json() == {"data": {"viewer": None}}


async def test_a_field_error_as_graphql_response_is_still_200_with_data(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ homeTimeline(first: 1) { edges { cursor } } }"},
        headers={"accept": GR},
    )

    assert response.status_code == 200
    assert_media_type(response, GR)
    body = response.json()
    assert body["data"] is None  # present: the operation ran (homeTimeline is non-null)
    assert codes(response) == ["NOT_AUTHENTICATED"]
    assert body["errors"][0]["path"] == ["homeTimeline"]


@MEDIA_TYPES
async def test_a_failing_resolver_is_masked_and_partial_data_answers_200(
    http: httpx.AsyncClient, media_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(self: AccountService, viewer_id: int | None, username: str) -> User | None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(AccountService, "user_by_username", explode)

    response = await http.post(
        "/graphql",
        json={"query": '{ viewer { id } user(username: "alice") { id } }'},
        headers={"accept": media_type},
    )

    assert response.status_code == 200
    assert response.json()["data"] == {"viewer": None, "user": None}
    assert response.json()["errors"][0]["message"] == "Unexpected error."
    assert "hunter2" not in response.text


# --- refusals of the whole request ----------------------------------------------------------


@MEDIA_TYPES
async def test_a_spent_budget_is_429_with_its_headers(
    http: httpx.AsyncClient, media_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def spent(self: RateLimiter, user_id: int | None, client_ip: str | None) -> Budget:
        return Budget(allowed=False, limit=3, remaining=0, reset_after=17, window=60)

    monkeypatch.setattr(RateLimiter, "spend_request", spent)

    response = await http.post(
        "/graphql",
        json={"query": SIGN_UP, "variables": sign_up_input()},
        headers={"accept": media_type},
    )

    assert response.status_code == 429
    assert_media_type(response, media_type)
    assert codes(response) == ["RATE_LIMITED"]
    assert response.headers["retry-after"] == response.headers["ratelimit-reset"] == "17"
    assert await User.all().count() == 0


class ExplodingRunner:
    async def run(
        self, prepared: PreparedDocument, request: GraphQLRequest, context: Context
    ) -> Any:
        raise RuntimeError("database password is hunter2")


@pytest.fixture
def exploding(app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's endpoint with a runner that fails (as the test harness swaps it)."""
    endpoint: GraphQLHTTP = app.state.graphql_http
    monkeypatch.setattr(endpoint, "runner", ExplodingRunner())


@pytest.mark.usefixtures("exploding")
@MEDIA_TYPES
async def test_an_unexpected_failure_is_masked_logged_and_500_as_graphql_response(
    http: httpx.AsyncClient, media_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="holdfast.graphql"):
        response = await http.post(
            "/graphql", json={"query": QUERY}, headers={"accept": media_type}
        )

    # No `data`: GR must then be 4xx or 5xx (a fault of ours: 500); JSON answers 200.
    assert response.status_code == (500 if media_type == GR else 200)
    assert_media_type(response, media_type)
    assert response.json() == {
        "errors": [
            {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
    }
    assert "ratelimit-remaining" in response.headers
    [logged] = [r for r in caplog.records if r.name == "holdfast.graphql"]
    event = logged.msg
    assert isinstance(event, dict)
    assert event["event"] == "graphql.unexpected_error"
    assert "hunter2" in str(event["exc_info"][1])  # the operator sees what the client did not


# --- Accept ----------------------------------------------------------------------------------

NEGOTIATED = [
    (None, GR),  # none: the spec's default since 2025
    ("", GR),
    ("*/*", JSON),  # what legacy clients send
    ("application/*", JSON),
    (JSON, JSON),
    (GR, GR),
    ("APPLICATION/JSON", JSON),
    ("application/json; charset=utf-8", JSON),
    ("application/json; charset=UTF-8", JSON),
    ("application/graphql-response+json; charset=utf-8, application/json; charset=utf-8", GR),
    ("application/graphql-response+json, application/json;q=0.9", GR),  # Apollo Client
    ("application/json, application/graphql-response+json", GR),
    ("application/graphql-response+json;q=0.5, application/json", JSON),
    ("application/json;q=0.5, */*", GR),  # */* is q=1 for the type not named
    ("application/json;q=0, */*", GR),
    ("*/*;q=0.1, application/json;q=0.2", JSON),
    ("application/graphql-response+json, */*", GR),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),  # a browser
    ("application/json, multipart/mixed", JSON),  # GraphiQL
    ("application/json;q=abc, application/graphql-response+json;q=0.1", GR),  # bad q: ignored
    ("application/graphql-response+json;q=0.001", GR),
    ("application/json; charset=iso-8859-1, application/graphql-response+json;q=0.2", GR),
    ("text/html", None),
    ("application/json;q=2", None),
    ("application/json;q=0", None),
    ("application/json; charset=latin1", None),
    ("image/png, text/*", None),
]


@pytest.mark.parametrize(("accept", "chosen"), NEGOTIATED)
def test_accept_negotiation(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


async def test_a_request_without_accept_gets_graphql_response(http: httpx.AsyncClient) -> None:
    request = http.build_request("POST", "/graphql", json={"query": "{ viewr { id } }"})
    del request.headers["accept"]

    response = await http.send(request)

    assert response.status_code == 400
    assert_media_type(response, GR)


async def test_a_client_preferring_json_gets_json(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ viewr { id } }"},
        headers={"accept": "application/graphql-response+json;q=0.8, application/json"},
    )

    assert response.status_code == 200
    assert_media_type(response, JSON)


async def test_a_browser_without_a_query_gets_the_graphiql_page(http: httpx.AsyncClient) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    page = await http.get("/graphql", headers={"accept": browser})
    with_query = await http.get("/graphql", params={"query": QUERY}, headers={"accept": browser})

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["vary"] == with_query.headers["vary"] == "Accept"
    assert with_query.json() == {"data": {"viewer": None}}
    assert_media_type(with_query, JSON)


async def test_a_browser_sending_a_request_gets_its_answer_not_the_page(
    http: httpx.AsyncClient,
) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    apq = '{"persistedQuery":{"version":1,"sha256Hash":"' + "0" * 64 + '"}}'

    by_hash = await http.get("/graphql", params={"extensions": apq}, headers={"accept": browser})
    by_id = await http.get(
        "/graphql", params={"documentId": f"sha256:{'0' * 64}"}, headers={"accept": browser}
    )

    for response in (by_hash, by_id):
        assert_media_type(response, JSON)
        assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_answers_to_get_say_how_they_may_be_cached(http: httpx.AsyncClient) -> None:
    anonymous = await http.get("/graphql", params={"query": QUERY})
    signed_in = await http.get(
        "/graphql", params={"query": QUERY}, headers={"Authorization": "Bearer not-a-token"}
    )
    refused = await http.get("/graphql", params={"query": "{"})
    posted = await http.post("/graphql", json={"query": QUERY})

    # A viewer's answer is never a shared cache's; an anonymous one may change with the next
    # post: a cache asks again each time. POST answers are not cached anyway.
    assert anonymous.headers["cache-control"] == "no-cache"
    assert signed_in.headers["cache-control"] == "private"
    assert refused.headers["cache-control"] == "no-cache"
    assert "cache-control" not in posted.headers


@pytest.mark.no_database
def test_a_served_process_answers_with_the_spec_headers(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        ok = client.post("/graphql", json={"query": QUERY}, headers={"accept": GR})
        invalid = client.post("/graphql", json={"query": "{ viewr }"}, headers={"accept": GR})
        legacy = client.post("/graphql", json={"query": "{ viewr }"}, headers={"accept": JSON})
        refused = client.post("/graphql", json={"query": QUERY}, headers={"accept": "text/csv"})

    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert ok.headers["vary"] == "Accept"
    assert ok.headers["ratelimit-policy"] == "600;w=60"
    assert ok.headers["x-request-id"]
    assert ok.json() == {"data": {"viewer": None}}
    assert invalid.status_code == 400
    assert invalid.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert "data" not in invalid.json()
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json; charset=utf-8"
    assert refused.status_code == 406
