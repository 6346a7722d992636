"""SUBSCRIBERS posts and their media, on every read path, for each kind of viewer: an active
subscriber, one in the grace period after a failed renewal, a lapsed one, an outsider, the
author and a signed-out reader. The ledger's state is written directly (plans and
subscriptions, app/models/billing.py): premium access is read from it alone, so no payment
provider is needed. And the perks of a plan: longer posts, more media.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from strawberry.relay import to_base64

from app import live
from app.models import Bookmark, Like, Post
from tests.authz import (
    ancestor_texts,
    db_id,
    edit_post,
    node,
    notifications,
    reply_texts,
    set_access,
    thread,
    token,
    try_post,
    user_posts,
)
from tests.live import LiveClient, live_client, subscribed
from tests.media import POST, path_of, post_with_media, ready_media
from tests.social import act, follow, post, texts, timeline
from tests.support import Account, GraphQLClient

SECRET = "velvet secret for members #lounge @sub @grace @lapsed @outsider"
EDITED = SECRET + " (edited)"
FOLLOW_UP = "velvet follow-up for members #lounge"
PUBLIC_REPLY = "a public reply to the velvet post"
HIDDEN_REPLY = "velvet aside for members"
QUOTE = "quoting the velvet post"

# The viewers, and whether each may see a SUBSCRIBERS post. None: signed out.
SEES = {
    "author": True,
    "sub": True,  # paid through a period not over
    "grace": True,  # the period ended, a renewal failed: access until the grace period ends
    "lapsed": False,  # access ended
    "outsider": False,  # never subscribed
    None: False,
}
VIEWERS = list(SEES)
# Who sees the SUBSCRIBERS reply that `sub` wrote: accounts with premium access (its author
# among them). The author of the first post has none: it sees its own posts only.
PREMIUM = {"sub", "grace"}


@dataclass
class World:
    accounts: dict[str, Account]
    secret: dict[str, Any]  # the SUBSCRIBERS post, as its author saw it when posting
    public_post: dict[str, Any]  # a public post of the author's with a SUBSCRIBERS reply
    public_reply: dict[str, Any]  # a public reply to the SUBSCRIBERS post
    quote_id: str  # a public post quoting the SUBSCRIBERS post
    media_key: str  # the stored key of the SUBSCRIBERS post's image

    def viewer(self, name: str | None) -> Account | None:
        return self.accounts[name] if name else None


async def make_world(http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette) -> World:
    names = ("author", "sub", "grace", "lapsed", "outsider")
    accounts = {name: await gql.sign_up(name) for name in names}
    author = accounts["author"]
    # Every reader follows the author and, for now, has access: each likes and bookmarks the
    # post while it may, and keeps the rows after losing access.
    for name in ("sub", "grace", "lapsed", "outsider"):
        assert await follow(gql, accounts[name], author) == "FOLLOWING"
        await set_access(name, "active")
    image = await ready_media(http, gql, app, author)
    created = await post_with_media(gql, author, [image["id"]], visibility="SUBSCRIBERS")
    assert created["__typename"] == "CreatePostSuccess", created
    secret_id = created["post"]["id"]
    edited = await edit_post(gql, author, secret_id, SECRET)
    assert edited["__typename"] == "EditPostSuccess", edited
    await post(gql, author, FOLLOW_UP, visibility="SUBSCRIBERS")
    public_reply = await post(gql, accounts["sub"], PUBLIC_REPLY, replyTo=secret_id)
    public_post = await post(gql, author, "a public post #lounge")
    await post(
        gql, accounts["sub"], HIDDEN_REPLY, replyTo=public_post["id"], visibility="SUBSCRIBERS"
    )
    for name in ("sub", "grace", "lapsed", "outsider"):
        for verb in ("likePost", "bookmarkPost"):
            done = await act(gql, verb, accounts[name], postId=secret_id)
            assert done["__typename"].endswith("Success"), done
    # Only public posts may be quoted: a quote of a SUBSCRIBERS post is refused...
    refused = await try_post(gql, accounts["sub"], QUOTE, quoteOf=secret_id)
    assert refused["__typename"] == "CreatePostError"
    assert refused["code"] == "FORBIDDEN"
    # ...but the embedding path must hold whatever rows there are.
    quote = await Post.create(
        author_id=db_id(accounts["sub"].id), text=QUOTE, quote_of_id=db_id(secret_id)
    )
    # The ledger as the test needs it.
    await set_access("grace", "grace")
    await set_access("lapsed", "lapsed")
    await set_access("outsider", None)
    key = path_of(image["url"]).split("?")[0].removeprefix("/media/")
    return World(
        accounts,
        {**created["post"], "text": SECRET},
        public_post,
        public_reply,
        quote_id=to_base64("Post", quote.id),
        media_key=key,
    )


@pytest.fixture
async def world(http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette) -> World:
    return await make_world(http, gql, app)


USER_QUOTES = """
query($username: String!) {
  user(username: $username) {
    posts(withReplies: true, first: 100) { edges { node { text quoteOf { text } } } }
  }
}"""


def velvet(found: list[str]) -> set[str]:
    return {text for text in found if text.startswith("velvet")}


def members_only(viewer: str | None) -> set[str]:
    return {SECRET, FOLLOW_UP} if SEES[viewer] else set()


# --- posts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_node_and_the_authors_page_show_the_post_only_to_its_audience(
    gql: GraphQLClient, world: World, viewer: str | None
) -> None:
    account = world.viewer(viewer)
    found = await node(gql, account, world.secret["id"])
    if SEES[viewer]:
        assert found is not None
        assert found["text"] == SECRET
        assert found["visibility"] == "SUBSCRIBERS"
        # The counts travel with the post: one public reply, four likes.
        assert (found["replyCount"], found["likeCount"]) == (1, 4)
    else:
        assert found is None
    for with_replies in (False, True):
        page = await user_posts(gql, account, "author", with_replies=with_replies)
        assert page is not None
        assert velvet(page) == members_only(viewer), with_replies


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_timelines_and_search_show_the_post_only_to_its_audience(
    gql: GraphQLClient, world: World, viewer: str | None
) -> None:
    account = world.viewer(viewer)
    hashtag = await timeline(gql, "hashtagTimeline", account, ', tag: "lounge"')
    assert velvet(texts(hashtag)) == members_only(viewer)
    found = await timeline(gql, "searchPosts", account, ', query: "velvet"')
    assert velvet(texts(found)) == members_only(viewer) | (
        {HIDDEN_REPLY} if viewer in PREMIUM else set()
    )
    # The public timeline has public posts only, whoever reads it.
    assert velvet(texts(await timeline(gql, "publicTimeline", account))) == set()
    if account is not None:
        # Every reader follows the author: the home timeline holds the post for each, and
        # shows it to those who may see it when they read.
        home = await timeline(gql, "homeTimeline", account)
        own = {HIDDEN_REPLY} if viewer == "sub" else set()
        assert velvet(texts(home)) == members_only(viewer) | own


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_threads_quotes_and_counts_reveal_the_post_only_to_its_audience(
    gql: GraphQLClient, world: World, viewer: str | None
) -> None:
    account = world.viewer(viewer)
    sees = SEES[viewer]
    # The public reply is everyone's, but what it replies to is not.
    reply = await thread(gql, account, world.public_reply["id"])
    assert velvet(ancestor_texts(reply)) == ({SECRET} if sees else set())
    replied = await node(gql, account, world.public_reply["id"])
    assert (replied["replyTo"] is not None) is sees
    if sees:
        assert replied["replyTo"]["text"] == SECRET
        assert reply_texts(await thread(gql, account, world.secret["id"])) == [PUBLIC_REPLY]
    # A post quoting it embeds it only for its audience, on a page and on its own.
    quoting = await node(gql, account, world.quote_id)
    assert quoting["text"] == QUOTE
    assert (quoting["quoteOf"] is not None) is sees
    on_page = await gql(USER_QUOTES, {"username": "sub"}, token=token(account))
    [quoted] = [
        edge["node"]["quoteOf"]
        for edge in on_page["user"]["posts"]["edges"]
        if edge["node"]["text"] == QUOTE
    ]
    assert (quoted is not None) is sees
    # A SUBSCRIBERS reply to a public post: not counted, listed only for the audience.
    public = await thread(gql, account, world.public_post["id"])
    assert public["replyCount"] == 0
    assert reply_texts(public) == ([HIDDEN_REPLY] if viewer in PREMIUM else [])


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_media_of_the_post_need_a_signature_minted_for_its_audience(
    http: httpx.AsyncClient, gql: GraphQLClient, world: World, viewer: str | None
) -> None:
    account = world.viewer(viewer)
    # Never served unsigned, to anyone.
    assert (await http.get(f"/media/{world.media_key}")).status_code == 404
    seen = await gql(POST, {"id": world.secret["id"]}, token=token(account))
    if not SEES[viewer]:
        # Outside the audience there is no post, so no URL to fetch.
        assert seen["node"] is None
        return
    [medium] = seen["node"]["media"]
    url = medium["url"]
    assert "&sig=" in url
    assert path_of(url).split("?")[0] == f"/media/{world.media_key}"
    served = await http.get(path_of(url))
    assert served.status_code == 200
    assert served.headers["cache-control"].startswith("private, max-age=")


@pytest.mark.parametrize("viewer", [v for v in VIEWERS if v is not None])
async def test_notifications_bookmarks_likes_and_history_follow_the_audience(
    app: Starlette, gql: GraphQLClient, world: World, viewer: str
) -> None:
    account = world.accounts[viewer]
    sees = SEES[viewer]
    found, unread = await notifications(gql, account)
    if viewer == "author":
        # Liked by the four while each had access; a like is read as long as the liker...
        likers = {actor for kind, actor in found if kind == "LIKE"}
        assert likers == {"sub", "grace", "lapsed", "outsider"}
    else:
        mentioned = [(kind, actor) for kind, actor in found if kind == "MENTION"]
        # Each reader was mentioned by the edit; only those who may see it now see that.
        assert mentioned == ([("MENTION", "author")] if sees else [])
        assert unread == len(found)
    if viewer != "author":
        expected = [SECRET] if sees else []
        assert texts(await timeline(gql, "bookmarks", account)) == expected
        assert texts(await timeline(gql, "likedPosts", account)) == expected
        assert await Bookmark.filter(user_id=db_id(account.id)).count() == 1
        assert await Like.filter(user_id=db_id(account.id)).count() == 1
    # Earlier versions: the post's audience, through the service as through the query.
    history = await app.state.services.posts.edit_history(
        db_id(account.id), db_id(world.secret["id"])
    )
    assert [version.text for version in history] == (["look"] if sees else [])
    data = await gql(
        "query($id: ID!) { node(id: $id) { ... on Post { editHistory { text } } } }",
        {"id": world.secret["id"]},
        token=account.access_token,
    )
    assert (data["node"] and [v["text"] for v in data["node"]["editHistory"]]) == (
        ["look"] if sees else None
    )
    # Acting on it is as if it did not exist.
    liked = await act(gql, "unlikePost", account, postId=world.secret["id"])
    assert liked["__typename"].endswith("Success" if sees else "Error"), liked


# --- live updates ------------------------------------------------------------------------------

HASHTAG = "subscription($tag: String!) { hashtagTimeline(tag: $tag) { node { text } } }"
HOME = "subscription { homeTimeline { node { text } } }"
POST_UPDATED = "subscription($id: ID!) { postUpdated(id: $id) { text likeCount } }"


async def collect(client: LiveClient, count: int) -> dict[str, list[dict[str, Any]]]:
    """The next `count` results, by operation id, in the order each operation got them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for _ in range(count):
        message = await client.receive()
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        found.setdefault(message["id"], []).append(message["payload"]["data"])
    return found


