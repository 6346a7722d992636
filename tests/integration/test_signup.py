from __future__ import annotations

import pytest

from app.models import User
from tests.support import SIGN_UP, STRONG_PASSWORD, GraphQLClient, sign_up_input


async def test_sign_up_signs_in_and_viewer_sees_own_email(gql: GraphQLClient) -> None:
    account = await gql.sign_up("Alice", email="  Alice@Example.ORG ")

    viewer = await gql.viewer(account.access_token)

    assert viewer is not None
    assert viewer["id"] == account.id
    assert viewer["username"] == "Alice"
    assert viewer["email"] == "alice@example.org"
    assert viewer["role"] == "USER"
    assert viewer["isLocked"] is False


async def test_viewer_is_null_without_or_with_a_bad_token(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")

    assert await gql.viewer(None) is None
    assert await gql.viewer("not-a-token") is None
    assert await gql.viewer(account.access_token[:-2] + "xx") is None


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"username": "ab"}, "INVALID_USERNAME", "username"),
        ({"username": "a" * 31}, "INVALID_USERNAME", "username"),
        ({"username": "bad-name"}, "INVALID_USERNAME", "username"),
        ({"username": "Admin"}, "INVALID_USERNAME", "username"),
        ({"email": "not-an-email"}, "INVALID_EMAIL", "email"),
        ({"password": "short1"}, "WEAK_PASSWORD", "password"),
        ({"password": "x" * 1025}, "WEAK_PASSWORD", "password"),
        ({"password": "password123"}, "WEAK_PASSWORD", "password"),
        ({"password": "Trustno1"}, "WEAK_PASSWORD", "password"),
        (
            {"password": "alice_the_great", "username": "alice_the_great"},
            "WEAK_PASSWORD",
            "password",
        ),
        ({"displayName": "   "}, "INVALID_INPUT", "displayName"),
        ({"displayName": "x" * 51}, "INVALID_INPUT", "displayName"),
    ],
)
async def test_bad_sign_up_input_is_refused_and_creates_nothing(
    gql: GraphQLClient, overrides: dict[str, str], code: str, field: str
) -> None:
    data = await gql(SIGN_UP, sign_up_input(**overrides))

    assert data["signUp"] == {
        "__typename": "SignUpError",
        "code": code,
        "field": field,
        "message": data["signUp"]["message"],
    }
    assert data["signUp"]["message"]
    assert await User.all().count() == 0


async def test_password_of_1024_characters_is_accepted(gql: GraphQLClient) -> None:
    data = await gql(SIGN_UP, sign_up_input(password="Zq9!" * 256))

    assert data["signUp"]["__typename"] == "SignUpSuccess"


async def test_username_that_differs_only_in_case_is_taken(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")

    data = await gql(SIGN_UP, sign_up_input(username="ALICE", email="other@example.org"))

    assert data["signUp"]["code"] == "USERNAME_TAKEN"
    assert data["signUp"]["field"] == "username"
    assert await User.all().count() == 1


async def test_email_is_unique_after_normalisation(gql: GraphQLClient) -> None:
    await gql.sign_up("alice", email="alice@example.org")

    data = await gql(SIGN_UP, sign_up_input(username="alice2", email="ALICE@EXAMPLE.org"))

    assert data["signUp"]["code"] == "EMAIL_TAKEN"
    assert await User.all().count() == 1


async def test_password_is_stored_as_argon2id_hash(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")

    user = await User.get(username_key="alice")

    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert STRONG_PASSWORD not in user.password_hash
