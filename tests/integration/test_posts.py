from __future__ import annotations

import pytest

from app.models import HomeEntry, Notification, Post, PostTag
from tests.social import CREATE_POST, POST_FIELDS, act, action, post, texts, timeline
from tests.support import GraphQLClient

EDIT_POST = action(
    "editPost",
    "EditPostInput",
    f"post {{ {POST_FIELDS} editHistory {{ text contentWarning publishedAt }} }}",
)
DELETE_POST = action("deletePost", "PostRefInput", "deletedPostId")
THREAD = """
query($id: ID!) { node(id: $id) { ... on Post {
  text isDeleted
  ancestors { text isDeleted }
  replies(first: 10) { edges { node { text } } }
} } }"""


async def test_create_post_parses_entities_with_ranges(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await gql.sign_up("bob")
    text = "Hi @bob, see https://example.org/x. #Holdfast rocks @nobody_here"

    created = await post(gql, alice, text, contentWarning="  spoilers ")

    assert created["text"] == text
    assert created["contentWarning"] == "spoilers"
    assert created["visibility"] == "PUBLIC"
    assert created["author"]["username"] == "alice"
    entities = created["entities"]
    assert entities == [
        {"kind": "MENTION", "start": 3, "end": 7, "value": "bob"},
        {"kind": "LINK", "start": 13, "end": 34, "value": "https://example.org/x"},
        {"kind": "HASHTAG", "start": 36, "end": 45, "value": "holdfast"},
        {"kind": "MENTION", "start": 52, "end": 64, "value": "nobody_here"},
    ]
    for entity in entities:
        assert (
            text[entity["start"] : entity["end"]].lstrip("@#").lower()
            in (
                entity["value"].lower(),
                entity["value"].lower().lstrip("@#"),
            )
            or entity["kind"] == "LINK"
        )
    assert await PostTag.filter(tag="holdfast").count() == 1
    mentions = await Notification.filter(kind="mention").prefetch_related("recipient")
    assert [n.recipient.username for n in mentions] == ["bob"]


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ("", "EMPTY_TEXT", "text"),
        ("   \n ", "EMPTY_TEXT", "text"),
        ("x" * 501, "TEXT_TOO_LONG", "text"),
    ],
)
async def test_bad_text_is_refused_and_nothing_is_posted(
    gql: GraphQLClient, text: str, code: str, field: str
) -> None:
    alice = await gql.sign_up("alice")

    data = await gql(CREATE_POST, {"input": {"text": text}}, token=alice.access_token)

    assert data["createPost"]["code"] == code
    assert data["createPost"]["field"] == field
    assert await Post.all().count() == 0
    assert await HomeEntry.all().count() == 0