def live_texts(results: list[dict[str, Any]], field: str) -> list[str]:
    return [str(data[field]["node"]["text"]) for data in results]


async def test_live_streams_deliver_the_post_only_to_its_audience(
    app: Starlette, live_server: str, gql: GraphQLClient
) -> None:
    """Every kind of viewer subscribes at once (one batched statement per event serves them
    all). Streams deliver in order, so one that must not get the SUBSCRIBERS post gets the
    public post sent after it first."""
    names = ("author", "sub", "grace", "lapsed", "outsider")
    accounts = {name: await gql.sign_up(name) for name in names}
    author = accounts["author"]
    for name in names[1:]:
        await follow(gql, accounts[name], author)
    earlier = await post(gql, author, "velvet earlier", visibility="SUBSCRIBERS")
    for name, state in (("sub", "active"), ("grace", "grace"), ("lapsed", "lapsed")):
        await set_access(name, state)
    async with AsyncExitStack() as stack:
        clients: dict[str | None, LiveClient] = {}
        for viewer in VIEWERS:
            account = accounts[viewer] if viewer else None
            client = await stack.enter_async_context(live_client(live_server))
            assert await client.init(token(account)) == {"type": "connection_ack"}
            await client.subscribe("post", POST_UPDATED, {"id": earlier["id"]})
            if not SEES[viewer]:
                # postUpdated refuses a post the viewer may not see, subscribing nothing.
                refused = await client.receive()
                assert refused["type"] == "error", (viewer, refused)
                assert refused["payload"][0]["extensions"]["code"] == "NOT_FOUND"
            await client.subscribe("tag", HASHTAG, {"tag": "lounge"})
            if account is not None:
                await client.subscribe("home", HOME)
            clients[viewer] = client
        homes = [live.home_channel(db_id(a.id)) for a in accounts.values()]
        await subscribed(
            app,
            live.hashtag_channel("lounge"),
            live.post_channel(db_id(earlier["id"])),
            *homes,
        )

        await post(gql, author, "velvet live #lounge", visibility="SUBSCRIBERS")
        await act(gql, "likePost", accounts["sub"], postId=earlier["id"])
        await post(gql, author, "open live #lounge")

        for viewer, client in clients.items():
            streams = 1 if viewer is None else 2
            if SEES[viewer]:
                got = await collect(client, 2 * streams + 1)
                expected = ["velvet live #lounge", "open live #lounge"]
                assert [d["postUpdated"]["likeCount"] for d in got["post"]] == [1], viewer
            else:
                got = await collect(client, streams)
                expected = ["open live #lounge"]
                assert "post" not in got
            assert live_texts(got["tag"], "hashtagTimeline") == expected, viewer
            if viewer is not None:
                assert live_texts(got["home"], "homeTimeline") == expected, viewer


