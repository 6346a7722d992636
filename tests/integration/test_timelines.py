from __future__ import annotations

from typing import Any

from tests.authz import edit_post
from tests.social import act, follow, post, texts, timeline
from tests.support import GraphQLClient


async def test_home_timeline_has_own_and_followed_posts_newest_first(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await post(gql, bob, "bob before follow")
    assert await follow(gql, alice, bob) == "FOLLOWING"
    await post(gql, alice, "alice one")
    await post(gql, bob, "bob two")
    await post(gql, carol, "carol unfollowed")

    home = await timeline(gql, "homeTimeline", alice)

    assert texts(home) == ["bob two", "alice one", "bob before follow"]


async def test_reposts_by_a_muted_account_do_not_shorten_home_pages(gql: GraphQLClient) -> None:
    viewer = await gql.sign_up("viewer")
    author = await gql.sign_up("author")
    reposter = await gql.sign_up("reposter")
    other = await gql.sign_up("other")
    await follow(gql, viewer, author)
    await follow(gql, viewer, reposter)
    await post(gql, author, "old from author")
    await post(gql, author, "newer from author")
    for i in range(3):
        shared = await post(gql, other, f"other {i}")
        await act(gql, "repostPost", reposter, postId=shared["id"])
    await act(gql, "muteUser", viewer, userId=reposter.id)

    page = await timeline(gql, "homeTimeline", viewer, first=2)

    assert texts(page) == ["newer from author", "old from author"]
    assert page["pageInfo"]["hasNextPage"] is False


def _brought(connection: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(text, reposter) of each entry, newest first."""
    return [
        (edge["node"]["text"], (edge["repostedBy"] or {}).get("username"))
        for edge in connection["edges"]
    ]


async def test_a_follow_brings_in_threads_replies_to_followed_accounts_and_reposts(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol, dave = [await gql.sign_up(n) for n in ("alice", "bob", "carol", "dave")]
    await follow(gql, alice, carol)
    root = await post(gql, bob, "bob root")
    await post(gql, bob, "bob continues", replyTo=root["id"])
    await post(gql, bob, "bob answers carol", replyTo=(await post(gql, carol, "carol asks"))["id"])
    await post(gql, bob, "bob answers dave", replyTo=(await post(gql, dave, "dave asks"))["id"])
    await act(gql, "repostPost", bob, postId=(await post(gql, dave, "dave shares"))["id"])

    await follow(gql, alice, bob)

    assert _brought(await timeline(gql, "homeTimeline", alice)) == [
        ("dave shares", "bob"),
        ("bob answers carol", None),
        ("carol asks", None),
        ("bob continues", None),
        ("bob root", None),
    ]


async def test_following_the_account_replied_to_brings_in_replies_and_unfollowing_takes_them(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = [await gql.sign_up(n) for n in ("alice", "bob", "carol")]
    await follow(gql, alice, bob)
    asked = await post(gql, carol, "carol asks")
    await post(gql, bob, "bob answers carol", replyTo=asked["id"])
    assert texts(await timeline(gql, "homeTimeline", alice)) == []

    await follow(gql, alice, carol)
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["bob answers carol", "carol asks"]

    await act(gql, "unfollowUser", alice, userId=carol.id)
    assert texts(await timeline(gql, "homeTimeline", alice)) == []


async def test_replies_to_the_owner_reach_them_from_accounts_they_follow(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = [await gql.sign_up(n) for n in ("alice", "bob", "carol")]
    await follow(gql, alice, bob)
    mine = await post(gql, alice, "alice asks")
    await post(gql, bob, "bob answers alice", replyTo=mine["id"])
    await post(gql, carol, "carol answers alice", replyTo=mine["id"])  # not followed

    assert texts(await timeline(gql, "homeTimeline", alice)) == ["bob answers alice", "alice asks"]


async def test_a_post_comes_in_once_by_the_earliest_repost_of_a_followed_account(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol, dave = [await gql.sign_up(n) for n in ("alice", "bob", "carol", "dave")]
    await follow(gql, alice, bob)
    await follow(gql, alice, carol)
    shared = await post(gql, dave, "dave shares")
    await act(gql, "repostPost", carol, postId=shared["id"])
    await act(gql, "repostPost", bob, postId=shared["id"])
    assert _brought(await timeline(gql, "homeTimeline", alice)) == [("dave shares", "carol")]

    await act(gql, "unrepostPost", carol, postId=shared["id"])
    assert _brought(await timeline(gql, "homeTimeline", alice)) == [("dave shares", "bob")]

    # Once alice follows the author, the post is there as itself, at its own place.
    await follow(gql, alice, dave)
    assert _brought(await timeline(gql, "homeTimeline", alice)) == [("dave shares", None)]
    await act(gql, "unfollowUser", alice, userId=dave.id)
    assert _brought(await timeline(gql, "homeTimeline", alice)) == [("dave shares", "bob")]
    # Nor does anyone's repost bring the owner's own post back to them.
    await act(gql, "repostPost", bob, postId=(await post(gql, alice, "alice's own"))["id"])
    assert _brought(await timeline(gql, "homeTimeline", alice))[0] == ("alice's own", None)


async def test_an_edit_changing_a_direct_posts_mentions_moves_it_between_timelines(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = [await gql.sign_up(n) for n in ("alice", "bob", "carol")]
    created = await post(gql, alice, "psst @bob", visibility="DIRECT")
    assert texts(await timeline(gql, "homeTimeline", bob)) == ["psst @bob"]

    await edit_post(gql, alice, created["id"], "psst @carol")

    assert texts(await timeline(gql, "homeTimeline", bob)) == []
    assert texts(await timeline(gql, "homeTimeline", carol)) == ["psst @carol"]
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["psst @carol"]


async def test_home_timeline_refuses_the_signed_out_before_its_arguments(
    gql: GraphQLClient,
) -> None:
    alice = await gql.sign_up("alice")
    query = '{ homeTimeline(first: 1, after: "bogus") { edges { cursor } } }'
    bad_token = alice.access_token[:-4] + "AAAA"
    await gql("mutation { logOut { __typename } }", token=alice.access_token)

    # Signed out, a token whose session ended, a token that is not one: the same answer as
    # any field for signed-in viewers gives, whatever the arguments.
    for token in (None, alice.access_token, bad_token):
        response = await gql.post(query, token=token)
        codes = [e["extensions"]["code"] for e in response.json()["errors"]]
        assert codes == ["NOT_AUTHENTICATED"], token

    bob = await gql.sign_up("bob")
    response = await gql.post(query, token=bob.access_token)
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["INVALID_CURSOR"]
