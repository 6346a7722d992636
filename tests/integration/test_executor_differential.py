"""The fast executor answers as graphql-core's stock one does (tests/differential.py runs
every document the suite sends both ways; here, generated selections over the timeline types
on a small data set that has every kind of post), and the harness itself: it runs both, runs a
mutation once, and catches an executor that answers differently."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.models import Post
from schema import HoldfastSchema, build_schema
from schema.context import Context
from schema.operations import GraphQLRequest
from schema.runner import Runner
from tests.differential import (
    STATEMENT_LOGGERS,
    Differential,
    DifferentialRunner,
    stock_schema,
    with_root_mutations,
)
from tests.selections import GENERATED, World, documents, make_world
from tests.social import CREATE_POST, post
from tests.support import GraphQLClient

# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture
async def world(http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette) -> World:
    return await make_world(http, gql, app)


# Generated documents against the shared app: reproducible runs, no example database.
@given(data=st.data())
@GENERATED
async def test_generated_timeline_selections_get_the_same_answers(
    app: Starlette, gql: GraphQLClient, world: World, data: st.DataObject
) -> None:
    differential: Differential = app.state.differential
    document = data.draw(documents(app.state.graphql.schema._schema, world))
    note(f"viewer: {document.viewer}\n{document.query}\nvariables: {document.variables}")
    viewer = world.accounts[document.viewer] if document.viewer else None
    pairs = differential.pairs
    earlier = len(differential.mismatches)  # the data set's (they fail the test at teardown)

    response = await gql.post(
        document.query, document.variables, token=viewer.access_token if viewer else None
    )

    mismatches = differential.mismatches[earlier:]
    del differential.mismatches[earlier:]  # reported here, shrunk by hypothesis
    assert not mismatches, str(mismatches[0])
    assert differential.pairs == pairs + 1
    assert response.status_code == 200, response.text
    body = response.json()
    assert "data" in body or body["errors"], body  # ran, or was refused with a reason


async def test_every_operation_of_the_shared_app_runs_under_both_executors(
    app: Starlette, gql: GraphQLClient
) -> None:
    differential: Differential = app.state.differential
    before = differential.pairs

    alice = await gql.sign_up("alice")
    await post(gql, alice, "hello")
    await gql("{ publicTimeline(first: 5) { edges { node { text author { username } } } } }")

    assert differential.pairs == before + 3
    # The mutation ran once: its second "run" completed what the first returned.
    assert await Post.all().count() == 1


async def test_the_stock_run_logs_no_statements(
    app: Starlette, gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    differential: Differential = app.state.differential
    alice = await gql.sign_up("alice")
    await post(gql, alice, "hello")
    query = "{ publicTimeline(first: 5) { edges { node { text author { username } } } } }"

    counts = []
    for enabled in (False, True):
        differential.enabled = enabled
        pairs = differential.pairs
        caplog.clear()
        with (
            caplog.at_level(logging.DEBUG, logger=STATEMENT_LOGGERS[0]),
            caplog.at_level(logging.DEBUG, logger=STATEMENT_LOGGERS[1]),
        ):
            await GraphQLClient(gql.http)(query)
        counts.append(len([r for r in caplog.records if r.name in STATEMENT_LOGGERS]))
        assert differential.pairs == pairs + enabled

    assert counts[0] == counts[1] > 0


# An executor that answers differently: every string comes out upper-cased.
class _Shouting(StrawberryGraphQLCoreExecutionContext):
    @staticmethod
    def complete_leaf_value(return_type: Any, result: Any) -> Any:
        value = StrawberryGraphQLCoreExecutionContext.complete_leaf_value(return_type, result)
        return value.upper() if isinstance(value, str) else value


def _context(app: Starlette, viewer: Any = None) -> Context:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [],
        "query_string": b"",
        "client": ("203.0.113.7", 50_000),
    }
    return Context(request=Request(scope), services=app.state.services, viewer=viewer)


async def _runner_pair(
    app: Starlette, fast_schema: HoldfastSchema
) -> tuple[DifferentialRunner, Differential]:
    differential = Differential()
    stock = stock_schema(app.state.services.settings)
    return DifferentialRunner(Runner(fast_schema), Runner(stock), differential), differential


async def test_the_runner_seam_catches_an_executor_that_answers_differently(
    app: Starlette, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "quiet words")
    shouting = stock_schema(app.state.services.settings)
    shouting.execution_context_class = with_root_mutations(_Shouting)
    runner, differential = await _runner_pair(app, shouting)
    query = "{ publicTimeline(first: 1) { edges { node { text } } } }"

    result = await runner.run(
        shouting.pipeline.prepare(query), GraphQLRequest(query), _context(app)
    )

    assert result.data == {"publicTimeline": {"edges": [{"node": {"text": "QUIET WORDS"}}]}}
    assert len(differential.mismatches) == 1
    message = str(differential.mismatches[0])
    assert '"text":"QUIET WORDS"' in message
    assert '"text":"quiet words"' in message
    assert "publicTimeline(first: 1)" in message


# The shared app's own pair is off: this test runs its own, through the runner.
@pytest.mark.no_differential
async def test_the_runner_seam_runs_a_mutation_once_and_compares_its_result(
    app: Starlette, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    fast: HoldfastSchema = app.state.graphql.schema
    runner, differential = await _runner_pair(app, fast)
    viewer = await app.state.services.accounts.resolve_viewer(alice.access_token)
    variables = {"input": {"text": "once #only"}}

    result = await runner.run(
        fast.pipeline.prepare(CREATE_POST),
        GraphQLRequest(CREATE_POST, variables, http_method="POST"),
        _context(app, viewer),
    )

    assert result.errors is None
    assert result.data is not None
    assert result.data["createPost"]["post"]["text"] == "once #only"
    assert await Post.all().count() == 1
    assert differential.mismatches == []
    assert differential.pairs == 1


class _Tracing(SchemaExtension):
    """A tracing extension: it must see every operation and every field it resolves."""

    fields: list[str] = []

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        _Tracing.fields.append(info.field_name)
        return _next(root, info, *args, **kwargs)


async def test_an_extension_added_to_the_schema_after_the_runner_sees_every_field(
    app: Starlette, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "traced")
    schema = build_schema(app.state.services.settings)
    runner = Runner(schema)
    schema.extensions = (*schema.extensions, _Tracing)
    _Tracing.fields = []
    query = "{ publicTimeline(first: 1) { edges { node { text } } } }"

    result = await runner.run(schema.pipeline.prepare(query), GraphQLRequest(query), _context(app))

    assert result.data == {"publicTimeline": {"edges": [{"node": {"text": "traced"}}]}}
    assert {"publicTimeline", "edges", "node", "text"} <= set(_Tracing.fields)
