"""GraphQL documents and helpers for the authorization tests: reading one post, a thread, an
account and its lists, notifications, and the mutations the social helpers do not cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from strawberry.relay import from_base64

from app.models import Plan, Role, Subscription, SubscriptionStatus, User
from tests.social import POST_FIELDS, act, post
from tests.support import Account, GraphQLClient

# --- reading posts ---------------------------------------------------------------------------

NODE = f"""
query($id: ID!) {{
  node(id: $id) {{
    __typename
    ... on Post {{ {POST_FIELDS} }}
    ... on User {{ username email followerCount followingCount }}
  }}
}}"""

THREAD = """
query($id: ID!) {
  node(id: $id) {
    ... on Post {
      id text replyCount quoteCount
      ancestors { id text isDeleted visibility }
      replies(first: 100) { edges { node { id text visibility } } }
    }
  }
}"""

USER_POSTS = f"""
query($username: String!, $withReplies: Boolean!) {{
  user(username: $username) {{
    posts(withReplies: $withReplies, first: 100) {{ edges {{ node {{ {POST_FIELDS} }} }} }}
  }}
}}"""


def db_id(global_id: str) -> int:
    """The database id inside a global ID."""
    return int(from_base64(global_id)[1])


def token(viewer: Account | None) -> str | None:
    return viewer.access_token if viewer else None


async def node(gql: GraphQLClient, viewer: Account | None, global_id: str) -> Any:
    data = await gql(NODE, {"id": global_id}, token=token(viewer))
    return data["node"]


async def thread(gql: GraphQLClient, viewer: Account | None, post_id: str) -> dict[str, Any]:
    """The post with its ancestors and replies, as the viewer sees them (it must be visible)."""
    data = await gql(THREAD, {"id": post_id}, token=token(viewer))
    assert data["node"] is not None, "the post itself should be visible"
    return data["node"]  # type: ignore[no-any-return]


def reply_texts(found: dict[str, Any]) -> list[str]:
    return [edge["node"]["text"] for edge in found["replies"]["edges"]]


def ancestor_texts(found: dict[str, Any]) -> list[str]:
    return [item["text"] for item in found["ancestors"]]


async def user_posts(
    gql: GraphQLClient, viewer: Account | None, username: str, *, with_replies: bool = False
) -> list[str] | None:
    """The texts on an account's page, or None when the account is not visible."""
    data = await gql(
        USER_POSTS, {"username": username, "withReplies": with_replies}, token=token(viewer)
    )
    if data["user"] is None:
        return None
    return [edge["node"]["text"] for edge in data["user"]["posts"]["edges"]]


# --- accounts ----------------------------------------------------------------------------------

USER = """
query($username: String!) {
  user(username: $username) { id username email followerCount followingCount viewerFollowState }
}"""

FOLLOW_LISTS = """
query($username: String!) {
  user(username: $username) {
    followers(first: 100) { edges { node { username email } } }
    following(first: 100) { edges { node { username email } } }
  }
}"""

SEARCH_ACCOUNTS = """
query($query: String!) { searchAccounts(query: $query, limit: 100) { username email } }
"""

