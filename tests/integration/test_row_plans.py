"""Page plans (schema/rowplan.py): a home-timeline query whose selection a page row carries is
answered straight from the rows of one statement that selects only what it reads, with the
same answer as graphql-core's stock executor (the differential harness compares every request
here too); anything a plan does not answer goes the ordinary way."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from graphql import get_operation_ast, parse
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from bench.timeline import QUERY as BENCH
from schema.rowplan import row_plan
from tests.differential import STATEMENT_LOGGERS, Differential
from tests.selections import (
    GENERATED,
    Builder,
    Document,
    World,
    is_leaf,
    make_world,
    named_type,
)
from tests.social import follow, post
from tests.support import GraphQLClient

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

# What a page row carries, by type (and for Post, whether it is the page's own post).
_POST_LEAVES = [
    *("id", "text", "contentWarning", "visibility", "likeCount", "repostCount", "replyCount"),
    *("quoteCount", "createdAt", "editedAt", "isDeleted"),
]
_USER = [
    *("id", "username", "displayName", "bio", "isLocked", "role", "createdAt"),
    *("followerCount", "followingCount"),
]
ROW_FIELDS = {
    "PostConnection": ["edges", "pageInfo"],
    "PostEdge": ["cursor", "node", "repostedBy"],
    "PageInfo": ["hasNextPage", "hasPreviousPage", "startCursor", "endCursor"],
    "User": _USER,
}
PAGE_POST = [
    *_POST_LEAVES,
    *("viewerHasLiked", "viewerHasReposted", "viewerHasBookmarked", "author"),
    *("replyTo", "quoteOf"),
]
REFERRED_POST = [*_POST_LEAVES, "author"]


class _RowBuilder(Builder):
    """Selections of the home timeline over what its rows carry only: no directives (a plan
    has none), fields of ROW_FIELDS, with aliases, fragments, `__typename`s and arguments
    good and bad as the differential test draws them."""

    def directive(self) -> str:
        return ""

    def fields(self, type_: Any, depth: int) -> list[str]:
        if type_.name == "Post":
            return PAGE_POST if depth == 3 else REFERRED_POST
        return ROW_FIELDS.get(type_.name, [])

    def selection(self, type_: Any, depth: int) -> str:
        draw = self.draw
        items: list[str] = []
        if type_.name in ("Post", "User") and draw(st.booleans()):
            leaves = [
                n for n in self.fields(type_, depth) if is_leaf(named_type(type_.fields[n].type))
            ]
            items += [self.field(type_, depth, n) for n in draw(st.permutations(leaves))]
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["field"] * 7 + ["typename", "inline", "spread"]))
            if kind == "typename":
                items.append("__typename")
            elif kind == "inline":
                items.append(self.inline(type_, depth))
            elif kind == "spread" and depth == 3 and self.spread(type_, depth, items):
                pass
            else:
                items.append(self.field(type_, depth))
        return "{ " + " ".join(items) + " }"

    def document(self) -> str:
        query = self.schema.query_type
        assert query is not None
        definition = query.fields["homeTimeline"]
        alias = self.draw(st.sampled_from(["", "home: "]))
        head = alias + "homeTimeline" + self.arguments_of("Query", "homeTimeline", definition)
        selection = head + " " + self.selection(named_type(definition.type), 1)
        if self.draw(st.booleans()):
            selection = "__typename " + selection
        declared = ", ".join(f"${n}: {t}" for n, (t, _) in self.variables.items())
        start = f"query({declared}) " if declared else ""
        return "\n".join([start + "{ " + selection + " }", *self.fragments.values()])


@st.composite
def row_documents(draw: st.DrawFn, schema: Any, world: World) -> Document:
    builder = _RowBuilder(draw, schema, world)
    query = builder.document()
    variables = {name: value for name, (_, value) in builder.variables.items()}
    return Document(query, variables, draw(st.sampled_from(world.viewers)))


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements the request's fast run sends (the harness keeps the stock run's out
    of these loggers)."""
    handler = _Statements()
    loggers = [logging.getLogger(name) for name in STATEMENT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def compiles(app: Starlette, query: str) -> bool:
    schema = app.state.graphql.schema._schema
    document = parse(query)
    operation = get_operation_ast(document)
    assert operation is not None
    return row_plan(schema, document, operation) is not None


@pytest.fixture
async def world(http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette) -> World:
    """The differential test's data set, with cursors of home pages (its own are the public
    timeline's, which a home page refuses): one of them, one beyond the end."""
    world = await make_world(http, gql, app)
    cyd = world.accounts["cyd"]
    home = "query($after: String) { homeTimeline(first: 3, after: $after) { edges { cursor } } }"
    cursors: list[str] = []
    after = None
    while True:
        edges = (await gql(home, {"after": after}, token=cyd.access_token))["homeTimeline"]
        if not edges["edges"]:
            break
        cursors += [edge["cursor"] for edge in edges["edges"]]
        after = cursors[-1]
    return dataclasses.replace(world, cursors=[*cursors, world.cursors[0]])


@given(data=st.data())
@settings(GENERATED, max_examples=120)
async def test_generated_home_selections_are_answered_from_the_rows_as_graphql_core_would(
    app: Starlette, gql: GraphQLClient, world: World, data: st.DataObject
) -> None:
    differential: Differential = app.state.differential
    document = data.draw(row_documents(app.state.graphql.schema._schema, world))
    note(f"viewer: {document.viewer}\n{document.query}\nvariables: {document.variables}")
    viewer = world.accounts[document.viewer] if document.viewer else None
    earlier = len(differential.mismatches)

    with statements() as sent:
        # (Without the shared client's settling of jobs after the request: its statements.)
        response = await GraphQLClient(gql.http).post(
            document.query, document.variables, token=viewer.access_token if viewer else None
        )

    mismatches = differential.mismatches[earlier:]
    del differential.mismatches[earlier:]
    assert not mismatches, str(mismatches[0])
    assert response.status_code == 200, response.text
    assert compiles(app, document.query)
    body = response.json()
    if viewer is not None and not body.get("errors"):
        # Answered by the plan: its one statement (a plan that gave up would leave a second).
        assert len(sent) == 1, sent
        event("answered from the rows")
    if viewer is None:
        assert body["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


async def test_the_benchmark_page_is_one_statement_of_the_columns_it_reads(
    app: Starlette, gql: GraphQLClient, world: World
) -> None:
    cyd = world.accounts["cyd"]
    assert compiles(app, BENCH)
    with statements() as sent:
        data = await GraphQLClient(gql.http)(BENCH, token=cyd.access_token)
    edges = data["homeTimeline"]["edges"]
    texts = [e["node"]["text"] for e in edges]
    # cyd follows ana: her posts (the deleted one left out) and cyd's own, with what they
    # reply to and quote (a tombstone's text empty).
    assert "a reply to what will be gone" in texts
    assert "soon gone" not in texts
    replied = {e["node"]["replyTo"]["text"] for e in edges if e["node"]["replyTo"]}
    assert replied == {"", "hello again #tag @ben"}
    [statement] = sent
    # Only what the selection reads: no bio, email or entities, no reposter's display name,
    # no viewer's state of the referred posts.
    assert " AS a_display_name" in statement
    assert " AS rb_username" in statement
    for column in ("a_bio", "a_email", "entities", "rb_display_name", "r_v_liked", "q_like_count"):
        assert f" AS {column}" not in statement, column

    # Asking for more selects more, still in one statement.
    wider = BENCH.replace("author { id username displayName }", "author { id bio }", 1)
    with statements() as sent:
        data = await GraphQLClient(gql.http)(wider, token=cyd.access_token)
    [statement] = sent
    assert " AS a_bio" in statement
    assert " AS a_display_name" not in statement
    assert {e["node"]["author"]["bio"] for e in data["homeTimeline"]["edges"]} == {""}


@pytest.mark.parametrize(
    ("selection", "why"),
    [
        ("node { id entities { value } }", "a field with a resolver"),
        ("node { id media { id } }", "a field loaded on its own"),
        ("node { author { email } }", "a field with a resolver"),
        ("node { author { isPremium } }", "a field loaded on its own"),
        ("node { replyTo { viewerHasLiked } }", "state the referred posts' rows do not carry"),
        ("node { replyTo { replyTo { id } } }", "a post the row does not carry"),
        ("node { replies(first: 1) { edges { cursor } } }", "a field with arguments"),
        ("node { id @include(if: true) }", "a directive"),
    ],
)
async def test_a_selection_the_rows_do_not_carry_goes_the_ordinary_way(
    app: Starlette, gql: GraphQLClient, world: World, selection: str, why: str
) -> None:
    query = "{ homeTimeline(first: 5) { edges { %s } } }" % selection  # noqa: UP031
    assert not compiles(app, query), why
    # ... and gets its answer (the harness compares it with the stock executor's).
    data = await gql(query, token=world.accounts["cyd"].access_token)
    assert len(data["homeTimeline"]["edges"]) == 5


async def test_two_roots_or_another_root_get_no_plan(app: Starlette) -> None:
    assert not compiles(app, "{ viewer { id } homeTimeline { edges { cursor } } }")
    assert not compiles(
        app, "{ a: homeTimeline { edges { cursor } } b: homeTimeline { edges { cursor } } }"
    )
    assert not compiles(app, "{ publicTimeline { edges { cursor } } }")
    assert not compiles(app, "mutation { logOut { __typename } }")


async def test_a_root_in_a_fragment_goes_the_ordinary_way(
    app: Starlette, gql: GraphQLClient
) -> None:
    # The session check is not folded then (schema.runner): it runs on its own first, and the
    # page is read the ordinary way (a plan reads with the check folded in).
    alice = await gql.sign_up("alice")
    query = "{ ... on Query { homeTimeline(first: 2) { edges { cursor } } } }"
    with statements() as sent:
        data = await GraphQLClient(gql.http)(query, token=alice.access_token)
    assert data == {"homeTimeline": {"edges": []}}
    assert len(sent) == 2  # the session, then the page


async def test_a_value_graphql_refuses_sends_the_page_the_ordinary_way(
    app: Starlette, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await post(gql, bob, "liked beyond 32 bits")
    timelines = app.state.services.timelines
    read = timelines.home_rows_of_session

    async def beyond_32_bits(*args: Any) -> Any:
        # (A count no database column here can hold: the plan must not pass it on.)
        page = await read(*args)
        page.items = [{**row, "like_count": 2**31} for row in page.items]
        return page

    monkeypatch.setattr(timelines, "home_rows_of_session", beyond_32_bits)
    query = "{ homeTimeline(first: 5) { edges { node { text likeCount } } } }"
    assert compiles(app, query)
    with statements() as sent:
        data = await GraphQLClient(gql.http)(query, token=alice.access_token)
    # The plan read its page and gave it up; the ordinary path read and answered.
    assert len(sent) == 2
    assert data["homeTimeline"]["edges"] == [
        {"node": {"text": "liked beyond 32 bits", "likeCount": 0}}
    ]


async def test_a_failed_plan_read_is_logged_and_the_page_read_again(
    app: Starlette,
    gql: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await post(gql, bob, "still here")
    timelines = app.state.services.timelines
    calls: list[object] = []

    async def unavailable(*args: Any) -> Any:
        calls.append(args)
        raise ConnectionError("the database went away")

    monkeypatch.setattr(timelines, "home_rows_of_session", unavailable)
    data = await gql(BENCH, token=alice.access_token)
    assert len(calls) == 1
    assert [e["node"]["text"] for e in data["homeTimeline"]["edges"]] == ["still here"]
    [warning] = [r for r in caplog.records if r.name == "holdfast.graphql.rowplan"]
    assert warning.levelno == logging.WARNING
    assert "the database went away" in caplog.text


# The stock run gets the context as the failed resolver left it (its claims taken), so it
# would answer NOT_AUTHENTICATED: the comparison is not this test's.
@pytest.mark.no_differential
async def test_a_failed_read_is_reported_as_graphql_core_reports_it(
    app: Starlette, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await gql.sign_up("alice")
    timelines = app.state.services.timelines
    calls: list[str] = []

    def unavailable(name: str) -> Any:
        async def read(*args: Any) -> Any:
            calls.append(name)
            raise ConnectionError("the database went away")

        return read

    monkeypatch.setattr(timelines, "home_rows_of_session", unavailable("plan"))
    monkeypatch.setattr(timelines, "home_of_session", unavailable("resolver"))
    response = await gql.post(BENCH, token=alice.access_token)
    assert calls == ["plan", "resolver"]
    # The field's error, with its path, as graphql-core reports a resolver's: not a request
    # that failed as a whole (a 500 without `data`).
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["path"] == ["homeTimeline"]
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


async def test_pages_by_cursor_either_way_are_answered_from_the_rows(
    app: Starlette, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    for i in range(7):
        await post(gql, bob, f"bob {i}")
    query = (
        "query($first: Int, $after: String, $last: Int, $before: String) { "
        "homeTimeline(first: $first, after: $after, last: $last, before: $before) { "
        "edges { cursor node { text } } "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
    )
    assert compiles(app, query)
    plain = GraphQLClient(gql.http)

    async def page(**variables: Any) -> dict[str, Any]:
        with statements() as sent:
            data = await plain(query, variables, token=alice.access_token)
        assert len(sent) == 1, sent  # answered from the rows (a plan that gave up reads twice)
        return data["homeTimeline"]  # type: ignore[no-any-return]

    def texts(connection: dict[str, Any]) -> list[str]:
        return [edge["node"]["text"] for edge in connection["edges"]]

    first = await page(first=3)
    assert texts(first) == ["bob 6", "bob 5", "bob 4"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    second = await page(first=3, after=first["pageInfo"]["endCursor"])
    assert texts(second) == ["bob 3", "bob 2", "bob 1"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    last = await page(last=2)
    assert texts(last) == ["bob 1", "bob 0"]
    before = await page(last=2, before=second["pageInfo"]["startCursor"])
    assert texts(before) == ["bob 5", "bob 4"]
    between = await page(
        first=5, after=first["pageInfo"]["startCursor"], before=second["pageInfo"]["endCursor"]
    )
    assert texts(between) == ["bob 5", "bob 4", "bob 3", "bob 2"]
    assert await page(first=3, after=last["pageInfo"]["endCursor"]) == {
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": None,
            "endCursor": None,
        },
    }


async def test_a_closed_session_reads_nothing(app: Starlette, gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await post(gql, bob, "for followers")
    assert compiles(app, BENCH)
    assert len((await gql(BENCH, token=alice.access_token))["homeTimeline"]["edges"]) == 1
    await gql("mutation { logOut { __typename } }", token=alice.access_token)

    response = await gql.post(BENCH, token=alice.access_token)

    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


async def test_arguments_the_page_refuses_get_their_error(
    app: Starlette, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    query = "query($n: Int) { homeTimeline(first: $n) { edges { cursor } } }"
    assert compiles(app, query)
    response = await gql.post(query, {"n": 1000}, token=alice.access_token)
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    # Variables that do not coerce: a request error, as before.
    response = await gql.post(query, {"n": "many"}, token=alice.access_token)
    assert response.status_code == 200
    assert "data" not in response.json()