# --- perks -------------------------------------------------------------------------------------

PERKS = {"max_post_length": 1_000, "max_attachments": 6}  # the network's: 500 and 4


def perk_lookups(caplog: pytest.LogCaptureFixture) -> int:
    """Statements that read plans' perks, among those logged (app.sql and Tortoise log each)."""
    return sum(
        1
        for record in caplog.records
        if record.name in ("tortoise.db_client", "holdfast.sql")
        and "FROM plans" in record.getMessage()
    )


@pytest.mark.parametrize("state", ["active", "grace", "lapsed", None])
async def test_a_plans_perks_raise_the_limits_while_access_lasts(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    caplog: pytest.LogCaptureFixture,
    state: str | None,
) -> None:
    writer = await gql.sign_up("writer")
    await set_access("writer", state, perks=PERKS)
    allowed = state in ("active", "grace")
    with (
        caplog.at_level(logging.DEBUG, logger="tortoise.db_client"),
        caplog.at_level(logging.DEBUG, logger="holdfast.sql"),
    ):
        caplog.clear()
        short = await try_post(gql, writer, "x" * 500)
        # Within the network's limits the perks are not even looked up.
        assert perk_lookups(caplog) == 0
        caplog.clear()
        long = await try_post(gql, writer, "y" * 800)
        assert perk_lookups(caplog) == 1
    assert short["__typename"] == "CreatePostSuccess", short
    if allowed:
        assert long["__typename"] == "CreatePostSuccess", long
        edited = await edit_post(gql, writer, short["post"]["id"], "z" * 1_000)
        assert edited["__typename"] == "EditPostSuccess", edited
        assert edited["post"]["text"] == "z" * 1_000
    else:
        assert (long["__typename"], long["code"], long["field"]) == (
            "CreatePostError",
            "TEXT_TOO_LONG",
            "text",
        )
        edited = await edit_post(gql, writer, short["post"]["id"], "z" * 1_000)
        assert (edited["__typename"], edited["code"]) == ("EditPostError", "TEXT_TOO_LONG")
    # Beyond the perk itself, nobody.
    beyond = await try_post(gql, writer, "w" * 1_001)
    assert (beyond["__typename"], beyond["code"]) == ("CreatePostError", "TEXT_TOO_LONG")

    media = [(await ready_media(http, gql, app, writer))["id"] for _ in range(5)]
    five = await post_with_media(gql, writer, media)
    if allowed:
        assert five["__typename"] == "CreatePostSuccess", five
        assert len(five["post"]["media"]) == 5
    else:
        assert (five["__typename"], five["code"], five["field"]) == (
            "CreatePostError",
            "TOO_MANY_ATTACHMENTS",
            "mediaIds",
        )
        # Nothing of the refused post was kept; within the limit it goes through.
        four = await post_with_media(gql, writer, media[:4])
        assert four["__typename"] == "CreatePostSuccess", four
