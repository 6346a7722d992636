"""Every string a client sends has a maximum and refuses control characters, checked before
any database or search work, with a typed answer on both databases alike (PostgreSQL cannot
store NUL, so a NUL that reached it used to be a masked 500 there only). Each case also
checks that the database is exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tortoise import Tortoise

from tests.social import action, post
from tests.support import STRONG_PASSWORD, Account, GraphQLClient

NUL = "\x00"
MEGA = 1_000_000


async def db_state() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, to compare before and after."""
    state = {}
    for model in Tortoise.apps["models"].values():
        state[model._meta.db_table] = await model.all().order_by(model._meta.pk_attr).values()
    return state


@dataclass
class World:
    alice: Account
    bob: Account
    post_id: str


@pytest.fixture
async def world(gql: GraphQLClient) -> World:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    created = await post(gql, alice, "hello @bob #greetings")
    return World(alice, bob, created["id"])


def _sign_up(**fields: str) -> dict[str, Any]:
    values = {
        "username": "carol",
        "email": "carol@example.org",
        "password": STRONG_PASSWORD,
        "displayName": "Carol",
    }
    return {**values, **fields}


@dataclass(frozen=True)
class Case:
    verb: str
    input_type: str
    build: Callable[[World], dict[str, Any]]
    code: str
    field: str | None
    signed_in: bool = True


