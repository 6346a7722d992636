"""Limits on documents: size, tokens, depth, aliases, cost and repeated fields, measured in
time linear in the document, each refusal with its code; and codes on every other error."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from graphql import OperationDefinitionNode, parse

from app.models import Post
from app.services.operations import document_hash
from app.settings import Environment, Settings
from schema import build_schema
from schema.http import GraphQLHTTP
from schema.limits import DocumentLimits, Walker, measure_document
from tests.support import GraphQLClient, graphql_endpoint

README = Path(__file__).parents[2] / "README.md"
LIMITS = DocumentLimits(
    max_depth=12, max_aliases=15, max_cost=10_000, max_repeated_fields=20, max_fragments=32
)


def fragment_chain(levels: int) -> str:
    """Each fragment spreads the next one twice: 2^levels paths for a naive walk."""
    parts = ["query Chain { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    parts.append(f"fragment F{levels} on Query {{ viewer {{ id }} }}")
    return "\n".join(parts)


def codes(body: dict[str, object]) -> list[object]:
    errors = body.get("errors")
    assert isinstance(errors, list)
    return [error["extensions"]["code"] for error in errors]


def _walk(settings: Settings, query: str, limits: DocumentLimits = LIMITS) -> Walker:
    document = parse(query)
    walker = Walker(build_schema(settings)._schema, document, limits)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walker.operation(definition)
    return walker


async def test_fragment_chains_are_answered_at_once(http: httpx.AsyncClient) -> None:
    # 2^30 paths for a naive walk (strawberry's limiters hung the process for good at 30).
    within = (await http.post("/graphql", json={"query": fragment_chain(30)})).json()
    over = (await http.post("/graphql", json={"query": fragment_chain(64)})).json()

    assert within == {"data": {"viewer": None}}
    assert codes(over) == ["FRAGMENT_LIMIT_EXCEEDED"]  # 65 fragments reachable from one set


@pytest.mark.parametrize("levels", [8, 16, 32, 64])
def test_measuring_a_fragment_chain_reads_each_selection_set_once(
    settings: Settings, levels: int
) -> None:
    # The depth and alias limiters this replaced walked 2^levels spreads.
    walker = _walk(settings, fragment_chain(levels), replace(LIMITS, max_fragments=1_000))

    assert walker.selection_sets_read == levels + 3  # the operation, each fragment, `viewer`


def test_fragments_count_towards_depth_and_aliases(settings: Settings) -> None:
    deep = "fragment D on User { " + "f { " * 12 + "id" + " }" * 12 + " } { viewer { ...D } }"
    aliased = (
        "fragment A on User { " + " ".join(f"a{i}: id" for i in range(8)) + " } "
        "{ viewer { ...A } other: viewer { ...A } }"
    )
    schema = build_schema(settings)._schema

    deep_errors = measure_document(schema, parse(deep), LIMITS)
    alias_errors = measure_document(schema, parse(aliased), LIMITS)

    assert [e.extensions["code"] for e in deep_errors] == ["DEPTH_LIMIT_EXCEEDED"]
    assert deep_errors[0].message == "'anonymous' exceeds maximum operation depth of 12"
    assert [e.extensions["code"] for e in alias_errors] == ["ALIAS_LIMIT_EXCEEDED"]
    assert alias_errors[0].message.startswith("17 aliases found")


def test_cost_multiplies_page_sizes_through_nested_connections(settings: Settings) -> None:
    query = """
    query Cost($n: Int) {
      publicTimeline(first: 5) { edges { node { id replies(first: 3) { edges { node { id } } } } } }
      homeTimeline(first: $n) { edges { cursor } }
      searchAccounts(text: "a") { id }
      viewer { id }
    }"""
    walker = _walk(settings, query)
    cost = walker.operation(parse(query).definitions[0])  # type: ignore[arg-type]

    # publicTimeline 1 + 5 * (edges 1 + node 1 + id 1 + replies (1 + 3 * (edges, node, id)))
    # homeTimeline: a variable page counts as the largest page, 100 * (edges, cursor);
    # searchAccounts: its default limit of 20 * (id); viewer 1 + 1.
    assert cost.cost == (1 + 5 * (3 + 1 + 3 * 3)) + (1 + 100 * 2) + (1 + 20 * 1) + 2


@pytest.mark.parametrize("max_attachments", [0, 4, 16, 100])
def test_the_cost_of_a_posts_media_follows_max_attachments(
    settings: Settings, max_attachments: int
) -> None:
    configured = settings.model_copy(
        update={"media": settings.media.model_copy(update={"max_attachments": max_attachments})}
    )
    schema = build_schema(configured)
    query = "{ publicTimeline(first: 10) { edges { node { media { url thumbnailUrl } } } } }"
    document = parse(query)
    walker = Walker(schema._schema, document, schema.pipeline.rules.limits)

    cost = walker.operation(document.definitions[0])  # type: ignore[arg-type]

    # publicTimeline 1 + 10 * (edges 1 + node 1 + media (1 + max_attachments * 2)); an
    # empty list still counts its selection once.
    assert cost.cost == 1 + 10 * (2 + 1 + max(1, max_attachments) * 2)


async def test_a_million_node_query_is_refused_before_execution(gql: GraphQLClient) -> None:
    query = """{ publicTimeline(first: 100) { edges { node { id
      replies(first: 100) { edges { node { id
        replies(first: 100) { edges { node { id } } } } } } } } } }"""

    body = (await gql.post(query)).json()

    assert codes(body) == ["COST_LIMIT_EXCEEDED"]
    assert "data" not in body  # a request error: nothing ran


def test_every_query_in_the_readme_is_within_the_limits(settings: Settings) -> None:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    schema = build_schema(settings)._schema

    assert blocks
    for block in blocks:
        assert measure_document(schema, parse(block), LIMITS) == [], block


async def test_the_cost_limit_is_a_setting(settings: Settings) -> None:
    strict = settings.model_copy(
        update={"graphql": settings.graphql.model_copy(update={"max_cost": 100})}
    )
    endpoint = graphql_endpoint(strict)
    query = "{ publicTimeline(first: 50) { edges { node { id } } } }"
    async with _client(endpoint) as client:
        refused = (await client.post("/graphql", json={"query": query})).json()
        allowed = (await client.post("/graphql", json={"query": "{ viewer { id } }"})).json()

    assert codes(refused) == ["COST_LIMIT_EXCEEDED"]
    assert allowed == {"data": {"viewer": None}}


async def test_many_copies_of_one_field_are_refused(http: httpx.AsyncClient) -> None:
    # graphql-core compares every pair of same-named fields: 300 copies took it a second.
    query = "{ " + "viewer { id } " * 300 + "}"

    body = (await http.post("/graphql", json={"query": query})).json()

    assert codes(body) == ["REPEATED_FIELD_LIMIT_EXCEEDED"]


async def test_documents_over_the_byte_limit_are_refused_unparsed(
    http: httpx.AsyncClient,
) -> None:
    query = "{ viewer { id } }" + " " * 40_000

    body = (await http.post("/graphql", json={"query": query})).json()

    assert codes(body) == ["DOCUMENT_TOO_LARGE"]


@pytest.mark.usefixtures("app")  # the database: an APQ miss asks the registered operations
async def test_documents_over_the_byte_limit_are_kept_by_no_cache(settings: Settings) -> None:
    # Each is refused, and none may stay behind as a cache key: 1,024 of them, each up to the
    # request body limit (1 MiB), would pin a gigabyte.
    endpoint = graphql_endpoint(settings)
    pipeline = endpoint.schema.pipeline
    texts = ["{ viewer { id } }" + " " * (40_000 + n) for n in range(4)]
    async with _client(endpoint) as client:
        answers = [
            await client.post("/graphql", json=body)
            for text in texts
            for body in (
                {"query": text},
                # An APQ registration of it: not stored either.
                {"query": text, "extensions": {"persistedQuery": _persisted(text)}},
            )
        ]
        over_a_socket = [pipeline.prepare(text) for text in texts]

    assert [codes(answer.json()) for answer in answers] == [["DOCUMENT_TOO_LARGE"]] * 8
    assert all(prepared.document is None for prepared in over_a_socket)
    assert pipeline._prepare.cache_info().currsize == 0  # type: ignore[attr-defined]
    assert pipeline.parse.cache_info().currsize == 0  # type: ignore[attr-defined]
    assert len(endpoint.documents.stored) == 0  # type: ignore[attr-defined]


def _persisted(text: str) -> dict[str, object]:
    return {"version": 1, "sha256Hash": document_hash(text)}


async def test_documents_over_the_token_limit_are_refused(http: httpx.AsyncClient) -> None:
    def query(variables: int) -> str:
        # 4 tokens per variable definition, 12 more around them (with <SOF> and <EOF>).
        return (
            "query Q(" + " ".join(f"$v{i}: Int" for i in range(variables)) + ") { viewer { id } }"
        )

    within = (await http.post("/graphql", json={"query": query(497)})).json()
    over = (await http.post("/graphql", json={"query": query(498)})).json()

    assert set(codes(within)) == {"GRAPHQL_VALIDATION_FAILED"}  # the variables are unused
    assert codes(over) == ["TOKEN_LIMIT_EXCEEDED"]
    assert over.get("data") is None


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ viewer { id }", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ viewr { id } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($n: Int) { publicTimeline(first: $n) { edges { cursor } } }",
            {"n": "x"},
            "BAD_USER_INPUT",
        ),
        ("{ homeTimeline { edges { cursor } } }", {}, "NOT_AUTHENTICATED"),
    ],
)
async def test_every_error_carries_a_code(
    http: httpx.AsyncClient, query: str, variables: dict[str, object], code: str
) -> None:
    body = (await http.post("/graphql", json={"query": query, "variables": variables})).json()

    assert codes(body) == [code]


async def test_an_unknown_operation_name_is_a_coded_bad_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "query A { viewer { id } }", "operationName": "C"},
        headers={"Accept": "application/graphql-response+json"},
    )

    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


ENUM_QUERY = (
    'mutation($v: Visibility!) { createPost(input: {text: "x", visibility: $v}) { __typename } }'
)


async def _suggestions(client: httpx.AsyncClient) -> list[str]:
    field = (await client.post("/graphql", json={"query": "{ viewr { id } }"})).json()
    value = await client.post("/graphql", json={"query": ENUM_QUERY, "variables": {"v": "PUBLC"}})
    return [e["message"] for e in field["errors"] + value.json()["errors"]]


async def test_production_errors_suggest_nothing(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    production = settings.model_copy(update={"env": Environment.PRODUCTION})
    async with _client(graphql_endpoint(production)) as client:
        quiet = await _suggestions(client)
    helpful = await _suggestions(http)

    assert len(quiet) == 2
    assert all("Did you mean" not in message for message in quiet)
    assert all("Did you mean" in message for message in helpful)  # development still helps
    assert await Post.all().count() == 0


def _client(endpoint: GraphQLHTTP) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=endpoint), base_url="http://testserver"
    )


POST_FIELDS = """fragment PostFields on Post { id text contentWarning visibility createdAt
  editedAt likeCount repostCount replyCount quoteCount viewerHasLiked viewerHasReposted
  viewerHasBookmarked author { id username displayName } entities { kind start end value } }"""


def test_lists_are_costed_at_the_most_they_can_hold(settings: Settings) -> None:
    # `ancestors` returns up to 40 posts, and each nested one runs a statement of its own.
    thread = (
        "query($id: ID!) { node(id: $id) { ... on Post { ...PostFields ancestors { ...PostFields }"
        " replies(first: 20) { edges { node { ...PostFields } } } } } } " + POST_FIELDS
    )
    nested = (
        "query($id: ID!) { node(id: $id) { ... on Post {"
        " ancestors { ancestors { ancestors { id } } } } } }"
    )
    schema = build_schema(settings)._schema

    assert measure_document(schema, parse(thread), LIMITS) == []  # a thread view
    errors = measure_document(schema, parse(nested), LIMITS)
    assert [e.extensions["code"] for e in errors] == ["COST_LIMIT_EXCEEDED"]


async def test_many_fragments_in_one_selection_are_refused(http: httpx.AsyncClient) -> None:
    # graphql-core compares every pair of fragments spread into one selection set.
    fragments = 185
    spreads = " ".join(f"...G{i}" for i in range(fragments))
    definitions = " ".join(f"fragment G{i} on User {{ id }}" for i in range(fragments))
    wrappers = " ".join(f"fragment W{i} on User {{ ...G0 }}" for i in range(40))
    wrapped = " ".join(f"...W{i}" for i in range(40))
    aliased = " ".join(f"fragment G{i} on User {{ t{i}: __typename }}" for i in range(20))
    aliased_spreads = " ".join(f"...G{i}" for i in range(20))

    many = (
        await http.post("/graphql", json={"query": f"{{ viewer {{ {spreads} }} }} {definitions}"})
    ).json()
    typenames = (
        await http.post(
            "/graphql", json={"query": f"{{ viewer {{ {aliased_spreads} }} }} {aliased}"}
        )
    ).json()

    # Wrappers that only spread another are compared pairwise too.
    only_spreads = (
        await http.post(
            "/graphql",
            json={"query": f"{{ viewer {{ {wrapped} }} }} {wrappers} fragment G0 on User {{ id }}"},
        )
    ).json()

    assert codes(many) == ["FRAGMENT_LIMIT_EXCEEDED"]
    assert codes(only_spreads) == ["FRAGMENT_LIMIT_EXCEEDED"]
    assert codes(typenames) == ["ALIAS_LIMIT_EXCEEDED"]  # aliases of __typename count too
