"""Blocks (neither side sees or reaches the other, anywhere) and mutes (the muter's timelines and
notifications leave the muted account out; its own page still shows it)."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import (
    Block,
    Bookmark,
    Follow,
    FollowRequest,
    Like,
    Mute,
    Notification,
    Post,
    Repost,
)
from app.services import relations
from tests.authz import (
    ancestor_texts,
    db_id,
    follow_lists,
    follow_requests,
    lock,
    must,
    node,
    notifications,
    relation,
    reply,
    reply_texts,
    search_accounts,
    thread,
    try_post,
    user,
    user_posts,
)
from tests.social import act, follow, post, texts, timeline
from tests.support import Account, GraphQLClient

COUNTS = """
query($name: String!) { user(username: $name) { followerCount followingCount } }
"""


async def counts(gql: GraphQLClient, name: str) -> tuple[int, int]:
    """(followers, following) of an account, as a signed-out reader sees them."""
    data = await gql(COUNTS, {"name": name})
    return data["user"]["followerCount"], data["user"]["followingCount"]


async def trio(gql: GraphQLClient) -> tuple[Account, Account, Account]:
    alice = await gql.sign_up("alice", display_name="Zed Alice")
    bob = await gql.sign_up("bob", display_name="Zed Bob")
    carol = await gql.sign_up("carol", display_name="Zed Carol")
    return alice, bob, carol


def sides(alice: Account, bob: Account, side: str) -> tuple[Account, Account]:
    """(viewer, other): alice blocks bob; look from either side."""
    return (alice, bob) if side == "blocker" else (bob, alice)


SIDES = ["blocker", "blocked"]


# --- the block itself -----------------------------------------------------------------------------


async def test_blocking_removes_follows_both_ways_and_their_counts(gql: GraphQLClient) -> None:
    alice, bob, carol = await trio(gql)
    await follow(gql, alice, bob)
    await follow(gql, bob, alice)
    await follow(gql, carol, alice)
    await follow(gql, carol, bob)
    assert await counts(gql, "alice") == (2, 1)
    assert await counts(gql, "bob") == (2, 1)

    await must(gql, "blockUser", alice, bob)

    assert await counts(gql, "alice") == (1, 0)
    assert await counts(gql, "bob") == (1, 0)
    assert await counts(gql, "carol") == (0, 2)
    a, b = db_id(alice.id), db_id(bob.id)
    assert await Follow.filter(follower_id=a, followee_id=b).count() == 0
    assert await Follow.filter(follower_id=b, followee_id=a).count() == 0
    assert await Follow.all().count() == 2
    assert await Block.filter(blocker_id=a, blocked_id=b).count() == 1
    viewer = await gql("{ viewer { followerCount followingCount } }", token=alice.access_token)
    assert viewer["viewer"] == {"followerCount": 1, "followingCount": 0}


@pytest.mark.parametrize("side", SIDES)
async def test_blocking_removes_pending_follow_requests_both_ways(
    gql: GraphQLClient, side: str
) -> None:
    alice, bob, _ = await trio(gql)
    requester, target = sides(alice, bob, side)
    await lock(gql, target)
    assert await follow(gql, requester, target) == "REQUESTED"
    assert await follow_requests(gql, target) == [requester.username]

    await must(gql, "blockUser", alice, bob)

    assert await FollowRequest.all().count() == 0
    assert await follow_requests(gql, target) == []


# --- reading -------------------------------------------------------------------------------------


async def _blocked_world(gql: GraphQLClient) -> dict[str, Any]:
    """alice and bob follow each other and carol; carol reposts both; then alice blocks bob."""
    alice, bob, carol = await trio(gql)
    for follower, followee in ((alice, bob), (bob, alice), (alice, carol), (bob, carol)):
        await follow(gql, follower, followee)
    posts = {
        account.username: await post(gql, account, f"zebra from {account.username} #herd")
        for account in (alice, bob, carol)
    }
    for name in ("alice", "bob"):
        reposted = await act(gql, "repostPost", carol, postId=posts[name]["id"])
        assert reposted["__typename"] == "RepostPostSuccess"
    # Before the block each sees the other's post, once: directly, not again through carol's
    # repost. After it, carol's repost is what would bring it (the follow is gone).
    for viewer, other in ((alice, bob), (bob, alice)):
        home = (await timeline(gql, "homeTimeline", viewer))["edges"]
        brought = [
            (e["node"]["author"]["username"], (e["repostedBy"] or {}).get("username")) for e in home
        ]
        assert (other.username, None) in brought
        assert (other.username, "carol") not in brought
    await must(gql, "blockUser", alice, bob)
    return {"alice": alice, "bob": bob, "carol": carol, "posts": posts}


def _authors(connection: dict[str, Any]) -> set[str]:
    return {edge["node"]["author"]["username"] for edge in connection["edges"]}


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("homeTimeline", ""),
        ("publicTimeline", ""),
        ("hashtagTimeline", ', tag: "herd"'),
        ("searchPosts", ', query: "zebra"'),
    ],
)
async def test_blocked_accounts_are_absent_from_each_others_timelines(
    gql: GraphQLClient, side: str, field: str, args: str
) -> None:
    world = await _blocked_world(gql)
    viewer, other = sides(world["alice"], world["bob"], side)

    found = await timeline(gql, field, viewer, args)

    assert other.username not in _authors(found)
    assert {viewer.username, "carol"} <= _authors(found)
    assert all(
        (edge["repostedBy"] or {}).get("username") != other.username for edge in found["edges"]
    )


@pytest.mark.parametrize("side", SIDES)
async def test_blocked_accounts_cannot_look_each_other_up(gql: GraphQLClient, side: str) -> None:
    world = await _blocked_world(gql)
    viewer, other = sides(world["alice"], world["bob"], side)
    their_post = world["posts"][other.username]["id"]

    assert await user(gql, viewer, other.username) is None
    assert await user_posts(gql, viewer, other.username) is None
    assert await node(gql, viewer, other.id) is None
    assert await node(gql, viewer, their_post) is None
    # Others still see both.
    for reader in (None, world["carol"]):
        assert (await user(gql, reader, other.username))["username"] == other.username
        assert (await node(gql, reader, their_post))["text"] == f"zebra from {other.username} #herd"


@pytest.mark.parametrize("side", SIDES)
async def test_blocked_accounts_are_absent_from_follow_lists(gql: GraphQLClient, side: str) -> None:
    alice, bob, carol = await trio(gql)
    for follower, followee in ((alice, carol), (bob, carol), (carol, alice), (carol, bob)):
        await follow(gql, follower, followee)
    await must(gql, "blockUser", alice, bob)
    viewer, _ = sides(alice, bob, side)

    lists = await follow_lists(gql, viewer, "carol")

    assert [u["username"] for u in lists["followers"]] == [viewer.username]
    assert [u["username"] for u in lists["following"]] == [viewer.username]
    for reader in (None, carol):
        lists = await follow_lists(gql, reader, "carol")
        assert {u["username"] for u in lists["followers"]} == {"alice", "bob"}
        assert {u["username"] for u in lists["following"]} == {"alice", "bob"}


@pytest.mark.parametrize("side", SIDES)
async def test_blocked_accounts_are_absent_from_account_search(
    gql: GraphQLClient, side: str
) -> None:
    alice, bob, carol = await trio(gql)
    await must(gql, "blockUser", alice, bob)
    viewer, other = sides(alice, bob, side)

    for query in ("zed", other.username[:2]):
        found = {u["username"] for u in await search_accounts(gql, viewer, query)}
        assert other.username not in found, query
    found = {u["username"] for u in await search_accounts(gql, viewer, "zed")}
    assert found == {viewer.username, "carol"}
    assert {u["username"] for u in await search_accounts(gql, carol, "zed")} == {
        "alice",
        "bob",
        "carol",
    }
    assert {u["username"] for u in await search_accounts(gql, None, "zed")} == {
        "alice",
        "bob",
        "carol",
    }


async def test_earlier_replies_quotes_and_notifications_disappear_after_a_block(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = await trio(gql)
    original = await post(gql, alice, "alice speaks")
    await reply(gql, bob, original, "bob answers")
    await reply(gql, carol, original, "carol answers")
    await act(gql, "likePost", bob, postId=original["id"])
    await act(gql, "likePost", carol, postId=original["id"])
    bobs = await post(gql, bob, "bob's thought")
    quote = await post(gql, carol, "carol quotes bob", quoteOf=bobs["id"])
    carol_reply = await post(gql, carol, "carol to alice", replyTo=original["id"])
    before, unread = await notifications(gql, alice)
    assert {actor for _, actor in before} == {"bob", "carol"}
    assert unread == 5

    await must(gql, "blockUser", alice, bob)

    assert reply_texts(await thread(gql, alice, original["id"])) == [
        "carol answers",
        "carol to alice",
    ]
    assert reply_texts(await thread(gql, carol, original["id"])) == [
        "bob answers",
        "carol answers",
        "carol to alice",
    ]
    seen = await node(gql, alice, quote["id"])
    assert seen["text"] == "carol quotes bob"
    assert seen["quoteOf"] is None
    assert (await node(gql, carol, quote["id"]))["quoteOf"]["text"] == "bob's thought"
    # And bob no longer sees alice's post above carol's reply.
    seen = await node(gql, bob, carol_reply["id"])
    assert seen["replyTo"] is None
    assert ancestor_texts(await thread(gql, bob, carol_reply["id"])) == []
    after, unread = await notifications(gql, alice)
    assert after == [("REPLY", "carol"), ("LIKE", "carol"), ("REPLY", "carol")]
    assert unread == 3


# --- acting --------------------------------------------------------------------------------------


async def _post_state(post_id: str) -> tuple[Any, ...]:
    row = await Post.get(id=db_id(post_id))
    children = (
        await Post.filter(reply_to_id=row.id).count()
        + await Post.filter(quote_of_id=row.id).count()
    )
    interactions = [await m.filter(post_id=row.id).count() for m in (Like, Repost, Bookmark)]
    return (
        row.like_count,
        row.repost_count,
        row.reply_count,
        row.quote_count,
        children,
        *interactions,
    )


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("verb", ["likePost", "repostPost", "bookmarkPost", "replyTo", "quoteOf"])
async def test_blocked_accounts_cannot_act_on_each_others_posts(
    gql: GraphQLClient, side: str, verb: str
) -> None:
    alice, bob, carol = await trio(gql)
    viewer, other = sides(alice, bob, side)
    target = await post(gql, other, "untouchable")
    await must(gql, "blockUser", alice, bob)
    before = await _post_state(target["id"])
    notified = await Notification.all().count()
    posts = await Post.all().count()

    if verb in ("replyTo", "quoteOf"):
        result = await try_post(gql, viewer, "hey", **{verb: target["id"]})
        assert (result["__typename"], result["field"]) == ("CreatePostError", verb)
    else:
        result = await act(gql, verb, viewer, postId=target["id"])
        assert result["__typename"] == verb[0].upper() + verb[1:] + "Error"
    assert result["code"] == "NOT_FOUND"
    assert await _post_state(target["id"]) == before
    assert await Notification.all().count() == notified
    assert await Post.all().count() == posts
    # A third account still can.
    if verb in ("replyTo", "quoteOf"):
        assert (await try_post(gql, carol, "hey", **{verb: target["id"]}))["__typename"] == (
            "CreatePostSuccess"
        )
    else:
        assert (await act(gql, verb, carol, postId=target["id"]))["__typename"].endswith("Success")
    assert await _post_state(target["id"]) != before


@pytest.mark.parametrize("locked", [False, True])
async def test_following_across_a_block_fails(gql: GraphQLClient, locked: bool) -> None:
    alice, bob, _ = await trio(gql)
    if locked:
        await lock(gql, alice)
        await lock(gql, bob)
    await must(gql, "blockUser", alice, bob)

    by_blocked = await relation(gql, "followUser", bob, alice)
    by_blocker = await relation(gql, "followUser", alice, bob)

    assert (by_blocked["__typename"], by_blocked["code"]) == ("FollowUserError", "NOT_FOUND")
    assert (by_blocker["__typename"], by_blocker["code"]) == ("FollowUserError", "BLOCKED")
    assert await Follow.all().count() == 0
    assert await FollowRequest.all().count() == 0
    assert await counts(gql, "alice") == (0, 0)
    assert await counts(gql, "bob") == (0, 0)
    assert await Notification.all().count() == 0


async def test_muting_across_a_block_fails(gql: GraphQLClient) -> None:
    alice, bob, _ = await trio(gql)
    await must(gql, "blockUser", alice, bob)

    by_blocked = await relation(gql, "muteUser", bob, alice)
    by_blocker = await relation(gql, "muteUser", alice, bob)

    assert by_blocked["code"] == "NOT_FOUND"
    assert by_blocker["code"] == "BLOCKED"
    assert await Mute.all().count() == 0


async def test_unblocking_restores_visibility_but_not_follows(gql: GraphQLClient) -> None:
    alice, bob, _ = await trio(gql)
    await follow(gql, alice, bob)
    await post(gql, bob, "bob public")
    secret = await post(gql, bob, "bob followers", visibility="FOLLOWERS")
    await must(gql, "blockUser", alice, bob)
    assert await user(gql, alice, "bob") is None

    await must(gql, "unblockUser", alice, bob)

    assert await Block.all().count() == 0
    seen = await user(gql, alice, "bob")
    assert (seen["viewerFollowState"], seen["followerCount"]) == ("NOT_FOLLOWING", 0)
    assert await user_posts(gql, alice, "bob") == ["bob public"]
    assert await node(gql, alice, secret["id"]) is None
    assert texts(await timeline(gql, "publicTimeline", bob)) == ["bob public"]
    assert await follow(gql, alice, bob) == "FOLLOWING"
    assert (await node(gql, alice, secret["id"]))["text"] == "bob followers"


# --- mutes ----------------------------------------------------------------------------------------


async def test_mute_hides_an_account_from_home_and_public_timelines_until_unmuted(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = await trio(gql)
    dave = await gql.sign_up("dave")
    await follow(gql, alice, bob)
    await follow(gql, alice, carol)
    await post(gql, dave, "dave one")
    dave_post = (await timeline(gql, "publicTimeline"))["edges"][0]["node"]
    await post(gql, bob, "bob one")
    await post(gql, carol, "carol one")
    reposted = await act(gql, "repostPost", bob, postId=dave_post["id"])
    assert reposted["__typename"] == "RepostPostSuccess"
    everything = ["carol one", "bob one", "dave one"]
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["dave one", *everything[:2]]
    assert texts(await timeline(gql, "publicTimeline", alice)) == everything

    await must(gql, "muteUser", alice, bob)

    home = await timeline(gql, "homeTimeline", alice)
    assert texts(home) == ["carol one"]
    assert texts(await timeline(gql, "publicTimeline", alice)) == ["carol one", "dave one"]
    # Bob's own page still shows him; others' timelines are untouched.
    assert await user_posts(gql, alice, "bob") == ["bob one"]
    assert texts(await timeline(gql, "publicTimeline", carol)) == everything
    assert texts(await timeline(gql, "publicTimeline")) == everything
    assert await Mute.all().count() == 1

    await must(gql, "unmuteUser", alice, bob)

    assert texts(await timeline(gql, "homeTimeline", alice)) == ["dave one", *everything[:2]]
    assert texts(await timeline(gql, "publicTimeline", alice)) == everything
    assert await Mute.all().count() == 0


async def test_mute_hides_an_accounts_notifications_until_unmuted(gql: GraphQLClient) -> None:
    alice, bob, carol = await trio(gql)
    hello = await post(gql, alice, "hello")
    await follow(gql, bob, alice)
    await act(gql, "likePost", bob, postId=hello["id"])
    await reply(gql, bob, hello, "hi alice")
    await post(gql, bob, "hey @alice")
    await act(gql, "likePost", carol, postId=hello["id"])
    everything, unread = await notifications(gql, alice)
    assert everything == [
        ("LIKE", "carol"),
        ("MENTION", "bob"),
        ("REPLY", "bob"),
        ("LIKE", "bob"),
        ("FOLLOW", "bob"),
    ]
    assert unread == 5

    await must(gql, "muteUser", alice, bob)

    assert await notifications(gql, alice) == ([("LIKE", "carol")], 1)
    assert await Notification.filter(recipient_id=db_id(alice.id)).count() == 5
    # Bob's activity still shows wherever alice looks on purpose, and bob still follows her.
    assert await user_posts(gql, alice, "bob", with_replies=True) == ["hey @alice", "hi alice"]
    assert await counts(gql, "alice") == (1, 0)

    await must(gql, "unmuteUser", alice, bob)

    assert await notifications(gql, alice) == (everything, 5)


async def test_a_block_hides_third_party_reposts_of_the_other_until_unblocked(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = await trio(gql)
    await follow(gql, alice, bob)
    await follow(gql, alice, carol)
    shared = await post(gql, bob, "bob's thought")
    await act(gql, "repostPost", carol, postId=shared["id"])
    assert _reposts(await timeline(gql, "homeTimeline", alice)) == [("bob's thought", None)]

    await must(gql, "blockUser", alice, bob)
    assert _reposts(await timeline(gql, "homeTimeline", alice)) == []

    # Blocks apply when reading: unblocking shows again what is still addressed to alice
    # (carol's repost), not what the follow brought (the block ended it).
    await must(gql, "unblockUser", alice, bob)
    assert _reposts(await timeline(gql, "homeTimeline", alice)) == [("bob's thought", "carol")]


def _reposts(connection: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [
        (edge["node"]["text"], (edge["repostedBy"] or {}).get("username"))
        for edge in connection["edges"]
    ]


async def test_block_and_mute_checks_read_one_definition(gql: GraphQLClient) -> None:
    alice, bob, carol = await trio(gql)
    a, b, c = db_id(alice.id), db_id(bob.id), db_id(carol.id)
    await must(gql, "blockUser", alice, bob)
    await must(gql, "muteUser", alice, carol)

    assert await relations.blockers_between(a, b) == {a}
    assert await relations.blockers_between(b, a) == {a}
    assert await relations.blocked_either_way(b, a)
    assert not await relations.blocked_either_way(a, c)
    await must(gql, "blockUser", bob, alice)
    assert await relations.blockers_between(b, a) == {a, b}
    assert await relations.mutes(a, c)
    assert not await relations.mutes(c, a)
