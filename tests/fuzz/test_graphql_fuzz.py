"""Schemathesis's GraphQL mode against the committed schema: every query and mutation gets
documents generated from `schema.graphql`, sent to the app in-process (anonymous and signed
in), and fails on an HTTP 5xx or a masked error ("Unexpected error.").

`make test` runs a short derandomised pass (FUZZ_EXAMPLES unset: a fixed seed, a handful of
examples per operation). `make fuzz` sets FUZZ_EXAMPLES to run a long randomised pass; a
failing example is shrunk to a minimal one and printed with the server's traceback.

Environment (test-only):
- FUZZ_EXAMPLES: examples per operation; set, it also turns derandomisation off
- FUZZ_OPERATIONS: comma-separated labels (`Mutation.createPost,Query.node`) to fuzz only those
- FUZZ_REPORT: a file to append every failing example to (a JSON object a line, with a
  `signature`: the exception type and the innermost frame of our code) instead of stopping at
  the first failure of an operation: a survey of all distinct failures, not a test
"""

from __future__ import annotations

import base64
import json
import logging
import os
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from schema.document import UNEXPECTED_ERROR_MESSAGE
from tests.social import CREATE_POST
from tests.support import Account, GraphQLClient

pytestmark = pytest.mark.fuzz

Case = schemathesis.Case[Any]

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"
LONG_RUN = bool(os.environ.get("FUZZ_EXAMPLES"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 20)
REPORT = os.environ.get("FUZZ_REPORT")
ONLY = {label for label in os.environ.get("FUZZ_OPERATIONS", "").split(",") if label}

# Real global IDs of this test's users and posts, filled in before each test's examples run:
# purely random IDs would never name an existing object.
KNOWN_IDS: list[str] = []


def _global_id(type_name: str, node_id: int | str) -> str:
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


def _known_id(index: int) -> str:
    return KNOWN_IDS[index % len(KNOWN_IDS)] if KNOWN_IDS else ""


# IDs: a known object's, a well-formed global ID of any type with any integer (beyond 64 bits
# too), or any string or integer, as the default ID strategy would make.
schemathesis.graphql.scalar(
    "ID",
    st.one_of(
        st.integers(min_value=0, max_value=15).map(_known_id).map(nodes.String),
        st.builds(
            _global_id,
            st.sampled_from(["Post", "User", "Query", "Node", "Nope"]),
            st.one_of(st.integers(), st.integers(min_value=-(2**80), max_value=2**80), st.text()),
        ).map(nodes.String),
        st.text().map(nodes.String),
        st.integers().map(nodes.Int),
    ),
)

# A JSON request carries no file: whatever it sends as an Upload is refused as input
# (uploadMedia's INVALID_INPUT); files come in multipart requests (tests/integration/test_media.py).
schemathesis.graphql.scalar(
    "Upload", st.one_of(st.text().map(nodes.String), st.integers().map(nodes.Int))
)

SCHEMA = schemathesis.graphql.from_path(SCHEMA_FILE)
OPERATIONS: dict[str, schemathesis.APIOperation[Any, Any, Any, Any]] = {
    f"{root}.{name}": operations[name]
    for root in ("Query", "Mutation")
    for operations in [SCHEMA[root]]
    for name in operations
    if not ONLY or f"{root}.{name}" in ONLY
}


def unexpected_failure(status: int, text: str) -> str | None:
    """An HTTP 5xx, or a GraphQL error masked as "Unexpected error.", is a bug; any other
    answer (data, typed errors, validation errors, 4xx, rate limits) is not."""
    if status >= 500:
        return f"HTTP {status}: {text[:500]}"
    try:
        body = json.loads(text)
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    # Masked, or a fault of ours left unmasked (a non-null field that resolved to null, say).
    masked = [
        e
        for e in errors
        if isinstance(e, dict)
        and (
            e.get("message") == UNEXPECTED_ERROR_MESSAGE
            or (e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
        )
    ]
    if masked:
        return f"masked error(s) at {[error.get('path') for error in masked]}"
    uncoded = [
        e for e in errors if not (isinstance(e, dict) and (e.get("extensions") or {}).get("code"))
    ]
    return f"error(s) without extensions.code: {uncoded[:3]}" if uncoded else None


@schemathesis.check
def no_server_error_or_masked_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Schemathesis's form of `unexpected_failure`."""
    problem = unexpected_failure(response.status_code, response.text)
    assert problem is None, problem
    return None


@dataclass
class ServerErrors:
    """Tracebacks of exceptions the app logged, or let escape to the ASGI server."""

    tracebacks: list[str] = field(default_factory=list)

    def take(self) -> list[str]:
        taken, self.tracebacks = self.tracebacks, []
        return taken


class _Recorder(logging.Handler):
    def __init__(self, errors: ServerErrors) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        # structlog hands the stdlib record its event dict as `msg`, exc_info inside it.
        event = record.msg if isinstance(record.msg, dict) else {"event": record.getMessage()}
        exc_info = record.exc_info or event.get("exc_info")
        if isinstance(exc_info, tuple) and exc_info[0] is not None:
            trace = "".join(traceback.format_exception(*exc_info))
            self.errors.tracebacks.append(f"{event.get('event')} at {event.get('path')}:\n{trace}")


@contextmanager
def _recording(errors: ServerErrors) -> Iterator[None]:
    handler = _Recorder(errors)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


class _CatchingApp:
    """Records an exception that escapes the app (httpx then answers 500 without one)."""

    def __init__(self, app: Starlette, errors: ServerErrors) -> None:
        self.app = app
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.errors.tracebacks.append("".join(traceback.format_exception(exc)))
            raise


@dataclass
class Fuzzer:
    app: Starlette
    http: httpx.AsyncClient
    gql: GraphQLClient
    errors: ServerErrors
    account: Account
    signups: int = 0

    async def token(self) -> str:
        """A live access token: logOut, logOutEverywhere (or a lucky deleteAccount) in an
        earlier example ends the session, so then sign up someone new."""
        accounts = self.app.state.services.accounts
        if await accounts.resolve_viewer(self.account.access_token) is None:
            self.signups += 1
            self.account = await self.gql.sign_up(f"fuzzer{self.signups}")
            KNOWN_IDS.append(self.account.id)
        return self.account.access_token


async def _seed(gql: GraphQLClient) -> Account:
    viewer = await gql.sign_up("fuzzer")
    other = await gql.sign_up("fuzzfriend")
    KNOWN_IDS[:] = [viewer.id, other.id]
    for account in (viewer, other):
        data = await gql(
            CREATE_POST, {"input": {"text": "hello #fuzz"}}, token=account.access_token
        )
        KNOWN_IDS.append(data["createPost"]["post"]["id"])
    return viewer


@pytest.fixture
async def fuzzer(app: Starlette) -> AsyncIterator[Fuzzer]:
    errors = ServerErrors()
    # A line per request drowns the one traceback a failure prints.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    transport = httpx.ASGITransport(
        app=_CatchingApp(app, errors), raise_app_exceptions=False, client=("203.0.113.9", 50_000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        gql = GraphQLClient(http)
        with _recording(errors):
            account = await _seed(gql)
            errors.take()
            yield Fuzzer(app, http, gql, errors, account)
    KNOWN_IDS.clear()


async def _send(fuzzer: Fuzzer, case: Case, signed_in: bool) -> None:
    headers = {"Authorization": f"Bearer {await fuzzer.token()}"} if signed_in else {}
    fuzzer.errors.take()
    response = await fuzzer.http.post("/graphql", json={"query": case.body}, headers=headers)
    try:
        case.validate_response(response, checks=[no_server_error_or_masked_error])
    except BaseExceptionGroup as failure:  # schemathesis's FailureGroup: one per failed check
        traces = fuzzer.errors.take()
        who = "signed in" if signed_in else "anonymous"
        if REPORT:
            _report(case.operation.label, who, str(case.body), response, traces)
            return
        tracebacks = "\n".join(traces) or "(none logged)"
        raise AssertionError(
            f"{case.operation.label} ({who}) failed:\n{case.body!s}\n\n"
            f"status {response.status_code}: {response.text[:1000]}\n\n"
            f"{failure.message}\n"
            f"server tracebacks:\n{tracebacks}"
        ) from None


OUR_CODE = tuple(str(SCHEMA_FILE.parent / part) for part in ("app", "schema", "providers"))


def _signature(response: httpx.Response, traces: list[str]) -> str:
    """What tells one bug from another: the exception and where our code last was."""
    if not traces:
        return f"HTTP {response.status_code} without a traceback"
    lines = traces[-1].strip().splitlines()
    ours = [
        line.strip()
        for line in lines
        if line.strip().startswith("File") and any(root in line for root in OUR_CODE)
    ]
    frames = ours or [line.strip() for line in lines if line.strip().startswith("File")]
    return f"{lines[-1]} @ {frames[-1] if frames else '?'}"


def _report(
    operation: str, who: str, document: str, response: httpx.Response, traces: list[str]
) -> None:
    assert REPORT is not None
    entry = {
        "operation": operation,
        "who": who,
        "signature": _signature(response, traces),
        "document": document,
        "status": response.status_code,
        "response": response.text[:2000],
        "tracebacks": traces,
    }
    with open(REPORT, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    deadline=None,
    database=None,
    print_blob=LONG_RUN,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
@FUZZ_SETTINGS
@given(data=st.data())
async def test_operation_never_fails_unexpectedly(
    fuzzer: Fuzzer, label: str, data: st.DataObject
) -> None:
    case = data.draw(OPERATIONS[label].as_strategy(), label="case")
    signed_in = data.draw(st.booleans(), label="signed_in")
    await _send(fuzzer, case, signed_in)


def test_every_operation_is_fuzzed() -> None:
    """Each root field of the schema is an operation here (unless FUZZ_OPERATIONS picks some),
    queries and mutations both."""
    if ONLY:
        pytest.skip("FUZZ_OPERATIONS picks the operations")
    kinds = {label.split(".")[0] for label in OPERATIONS}
    assert kinds == {"Query", "Mutation"}
    assert "Mutation.createPost" in OPERATIONS
    assert "Query.node" in OPERATIONS


# Request bodies as a client may send them, well-formed or not: any JSON value, a GraphQL
# request whose members have any JSON type, or bytes that are not JSON at all.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.sampled_from(
    [
        "{ viewer { id } }",
        "query Q($n: Int, $a: String) { publicTimeline(first: $n, after: $a) { __typename } }",
        "query($u: String!) { user(username: $u) { id } }",
        "query($id: ID!) { node(id: $id) { id } }",
        "mutation($input: CreatePostInput!) { createPost(input: $input) { __typename } }",
        "mutation($input: LogInInput!) { logIn(input: $input) { __typename } }",
        "query A { viewer { id } } query B { viewer { username } }",
    ]
)
GRAPHQL_REQUESTS = st.fixed_dictionaries(
    {"query": DOCUMENTS | JSON_VALUES},
    optional={"variables": JSON_VALUES, "operationName": JSON_VALUES, "extensions": JSON_VALUES},
)
BODIES = st.one_of(
    GRAPHQL_REQUESTS.map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
)


@FUZZ_SETTINGS
@given(body=BODIES, content_type=st.sampled_from(["application/json", "text/plain", ""]))
async def test_request_body_never_fails_unexpectedly(
    fuzzer: Fuzzer, body: str, content_type: str
) -> None:
    fuzzer.errors.take()
    headers = {"Content-Type": content_type} if content_type else {}
    response = await fuzzer.http.post("/graphql", content=body.encode(), headers=headers)
    problem = unexpected_failure(response.status_code, response.text)
    traces = fuzzer.errors.take()
    if problem is None:
        return
    if REPORT:
        _report("POST /graphql", content_type or "no content type", body, response, traces)
        return
    raise AssertionError(
        f"POST /graphql ({content_type or 'no content type'}) {body!r} failed: {problem}\n\n"
        f"server tracebacks:\n{chr(10).join(traces) or '(none logged)'}"
    )
