from __future__ import annotations

from typing import Any

from tests.social import act, follow, post
from tests.support import Account, GraphQLClient

NOTIFICATIONS = """
query($first: Int, $after: String) {
  unreadNotificationCount
  notifications(first: $first, after: $after) {
    edges { cursor node { kind isRead actor { username } post { text } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

MARK_READ = """
mutation($upTo: String!) {
  markNotificationsRead(input: {upTo: $upTo}) {
    __typename
    ... on MarkNotificationsReadSuccess { unreadCount }
    ... on MarkNotificationsReadError { code field }
  }
}"""


async def _notifications(gql: GraphQLClient, viewer: Account, first: int = 20) -> dict[str, Any]:
    return await gql(NOTIFICATIONS, {"first": first}, token=viewer.access_token)


async def test_every_kind_of_notification_arrives(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await gql(
        "mutation { updateProfile(input: {isLocked: true}) { __typename } }",
        token=carol.access_token,
    )
    await follow(gql, bob, alice)
    await follow(gql, alice, carol)
    original = await post(gql, alice, "original")
    await act(gql, "likePost", bob, postId=original["id"])
    await act(gql, "repostPost", bob, postId=original["id"])
    await post(gql, bob, "reply", replyTo=original["id"])
    await post(gql, bob, "hey @alice")
    await post(gql, bob, "quoting", quoteOf=original["id"])

    data = await _notifications(gql, alice)

    kinds = [
        (e["node"]["kind"], e["node"]["actor"]["username"]) for e in data["notifications"]["edges"]
    ]
    assert kinds == [
        ("QUOTE", "bob"),
        ("MENTION", "bob"),
        ("REPLY", "bob"),
        ("REPOST", "bob"),
        ("LIKE", "bob"),
        ("FOLLOW", "bob"),
    ]
    assert data["unreadNotificationCount"] == 6
    carol_data = await _notifications(gql, carol)
    assert [e["node"]["kind"] for e in carol_data["notifications"]["edges"]] == ["FOLLOW_REQUEST"]


async def test_own_actions_do_not_notify(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    original = await post(gql, alice, "mine @alice")
    await act(gql, "likePost", alice, postId=original["id"])
    await post(gql, alice, "self reply", replyTo=original["id"])

    assert (await _notifications(gql, alice))["unreadNotificationCount"] == 0


async def test_mark_read_up_to_a_cursor(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    fans = [await gql.sign_up(f"fan{i}") for i in range(3)]
    for fan in fans:
        await follow(gql, fan, alice)
    page = (await _notifications(gql, alice))["notifications"]["edges"]
    middle = page[1]["cursor"]  # fan1's follow: it and the older fan0 become read

    result = await gql(MARK_READ, {"upTo": middle}, token=alice.access_token)

    assert result["markNotificationsRead"]["unreadCount"] == 1
    after = (await _notifications(gql, alice))["notifications"]["edges"]
    assert [e["node"]["isRead"] for e in after] == [False, True, True]
    # The mark never moves back.
    older = page[2]["cursor"]
    again = await gql(MARK_READ, {"upTo": older}, token=alice.access_token)
    assert again["markNotificationsRead"]["unreadCount"] == 1


async def test_mark_read_refuses_a_foreign_cursor(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "x")
    public = await gql("{ publicTimeline(first: 1) { edges { cursor } } }")
    foreign = public["publicTimeline"]["edges"][0]["cursor"]

    for cursor in (foreign, "garbage!!"):
        result = await gql(MARK_READ, {"upTo": cursor}, token=alice.access_token)
        assert result["markNotificationsRead"] == {
            "__typename": "MarkNotificationsReadError",
            "code": "INVALID_CURSOR",
            "field": "upTo",
        }


async def test_notifications_need_a_viewer(gql: GraphQLClient) -> None:
    response = await gql.post("{ unreadNotificationCount }")

    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "NOT_AUTHENTICATED", "field": None}


async def test_notification_jobs_that_run_late_notify_for_what_still_stands(
    gql: GraphQLClient,
) -> None:
    """The notifications an action owes are created by a job after it commits: one that
    runs after the action was undone, repeated or edited away notifies accordingly."""
    alice, bob, carol = [await gql.sign_up(name) for name in ("alice", "bob", "carol")]
    liked = await post(gql, alice, "like me")
    unsettled = GraphQLClient(gql.http)  # the jobs wait until the end
    mentioning = await post(unsettled, bob, "hello @carol")
    # Bob likes, unlikes and likes again; Carol follows Alice and unfollows her; Bob edits his
    # mention of Carol away; all before any job runs.
    for verb in ("likePost", "unlikePost", "likePost"):
        await act(unsettled, verb, bob, postId=liked["id"])
    await follow(unsettled, carol, alice)
    await act(unsettled, "unfollowUser", carol, userId=alice.id)
    await unsettled(
        "mutation($input: EditPostInput!) { editPost(input: $input) { __typename } }",
        {"input": {"id": mentioning["id"], "text": "hello everyone"}},
        token=bob.access_token,
    )
    assert (await _notifications(unsettled, alice))["notifications"]["edges"] == []

    assert gql.settle is not None
    await gql.settle()

    alice_sees = (await _notifications(gql, alice))["notifications"]["edges"]
    assert [(e["node"]["kind"], e["node"]["actor"]["username"]) for e in alice_sees] == [
        ("LIKE", "bob")
    ]
    assert (await _notifications(gql, carol))["notifications"]["edges"] == []
