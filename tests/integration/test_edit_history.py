"""A post's earlier versions are shown only to the audience each version had: for a DIRECT
post, its author and the accounts that version mentioned. Other visibilities do not depend
on mentions, so their whole history goes with the post."""

from __future__ import annotations

import asyncio
from typing import Any

from app.models import PostEdit
from tests.authz import db_id
from tests.social import action, post
from tests.support import Account, GraphQLClient

EDIT_POST = action("editPost", "EditPostInput", "post { id }")
HISTORY = """
query($id: ID!) { node(id: $id) { ... on Post { text editHistory { text } } } }"""


async def edit(gql: GraphQLClient, author: Account, post_id: str, text: str) -> None:
    data = await gql(EDIT_POST, {"input": {"id": post_id, "text": text}}, token=author.access_token)
    assert data["editPost"]["__typename"] == "EditPostSuccess", data


async def history(gql: GraphQLClient, viewer: Account | None, post_id: str) -> Any:
    """The post's earlier texts as the viewer sees them; None when the post is hidden."""
    data = await gql(HISTORY, {"id": post_id}, token=viewer.access_token if viewer else None)
    node = data["node"]
    return None if node is None else [v["text"] for v in node["editHistory"]]


async def test_an_account_added_by_an_edit_sees_only_versions_addressed_to_it(
    gql: GraphQLClient,
) -> None:
    alice, bob, carol = [await gql.sign_up(n) for n in ("alice", "bob", "carol")]
    created = await post(gql, alice, "secret for @bob only", visibility="DIRECT")
    await edit(gql, alice, created["id"], "now @bob and @carol")

    assert await history(gql, carol, created["id"]) == []
    assert await history(gql, bob, created["id"]) == ["secret for @bob only"]
    assert await history(gql, alice, created["id"]) == ["secret for @bob only"]


async def test_each_version_is_shown_to_the_audience_it_had(gql: GraphQLClient) -> None:
    alice, bob, carol, dave = [await gql.sign_up(n) for n in ("alice", "bob", "carol", "dave")]
    created = await post(gql, alice, "v1 @bob", visibility="DIRECT")
    await edit(gql, alice, created["id"], "v2 @bob @carol")
    await edit(gql, alice, created["id"], "v3 @carol @dave")

    assert await history(gql, alice, created["id"]) == ["v1 @bob", "v2 @bob @carol"]
    assert await history(gql, bob, created["id"]) is None  # no longer addressed at all
    assert await history(gql, carol, created["id"]) == ["v2 @bob @carol"]
    assert await history(gql, dave, created["id"]) == []
    rows = await PostEdit.filter(post_id=db_id(created["id"])).order_by("id")
    ids = {a.username: db_id(a.id) for a in (bob, carol)}
    assert [row.mentioned_ids for row in rows] == [[ids["bob"]], sorted(ids.values())]


async def test_history_of_other_visibilities_does_not_depend_on_mentions(
    gql: GraphQLClient,
) -> None:
    alice, bob = [await gql.sign_up(n) for n in ("alice", "bob")]
    created = await post(gql, alice, "hello @nobody_yet")
    await edit(gql, alice, created["id"], "hello world")

    assert await history(gql, bob, created["id"]) == ["hello @nobody_yet"]
    assert await history(gql, None, created["id"]) == ["hello @nobody_yet"]


async def test_versions_kept_before_audiences_were_recorded_are_the_authors_alone(
    gql: GraphQLClient,
) -> None:
    alice, bob = [await gql.sign_up(n) for n in ("alice", "bob")]
    created = await post(gql, alice, "old @bob", visibility="DIRECT")
    await edit(gql, alice, created["id"], "new @bob")
    # As migration 0004 leaves the rows it found.
    await PostEdit.filter(post_id=db_id(created["id"])).update(mentioned_ids=None)

    assert await history(gql, bob, created["id"]) == []
    assert await history(gql, alice, created["id"]) == ["old @bob"]


async def test_concurrent_edits_each_keep_the_version_they_replaced(gql: GraphQLClient) -> None:
    alice, bob, carol = [await gql.sign_up(n) for n in ("alice", "bob", "carol")]
    created = await post(gql, alice, "v1 @bob", visibility="DIRECT")

    await asyncio.gather(
        edit(gql, alice, created["id"], "v2 @carol"), edit(gql, alice, created["id"], "v3 @bob")
    )

    rows = await PostEdit.filter(post_id=db_id(created["id"])).order_by("id")
    final = (await history_node(gql, alice, created["id"]))["text"]
    middle = ({"v2 @carol", "v3 @bob"} - {final}).pop()
    mentions = {
        "v1 @bob": [db_id(bob.id)],
        "v2 @carol": [db_id(carol.id)],
        "v3 @bob": [db_id(bob.id)],
    }
    assert [row.text for row in rows] == ["v1 @bob", middle]
    assert [row.mentioned_ids for row in rows] == [mentions["v1 @bob"], mentions[middle]]


async def test_history_holds_the_latest_fifty_versions_oldest_first(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    created = await post(gql, alice, "v0")
    for n in range(1, 52):
        await edit(gql, alice, created["id"], f"v{n}")

    assert await history(gql, alice, created["id"]) == [f"v{n}" for n in range(1, 51)]


async def history_node(gql: GraphQLClient, viewer: Account, post_id: str) -> Any:
    data = await gql(HISTORY, {"id": post_id}, token=viewer.access_token)
    return data["node"]
