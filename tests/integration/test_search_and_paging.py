from __future__ import annotations

import pytest

from tests.social import post, texts, timeline
from tests.support import GraphQLClient

SEARCH_ACCOUNTS = "query($q: String!) { searchAccounts(query: $q) { username } }"
SEARCH_TAGS = "query($q: String!) { searchHashtags(query: $q) { tag publicPosts } }"


async def test_search_accounts_by_username_or_display_name_prefix(gql: GraphQLClient) -> None:
    await gql.sign_up("alice", display_name="Wonderland")
    await gql.sign_up("alicia")
    await gql.sign_up("bob", display_name="Alien Bob")
    await gql.sign_up("a_b_c")

    found = await gql(SEARCH_ACCOUNTS, {"q": "ALI"})
    underscore = await gql(SEARCH_ACCOUNTS, {"q": "a_"})
    display = await gql(SEARCH_ACCOUNTS, {"q": "wonder"})

    assert sorted(u["username"] for u in found["searchAccounts"]) == ["alice", "alicia", "bob"]
    assert [u["username"] for u in underscore["searchAccounts"]] == ["a_b_c"]
    assert [u["username"] for u in display["searchAccounts"]] == ["alice"]


async def test_search_posts_by_words(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "the quick brown fox")
    await post(gql, alice, "a lazy dog")
    await post(gql, alice, "quick thinking")

    quick = await timeline(gql, "searchPosts", None, args=", query: $q", q="quick")
    both = await timeline(gql, "searchPosts", None, args=", query: $q", q="quick fox")
    odd = await timeline(gql, "searchPosts", None, args=", query: $q", q='"fox" OR (NEAR')

    assert texts(quick) == ["quick thinking", "the quick brown fox"]
    assert texts(both) == ["the quick brown fox"]
    assert texts(odd) == []


async def test_edited_posts_are_found_by_their_new_text(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    created = await post(gql, alice, "before words")
    from tests.integration.test_posts import EDIT_POST

    await gql(
        EDIT_POST, {"input": {"id": created["id"], "text": "after words"}}, token=alice.access_token
    )

    assert texts(await timeline(gql, "searchPosts", None, args=", query: $q", q="after")) == [
        "after words"
    ]
    assert texts(await timeline(gql, "searchPosts", None, args=", query: $q", q="before")) == []


async def test_search_hashtags_by_prefix_counts_public_posts(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await post(gql, alice, "#python #pytest")
    await post(gql, alice, "#Python again")
    await post(gql, alice, "#python secret", visibility="FOLLOWERS")

    found = await gql(SEARCH_TAGS, {"q": "#py"})

    assert found["searchHashtags"] == [
        {"tag": "python", "publicPosts": 2},
        {"tag": "pytest", "publicPosts": 1},
    ]
    tagged = await timeline(gql, "hashtagTimeline", None, args=", tag: $tag", tag="#PYTHON")
    assert texts(tagged) == ["#Python again", "#python #pytest"]


async def test_pages_follow_cursors_both_ways(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    for i in range(7):
        await post(gql, alice, f"post {i}")

    first = await timeline(gql, "publicTimeline", None, first=3)
    second = await timeline(
        gql, "publicTimeline", None, first=3, after=first["pageInfo"]["endCursor"]
    )
    third = await timeline(
        gql, "publicTimeline", None, first=3, after=second["pageInfo"]["endCursor"]
    )
    back = await timeline(
        gql, "publicTimeline", None, last=2, before=second["pageInfo"]["startCursor"]
    )

    assert texts(first) == ["post 6", "post 5", "post 4"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert texts(second) == ["post 3", "post 2", "post 1"]
    assert texts(third) == ["post 0"]
    assert third["pageInfo"]["hasNextPage"] is False
    assert texts(back) == ["post 5", "post 4"]
    assert back["pageInfo"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"first": 0}, "INVALID_INPUT", "first"),
        ({"first": 101}, "INVALID_INPUT", "first"),
        ({"first": 2, "last": 2}, "INVALID_INPUT", "last"),
        ({"first": 2, "after": "not-a-cursor"}, "INVALID_CURSOR", "after"),
        ({"last": 2, "before": "%%%"}, "INVALID_CURSOR", "before"),
    ],
)
async def test_bad_page_arguments_are_typed_errors(
    gql: GraphQLClient, variables: dict[str, object], code: str, field: str
) -> None:
    from tests.social import timeline_query

    response = await gql.post(timeline_query("publicTimeline"), variables)

    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": code, "field": field}


async def test_a_cursor_from_another_connection_is_refused(gql: GraphQLClient) -> None:
    from tests.social import timeline_query

    alice = await gql.sign_up("alice")
    await post(gql, alice, "x #tag")
    public = await timeline(gql, "publicTimeline", None, first=1)
    cursor = public["edges"][0]["cursor"]

    response = await gql.post(
        timeline_query("hashtagTimeline", ", tag: $tag"),
        {"first": 1, "after": cursor, "tag": "tag"},
    )

    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_a_cursor_with_an_out_of_range_key_is_refused(gql: GraphQLClient) -> None:
    from app.services.paging import encode_cursor
    from tests.social import timeline_query

    huge = encode_cursor("public", 10**30)

    response = await gql.post(timeline_query("publicTimeline"), {"first": 1, "after": huge})

    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_search_accounts_folds_case_beyond_ascii(gql: GraphQLClient) -> None:
    await gql.sign_up("zola", display_name="Émile Zola")
    await gql.sign_up("strasse", display_name="STRASSE")
    alice = await gql.sign_up("alice")

    accented = await gql(SEARCH_ACCOUNTS, {"q": "émile"})
    folded = await gql(SEARCH_ACCOUNTS, {"q": "straße"})
    await gql(
        'mutation { updateProfile(input: {displayName: "Ångström"}) { __typename } }',
        token=alice.access_token,
    )
    renamed = await gql(SEARCH_ACCOUNTS, {"q": "åNG"})

    assert [u["username"] for u in accented["searchAccounts"]] == ["zola"]
    assert [u["username"] for u in folded["searchAccounts"]] == ["strasse"]
    assert [u["username"] for u in renamed["searchAccounts"]] == ["alice"]


@pytest.mark.parametrize("limit", [0, 101])
@pytest.mark.parametrize(
    "search",
    [
        'searchAccounts(query: "a", limit: $limit) { username }',
        'searchHashtags(query: "a", limit: $limit) { tag }',
    ],
)
async def test_search_limits_out_of_range_are_typed_errors(
    gql: GraphQLClient, limit: int, search: str
) -> None:
    response = await gql.post("query($limit: Int!) { " + search + " }", {"limit": limit})

    assert response.json()["errors"][0]["extensions"] == {"code": "INVALID_INPUT", "field": "limit"}
