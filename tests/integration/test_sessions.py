from __future__ import annotations

from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher

from app.models import RefreshToken, Session, User
from tests.support import REFRESH, STRONG_PASSWORD, GraphQLClient, a_fresh_window

LOG_OUT = "mutation { logOut { __typename ... on LogOutSuccess { revokedSessions } "
LOG_OUT += "... on LogOutError { code } } }"
LOG_OUT_EVERYWHERE = (
    LOG_OUT.replace("logOut {", "logOutEverywhere {", 1)
    .replace("LogOutSuccess", "LogOutEverywhereSuccess")
    .replace("LogOutError", "LogOutEverywhereError")
)


async def test_log_in_by_username_or_email_ignoring_case(gql: GraphQLClient) -> None:
    await gql.sign_up("Alice", email="alice@example.org")

    by_name = await gql.log_in("aLiCe")
    by_email = await gql.log_in("ALICE@example.org")

    assert by_name["__typename"] == by_email["__typename"] == "LogInSuccess"
    assert await gql.viewer(by_email["session"]["accessToken"]) is not None
    assert await Session.filter(revoked_at=None).count() == 3


async def test_unknown_account_and_wrong_password_look_the_same(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")

    wrong_password = await gql.log_in("alice", "not the password at all")
    unknown_user = await gql.log_in("nobody", "not the password at all")

    assert wrong_password == unknown_user
    assert wrong_password["code"] == "INVALID_CREDENTIALS"
    assert wrong_password["field"] is None


async def test_login_rehashes_a_hash_with_old_parameters(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")
    weak = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=1).hash(STRONG_PASSWORD)
    await User.filter(username_key="alice").update(password_hash=weak)

    assert (await gql.log_in("alice"))["__typename"] == "LogInSuccess"

    rehashed = (await User.get(username_key="alice")).password_hash
    assert rehashed != weak
    assert rehashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await gql.log_in("alice"))["__typename"] == "LogInSuccess"


async def test_refresh_rotates_and_tokens_are_stored_only_as_hashes(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")

    data = await gql(REFRESH, {"token": account.refresh_token})

    result = data["refreshSession"]
    assert result["__typename"] == "RefreshSessionSuccess"
    new_refresh = result["session"]["refreshToken"]
    assert new_refresh != account.refresh_token
    assert len(new_refresh) >= 22  # >= 128 bits in URL-safe base64
    assert await gql.viewer(result["session"]["accessToken"]) is not None
    stored = {t.token_hash for t in await RefreshToken.all()}
    assert len(stored) == 2
    assert account.refresh_token not in stored
    assert new_refresh not in stored


async def test_reusing_a_refresh_token_revokes_the_whole_session(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")
    other_session = (await gql.log_in("alice"))["session"]
    rotated = (await gql(REFRESH, {"token": account.refresh_token}))["refreshSession"]

    replay = (await gql(REFRESH, {"token": account.refresh_token}))["refreshSession"]

    assert replay["code"] == "TOKEN_REUSED"
    after = await gql(REFRESH, {"token": rotated["session"]["refreshToken"]})
    assert after["refreshSession"]["code"] == "INVALID_TOKEN"
    assert await gql.viewer(rotated["session"]["accessToken"]) is None
    assert await gql.viewer(account.access_token) is None
    # The other sign-in is another family and keeps working.
    assert await gql.viewer(other_session["accessToken"]) is not None


async def test_expired_refresh_token_is_refused(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")
    await RefreshToken.all().update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    data = await gql(REFRESH, {"token": account.refresh_token})

    assert data["refreshSession"]["code"] == "TOKEN_EXPIRED"


async def test_unknown_refresh_token_is_refused(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")

    data = await gql(REFRESH, {"token": "made-up-token"})

    assert data["refreshSession"]["code"] == "INVALID_TOKEN"


async def test_log_out_ends_only_this_session(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")
    other = (await gql.log_in("alice"))["session"]

    data = await gql(LOG_OUT, token=account.access_token)

    assert data["logOut"] == {"__typename": "LogOutSuccess", "revokedSessions": 1}
    assert await gql.viewer(account.access_token) is None
    assert (await gql(REFRESH, {"token": account.refresh_token}))["refreshSession"][
        "code"
    ] == "INVALID_TOKEN"
    assert await gql.viewer(other["accessToken"]) is not None


async def test_log_out_everywhere_ends_every_session(gql: GraphQLClient) -> None:
    account = await gql.sign_up("alice")
    other = (await gql.log_in("alice"))["session"]

    data = await gql(LOG_OUT_EVERYWHERE, token=account.access_token)

    assert data["logOutEverywhere"]["revokedSessions"] == 2
    assert await gql.viewer(account.access_token) is None
    assert await gql.viewer(other["accessToken"]) is None


async def test_log_out_needs_a_viewer(gql: GraphQLClient) -> None:
    data = await gql(LOG_OUT)

    assert data["logOut"] == {"__typename": "LogOutError", "code": "NOT_AUTHENTICATED"}


async def test_sign_in_is_rate_limited_per_account(gql: GraphQLClient) -> None:
    await gql.sign_up("alice")
    for _ in range(5):  # the test settings allow 5 a minute per account
        assert (await gql.log_in("alice", "wrong password!"))["code"] == "INVALID_CREDENTIALS"

    blocked = await gql.log_in("alice")

    assert blocked["code"] == "RATE_LIMITED"
    assert await Session.all().count() == 1  # only sign-up's


async def test_sign_in_is_rate_limited_per_address(gql: GraphQLClient) -> None:
    await a_fresh_window(needed=10)  # 21 attempts in process take a second or two
    for attempt in range(20):  # the test settings allow 20 a minute per address
        result = await gql.log_in(f"someone{attempt}", "wrong password!")
        assert result["code"] == "INVALID_CREDENTIALS"

    assert (await gql.log_in("someone_else", "wrong password!"))["code"] == "RATE_LIMITED"
