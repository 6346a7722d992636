"""Who may see a post, on every read path; who may act on it; email privacy; locked accounts.

Visibility: PUBLIC (everyone), FOLLOWERS (the author and followers), SUBSCRIBERS (the author
and accounts with premium access: nobody here has any; test_premium_visibility.py covers
them), DIRECT (the author and the accounts mentioned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from app.models import (
    Bookmark,
    Follow,
    FollowRequest,
    Like,
    Notification,
    Post,
    PostEdit,
    Repost,
    Role,
)
from tests.authz import (
    ancestor_texts,
    db_id,
    delete_post,
    edit_post,
    follow_requests,
    lock,
    must,
    node,
    notifications,
    relation,
    reply,
    reply_texts,
    set_role,
    thread,
    try_post,
    user,
    user_posts,
)
from tests.social import act, follow, post, texts, timeline
from tests.support import Account, GraphQLClient

VISIBILITIES = ("PUBLIC", "FOLLOWERS", "SUBSCRIBERS", "DIRECT")

TEXTS = {
    "PUBLIC": "zebra public #herd",
    "FOLLOWERS": "zebra followers #herd",
    "SUBSCRIBERS": "zebra subscribers @carol #herd",
    "DIRECT": "zebra direct @carol #herd",
}

# Who sees which of bob's posts: alice follows bob, carol is mentioned, dave is a stranger.
SEES = {
    None: {"PUBLIC"},
    "bob": set(VISIBILITIES),
    "alice": {"PUBLIC", "FOLLOWERS"},
    "carol": {"PUBLIC", "DIRECT"},
    "dave": {"PUBLIC"},
}
VIEWERS = list(SEES)


@dataclass
class World:
    accounts: dict[str, Account]
    posts: dict[str, dict[str, Any]]

    def viewer(self, name: str | None) -> Account | None:
        return self.accounts[name] if name else None


async def make_world(gql: GraphQLClient) -> World:
    accounts = {name: await gql.sign_up(name) for name in ("bob", "alice", "carol", "dave")}
    assert await follow(gql, accounts["alice"], accounts["bob"]) == "FOLLOWING"
    posts = {
        visibility: await post(gql, accounts["bob"], TEXTS[visibility], visibility=visibility)
        for visibility in VISIBILITIES
    }
    for visibility, created in posts.items():
        assert created["visibility"] == visibility
    return World(accounts, posts)


def expected(viewer: str | None) -> set[str]:
    return {TEXTS[v] for v in SEES[viewer]}


def zebras(found: list[str]) -> set[str]:
    return {text for text in found if text.startswith("zebra")}


# --- every read path ---------------------------------------------------------------------------


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_node_returns_a_post_only_to_its_audience(
    gql: GraphQLClient, viewer: str | None
) -> None:
    world = await make_world(gql)
    for visibility, created in world.posts.items():
        found = await node(gql, world.viewer(viewer), created["id"])
        if visibility in SEES[viewer]:
            assert found is not None, (viewer, visibility)
            assert found["text"] == TEXTS[visibility]
        else:
            assert found is None, (viewer, visibility)


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_user_posts_show_only_posts_the_viewer_may_see(
    gql: GraphQLClient, viewer: str | None
) -> None:
    world = await make_world(gql)
    for with_replies in (False, True):
        found = await user_posts(gql, world.viewer(viewer), "bob", with_replies=with_replies)
        assert found is not None
        assert set(found) == expected(viewer), with_replies


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_hashtag_timeline_shows_only_posts_the_viewer_may_see(
    gql: GraphQLClient, viewer: str | None
) -> None:
    world = await make_world(gql)
    found = await timeline(gql, "hashtagTimeline", world.viewer(viewer), ', tag: "herd"')
    assert set(texts(found)) == expected(viewer)


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_search_posts_finds_only_posts_the_viewer_may_see(
    gql: GraphQLClient, viewer: str | None
) -> None:
    world = await make_world(gql)
    found = await timeline(gql, "searchPosts", world.viewer(viewer), ', query: "zebra"')
    assert set(texts(found)) == expected(viewer)


@pytest.mark.parametrize("viewer", VIEWERS)
async def test_public_timeline_has_only_public_posts_even_for_the_audience(
    gql: GraphQLClient, viewer: str | None
) -> None:
    world = await make_world(gql)
    found = await timeline(gql, "publicTimeline", world.viewer(viewer))
    assert texts(found) == [TEXTS["PUBLIC"]]
    backwards = await timeline(gql, "publicTimeline", world.viewer(viewer), last=10)
    assert texts(backwards) == [TEXTS["PUBLIC"]]


@pytest.mark.parametrize(
    ("viewer", "home"),
    [
        ("bob", set(VISIBILITIES)),
        ("alice", {"PUBLIC", "FOLLOWERS"}),
        ("carol", {"DIRECT"}),  # not a follower: only what is addressed to her
        ("dave", set()),
    ],
)
async def test_home_timeline_has_only_posts_the_viewer_may_see(
    gql: GraphQLClient, viewer: str, home: set[str]
) -> None:
    world = await make_world(gql)
    found = await timeline(gql, "homeTimeline", world.viewer(viewer))
    assert zebras(texts(found)) == {TEXTS[v] for v in home}


async def test_search_hashtags_counts_only_public_posts(gql: GraphQLClient) -> None:
    world = await make_world(gql)
    data = await gql(
        '{ searchHashtags(query: "her") { tag publicPosts } }',
        token=world.accounts["alice"].access_token,
    )
    assert data["searchHashtags"] == [{"tag": "herd", "publicPosts": 1}]


async def test_mentions_notify_only_who_may_see_the_post(gql: GraphQLClient) -> None:
    world = await make_world(gql)
    carol = world.accounts["carol"]
    found, unread = await notifications(gql, carol)
    # The DIRECT post mentions her; the SUBSCRIBERS one does too, but she may not see it.
    assert found == [("MENTION", "bob")]
    assert unread == 1
    rows = await Notification.filter(recipient_id=db_id(carol.id))
    assert [row.post_id for row in rows] == [db_id(world.posts["DIRECT"]["id"])]


async def test_bookmarks_and_likes_lists_drop_posts_the_viewer_may_no_longer_see(
    gql: GraphQLClient,
) -> None:
    world = await make_world(gql)
    alice, bob = world.accounts["alice"], world.accounts["bob"]
    secret = world.posts["FOLLOWERS"]
    for verb in ("likePost", "bookmarkPost"):
        result = await act(gql, verb, alice, postId=secret["id"])
        assert result["__typename"].endswith("Success"), result
    assert texts(await timeline(gql, "bookmarks", alice)) == [TEXTS["FOLLOWERS"]]
    assert texts(await timeline(gql, "likedPosts", alice)) == [TEXTS["FOLLOWERS"]]

    await must(gql, "unfollowUser", alice, bob)

    assert texts(await timeline(gql, "bookmarks", alice)) == []
    assert texts(await timeline(gql, "likedPosts", alice)) == []
    assert await node(gql, alice, secret["id"]) is None
    assert await user_posts(gql, alice, "bob") == [TEXTS["PUBLIC"]]
    assert zebras(texts(await timeline(gql, "homeTimeline", alice))) == set()


# --- acting on posts one may not see ---------------------------------------------------------

HIDDEN = [("dave", "FOLLOWERS"), ("alice", "DIRECT"), ("carol", "SUBSCRIBERS"), ("dave", "DIRECT")]


async def _counts(post_id: str) -> tuple[int, int, int, int]:
    row = await Post.get(id=db_id(post_id))
    return row.like_count, row.repost_count, row.reply_count, row.quote_count


@pytest.mark.parametrize(("viewer", "visibility"), HIDDEN)
@pytest.mark.parametrize("verb", ["likePost", "repostPost", "bookmarkPost"])
async def test_acting_on_a_hidden_post_is_not_found_and_changes_nothing(
    gql: GraphQLClient, viewer: str, visibility: str, verb: str
) -> None:
    world = await make_world(gql)
    target = world.posts[visibility]["id"]
    before = await _counts(target)
    notified = await Notification.all().count()

    result = await act(gql, verb, world.accounts[viewer], postId=target)

    assert result["__typename"] == verb[0].upper() + verb[1:] + "Error", result
    assert result["code"] == "NOT_FOUND"
    assert await _counts(target) == before
    for model in (Like, Repost, Bookmark):
        assert await model.filter(post_id=db_id(target)).count() == 0
    assert await Notification.all().count() == notified


@pytest.mark.parametrize(("viewer", "visibility"), HIDDEN)
@pytest.mark.parametrize("field", ["replyTo", "quoteOf"])
async def test_replying_to_or_quoting_a_hidden_post_is_not_found(
    gql: GraphQLClient, viewer: str, visibility: str, field: str
) -> None:
    world = await make_world(gql)
    target = world.posts[visibility]["id"]
    before = await _counts(target)
    posts = await Post.all().count()

    result = await try_post(gql, world.accounts[viewer], "sneaky", **{field: target})

    assert result == {
        "__typename": "CreatePostError",
        "code": "NOT_FOUND",
        "message": result["message"],
        "field": field,
    }
    assert await Post.all().count() == posts
    assert await _counts(target) == before


async def test_a_follower_cannot_repost_or_quote_a_followers_only_post(
    gql: GraphQLClient,
) -> None:
    world = await make_world(gql)
    alice = world.accounts["alice"]
    secret = world.posts["FOLLOWERS"]["id"]
    posts = await Post.all().count()

    reposted = await act(gql, "repostPost", alice, postId=secret)
    quoted = await try_post(gql, alice, "look at this", quoteOf=secret)

    assert reposted["__typename"] == "RepostPostError"
    assert reposted["code"] == "FORBIDDEN"
    assert quoted["__typename"] == "CreatePostError"
    assert quoted["code"] == "FORBIDDEN"
    assert await Repost.filter(post_id=db_id(secret)).count() == 0
    assert await Post.all().count() == posts
    assert await _counts(secret) == (0, 0, 0, 0)
    # She may reply to it, though: she is in its audience.
    answer = await reply(gql, alice, world.posts["FOLLOWERS"], "a follower's answer")
    assert answer["replyTo"]["text"] == TEXTS["FOLLOWERS"]


async def test_a_mentioned_user_cannot_repost_or_quote_a_direct_post(gql: GraphQLClient) -> None:
    world = await make_world(gql)
    carol = world.accounts["carol"]
    direct = world.posts["DIRECT"]["id"]

    reposted = await act(gql, "repostPost", carol, postId=direct)
    quoted = await try_post(gql, carol, "look at this", quoteOf=direct)

    assert reposted["code"] == "FORBIDDEN"
    assert quoted["code"] == "FORBIDDEN"
    assert await Repost.filter(post_id=db_id(direct)).count() == 0
    assert await _counts(direct) == (0, 0, 0, 0)


# --- threads and counts -----------------------------------------------------------------------


@pytest.mark.parametrize("hidden", ["FOLLOWERS", "DIRECT", "SUBSCRIBERS"])
async def test_replies_and_quotes_count_only_public_ones_and_hide_the_rest(
    gql: GraphQLClient, hidden: str
) -> None:
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    alice = await gql.sign_up("alice")
    dave = await gql.sign_up("dave")
    await follow(gql, alice, carol)
    root = await post(gql, bob, "root")
    hidden_reply = await reply(gql, carol, root, "hidden reply @alice", visibility=hidden)
    public_reply = await reply(gql, carol, root, "public reply")
    hidden_quote = await post(
        gql, carol, "hidden quote @alice", quoteOf=root["id"], visibility=hidden
    )
    public_quote = await post(gql, carol, "public quote", quoteOf=root["id"])

    for viewer in (None, dave, alice, bob, carol):
        seen = await thread(gql, viewer, root["id"])
        assert (seen["replyCount"], seen["quoteCount"]) == (1, 1), viewer
    assert await _counts(root["id"]) == (0, 0, 1, 1)

    for viewer in (None, dave, bob):
        assert reply_texts(await thread(gql, viewer, root["id"])) == ["public reply"]
        assert await node(gql, viewer, hidden_quote["id"]) is None
        assert await node(gql, viewer, hidden_reply["id"]) is None
        assert "hidden quote @alice" not in texts(
            await timeline(gql, "searchPosts", viewer, ', query: "quote"')
        )
    everything = ["hidden reply @alice", "public reply"]
    assert reply_texts(await thread(gql, carol, root["id"])) == everything
    audience = everything if hidden != "SUBSCRIBERS" else ["public reply"]
    assert reply_texts(await thread(gql, alice, root["id"])) == audience

    # Deleting the hidden ones does not touch the counts; deleting the public ones does.
    for gone in (hidden_reply, hidden_quote):
        assert (await delete_post(gql, carol, gone["id"]))["__typename"] == "DeletePostSuccess"
    assert await _counts(root["id"]) == (0, 0, 1, 1)
    for gone in (public_reply, public_quote):
        assert (await delete_post(gql, carol, gone["id"]))["__typename"] == "DeletePostSuccess"
    assert await _counts(root["id"]) == (0, 0, 0, 0)
    seen = await thread(gql, dave, root["id"])
    assert (seen["replyCount"], seen["quoteCount"], reply_texts(seen)) == (0, 0, [])


async def test_a_hidden_reply_or_quote_does_not_notify_an_author_who_may_not_see_it(
    gql: GraphQLClient,
) -> None:
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    root = await post(gql, bob, "root")
    await reply(gql, carol, root, "followers reply", visibility="FOLLOWERS")
    await post(gql, carol, "followers quote", quoteOf=root["id"], visibility="FOLLOWERS")
    assert await notifications(gql, bob) == ([], 0)
    assert await Notification.filter(recipient_id=db_id(bob.id)).count() == 0
    # A public one does notify.
    await reply(gql, carol, root, "public reply")
    assert await notifications(gql, bob) == ([("REPLY", "carol")], 1)


async def test_a_notification_disappears_when_its_post_is_no_longer_visible(
    gql: GraphQLClient,
) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await post(gql, bob, "for followers, hi @alice", visibility="FOLLOWERS")
    assert await notifications(gql, alice) == ([("MENTION", "bob")], 1)

    await must(gql, "unfollowUser", alice, bob)

    assert await notifications(gql, alice) == ([], 0)


DEAD_ACTIONS = ["likePost", "repostPost", "bookmarkPost", "replyTo", "quoteOf"]


@pytest.mark.parametrize("actor", ["author", "other"])
@pytest.mark.parametrize("verb", DEAD_ACTIONS)
async def test_acting_on_a_deleted_post_is_not_found(
    gql: GraphQLClient, actor: str, verb: str
) -> None:
    bob = await gql.sign_up("bob")
    alice = await gql.sign_up("alice")
    target = await post(gql, bob, "soon gone")
    assert (await delete_post(gql, bob, target["id"]))["__typename"] == "DeletePostSuccess"
    viewer = bob if actor == "author" else alice
    posts = await Post.all().count()

    if verb in ("replyTo", "quoteOf"):
        result = await try_post(gql, viewer, "too late", **{verb: target["id"]})
    else:
        result = await act(gql, verb, viewer, postId=target["id"])

    assert result["__typename"].endswith("Error"), result
    assert result["code"] == "NOT_FOUND"
    assert await _counts(target["id"]) == (0, 0, 0, 0)
    assert await Post.all().count() == posts
    for model in (Like, Repost, Bookmark):
        assert await model.filter(post_id=db_id(target["id"])).count() == 0
    assert await Notification.all().count() == 0


async def test_threads_leave_out_posts_the_viewer_may_not_see(gql: GraphQLClient) -> None:
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    alice = await gql.sign_up("alice")
    dave = await gql.sign_up("dave")
    await follow(gql, alice, carol)
    root = await post(gql, bob, "root")
    middle = await reply(gql, carol, root, "followers middle", visibility="FOLLOWERS")
    leaf = await reply(gql, alice, middle, "public leaf")

    # Outsiders: the leaf is visible, its parent is not.
    for viewer in (None, dave, bob):
        found = await node(gql, viewer, leaf["id"])
        assert found["text"] == "public leaf"
        assert found["replyTo"] is None, viewer
        seen = await thread(gql, viewer, leaf["id"])
        assert ancestor_texts(seen) == ["root"], viewer
        assert reply_texts(await thread(gql, viewer, root["id"])) == [], viewer
        assert await user_posts(gql, viewer, "carol", with_replies=True) == [], viewer

    # A follower of carol sees the whole thread.
    found = await node(gql, alice, leaf["id"])
    assert found["replyTo"]["text"] == "followers middle"
    assert ancestor_texts(await thread(gql, alice, leaf["id"])) == ["root", "followers middle"]
    assert reply_texts(await thread(gql, alice, root["id"])) == ["followers middle"]


async def test_a_reply_to_a_direct_post_does_not_reveal_it(gql: GraphQLClient) -> None:
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    dave = await gql.sign_up("dave")
    await follow(gql, dave, bob)
    direct = await post(gql, bob, "psst @carol", visibility="DIRECT")
    answer = await reply(gql, carol, direct, "carol answers in public")

    assert answer["replyTo"]["text"] == "psst @carol"
    for viewer in (None, dave):
        found = await node(gql, viewer, answer["id"])
        assert found["text"] == "carol answers in public"
        assert found["replyTo"] is None
        assert ancestor_texts(await thread(gql, viewer, answer["id"])) == []
    assert ancestor_texts(await thread(gql, carol, answer["id"])) == ["psst @carol"]


# --- deleting and editing ---------------------------------------------------------------------


async def test_a_deleted_post_is_a_tombstone_in_threads_and_gone_from_timelines(
    gql: GraphQLClient,
) -> None:
    bob = await gql.sign_up("bob")
    alice = await gql.sign_up("alice")
    dave = await gql.sign_up("dave")
    await follow(gql, alice, bob)
    root = await post(gql, bob, "zebra root #herd")
    answer = await reply(gql, dave, root, "zebra answer")
    assert "zebra root #herd" in texts(await timeline(gql, "homeTimeline", alice))

    result = await delete_post(gql, bob, root["id"])

    assert result == {"__typename": "DeletePostSuccess", "deletedPostId": root["id"]}
    row = await Post.get(id=db_id(root["id"]))
    assert row.deleted_at is not None
    assert row.text == ""
    for viewer in (None, alice, dave, bob):
        found = await node(gql, viewer, answer["id"])
        assert found["text"] == "zebra answer"
        assert found["replyTo"]["isDeleted"] is True
        assert found["replyTo"]["text"] == ""
        ancestors = (await thread(gql, viewer, answer["id"]))["ancestors"]
        assert [(a["isDeleted"], a["text"]) for a in ancestors] == [(True, "")]
        assert texts(await timeline(gql, "publicTimeline", viewer)) == ["zebra answer"]
        assert texts(await timeline(gql, "hashtagTimeline", viewer, ', tag: "herd"')) == []
        assert texts(await timeline(gql, "searchPosts", viewer, ', query: "zebra"')) == [
            "zebra answer"
        ]
        assert await user_posts(gql, viewer, "bob") == []
    assert "zebra root #herd" not in texts(await timeline(gql, "homeTimeline", alice))
    assert texts(await timeline(gql, "homeTimeline", bob)) == []


@pytest.mark.parametrize("visibility", ["PUBLIC", "FOLLOWERS"])
async def test_another_user_cannot_delete_a_post(gql: GraphQLClient, visibility: str) -> None:
    bob = await gql.sign_up("bob")
    alice = await gql.sign_up("alice")
    await follow(gql, alice, bob)
    target = await post(gql, bob, "mine to keep", visibility=visibility)
    liked = await act(gql, "likePost", alice, postId=target["id"])
    assert liked["post"]["likeCount"] == 1

    result = await delete_post(gql, alice, target["id"])

    assert result["__typename"] == "DeletePostError"
    assert result["code"] == "NOT_FOUND"
    row = await Post.get(id=db_id(target["id"]))
    assert (row.deleted_at, row.text, row.like_count) == (None, "mine to keep", 1)
    assert await Like.filter(post_id=row.id).count() == 1
    assert (await node(gql, alice, target["id"]))["text"] == "mine to keep"
    assert await user_posts(gql, alice, "bob") == ["mine to keep"]


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.ADMIN])
async def test_moderators_and_admins_may_delete_any_post(gql: GraphQLClient, role: Role) -> None:
    bob = await gql.sign_up("bob")
    staff = await gql.sign_up("warden")
    await set_role("warden", role)
    target = await post(gql, bob, "offending")

    result = await delete_post(gql, staff, target["id"])

    assert result == {"__typename": "DeletePostSuccess", "deletedPostId": target["id"]}
    assert (await Post.get(id=db_id(target["id"]))).deleted_at is not None
    assert texts(await timeline(gql, "publicTimeline")) == []


@pytest.mark.parametrize("editor_role", [Role.USER, Role.MODERATOR, Role.ADMIN])
@pytest.mark.parametrize("visibility", ["PUBLIC", "FOLLOWERS"])
async def test_only_the_author_may_edit_a_post(
    gql: GraphQLClient, editor_role: Role, visibility: str
) -> None:
    bob = await gql.sign_up("bob")
    alice = await gql.sign_up("alice")
    await set_role("alice", editor_role)
    await follow(gql, alice, bob)
    target = await post(gql, bob, "original #one", visibility=visibility)

    result = await edit_post(gql, alice, target["id"], "vandalised #two @alice")

    assert result["__typename"] == "EditPostError"
    assert result["code"] == "NOT_FOUND"
    row = await Post.get(id=db_id(target["id"]))
    assert (row.text, row.edited_at) == ("original #one", None)
    assert await PostEdit.filter(post_id=row.id).count() == 0
    found = await node(gql, alice, target["id"])
    assert found["text"] == "original #one"
    assert found["editedAt"] is None
    assert [e["value"] for e in found["entities"]] == ["one"]
    # The author can.
    edited = await edit_post(gql, bob, target["id"], "edited")
    assert edited["post"]["text"] == "edited"


# --- locked accounts ----------------------------------------------------------------------------


async def test_a_locked_account_shows_followers_posts_only_after_accepting(
    gql: GraphQLClient,
) -> None:
    bob = await gql.sign_up("bob")
    alice = await gql.sign_up("alice")
    await lock(gql, bob)
    await post(gql, bob, "open")
    secret = await post(gql, bob, "secret", visibility="FOLLOWERS")

    assert await follow(gql, alice, bob) == "REQUESTED"

    assert await Follow.all().count() == 0
    assert await FollowRequest.all().count() == 1
    seen = await user(gql, alice, "bob")
    assert (seen["viewerFollowState"], seen["followerCount"]) == ("REQUESTED", 0)
    assert await node(gql, alice, secret["id"]) is None
    assert await user_posts(gql, alice, "bob") == ["open"]
    assert "secret" not in texts(await timeline(gql, "homeTimeline", alice))
    assert await follow_requests(gql, bob) == ["alice"]

    await must(gql, "acceptFollowRequest", bob, alice)

    seen = await user(gql, alice, "bob")
    assert (seen["viewerFollowState"], seen["followerCount"]) == ("FOLLOWING", 1)
    assert (await node(gql, alice, secret["id"]))["text"] == "secret"
    assert await user_posts(gql, alice, "bob") == ["secret", "open"]
    assert "secret" in texts(await timeline(gql, "homeTimeline", alice))
    assert await follow_requests(gql, bob) == []
    assert await FollowRequest.all().count() == 0


async def test_a_rejected_follow_request_keeps_followers_posts_hidden(gql: GraphQLClient) -> None:
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await lock(gql, bob)
    await post(gql, bob, "open")
    secret = await post(gql, bob, "secret", visibility="FOLLOWERS")
    assert await follow(gql, carol, bob) == "REQUESTED"

    await must(gql, "rejectFollowRequest", bob, carol)

    assert await Follow.all().count() == 0
    assert await FollowRequest.all().count() == 0
    seen = await user(gql, carol, "bob")
    assert (seen["viewerFollowState"], seen["followerCount"]) == ("NOT_FOLLOWING", 0)
    assert await node(gql, carol, secret["id"]) is None
    assert await user_posts(gql, carol, "bob") == ["open"]
    assert "secret" not in texts(await timeline(gql, "homeTimeline", carol))
    assert await follow_requests(gql, bob) == []


@pytest.mark.parametrize("verb", ["acceptFollowRequest", "rejectFollowRequest"])
async def test_answering_a_request_that_was_never_made_is_not_found(
    gql: GraphQLClient, verb: str
) -> None:
    bob = await gql.sign_up("bob")
    dave = await gql.sign_up("dave")
    await lock(gql, bob)
    secret = await post(gql, bob, "secret", visibility="FOLLOWERS")

    result = await relation(gql, verb, bob, dave)

    assert result["__typename"] == verb[0].upper() + verb[1:] + "Error"
    assert result["code"] == "NOT_FOUND"
    assert await Follow.all().count() == 0
    assert (await user(gql, dave, "bob"))["followerCount"] == 0
    assert await node(gql, dave, secret["id"]) is None


# --- email ----------------------------------------------------------------------------------------

EMAIL_PATHS = """
query($name: String!, $id: ID!, $post: ID!) {
  user(username: $name) { email }
  node(id: $id) { ... on User { email } }
  post: node(id: $post) { ... on Post { author { email } } }
  alice: user(username: "alice") {
    followers(first: 10) { edges { node { username email } } }
  }
  searchAccounts(query: $name) { username email }
  publicTimeline(first: 10) { edges { node { author { username email } } } }
}"""


async def _bob_email_everywhere(
    gql: GraphQLClient, viewer: Account | None, bob: Account, post_id: str
) -> dict[str, Any]:
    data = await gql(
        EMAIL_PATHS,
        {"name": "bob", "id": bob.id, "post": post_id},
        token=viewer.access_token if viewer else None,
    )
    (follower,) = [e["node"] for e in data["alice"]["followers"]["edges"]]
    (found,) = [u for u in data["searchAccounts"] if u["username"] == "bob"]
    (author,) = [e["node"]["author"] for e in data["publicTimeline"]["edges"]]
    assert follower["username"] == author["username"] == "bob"
    return {
        "user": data["user"]["email"],
        "node": data["node"]["email"],
        "post.author": data["post"]["author"]["email"],
        "followers": follower["email"],
        "searchAccounts": found["email"],
        "timeline author": author["email"],
    }


@pytest.mark.parametrize(
    ("viewer", "sees"),
    [(None, False), ("alice", False), ("marshal", False), ("bob", True), ("keeper", True)],
)
async def test_email_is_shown_only_to_its_owner_and_admins(
    gql: GraphQLClient, viewer: str | None, sees: bool
) -> None:
    accounts = {name: await gql.sign_up(name) for name in ("bob", "alice", "marshal", "keeper")}
    await set_role("marshal", Role.MODERATOR)
    await set_role("keeper", Role.ADMIN)
    bob = accounts["bob"]
    await follow(gql, bob, accounts["alice"])
    hello = await post(gql, bob, "hello")
    me = accounts[viewer] if viewer else None

    found = await _bob_email_everywhere(gql, me, bob, hello["id"])

    email = "bob@example.org" if sees else None
    assert found == dict.fromkeys(found, email)
    # `viewer` is the account itself: its own email, always.
    own = await gql.viewer(me.access_token) if me else None
    if me is not None:
        assert own is not None
        assert own["email"] == f"{viewer}@example.org"


async def test_notification_actors_do_not_reveal_emails(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, bob, alice)
    data = await gql(
        "{ notifications(first: 10) { edges { node { kind actor { username email } } } } }",
        token=alice.access_token,
    )
    assert [e["node"] for e in data["notifications"]["edges"]] == [
        {"kind": "FOLLOW", "actor": {"username": "bob", "email": None}}
    ]
