"""GraphQL documents and helpers for the social tests."""

from __future__ import annotations

import re
from typing import Any

from tests.support import Account, GraphQLClient

POST_FIELDS = """
id text contentWarning visibility likeCount repostCount replyCount quoteCount isDeleted
viewerHasLiked viewerHasReposted viewerHasBookmarked editedAt
author { id username }
entities { kind start end value }
replyTo { id text isDeleted author { username } }
quoteOf { id text author { username } }
"""

CREATE_POST = f"""
mutation($input: CreatePostInput!) {{
  createPost(input: $input) {{
    __typename
    ... on CreatePostSuccess {{ post {{ {POST_FIELDS} }} }}
    ... on CreatePostError {{ code message field }}
  }}
}}"""

TIMELINE = """
query($first: Int, $after: String, $last: Int, $before: String{defs}) {{
  {field}(first: $first, after: $after, last: $last, before: $before{args}) {{
    edges {{ cursor repostedBy {{ username }} node {{ {post} }} }}
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
  }}
}}"""


def timeline_query(field: str, args: str = "") -> str:
    """A connection query; extra arguments like `, tag: $tag` declare `$tag: String!`."""
    defs = "".join(f", ${name}: String!" for name in re.findall(r"\$(\w+)", args))
    return TIMELINE.format(field=field, args=args, defs=defs, post=POST_FIELDS)


def action(verb: str, input_type: str, payload: str) -> str:
    name = verb[0].upper() + verb[1:]
    return f"""
mutation($input: {input_type}!) {{
  {verb}(input: $input) {{
    __typename
    ... on {name}Success {{ {payload} }}
    ... on {name}Error {{ code message field }}
  }}
}}"""


def post_action(verb: str) -> str:
    return action(verb, "PostRefInput", f"post {{ {POST_FIELDS} }}")


def user_action(verb: str) -> str:
    if verb in ("followUser", "unfollowUser"):
        return action(verb, "UserRefInput", "followState user { username followerCount }")
    return action(verb, "UserRefInput", "userId")


async def post(gql: GraphQLClient, author: Account, text: str, **fields: Any) -> dict[str, Any]:
    data = await gql(CREATE_POST, {"input": {"text": text, **fields}}, token=author.access_token)
    result: dict[str, Any] = data["createPost"]
    assert result["__typename"] == "CreatePostSuccess", result
    return result["post"]  # type: ignore[no-any-return]


async def timeline(
    gql: GraphQLClient,
    field: str,
    viewer: Account | None = None,
    args: str = "",
    **variables: Any,
) -> dict[str, Any]:
    data = await gql(
        timeline_query(field, args), variables, token=viewer.access_token if viewer else None
    )
    return data[field]  # type: ignore[no-any-return]


def texts(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["text"] for edge in connection["edges"]]


async def follow(gql: GraphQLClient, follower: Account, followee: Account) -> str:
    data = await gql(
        user_action("followUser"),
        {"input": {"userId": followee.id}},
        token=follower.access_token,
    )
    result = data["followUser"]
    assert result["__typename"] == "FollowUserSuccess", result
    return str(result["followState"])


async def act(gql: GraphQLClient, verb: str, viewer: Account, **input: Any) -> dict[str, Any]:
    document = post_action(verb) if "postId" in input else user_action(verb)
    data = await gql(document, {"input": input}, token=viewer.access_token)
    return data[verb]  # type: ignore[no-any-return]
