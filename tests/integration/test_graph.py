from __future__ import annotations

from app.models import Follow, FollowRequest, HomeEntry, User
from tests.social import act, follow, post, texts, timeline
from tests.support import GraphQLClient

FOLLOWERS = """
query($name: String!) { user(username: $name) {
  followerCount followingCount
  followers(first: 10) { edges { node { username } } }
  following(first: 10) { edges { node { username } } }
} }"""


async def test_follow_and_unfollow_keep_counts_and_lists(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")

    assert await follow(gql, alice, bob) == "FOLLOWING"
    assert await follow(gql, alice, bob) == "FOLLOWING"

    bob_page = (await gql(FOLLOWERS, {"name": "bob"}))["user"]
    assert bob_page["followerCount"] == 1
    assert [e["node"]["username"] for e in bob_page["followers"]["edges"]] == ["alice"]
    alice_page = (await gql(FOLLOWERS, {"name": "alice"}))["user"]
    assert alice_page["followingCount"] == 1
    assert [e["node"]["username"] for e in alice_page["following"]["edges"]] == ["bob"]

    result = await act(gql, "unfollowUser", alice, userId=bob.id)

    assert result["followState"] == "NOT_FOLLOWING"
    assert result["user"]["followerCount"] == 0
    assert await Follow.all().count() == 0


async def test_following_oneself_is_refused(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")

    result = await act(gql, "followUser", alice, userId=alice.id)

    assert result["code"] == "CANNOT_FOLLOW_SELF"
    assert await Follow.all().count() == 0
    assert (await User.get(username_key="alice")).following_count == 0


async def test_follow_of_an_unknown_id_is_not_found(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await User.filter(username_key="bob").delete()

    result = await act(gql, "followUser", alice, userId=bob.id)

    assert result["code"] == "NOT_FOUND"


async def test_unfollow_removes_their_posts_from_home(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await post(gql, bob, "bob's post")
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["bob's post"]

    await act(gql, "unfollowUser", alice, userId=bob.id)

    assert texts(await timeline(gql, "homeTimeline", alice)) == []


async def test_locked_account_turns_follows_into_requests(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await User.filter(username_key="bob").update(is_locked=True)
    await post(gql, bob, "for followers", visibility="FOLLOWERS")

    assert await follow(gql, alice, bob) == "REQUESTED"
    assert await follow(gql, carol, bob) == "REQUESTED"
    requests = await gql(
        "{ followRequests(first: 5) { edges { node { username viewerFollowState } } } }",
        token=bob.access_token,
    )
    assert [e["node"]["username"] for e in requests["followRequests"]["edges"]] == [
        "carol",
        "alice",
    ]
    assert texts(await timeline(gql, "homeTimeline", alice)) == []

    accepted = await act(gql, "acceptFollowRequest", bob, userId=alice.id)
    rejected = await act(gql, "rejectFollowRequest", bob, userId=carol.id)

    assert accepted["__typename"] == "AcceptFollowRequestSuccess"
    assert rejected["__typename"] == "RejectFollowRequestSuccess"
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["for followers"]
    assert texts(await timeline(gql, "homeTimeline", carol)) == []
    assert await FollowRequest.all().count() == 0
    assert (await User.get(username_key="bob")).follower_count == 1
    again = await act(gql, "acceptFollowRequest", bob, userId=carol.id)
    assert again["code"] == "NOT_FOUND"


async def test_big_accounts_are_merged_at_read_time(
    gql: GraphQLClient, monkeypatch: object
) -> None:
    alice = await gql.sign_up("alice")
    star = await gql.sign_up("star")
    await follow(gql, alice, star)
    # Above the fan-out limit (10,000 by default) the star's posts are not copied out.
    await User.filter(username_key="star").update(follower_count=20_000)

    await post(gql, star, "to the masses")
    await post(gql, alice, "mine")

    home = await timeline(gql, "homeTimeline", alice)
    assert texts(home) == ["mine", "to the masses"]
    owners = await HomeEntry.filter(post__text="to the masses").values_list("owner_id", flat=True)
    assert list(owners) == [(await User.get(username_key="star")).id]
