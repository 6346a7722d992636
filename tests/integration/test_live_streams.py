"""Subscriptions deliver what the queries they mirror would show the viewer, checked when each
event is delivered, over real WebSocket connections to a uvicorn server.

Where a subscriber must receive nothing, a later event it may see is sent after the one it may
not: streams deliver in order, so the first message it gets must be the later one (no sleeps).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from app import live
from app.main import create_app
from tests.conftest import make_settings
from tests.live import LiveClient, db_id, live_client, served_in_loop, subscribed
from tests.social import act, follow, post, timeline
from tests.support import Account, GraphQLClient

PUBLIC = (
    "subscription { publicTimeline { cursor node { id text visibility author { username } } } }"
)
HASHTAG = "subscription($tag: String!) { hashtagTimeline(tag: $tag) { cursor node { text } } }"
HOME = """subscription { homeTimeline { cursor repostedBy { username }
  node { text author { username } viewerHasLiked quoteOf { text } } } }"""
NOTIFICATIONS = """subscription { notifications {
  cursor node { kind isRead actor { username } post { text } } } }"""
POST_UPDATED = """subscription($id: ID!) { postUpdated(id: $id) {
  id text likeCount replyCount isDeleted viewerHasLiked author { username } } }"""


async def connect(stack: AsyncExitStack, base: str, viewer: Account | None) -> LiveClient:
    client = await stack.enter_async_context(live_client(base))
    ack = await client.init(viewer.access_token if viewer else None)
    assert ack == {"type": "connection_ack"}
    return client


def text_of(data: dict[str, object], field: str) -> str:
    edge = data[field]
    assert isinstance(edge, dict)
    return str(edge["node"]["text"])


async def test_the_public_timeline_gets_new_public_posts_with_their_query_cursor(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with AsyncExitStack() as stack:
        anonymous = await connect(stack, live_server, None)
        await anonymous.subscribe("p", PUBLIC)
        await subscribed(app, live.PUBLIC)

        await post(gql, alice, "for followers", visibility="FOLLOWERS")
        created = await post(gql, alice, "for everyone")
        data = await anonymous.next_data("p")

    page = await timeline(gql, "publicTimeline", first=1)
    assert data["publicTimeline"]["node"] == {
        "id": created["id"],
        "text": "for everyone",
        "visibility": "PUBLIC",
        "author": {"username": "alice"},
    }
    assert data["publicTimeline"]["cursor"] == page["edges"][0]["cursor"]


async def test_a_hashtag_stream_checks_each_post_against_its_viewer(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice, bob, carol = [await gql.sign_up(name) for name in ("alice", "bob", "carol")]
    await follow(gql, bob, alice)
    async with AsyncExitStack() as stack:
        follower, other = [await connect(stack, live_server, v) for v in (bob, carol)]
        for client in (follower, other):
            await client.subscribe("t", HASHTAG, {"tag": "#Garden"})
        await subscribed(app, live.hashtag_channel("garden"))

        await post(gql, alice, "#garden for followers", visibility="FOLLOWERS")
        assert text_of(await follower.next_data("t"), "hashtagTimeline") == "#garden for followers"
        await post(gql, alice, "#garden only the author", visibility="SUBSCRIBERS")
        await post(gql, alice, "#garden for @carol", visibility="DIRECT")
        assert text_of(await other.next_data("t"), "hashtagTimeline") == "#garden for @carol"
        await post(gql, alice, "#garden for all")
        assert text_of(await follower.next_data("t"), "hashtagTimeline") == "#garden for all"
        assert text_of(await other.next_data("t"), "hashtagTimeline") == "#garden for all"


async def test_blocks_and_mutes_made_after_subscribing_apply(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice, bob, carol, dave = [await gql.sign_up(n) for n in ("alice", "bob", "carol", "dave")]
    async with AsyncExitStack() as stack:
        viewer = await connect(stack, live_server, bob)
        await viewer.subscribe("p", PUBLIC)
        await subscribed(app, live.PUBLIC)
        await act(gql, "muteUser", bob, userId=alice.id)
        await act(gql, "blockUser", carol, userId=bob.id)

        await post(gql, alice, "muted")
        await post(gql, carol, "blocking")
        await post(gql, dave, "neither")

        assert text_of(await viewer.next_data("p"), "publicTimeline") == "neither"


async def test_the_home_timeline_gets_its_fanned_out_entries(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    names = ("alice", "bob", "carol", "dave", "erin")
    alice, bob, carol, dave, erin = [await gql.sign_up(n) for n in names]
    await follow(gql, bob, alice)
    await follow(gql, bob, dave)
    async with AsyncExitStack() as stack:
        follower, other = [await connect(stack, live_server, v) for v in (bob, carol)]
        for client in (follower, other):
            await client.subscribe("h", HOME)
        await subscribed(app, live.home_channel(db_id(bob.id)), live.home_channel(db_id(carol.id)))

        first = await post(gql, alice, "for followers", visibility="FOLLOWERS")
        edge = (await follower.next_data("h"))["homeTimeline"]
        await act(gql, "likePost", bob, postId=first["id"])
        # A post of an account Bob does not follow comes in as Dave's repost.
        await act(gql, "repostPost", dave, postId=(await post(gql, erin, "reposted"))["id"])
        repost = (await follower.next_data("h"))["homeTimeline"]
        await post(gql, carol, "carol's own")
        own = (await other.next_data("h"))["homeTimeline"]

    page = await timeline(gql, "homeTimeline", bob, first=2)
    assert edge["node"] == {
        "text": "for followers",
        "author": {"username": "alice"},
        "viewerHasLiked": False,
        "quoteOf": None,
    }
    assert edge["cursor"] == page["edges"][1]["cursor"]
    assert repost["node"]["text"] == "reposted"
    assert repost["repostedBy"] == {"username": "dave"}
    assert repost["cursor"] == page["edges"][0]["cursor"]
    # Carol follows nobody: the first entry she got is her own post.
    assert own["node"]["text"] == "carol's own"


async def test_posts_of_big_accounts_reach_their_followers_home_timelines(
    data_dir: Path, database_url: str, app: Starlette
) -> None:
    settings = make_settings(data_dir, database_url, timelines={"fanout_max_followers": 1})
    big_app = create_app(settings)
    transport = httpx.ASGITransport(app=big_app)
    async with (
        served_in_loop(big_app) as base,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        AsyncExitStack() as stack,
    ):
        gql = GraphQLClient.settling(http, big_app)
        alice, bob, carol = [await gql.sign_up(name) for name in ("alice", "bob", "carol")]
        await follow(gql, bob, alice)
        await follow(gql, carol, alice)
        await act(gql, "muteUser", carol, userId=alice.id)
        follower, muting = [await connect(stack, base, v) for v in (bob, carol)]
        for client in (follower, muting):
            await client.subscribe("h", HOME)
        await subscribed(big_app, live.author_channel(db_id(alice.id)))

        await post(gql, alice, "from a big account")
        assert text_of(await follower.next_data("h"), "homeTimeline") == "from a big account"
        await post(gql, carol, "carol's own")
        assert text_of(await muting.next_data("h"), "homeTimeline") == "carol's own"
        assert [e["node"]["text"] for e in (await timeline(gql, "homeTimeline", bob))["edges"]] == [
            "from a big account"
        ]


async def test_notifications_arrive_as_the_query_shows_them(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice, bob, carol = [await gql.sign_up(name) for name in ("alice", "bob", "carol")]
    liked = await post(gql, alice, "like me")
    await act(gql, "muteUser", alice, userId=carol.id)
    async with AsyncExitStack() as stack:
        recipient = await connect(stack, live_server, alice)
        await recipient.subscribe("n", NOTIFICATIONS)
        await subscribed(app, live.notifications_channel(db_id(alice.id)))

        await act(gql, "likePost", carol, postId=liked["id"])  # muted: not shown
        await act(gql, "likePost", bob, postId=liked["id"])
        data = (await recipient.next_data("n"))["notifications"]

    page = await gql(
        "{ notifications(first: 5) { edges { cursor node { kind } } } }", token=alice.access_token
    )
    assert data["node"] == {
        "kind": "LIKE",
        "isRead": False,
        "actor": {"username": "bob"},
        "post": {"text": "like me"},
    }
    assert data["cursor"] == page["notifications"]["edges"][0]["cursor"]


async def test_post_updated_follows_counts_edits_and_the_deletion(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice, bob = await gql.sign_up("alice"), await gql.sign_up("bob")
    watched = await post(gql, alice, "watch me")
    async with AsyncExitStack() as stack:
        viewer = await connect(stack, live_server, bob)
        await viewer.subscribe("u", POST_UPDATED, {"id": watched["id"]})
        await subscribed(app, live.post_channel(db_id(watched["id"])))

        await act(gql, "likePost", bob, postId=watched["id"])
        liked = (await viewer.next_data("u"))["postUpdated"]
        await post(gql, bob, "a reply", replyTo=watched["id"])
        replied = (await viewer.next_data("u"))["postUpdated"]
        edit = 'mutation($id: ID!) { editPost(input: {id: $id, text: "edited"}) { __typename } }'
        await gql(edit, {"id": watched["id"]}, token=alice.access_token)
        edited = (await viewer.next_data("u"))["postUpdated"]
        delete = "mutation($id: ID!) { deletePost(input: {postId: $id}) { __typename } }"
        await gql(delete, {"id": watched["id"]}, token=alice.access_token)
        deleted = (await viewer.next_data("u"))["postUpdated"]
        completed = await viewer.receive()

    assert (liked["likeCount"], liked["viewerHasLiked"]) == (1, True)
    assert replied["replyCount"] == 1
    assert edited["text"] == "edited"
    assert deleted == {
        "id": watched["id"],
        "text": "",
        "likeCount": 0,
        "replyCount": 1,
        "isDeleted": True,
        "viewerHasLiked": False,
        "author": {"username": "alice"},
    }
    assert completed == {"id": "u", "type": "complete"}


async def test_a_deleted_post_shows_no_referred_posts_live(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    # The tombstone keeps nothing of its content: not the posts it replied to and quoted
    # either (views.related_joins), live as in a query.
    alice, bob = await gql.sign_up("alice"), await gql.sign_up("bob")
    target = await post(gql, alice, "the target")
    watched = await post(gql, alice, "watch me", replyTo=target["id"], quoteOf=target["id"])
    document = """subscription($id: ID!) { postUpdated(id: $id) {
      text isDeleted replyTo { text } quoteOf { text } } }"""
    async with AsyncExitStack() as stack:
        viewer = await connect(stack, live_server, bob)
        await viewer.subscribe("u", document, {"id": watched["id"]})
        await subscribed(app, live.post_channel(db_id(watched["id"])))
        await act(gql, "likePost", bob, postId=watched["id"])
        liked = (await viewer.next_data("u"))["postUpdated"]
        delete = "mutation($id: ID!) { deletePost(input: {postId: $id}) { __typename } }"
        await gql(delete, {"id": watched["id"]}, token=alice.access_token)
        deleted = (await viewer.next_data("u"))["postUpdated"]

    assert liked == {
        "text": "watch me",
        "isDeleted": False,
        "replyTo": {"text": "the target"},
        "quoteOf": {"text": "the target"},
    }
    assert deleted == {"text": "", "isDeleted": True, "replyTo": None, "quoteOf": None}
    data = await gql(
        "query($id: ID!) { node(id: $id) { ... on Post { replyTo { text } } } }",
        {"id": watched["id"]},
        token=bob.access_token,
    )
    assert data["node"] == {"replyTo": None}


@pytest.mark.parametrize(
    ("document", "variables", "signed_in", "code"),
    [
        ("subscription { homeTimeline { cursor } }", {}, False, "NOT_AUTHENTICATED"),
        ("subscription { notifications { cursor } }", {}, False, "NOT_AUTHENTICATED"),
        (POST_UPDATED, {"id": "not a global id"}, True, "NOT_FOUND"),
        (POST_UPDATED, {"id": "hidden"}, True, "NOT_FOUND"),
        (HASHTAG, {"tag": "x" * 101}, False, "INVALID_INPUT"),
        ("subscription { publicTimeline { nope } }", {}, False, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_a_stream_the_viewer_may_not_read_is_refused_with_a_code(
    live_server: str,
    gql: GraphQLClient,
    document: str,
    variables: dict[str, str],
    signed_in: bool,
    code: str,
) -> None:
    alice, carol = await gql.sign_up("alice"), await gql.sign_up("carol")
    if variables.get("id") == "hidden":
        variables = {"id": (await post(gql, alice, "followers", visibility="FOLLOWERS"))["id"]}
    async with AsyncExitStack() as stack:
        client = await connect(stack, live_server, carol if signed_in else None)
        await client.subscribe("x", document, variables)
        refused = await client.receive()
        await client.subscribe("y", PUBLIC)  # the connection is still usable
        await post(gql, alice, "still open")
        data = await client.next_data("y")

    assert refused["type"] == "error"
    assert [error["extensions"]["code"] for error in refused["payload"]] == [code]
    assert text_of(data, "publicTimeline") == "still open"


async def test_one_event_is_one_statement_for_every_subscriber_it_reaches(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    author = await gql.sign_up("author")
    viewers = [await gql.sign_up(f"viewer{i}") for i in range(12)]
    await act(gql, "muteUser", viewers[0], userId=author.id)
    batches = app.state.services.live.batches
    async with AsyncExitStack() as stack:
        clients = [await connect(stack, live_server, v) for v in [*viewers, None, None, None]]
        for client in clients:
            await client.subscribe("p", PUBLIC)
        await subscribed(app, live.PUBLIC)
        hub_subscribers = len(app.state.services.pubsub.hub._by_channel[live.PUBLIC])
        before = batches.statements

        await post(gql, author, "to everyone")
        received = [await client.next_data("p") for client in clients[1:]]
        statements = batches.statements - before
        await post(gql, viewers[1], "the muting viewer's next")
        first_for_muting = await clients[0].next_data("p")

    assert hub_subscribers == 15
    assert {text_of(data, "publicTimeline") for data in received} == {"to everyone"}
    # One statement for the signed-in viewers, one for the signed-out ones.
    assert statements == 2
    assert text_of(first_for_muting, "publicTimeline") == "the muting viewer's next"


@pytest.fixture
async def _no_leftover_subscriptions(app: Starlette) -> AsyncIterator[None]:
    yield
    hub = app.state.services.pubsub.hub

    async def empty() -> bool:
        return not hub.channels

    from tests.live import eventually

    await eventually(empty)


@pytest.mark.usefixtures("_no_leftover_subscriptions")
async def test_closing_a_connection_ends_its_subscriptions(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    async with AsyncExitStack() as stack:
        client = await connect(stack, live_server, alice)
        await client.subscribe("p", PUBLIC)
        await client.subscribe("h", HOME)
        await subscribed(app, live.PUBLIC, live.home_channel(db_id(alice.id)))
        await client.complete("p")
        await post(gql, alice, "mine")
        assert text_of(await client.next_data("h"), "homeTimeline") == "mine"
