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
