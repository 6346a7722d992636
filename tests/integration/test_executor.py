"""The executor's shortcuts give the same answers as graphql-core's ordinary path."""

from __future__ import annotations

from starlette.applications import Starlette

from tests.social import post
from tests.support import GraphQLClient

CONDITIONAL = """
query($withText: Boolean!) {
  publicTimeline(first: 2) { edges { node { id text @include(if: $withText) ...Who } } }
}
fragment Who on Post { author { username displayName @skip(if: $withText) } }
"""

STATIC = """
{ publicTimeline(first: 2) { edges { node { id ...Who text @include(if: true) } } } }
fragment Who on Post { author { username displayName @skip(if: true) } }
"""


async def test_skip_and_include_with_variables_are_honoured_per_request(
    gql: GraphQLClient,
) -> None:
    alice = await gql.sign_up("alice", display_name="Alice A")
    await post(gql, alice, "hello")

    with_text = await gql(CONDITIONAL, {"withText": True})
    without = await gql(CONDITIONAL, {"withText": False})
    again = await gql(CONDITIONAL, {"withText": True})

    node = with_text["publicTimeline"]["edges"][0]["node"]
    assert node["text"] == "hello"
    assert node["author"] == {"username": "alice"}
    other = without["publicTimeline"]["edges"][0]["node"]
    assert "text" not in other
    assert other["author"] == {"username": "alice", "displayName": "Alice A"}
    assert again == with_text


async def test_static_directives_and_fragments(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "hello")

    for _ in range(2):  # the second time from the collected-fields cache
        data = await gql(STATIC)
        node = data["publicTimeline"]["edges"][0]["node"]
        assert node["text"] == "hello"
        assert node["author"] == {"username": "alice"}


async def test_a_null_for_a_non_null_field_is_still_an_error(gql: GraphQLClient) -> None:
    from app.models import User

    alice = await gql.sign_up("alice")
    await User.filter(username_key="alice").update(display_name="")

    data = await gql("{ viewer { displayName username } }", token=alice.access_token)

    assert data["viewer"] == {"displayName": "", "username": "alice"}


async def test_an_error_inside_an_inlined_object_nulls_only_that_object(
    gql: GraphQLClient,
) -> None:
    alice = await gql.sign_up("alice")
    root = await post(gql, alice, "root")
    await post(gql, alice, "reply", replyTo=root["id"])

    response = await gql.post(
        "{ publicTimeline(first: 5) { edges { node { text "
        "replyTo { id replies(first: 0) { edges { cursor } } } } } } }"
    )

    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    nodes = [e["node"] for e in body["data"]["publicTimeline"]["edges"]]
    assert nodes == [{"text": "reply", "replyTo": None}, {"text": "root", "replyTo": None}]


async def test_ids_that_are_not_ids_are_not_found(gql: GraphQLClient) -> None:
    import base64

    from tests.social import act

    alice = await gql.sign_up("alice")

    def global_id(raw: str) -> str:
        return base64.b64encode(raw.encode()).decode()

    for raw in ("Post:abc", "User:abc", "Post:99999999999999999999999", "Post:-5", "Post:0"):
        data = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": global_id(raw)})
        assert data["node"] is None, raw
        liked = await act(gql, "likePost", alice, postId=global_id(raw))
        assert liked["code"] == "NOT_FOUND", raw
    followed = await act(gql, "followUser", alice, userId=global_id("User:99999999999999999999"))
    assert followed["code"] == "NOT_FOUND"


async def test_a_cached_timeline_page_runs_compiled_selections(
    app: Starlette, gql: GraphQLClient
) -> None:
    from schema import executor

    alice = await gql.sign_up("alice")
    await post(gql, alice, "hello")
    query = "{ publicTimeline(first: 2) { edges { cursor node { id text author { username } } } } }"
    first = await gql(query)
    # This operation's own compiled selections (the document is cached by its text).
    document = app.state.graphql.schema.pipeline.prepare(query).document
    cache = executor._operations[id(document.definitions[0])]
    compiled = {
        name.split()[-1].rstrip(">")
        for run in cache.compiled.values()
        if (name := run.__code__.co_filename).startswith("<selection")
    }
    assert compiled == {"PostConnection", "PostEdge", "Post", "User"}
    assert await gql(query) == first
    assert first["publicTimeline"]["edges"][0]["node"]["author"] == {"username": "alice"}
