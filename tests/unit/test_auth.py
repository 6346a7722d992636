from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher

from app import auth

KEY = "k" * 48


async def test_password_round_trip_and_wrong_password() -> None:
    stored = await auth.hash_password("a long passphrase")

    assert (await auth.check_password(stored, "a long passphrase")).ok
    assert not (await auth.check_password(stored, "a long passphrasE")).ok


async def test_unknown_account_check_fails() -> None:
    result = await auth.check_password(None, "anything at all")

    assert result == auth.PasswordCheck(ok=False)


async def test_hash_with_old_parameters_gets_a_new_hash() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8_192, parallelism=2).hash("passphrase!")

    result = await auth.check_password(old, "passphrase!")

    assert result.ok
    assert result.new_hash is not None
    assert result.new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_corrupt_stored_hash_fails_instead_of_raising() -> None:
    assert not (await auth.check_password("not-a-hash", "passphrase!")).ok


def test_access_token_round_trip() -> None:
    token, expires = auth.issue_access_token(KEY, 12, 34, timedelta(minutes=5))

    claims = auth.read_access_token(KEY, token)

    assert claims is not None
    assert (claims.user_id, claims.session_id) == (12, 34)
    assert claims.expires_at == expires.replace(microsecond=0)


def test_expired_forged_or_foreign_access_tokens_are_refused() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = auth.issue_access_token(KEY, 1, 2, timedelta(minutes=5), now=past)
    good, _ = auth.issue_access_token(KEY, 1, 2, timedelta(minutes=5))
    other_key, _ = auth.issue_access_token("o" * 48, 1, 2, timedelta(minutes=5))
    unsigned = jwt.encode(
        {
            "sub": "1",
            "sid": "2",
            "aud": auth.ACCESS_TOKEN_AUDIENCE,
            "exp": datetime.now(UTC) + timedelta(minutes=5),
        },
        key="",
        algorithm="none",
    )
    wrong_audience = jwt.encode(
        {
            "sub": "1",
            "sid": "2",
            "aud": "elsewhere",
            "exp": datetime.now(UTC) + timedelta(minutes=5),
        },
        KEY,
        algorithm="HS256",
    )

    assert auth.read_access_token(KEY, good) is not None
    for token in (expired, other_key, unsigned, wrong_audience, good + "x", ""):
        assert auth.read_access_token(KEY, token) is None


def test_refresh_tokens_are_random_and_hashed() -> None:
    tokens = {auth.new_refresh_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(len(t) >= 43 for t in tokens)  # 256 bits
    digest = auth.token_digest("abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_verified_token_is_still_checked_against_the_clock() -> None:
    token, expires = auth.issue_access_token(KEY, 1, 2, timedelta(seconds=60))

    assert auth.read_access_token(KEY, token) is not None  # verified, and remembered
    assert auth.read_access_token(KEY, token, now=expires + timedelta(seconds=1)) is None
    assert auth.read_access_token("o" * 48, token) is None  # the key is part of the check


def _signed(claims: dict[str, object]) -> str:
    return jwt.encode({"aud": auth.ACCESS_TOKEN_AUDIENCE, **claims}, KEY, algorithm="HS256")


def test_well_signed_tokens_with_out_of_range_claims_are_no_token() -> None:
    far = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
    out_of_range = [
        {"sub": "1", "sid": "2", "exp": 10**20},  # past year 9999
        {"sub": "1" * 40, "sid": "2", "exp": far},  # beyond a 64-bit row id
        {"sub": "1", "sid": str(2**63), "exp": far},
        {"sub": "0", "sid": "2", "exp": far},
        {"sub": "٣", "sid": "2", "exp": far},  # a digit, but not an ASCII one
        {"sub": 1, "sid": "2", "exp": far},
    ]

    assert [auth.read_access_token(KEY, _signed(c)) for c in out_of_range] == [None] * 6
    assert auth.read_access_token(KEY, _signed({"sub": "1", "sid": "2", "exp": far})) == (
        auth.AccessClaims(1, 2, datetime.fromtimestamp(far, UTC))
    )
