from __future__ import annotations

import asyncio

from app.models import HomeEntry, Like, Notification, Post, Repost
from tests.social import act, follow, post, texts, timeline
from tests.support import GraphQLClient


async def test_like_twice_is_one_like_and_unlike_restores(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    created = await post(gql, alice, "hello")

    first = await act(gql, "likePost", bob, postId=created["id"])
    second = await act(gql, "likePost", bob, postId=created["id"])

    assert first["post"]["likeCount"] == second["post"]["likeCount"] == 1
    assert second["post"]["viewerHasLiked"] is True
    assert await Like.all().count() == 1
    assert await Notification.filter(kind="like").count() == 1

    undone = await act(gql, "unlikePost", bob, postId=created["id"])
    again = await act(gql, "unlikePost", bob, postId=created["id"])

    assert undone["post"]["likeCount"] == again["post"]["likeCount"] == 0
    assert undone["post"]["viewerHasLiked"] is False
    assert await Notification.filter(kind="like").count() == 0


async def test_concurrent_likes_keep_the_counter_exact(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    fans = [await gql.sign_up(f"fan{i}") for i in range(5)]
    created = await post(gql, alice, "popular")

    await asyncio.gather(
        *(act(gql, "likePost", fan, postId=created["id"]) for fan in fans for _ in range(2))
    )

    stored = await Post.get(text="popular")
    assert stored.like_count == await Like.filter(post_id=stored.id).count() == 5


async def test_repost_reaches_followers_home_once(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await follow(gql, carol, bob)
    created = await post(gql, alice, "worth sharing")

    await act(gql, "repostPost", bob, postId=created["id"])
    result = await act(gql, "repostPost", bob, postId=created["id"])

    assert result["post"]["repostCount"] == 1
    assert result["post"]["viewerHasReposted"] is True
    home = await timeline(gql, "homeTimeline", carol)
    assert texts(home) == ["worth sharing"]
    assert home["edges"][0]["repostedBy"] == {"username": "bob"}
    assert await Repost.all().count() == 1

    undone = await act(gql, "unrepostPost", bob, postId=created["id"])

    assert undone["post"]["repostCount"] == 0
    assert texts(await timeline(gql, "homeTimeline", carol)) == []
    assert await HomeEntry.filter(reposter_id__not_isnull=True).count() == 0


async def test_bookmarks_are_private_and_listed_latest_first(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    one = await post(gql, alice, "one")
    two = await post(gql, alice, "two")

    await act(gql, "bookmarkPost", bob, postId=two["id"])
    await act(gql, "bookmarkPost", bob, postId=one["id"])
    await act(gql, "bookmarkPost", bob, postId=one["id"])

    assert texts(await timeline(gql, "bookmarks", bob)) == ["one", "two"]
    assert texts(await timeline(gql, "bookmarks", alice)) == []
    assert await Notification.all().count() == 0
    await act(gql, "unbookmarkPost", bob, postId=one["id"])
    assert texts(await timeline(gql, "bookmarks", bob)) == ["two"]


async def test_liked_posts_latest_like_first(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    one = await post(gql, alice, "one")
    two = await post(gql, alice, "two")

    await act(gql, "likePost", bob, postId=two["id"])
    await act(gql, "likePost", bob, postId=one["id"])

    assert texts(await timeline(gql, "likedPosts", bob)) == ["one", "two"]


async def test_acting_on_a_missing_post_is_not_found(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    created = await post(gql, alice, "soon gone")
    await Post.all().delete()

    for verb in ("likePost", "repostPost", "bookmarkPost", "unlikePost"):
        result = await act(gql, verb, alice, postId=created["id"])
        assert result["code"] == "NOT_FOUND", verb


async def test_interactions_need_a_viewer(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    created = await post(gql, alice, "hello")
    from tests.social import post_action

    data = await gql(post_action("likePost"), {"input": {"postId": created["id"]}})

    assert data["likePost"]["code"] == "NOT_AUTHENTICATED"
    assert (await Post.get(text="hello")).like_count == 0


async def test_viewer_state_of_referred_posts_is_loaded_when_asked(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    original = await post(gql, bob, "original")
    await act(gql, "likePost", alice, postId=original["id"])
    await act(gql, "bookmarkPost", alice, postId=original["id"])
    await post(gql, bob, "quoting", quoteOf=original["id"])
    document = (
        "{ publicTimeline(first: 1) { edges { node { text quoteOf { text viewerHasLiked "
        "viewerHasReposted viewerHasBookmarked } } } } }"
    )

    as_alice = await gql(document, token=alice.access_token)
    signed_out = await gql(document)

    quoted = as_alice["publicTimeline"]["edges"][0]["node"]["quoteOf"]
    assert quoted == {
        "text": "original",
        "viewerHasLiked": True,
        "viewerHasReposted": False,
        "viewerHasBookmarked": True,
    }
    assert signed_out["publicTimeline"]["edges"][0]["node"]["quoteOf"]["viewerHasLiked"] is False
