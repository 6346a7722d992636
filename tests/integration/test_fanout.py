from __future__ import annotations

from app.models import HomeEntry, User
from app.services import fanout
from tests.social import act, follow, post, texts, timeline
from tests.support import GraphQLClient


async def test_rebuilt_home_timeline_matches_the_fanned_out_one(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    dave = await gql.sign_up("dave")
    await follow(gql, alice, bob)
    await follow(gql, alice, carol)
    root = await post(gql, bob, "bob root")
    await post(gql, carol, "carol replies to bob", replyTo=root["id"])
    await post(gql, dave, "dave replies to bob", replyTo=root["id"])
    await post(gql, alice, "alice own")
    await post(gql, dave, "for alice @alice", visibility="DIRECT")
    liked = await post(gql, dave, "dave original")
    await act(gql, "repostPost", carol, postId=liked["id"])
    before = await timeline(gql, "homeTimeline", alice, first=50)
    owner = await User.get(username_key="alice")

    await HomeEntry.filter(owner_id=owner.id).delete()
    assert texts(await timeline(gql, "homeTimeline", alice)) == []
    count = await fanout.rebuild_home(owner.id, max_entries=800, big_account=10_000)

    after = await timeline(gql, "homeTimeline", alice, first=50)
    assert count == len(before["edges"]) == 5
    assert [(e["node"]["text"], e["repostedBy"]) for e in after["edges"]] == [
        (e["node"]["text"], e["repostedBy"]) for e in before["edges"]
    ]


async def test_trim_keeps_the_newest_entries(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    for i in range(5):
        await post(gql, alice, f"post {i}")

    removed = await fanout.trim_homes(3)

    assert removed == 2
    assert texts(await timeline(gql, "homeTimeline", alice)) == ["post 4", "post 3", "post 2"]
