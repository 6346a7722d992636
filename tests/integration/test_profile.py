from __future__ import annotations

from app.models import Role, Session, User
from tests.support import STRONG_PASSWORD, GraphQLClient

CHANGE_PASSWORD = """
mutation($input: ChangePasswordInput!) {
  changePassword(input: $input) {
    __typename
    ... on ChangePasswordError { code field }
  }
}"""

DELETE_ACCOUNT = """
mutation($password: String!) {
  deleteAccount(input: {password: $password}) {
    __typename
    ... on DeleteAccountSuccess { deletedUserId }
    ... on DeleteAccountError { code field }
  }
}"""

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    __typename
    ... on UpdateProfileSuccess { user { displayName bio isLocked } }
    ... on UpdateProfileError { code field }
  }
}"""

USER = "query($name: String!) { user(username: $name) { id username email } }"
NEW_PASSWORD = "a brand new passphrase"


async def test_change_password_keeps_this_session_and_ends_the_others(
    gql: GraphQLClient,
) -> None:
    account = await gql.sign_up("alice")
    other = (await gql.log_in("alice"))["session"]

    data = await gql(
        CHANGE_PASSWORD,
        {"input": {"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD}},
        token=account.access_token,
    )

    assert data["changePassword"]["__typename"] == "ChangePasswordSuccess"
    assert await gql.viewer(account.access_token) is not None
    assert await gql.viewer(other["accessToken"]) is None
    assert (await gql.log_in("alice", STRONG_PASSWORD))["code"] == "INVALID_CREDENTIALS"
    assert (await gql.log_in("alice", NEW_PASSWORD))["__typename"] == "LogInSuccess"


async def test_change_password_refuses_wrong_current_or_weak_new(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")
    other = (await gql.log_in("alice"))["session"]
    before = (await User.get(username_key="alice")).password_hash

    wrong = await gql(
        CHANGE_PASSWORD,
        {"input": {"currentPassword": "not my password", "newPassword": NEW_PASSWORD}},
        token=account.access_token,
    )
    weak = await gql(
        CHANGE_PASSWORD,
        {"input": {"currentPassword": STRONG_PASSWORD, "newPassword": "qwerty123"}},
        token=account.access_token,
    )

    assert wrong["changePassword"] == {
        "__typename": "ChangePasswordError",
        "code": "WRONG_PASSWORD",
        "field": "currentPassword",
    }
    assert weak["changePassword"] == {
        "__typename": "ChangePasswordError",
        "code": "WEAK_PASSWORD",
        "field": "newPassword",
    }
    assert (await User.get(username_key="alice")).password_hash == before
    assert await gql.viewer(other["accessToken"]) is not None


async def test_change_password_needs_a_viewer(gql: GraphQLClient) -> None:
    data = await gql(
        CHANGE_PASSWORD, {"input": {"currentPassword": "x", "newPassword": NEW_PASSWORD}}
    )

    assert data["changePassword"]["code"] == "NOT_AUTHENTICATED"


async def test_delete_account_needs_the_password(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")

    refused = await gql(DELETE_ACCOUNT, {"password": "wrong password"}, token=account.access_token)

    assert refused["deleteAccount"]["code"] == "WRONG_PASSWORD"
    assert await User.exists(username_key="alice")

    deleted = await gql(DELETE_ACCOUNT, {"password": STRONG_PASSWORD}, token=account.access_token)

    assert deleted["deleteAccount"] == {
        "__typename": "DeleteAccountSuccess",
        "deletedUserId": account.id,
    }
    assert not await User.exists(username_key="alice")
    assert await Session.all().count() == 0
    assert await gql.viewer(account.access_token) is None
    assert (await gql.log_in("alice"))["code"] == "INVALID_CREDENTIALS"


async def test_update_profile_changes_only_given_fields(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice", display_name="Alice")

    data = await gql(
        UPDATE_PROFILE,
        {"input": {"bio": "  Hello\nworld  ", "isLocked": True}},
        token=account.access_token,
    )

    assert data["updateProfile"]["user"] == {
        "displayName": "Alice",
        "bio": "Hello\nworld",
        "isLocked": True,
    }
    stored = await User.get(username_key="alice")
    assert (stored.display_name, stored.bio, stored.is_locked) == ("Alice", "Hello\nworld", True)


async def test_update_profile_refuses_bad_input_and_changes_nothing(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice", display_name="Alice")

    data = await gql(
        UPDATE_PROFILE,
        {"input": {"displayName": "Bob", "bio": "x" * 301}},
        token=account.access_token,
    )

    assert data["updateProfile"] == {
        "__typename": "UpdateProfileError",
        "code": "INVALID_INPUT",
        "field": "bio",
    }
    stored = await User.get(username_key="alice")
    assert (stored.display_name, stored.bio) == ("Alice", "")


async def test_update_profile_needs_a_viewer(gql: GraphQLClient) -> None:
    data = await gql(UPDATE_PROFILE, {"input": {"bio": "hi"}})

    assert data["updateProfile"]["code"] == "NOT_AUTHENTICATED"


async def test_email_is_shown_only_to_its_owner_and_admins(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    admin = await gql.sign_up("boss")
    await User.filter(username_key="boss").update(role=Role.ADMIN)

    as_owner = await gql(USER, {"name": "alice"}, token=alice.access_token)
    as_other = await gql(USER, {"name": "alice"}, token=bob.access_token)
    as_nobody = await gql(USER, {"name": "alice"})
    as_admin = await gql(USER, {"name": "ALICE"}, token=admin.access_token)

    assert as_owner["user"]["email"] == "alice@example.org"
    assert as_other["user"]["email"] is None
    assert as_nobody["user"]["email"] is None
    assert as_admin["user"]["email"] == "alice@example.org"


async def test_node_resolves_a_user_by_global_id(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")

    data = await gql(
        "query($id: ID!) { node(id: $id) { __typename ... on User { username } } }",
        {"id": alice.id},
    )

    assert data["node"] == {"__typename": "User", "username": "alice"}


async def test_node_of_a_deleted_user_is_null(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    await User.filter(username_key="alice").delete()

    data = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": alice.id})

    assert data["node"] is None


async def test_deleting_an_account_takes_it_out_of_other_counters(gql: GraphQLClient) -> None:
    from app.models import Post
    from tests.social import act, follow, post

    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    await follow(gql, alice, bob)
    await follow(gql, bob, alice)
    original = await post(gql, bob, "bob's post")
    await act(gql, "likePost", alice, postId=original["id"])
    await act(gql, "repostPost", alice, postId=original["id"])
    await post(gql, alice, "reply one", replyTo=original["id"])
    await post(gql, alice, "reply two", replyTo=original["id"])
    await post(gql, alice, "quoting", quoteOf=original["id"])

    await gql(DELETE_ACCOUNT, {"password": STRONG_PASSWORD}, token=alice.access_token)

    stored = await Post.get(text="bob's post")
    assert (stored.like_count, stored.repost_count, stored.reply_count, stored.quote_count) == (
        0,
        0,
        0,
        0,
    )
    bob_row = await User.get(username_key="bob")
    assert (bob_row.follower_count, bob_row.following_count) == (0, 0)
