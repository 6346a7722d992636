"""A timeline page costs the same few SQL statements whatever its length (no N+1)."""

from __future__ import annotations

import logging

import pytest

from tests.social import POST_FIELDS, act, follow, post
from tests.support import Account, GraphQLClient

HOME = f"""
query($first: Int) {{
  homeTimeline(first: $first) {{
    edges {{ cursor repostedBy {{ username }} node {{ {POST_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


async def _count_statements(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture, viewer: Account, first: int
) -> tuple[int, int]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        data = await gql(HOME, {"first": first}, token=viewer.access_token)
    statements = [r for r in caplog.records if r.name == "tortoise.db_client"]
    return len(statements), len(data["homeTimeline"]["edges"])


async def test_home_page_is_three_statements_for_twenty_or_fifty_posts(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await follow(gql, alice, bob)
    await follow(gql, alice, carol)
    first = await post(gql, carol, "quoted")
    for i in range(30):
        await post(gql, bob, f"bob {i}", replyTo=first["id"] if i % 3 == 0 else None)
        created = await post(gql, carol, f"carol {i} #tag", quoteOf=first["id"])
        if i % 2:
            await act(gql, "likePost", alice, postId=created["id"])
            await act(gql, "bookmarkPost", alice, postId=created["id"])
    await act(gql, "repostPost", carol, postId=first["id"])

    twenty = await _count_statements(gql, caplog, alice, 20)
    fifty = await _count_statements(gql, caplog, alice, 50)

    # One to resolve the viewer's session, then the page and the posts it refers to (each row
    # with its author and the viewer's likes, reposts and bookmarks).
    assert twenty == (3, 20)
    assert fifty == (3, 50)
