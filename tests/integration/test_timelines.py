from __future__ import annotations

from tests.social import follow, post, texts, timeline
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
    from tests.social import act

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
