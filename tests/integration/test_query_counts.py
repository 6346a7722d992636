"""A timeline page costs the same few SQL statements whatever its length (no N+1)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from app.models import Plan, Subscription, SubscriptionStatus, User
from tests.social import POST_FIELDS, act, follow, post
from tests.support import Account, GraphQLClient

HOME = f"""
query($first: Int) {{
  homeTimeline(first: $first) {{
    edges {{ cursor repostedBy {{ username }} node {{ {POST_FIELDS} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""


# Tortoise logs the statements it runs; app.sql logs those it sends to asyncpg itself.
STATEMENT_LOGGERS = ("tortoise.db_client", "holdfast.sql")


@contextmanager
def _statements_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with (
        caplog.at_level(logging.DEBUG, logger="tortoise.db_client"),
        caplog.at_level(logging.DEBUG, logger="holdfast.sql"),
    ):
        yield


async def _count_statements(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture, viewer: Account, first: int
) -> tuple[int, int]:
    caplog.clear()
    with _statements_logged(caplog):
        # The request's statements only: not those of the jobs the client settles after it.
        data = await GraphQLClient(gql.http)(HOME, {"first": first}, token=viewer.access_token)
    statements = [r for r in caplog.records if r.name in STATEMENT_LOGGERS]
    return len(statements), len(data["homeTimeline"]["edges"])


async def test_home_page_is_one_statement_for_twenty_or_fifty_posts(
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

    # The page, its statement checking the viewer's session too (schema.runner
    # SESSION_FOLDED): each row with its author, the viewer's likes, reposts and bookmarks,
    # and the same for the posts it replies to and quotes.
    assert twenty == (1, 20)
    assert fifty == (1, 50)

    # Beside a field that does not fold it, the session is checked on its own first: the
    # session, then the page.
    caplog.clear()
    with _statements_logged(caplog):
        data = await GraphQLClient(gql.http)(
            HOME.replace("query($first: Int) {", "query($first: Int) { viewer { username }"),
            {"first": 20},
            token=alice.access_token,
        )
    assert data["viewer"] == {"username": "alice"}
    assert len(data["homeTimeline"]["edges"]) == 20
    assert len([r for r in caplog.records if r.name in STATEMENT_LOGGERS]) == 2


async def test_two_home_pages_in_one_operation_sign_the_viewer_in_once(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    for i in range(3):
        await post(gql, bob, f"bob {i}")
    caplog.clear()
    with _statements_logged(caplog):
        data = await GraphQLClient(gql.http)(
            "{ a: homeTimeline(first: 1) { edges { node { text } } } "
            "b: homeTimeline(first: 2) { edges { node { text } } } }",
            token=alice.access_token,
        )
    assert [e["node"]["text"] for e in data["a"]["edges"]] == ["bob 2"]
    assert [e["node"]["text"] for e in data["b"]["edges"]] == ["bob 2", "bob 1"]
    # Two root fields: the session on its own first, then each page.
    assert len([r for r in caplog.records if r.name in STATEMENT_LOGGERS]) == 3


async def test_an_empty_home_page_still_signs_the_viewer_in(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await gql.sign_up("alice")
    assert await _count_statements(gql, caplog, alice, 20) == (1, 0)


@pytest.mark.parametrize(
    "document",
    [
        "{ publicTimeline(first: 30) { edges { node { %s } } } }",
        '{ hashtagTimeline(tag: "tag", first: 30) { edges { node { %s } } } }',
        "{ likedPosts(first: 30) { edges { node { %s } } } }",
    ],
)
async def test_other_timelines_are_one_statement_a_page(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture, document: str
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    quoted = await post(gql, bob, "quoted")
    for i in range(12):
        created = await post(gql, bob, f"#tag {i}", quoteOf=quoted["id"], replyTo=quoted["id"])
        await act(gql, "likePost", alice, postId=created["id"])

    caplog.clear()
    with _statements_logged(caplog):
        data = await GraphQLClient(gql.http)(document % POST_FIELDS, token=alice.access_token)

    edges = next(iter(data.values()))["edges"]
    assert len(edges) >= 12
    assert all(e["node"]["quoteOf"] is not None for e in edges[:12])
    statements = [r for r in caplog.records if r.name in STATEMENT_LOGGERS]
    assert len(statements) == 2  # the viewer's session, the page


async def test_premium_badges_of_a_page_are_one_statement(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await gql.sign_up("alice")
    authors = [await gql.sign_up(name) for name in ("bob", "carol", "dave")]
    for i, author in enumerate(authors * 4):
        await post(gql, author, f"post {i}")
    plan = await Plan.create(
        code="supporter", name="Supporter", interval="month", prices={"eur": 1}
    )
    for username, until in (("bob", timedelta(days=1)), ("carol", -timedelta(days=1))):
        user = await User.get(username_key=username)
        await Subscription.create(
            user_id=user.id,
            plan_id=plan.id,
            provider="complimentary",
            currency="eur",
            amount=0,
            interval="month",
            status=SubscriptionStatus.ACTIVE,
            complimentary=True,
            access_until=datetime.now(UTC) + until,
        )
    document = (
        "{ publicTimeline(first: 30) { edges { node { id author { username isPremium } } } } }"
    )

    caplog.clear()
    with _statements_logged(caplog):
        data = await GraphQLClient(gql.http)(document, token=alice.access_token)

    badges = {
        e["node"]["author"]["username"]: e["node"]["author"]["isPremium"]
        for e in data["publicTimeline"]["edges"]
    }
    assert badges == {"bob": True, "carol": False, "dave": False}
    assert len(data["publicTimeline"]["edges"]) == 12
    statements = [r for r in caplog.records if r.name in STATEMENT_LOGGERS]
    assert len(statements) == 3  # the viewer's session, the page, every author's badge