# (id, case): the mutation, its input, and the typed answer it must give.
MUTATION_CASES = [
    # signUp
    ("signup-username-31", Case("signUp", "SignUpInput", lambda w: _sign_up(username="c" * 31),
                                "INVALID_USERNAME", "username", signed_in=False)),
    ("signup-username-huge", Case("signUp", "SignUpInput", lambda w: _sign_up(username="c" * MEGA),
                                  "INVALID_USERNAME", "username", signed_in=False)),
    ("signup-username-nul", Case("signUp", "SignUpInput", lambda w: _sign_up(username="car" + NUL),
                                 "INVALID_USERNAME", "username", signed_in=False)),
    ("signup-email-huge", Case("signUp", "SignUpInput",
                               lambda w: _sign_up(email="c" * 100_000 + "@example.org"),
                               "INVALID_EMAIL", "email", signed_in=False)),
    ("signup-email-nul", Case("signUp", "SignUpInput",
                              lambda w: _sign_up(email=f"carol{NUL}@example.org"),
                              "INVALID_EMAIL", "email", signed_in=False)),
    ("signup-password-nul", Case("signUp", "SignUpInput",
                                 lambda w: _sign_up(password=f"correct horse{NUL}battery"),
                                 "WEAK_PASSWORD", "password", signed_in=False)),
    ("signup-password-huge", Case("signUp", "SignUpInput", lambda w: _sign_up(password="p" * MEGA),
                                  "WEAK_PASSWORD", "password", signed_in=False)),
    ("signup-display-name-51", Case("signUp", "SignUpInput",
                                    lambda w: _sign_up(displayName="C" * 51),
                                    "INVALID_INPUT", "displayName", signed_in=False)),
    ("signup-display-name-nul", Case("signUp", "SignUpInput",
                                     lambda w: _sign_up(displayName=f"Car{NUL}ol"),
                                     "INVALID_INPUT", "displayName", signed_in=False)),
    ("signup-display-name-zero-width", Case("signUp", "SignUpInput",
                                            lambda w: _sign_up(displayName="\u200b\u200d\ufeff"),
                                            "INVALID_INPUT", "displayName", signed_in=False)),
    ("signup-display-name-bidi", Case("signUp", "SignUpInput",
                                      lambda w: _sign_up(displayName="Carol \u202egnp.exe"),
                                      "INVALID_INPUT", "displayName", signed_in=False)),
    # logIn: a login or password no account can have is wrong credentials, not a crash
    ("login-username-31", Case("logIn", "LogInInput",
                               lambda w: {"login": "a" * 31, "password": STRONG_PASSWORD},
                               "INVALID_CREDENTIALS", None, signed_in=False)),
    ("login-huge", Case("logIn", "LogInInput",
                        lambda w: {"login": "a" * MEGA, "password": STRONG_PASSWORD},
                        "INVALID_CREDENTIALS", None, signed_in=False)),
    ("login-username-nul", Case("logIn", "LogInInput",
                                lambda w: {"login": "alice" + NUL, "password": STRONG_PASSWORD},
                                "INVALID_CREDENTIALS", None, signed_in=False)),
    ("login-email-nul", Case("logIn", "LogInInput",
                             lambda w: {"login": f"alice{NUL}@example.org",
                                        "password": STRONG_PASSWORD},
                             "INVALID_CREDENTIALS", None, signed_in=False)),
    ("login-password-huge", Case("logIn", "LogInInput",
                                 lambda w: {"login": "alice", "password": "p" * MEGA},
                                 "INVALID_CREDENTIALS", None, signed_in=False)),
    ("login-password-nul", Case("logIn", "LogInInput",
                                lambda w: {"login": "alice", "password": STRONG_PASSWORD + NUL},
                                "INVALID_CREDENTIALS", None, signed_in=False)),
    # refreshSession
    ("refresh-token-huge", Case("refreshSession", "RefreshSessionInput",
                                lambda w: {"refreshToken": w.alice.refresh_token * 20_000},
                                "INVALID_TOKEN", None, signed_in=False)),
    ("refresh-token-nul", Case("refreshSession", "RefreshSessionInput",
                               lambda w: {"refreshToken": w.alice.refresh_token + NUL},
                               "INVALID_TOKEN", None, signed_in=False)),
    # changePassword and deleteAccount
    ("change-password-current-huge", Case("changePassword", "ChangePasswordInput",
                                          lambda w: {"currentPassword": "p" * MEGA,
                                                     "newPassword": "a much newer secret"},
                                          "WRONG_PASSWORD", "currentPassword")),
    ("change-password-new-nul", Case("changePassword", "ChangePasswordInput",
                                     lambda w: {"currentPassword": STRONG_PASSWORD,
                                                "newPassword": f"a much newer{NUL}secret"},
                                     "WEAK_PASSWORD", "newPassword")),
    ("delete-account-password-huge", Case("deleteAccount", "DeleteAccountInput",
                                          lambda w: {"password": "p" * MEGA},
                                          "WRONG_PASSWORD", "password")),
    # updateProfile
    ("profile-display-name-huge", Case("updateProfile", "UpdateProfileInput",
                                       lambda w: {"displayName": "A" * MEGA},
                                       "INVALID_INPUT", "displayName")),
    ("profile-display-name-nul", Case("updateProfile", "UpdateProfileInput",
                                      lambda w: {"displayName": "Al" + NUL},
                                      "INVALID_INPUT", "displayName")),
    ("profile-display-name-newline", Case("updateProfile", "UpdateProfileInput",
                                          lambda w: {"displayName": "Al\nice"},
                                          "INVALID_INPUT", "displayName")),
    ("profile-display-name-hangul-filler", Case("updateProfile", "UpdateProfileInput",
                                                lambda w: {"displayName": "\u3164\u3164"},
                                                "INVALID_INPUT", "displayName")),
    ("profile-display-name-braille-blank", Case("updateProfile", "UpdateProfileInput",
                                                lambda w: {"displayName": " \u2800 \u034f"},
                                                "INVALID_INPUT", "displayName")),
    ("profile-display-name-rtl-isolate", Case("updateProfile", "UpdateProfileInput",
                                              lambda w: {"displayName": "admin\u2067"},
                                              "INVALID_INPUT", "displayName")),
    ("profile-display-name-rlm", Case("updateProfile", "UpdateProfileInput",
                                      lambda w: {"displayName": "Alice\u200f"},
                                      "INVALID_INPUT", "displayName")),
    ("profile-bio-301", Case("updateProfile", "UpdateProfileInput", lambda w: {"bio": "b" * 301},
                             "INVALID_INPUT", "bio")),
    ("profile-bio-nul", Case("updateProfile", "UpdateProfileInput", lambda w: {"bio": "hi" + NUL},
                             "INVALID_INPUT", "bio")),
    ("profile-bio-invisible", Case("updateProfile", "UpdateProfileInput",
                                   lambda w: {"bio": "\u200b\n\u2060\ufe0f"},
                                   "INVALID_INPUT", "bio")),
    # createPost and editPost
    ("post-text-nul", Case("createPost", "CreatePostInput", lambda w: {"text": "hi" + NUL},
                           "INVALID_INPUT", "text")),
    ("post-text-escape", Case("createPost", "CreatePostInput", lambda w: {"text": "hi\x1b[31m"},
                              "INVALID_INPUT", "text")),
    ("post-text-huge", Case("createPost", "CreatePostInput", lambda w: {"text": "x" * MEGA},
                            "TEXT_TOO_LONG", "text")),
    ("post-text-zero-width", Case("createPost", "CreatePostInput",
                                  lambda w: {"text": "\u200b \u200c\n\u3164\u115f\u1160\uffa0"},
                                  "EMPTY_TEXT", "text")),
    ("post-warning-nul", Case("createPost", "CreatePostInput",
                              lambda w: {"text": "hi", "contentWarning": "cw" + NUL},
                              "INVALID_INPUT", "contentWarning")),
    ("post-warning-newline", Case("createPost", "CreatePostInput",
                                  lambda w: {"text": "hi", "contentWarning": "c\nw"},
                                  "INVALID_INPUT", "contentWarning")),
    ("post-warning-huge", Case("createPost", "CreatePostInput",
                               lambda w: {"text": "hi", "contentWarning": "w" * MEGA},
                               "TEXT_TOO_LONG", "contentWarning")),
    ("post-warning-invisible", Case("createPost", "CreatePostInput",
                                    lambda w: {"text": "hi", "contentWarning": "\u200b"},
                                    "INVALID_INPUT", "contentWarning")),
    ("edit-text-nul", Case("editPost", "EditPostInput",
                           lambda w: {"id": w.post_id, "text": "edited" + NUL},
                           "INVALID_INPUT", "text")),
    ("edit-text-invisible", Case("editPost", "EditPostInput",
                                 lambda w: {"id": w.post_id, "text": "\u2800"},
                                 "EMPTY_TEXT", "text")),
    ("edit-warning-huge", Case("editPost", "EditPostInput",
                               lambda w: {"id": w.post_id, "text": "ok",
                                          "contentWarning": "w" * 201},
                               "TEXT_TOO_LONG", "contentWarning")),
    # markNotificationsRead
    ("mark-read-cursor-huge", Case("markNotificationsRead", "MarkNotificationsReadInput",
                                   lambda w: {"upTo": "A" * MEGA}, "INVALID_CURSOR", "upTo")),
    ("mark-read-cursor-nul", Case("markNotificationsRead", "MarkNotificationsReadInput",
                                  lambda w: {"upTo": "bm90aWZpY2F0aW9uczox" + NUL},
                                  "INVALID_CURSOR", "upTo")),
]  # fmt: skip