async def test_text_of_exactly_the_limit_is_accepted(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")

    created = await post(gql, alice, "é" * 500)

    assert len(created["text"]) == 500


async def test_overlong_content_warning_is_refused(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")

    data = await gql(
        CREATE_POST,
        {"input": {"text": "hi", "contentWarning": "w" * 201}},
        token=alice.access_token,
    )

    assert data["createPost"]["field"] == "contentWarning"
    assert await Post.all().count() == 0


async def test_create_post_needs_a_viewer(gql: GraphQLClient) -> None:
    data = await gql(CREATE_POST, {"input": {"text": "hi"}})

    assert data["createPost"]["code"] == "NOT_AUTHENTICATED"


@pytest.mark.parametrize("field", ["replyTo", "quoteOf"])
async def test_an_empty_reference_is_refused_not_dropped(gql: GraphQLClient, field: str) -> None:
    alice = await gql.sign_up("alice")

    variables = {"input": {"text": "to whom?", field: ""}}
    data = await gql(CREATE_POST, variables, token=alice.access_token)

    # Not a top-level post in its place: the reference is checked like any other.
    assert data["createPost"]["code"] == "NOT_FOUND"
    assert data["createPost"]["field"] == field
    assert await Post.all().count() == 0


async def test_deleting_another_accounts_post_names_the_field(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    root = await post(gql, alice, "mine")

    data = await gql(DELETE_POST, {"input": {"postId": root["id"]}}, token=bob.access_token)

    assert data["deletePost"]["code"] == "NOT_FOUND"
    assert data["deletePost"]["field"] == "postId"
    assert (await Post.get(text="mine")).deleted_at is None


async def test_reply_counts_and_notifies(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    root = await post(gql, alice, "root")

    reply = await post(gql, bob, "a reply", replyTo=root["id"])

    assert reply["replyTo"]["id"] == root["id"]
    assert (await Post.get(text="root")).reply_count == 1
    kinds = await Notification.all().values_list("kind", flat=True)
    assert list(kinds) == ["reply"]


async def test_reply_to_a_deleted_post_is_refused(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    root = await post(gql, alice, "root")
    await gql(DELETE_POST, {"input": {"postId": root["id"]}}, token=alice.access_token)

    data = await gql(
        CREATE_POST, {"input": {"text": "late", "replyTo": root["id"]}}, token=alice.access_token
    )

    assert data["createPost"]["code"] == "NOT_FOUND"
    assert data["createPost"]["field"] == "replyTo"
    assert await Post.filter(text="late").count() == 0


async def test_reply_to_an_id_of_another_type_is_refused(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")

    data = await gql(
        CREATE_POST, {"input": {"text": "x", "replyTo": alice.id}}, token=alice.access_token
    )

    assert data["createPost"]["code"] == "NOT_FOUND"
    assert await Post.all().count() == 0


async def test_quote_counts_public_quotes(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    original = await post(gql, alice, "original")

    quote = await post(gql, bob, "look at this", quoteOf=original["id"])

    assert quote["quoteOf"]["text"] == "original"
    assert (await Post.get(text="original")).quote_count == 1
    assert "quote" in await Notification.all().values_list("kind", flat=True)


async def test_edit_keeps_history_and_reparses_entities(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await gql.sign_up("bob")
    created = await post(gql, alice, "first #one")

    data = await gql(
        EDIT_POST,
        {"input": {"id": created["id"], "text": "second #two @bob"}},
        token=alice.access_token,
    )

    edited = data["editPost"]["post"]
    assert edited["text"] == "second #two @bob"
    assert edited["editedAt"] is not None
    assert [v["text"] for v in edited["editHistory"]] == ["first #one"]
    assert [e["value"] for e in edited["entities"]] == ["two", "bob"]
    assert set(await PostTag.all().values_list("tag", flat=True)) == {"two"}
    assert await Notification.filter(kind="mention").count() == 1


async def test_edit_with_bad_text_changes_nothing(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    created = await post(gql, alice, "first")

    data = await gql(
        EDIT_POST, {"input": {"id": created["id"], "text": "x" * 501}}, token=alice.access_token
    )

    assert data["editPost"]["code"] == "TEXT_TOO_LONG"
    stored = await Post.get(text="first")
    assert stored.edited_at is None


async def test_delete_leaves_a_tombstone_and_keeps_replies(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    root = await post(gql, alice, "root")
    reply = await post(gql, bob, "reply", replyTo=root["id"])
    await act(gql, "likePost", bob, postId=root["id"])

    deleted = await gql(DELETE_POST, {"input": {"postId": root["id"]}}, token=alice.access_token)

    assert deleted["deletePost"]["deletedPostId"] == root["id"]
    thread = (await gql(THREAD, {"id": reply["id"]}, token=bob.access_token))["node"]
    assert thread["ancestors"] == [{"text": "", "isDeleted": True}]
    tombstone = (await gql(THREAD, {"id": root["id"]}, token=bob.access_token))["node"]
    assert tombstone["isDeleted"] is True
    assert tombstone["text"] == ""
    assert [e["node"]["text"] for e in tombstone["replies"]["edges"]] == ["reply"]
    assert "root" not in [
        e["node"]["text"] for e in (await timeline(gql, "publicTimeline"))["edges"]
    ]
    stored = await Post.get(id=(await Post.filter(text="").first()).id)  # type: ignore[union-attr]
    assert stored.deleted_at is not None
    assert stored.like_count == 0


async def test_threads_list_ancestors_and_replies(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    root = await post(gql, alice, "root")
    middle = await post(gql, bob, "middle", replyTo=root["id"])
    leaf = await post(gql, alice, "leaf", replyTo=middle["id"])
    await post(gql, bob, "second reply", replyTo=root["id"])

    at_leaf = (await gql(THREAD, {"id": leaf["id"]}))["node"]
    at_root = (await gql(THREAD, {"id": root["id"]}))["node"]

    assert [p["text"] for p in at_leaf["ancestors"]] == ["root", "middle"]
    assert [e["node"]["text"] for e in at_root["replies"]["edges"]] == ["middle", "second reply"]


async def test_editing_a_mention_out_of_a_direct_post_ends_that_access(
    gql: GraphQLClient,
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    created = await post(gql, alice, "psst @bob @carol", visibility="DIRECT")
    node = "query($id: ID!) { node(id: $id) { id } }"

    await gql(
        EDIT_POST, {"input": {"id": created["id"], "text": "psst @bob"}}, token=alice.access_token
    )

    assert (await gql(node, {"id": created["id"]}, token=bob.access_token))["node"] is not None
    assert (await gql(node, {"id": created["id"]}, token=carol.access_token))["node"] is None
    assert texts(await timeline(gql, "homeTimeline", carol)) == []
    assert texts(await timeline(gql, "homeTimeline", bob)) == ["psst @bob"]


async def test_editing_a_mention_into_a_direct_post_delivers_it(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    created = await post(gql, alice, "note to self", visibility="DIRECT")

    await gql(
        EDIT_POST,
        {"input": {"id": created["id"], "text": "now for @bob"}},
        token=alice.access_token,
    )

    assert texts(await timeline(gql, "homeTimeline", bob)) == ["now for @bob"]
    assert await Notification.filter(kind="mention").count() == 1