FOLLOW_REQUESTS = "{ followRequests(first: 100) { edges { node { username } } } }"

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    __typename
    ... on UpdateProfileSuccess { user { isLocked } }
    ... on UpdateProfileError { code message field }
  }
}"""


async def user(gql: GraphQLClient, viewer: Account | None, username: str) -> Any:
    data = await gql(USER, {"username": username}, token=token(viewer))
    return data["user"]


async def follow_lists(
    gql: GraphQLClient, viewer: Account | None, username: str
) -> dict[str, list[dict[str, Any]]]:
    """The followers and following of an account: username and email of each."""
    data = await gql(FOLLOW_LISTS, {"username": username}, token=token(viewer))
    assert data["user"] is not None, f"{username} should be visible"
    return {
        which: [edge["node"] for edge in data["user"][which]["edges"]]
        for which in ("followers", "following")
    }


async def search_accounts(
    gql: GraphQLClient, viewer: Account | None, query: str
) -> list[dict[str, Any]]:
    data = await gql(SEARCH_ACCOUNTS, {"query": query}, token=token(viewer))
    return data["searchAccounts"]  # type: ignore[no-any-return]


async def follow_requests(gql: GraphQLClient, viewer: Account) -> list[str]:
    data = await gql(FOLLOW_REQUESTS, token=viewer.access_token)
    return [edge["node"]["username"] for edge in data["followRequests"]["edges"]]


async def lock(gql: GraphQLClient, account: Account) -> None:
    data = await gql(UPDATE_PROFILE, {"input": {"isLocked": True}}, token=account.access_token)
    assert data["updateProfile"]["user"]["isLocked"] is True, data


async def set_role(username: str, role: Role) -> None:
    await User.filter(username_key=username.lower()).update(role=role)


async def relation(gql: GraphQLClient, verb: str, viewer: Account, other: Account) -> Any:
    """followUser, blockUser, muteUser...: the result union as a dict."""
    return await act(gql, verb, viewer, userId=other.id)


async def must(gql: GraphQLClient, verb: str, viewer: Account, other: Account) -> None:
    result = await relation(gql, verb, viewer, other)
    assert result["__typename"] == verb[0].upper() + verb[1:] + "Success", result


# --- premium access (the ledger written directly: no payment provider) ----------------------

ACCESS_STATES = ("active", "grace", "lapsed")


async def set_access(
    username: str, state: str | None, *, perks: dict[str, int] | None = None
) -> Subscription | None:
    """Give the account the subscription `state` says (replacing any it had), to the plan
    `perks` names (created on first use): `active` (paid through a period not over),
    `grace` (the period ended and a renewal failed: access until the grace period ends),
    `lapsed` (access ended a while ago); None: no subscription at all."""
    user = await User.get(username_key=username.lower())
    await Subscription.filter(user_id=user.id).delete()
    if state is None:
        return None
    code = "perks-" + "-".join(f"{k}-{v}" for k, v in sorted((perks or {}).items()))
    plan, _ = await Plan.get_or_create(
        code=code,
        defaults={"name": code, "interval": "month", "prices": {"eur": 500}, "perks": perks or {}},
    )
    now = datetime.now(UTC)
    period_end, access_until, status = {
        "active": (now + timedelta(days=20), now + timedelta(days=20), SubscriptionStatus.ACTIVE),
        "grace": (now - timedelta(days=2), now + timedelta(days=5), SubscriptionStatus.PAST_DUE),
        "lapsed": (now - timedelta(days=3), now - timedelta(days=3), SubscriptionStatus.EXPIRED),
    }[state]
    return await Subscription.create(
        user_id=user.id,
        plan_id=plan.id,
        provider="manual",
        currency="eur",
        amount=500,
        interval="month",
        status=status,
        current_period_start=period_end - timedelta(days=30),
        current_period_end=period_end,
        access_until=access_until,
        grace_until=access_until if state == "grace" else None,
        renewal_failures=1 if state == "grace" else 0,
    )


# --- writing posts -----------------------------------------------------------------------------

EDIT_POST = f"""
mutation($input: EditPostInput!) {{
  editPost(input: $input) {{
    __typename
    ... on EditPostSuccess {{ post {{ {POST_FIELDS} }} }}
    ... on EditPostError {{ code message field }}
  }}
}}"""

DELETE_POST = """
mutation($input: PostRefInput!) {
  deletePost(input: $input) {
    __typename
    ... on DeletePostSuccess { deletedPostId }
    ... on DeletePostError { code message field }
  }
}"""

CREATE_POST_RAW = """
mutation($input: CreatePostInput!) {
  createPost(input: $input) {
    __typename
    ... on CreatePostSuccess { post { id } }
    ... on CreatePostError { code message field }
  }
}"""


async def edit_post(gql: GraphQLClient, viewer: Account, post_id: str, text: str) -> Any:
    data = await gql(EDIT_POST, {"input": {"id": post_id, "text": text}}, token=token(viewer))
    return data["editPost"]


async def delete_post(gql: GraphQLClient, viewer: Account, post_id: str) -> Any:
    data = await gql(DELETE_POST, {"input": {"postId": post_id}}, token=token(viewer))
    return data["deletePost"]


async def try_post(gql: GraphQLClient, author: Account, text: str, **fields: Any) -> Any:
    """createPost's result union, success or not."""
    data = await gql(
        CREATE_POST_RAW, {"input": {"text": text, **fields}}, token=author.access_token
    )
    return data["createPost"]


async def reply(
    gql: GraphQLClient, author: Account, to: dict[str, Any], text: str, **fields: Any
) -> dict[str, Any]:
    return await post(gql, author, text, replyTo=to["id"], **fields)


# --- notifications -------------------------------------------------------------------------------

NOTIFICATIONS = """
{
  notifications(first: 100) {
    edges { node { kind actor { username email } post { text } } }
  }
  unreadNotificationCount
}"""


async def notifications(gql: GraphQLClient, viewer: Account) -> tuple[list[tuple[str, str]], int]:
    """(kind, actor username) of each notification, newest first, and the unread count."""
    data = await gql(NOTIFICATIONS, token=viewer.access_token)
    items = [
        (edge["node"]["kind"], edge["node"]["actor"]["username"])
        for edge in data["notifications"]["edges"]
    ]
    return items, data["unreadNotificationCount"]