@pytest.mark.parametrize("case", [c for _, c in MUTATION_CASES], ids=[i for i, _ in MUTATION_CASES])
async def test_bad_text_in_a_mutation_is_a_typed_error_and_changes_nothing(
    gql: GraphQLClient, world: World, case: Case
) -> None:
    document = action(case.verb, case.input_type, "__typename")
    variables = {"input": case.build(world)}
    before = await db_state()

    response = await gql.post(
        document, variables, token=world.alice.access_token if case.signed_in else None
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    result = body["data"][case.verb]
    name = case.verb[0].upper() + case.verb[1:]
    assert result["__typename"] == f"{name}Error"
    assert (result["code"], result["field"]) == (case.code, case.field)
    assert await db_state() == before


SEARCH_POSTS = """
query($q: String!) { searchPosts(query: $q, first: 5) { edges { node { text } } } }"""
SEARCH_ACCOUNTS = "query($q: String!) { searchAccounts(query: $q) { username } }"
SEARCH_HASHTAGS = "query($q: String!) { searchHashtags(query: $q) { tag } }"
HASHTAG = "query($q: String!) { hashtagTimeline(tag: $q, first: 5) { edges { node { text } } } }"
AFTER = "query($q: String!) { publicTimeline(after: $q) { edges { node { text } } } }"
BEFORE = "query($q: String!) { publicTimeline(last: 2, before: $q) { edges { node { text } } } }"
USER = "query($q: String!) { user(username: $q) { username } }"

QUERY_CASES = [
    ("search-posts-huge", SEARCH_POSTS, "searchPosts", "x" * MEGA, "INVALID_INPUT", "query"),
    ("search-posts-257", SEARCH_POSTS, "searchPosts", "hello " * 43, "INVALID_INPUT", "query"),
    ("search-posts-nul", SEARCH_POSTS, "searchPosts", "hello" + NUL, "INVALID_INPUT", "query"),
    ("search-accounts-huge", SEARCH_ACCOUNTS, "searchAccounts", "a" * 257, "INVALID_INPUT",
     "query"),
    ("search-accounts-nul", SEARCH_ACCOUNTS, "searchAccounts", "al" + NUL, "INVALID_INPUT",
     "query"),
    ("search-hashtags-huge", SEARCH_HASHTAGS, "searchHashtags", "g" * MEGA, "INVALID_INPUT",
     "query"),
    ("search-hashtags-nul", SEARCH_HASHTAGS, "searchHashtags", "gr" + NUL, "INVALID_INPUT",
     "query"),
    ("hashtag-101", HASHTAG, "hashtagTimeline", "#" + "g" * 101, "INVALID_INPUT", "tag"),
    ("hashtag-nul", HASHTAG, "hashtagTimeline", "greetings" + NUL, "INVALID_INPUT", "tag"),
    ("cursor-after-huge", AFTER, "publicTimeline", "A" * MEGA, "INVALID_CURSOR", "after"),
    ("cursor-before-101", BEFORE, "publicTimeline", "A" * 101, "INVALID_CURSOR", "before"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "name", "value", "code", "field"),
    [c[1:] for c in QUERY_CASES],
    ids=[c[0] for c in QUERY_CASES],
)
async def test_bad_text_in_a_query_is_a_typed_error_and_changes_nothing(
    gql: GraphQLClient, world: World, document: str, name: str, value: str, code: str, field: str
) -> None:
    before = await db_state()

    response = await gql.post(document, {"q": value}, token=world.bob.access_token)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == [name]
    assert error["extensions"] == {"code": code, "field": field}
    assert await db_state() == before


@pytest.mark.parametrize(
    "username",
    ["a" * 31, "a" * MEGA, "alice" + NUL, "al\u202eice", "@alice"],
    ids=["31", "huge", "nul", "bidi", "at-sign"],
)
async def test_a_username_no_account_can_have_finds_none(
    gql: GraphQLClient, world: World, username: str
) -> None:
    before = await db_state()

    data = await gql(USER, {"q": username})

    assert data == {"user": None}
    assert await db_state() == before


async def test_search_text_at_its_limit_is_searched(gql: GraphQLClient, world: World) -> None:
    query = ("hello " * 43)[:256]

    data = await gql(SEARCH_POSTS, {"q": query})

    assert data == {"searchPosts": {"edges": []}}  # every word must match
    found = await gql(SEARCH_POSTS, {"q": "  hello\t"})
    assert [e["node"]["text"] for e in found["searchPosts"]["edges"]] == ["hello @bob #greetings"]


async def test_a_tag_at_its_limit_is_looked_up(gql: GraphQLClient, world: World) -> None:
    tag = "g" * 100
    await post(gql, world.bob, f"long #{tag}")

    data = await gql(HASHTAG, {"q": f"#{tag.upper()}"})

    assert [e["node"]["text"] for e in data["hashtagTimeline"]["edges"]] == [f"long #{tag}"]


async def test_post_text_keeps_line_breaks_and_tabs(gql: GraphQLClient, world: World) -> None:
    created = await post(gql, world.alice, "line one\r\n\tline two\rthree")

    assert created["text"] == "line one\n\tline two\nthree"


async def test_visible_text_with_joiners_and_selectors_is_accepted(
    gql: GraphQLClient, world: World
) -> None:
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # one emoji, joined by ZWJ
    update = action("updateProfile", "UpdateProfileInput", "user { displayName bio }")

    data = await gql(
        update,
        {"input": {"displayName": f"Alice {family}", "bio": "\u2764\ufe0f\nsecond line\tend"}},
        token=world.alice.access_token,
    )

    result = data["updateProfile"]
    assert result["user"] == {
        "displayName": f"Alice {family}",
        "bio": "\u2764\ufe0f\nsecond line\tend",
    }


async def test_a_clean_login_still_signs_in(gql: GraphQLClient, world: World) -> None:
    by_name = await gql.log_in("  ALICE ")
    by_email = await gql.log_in("Alice@Example.org")

    assert by_name["__typename"] == by_email["__typename"] == "LogInSuccess"
