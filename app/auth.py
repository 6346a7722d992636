"""Passwords (argon2id), access tokens (signed, short-lived) and refresh tokens (random, hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import anyio.to_thread
import jwt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, 19 MiB of memory, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1, type=Type.ID)
# Verified against when the account does not exist, so both failures take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

ACCESS_TOKEN_AUDIENCE = "holdfast:access"  # noqa: S105 (a name, not a secret)
_ALGORITHM = "HS256"


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used older parameters


def _check(stored_hash: str | None, password: str) -> PasswordCheck:
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return PasswordCheck(ok=False)
    if stored_hash is None:
        return PasswordCheck(ok=False)
    if _hasher.check_needs_rehash(stored_hash):
        return PasswordCheck(ok=True, new_hash=_hasher.hash(password))
    return PasswordCheck(ok=True)


async def check_password(stored_hash: str | None, password: str) -> PasswordCheck:
    """Verify `password`; with no stored hash (unknown account) spend the same time and fail."""
    return await anyio.to_thread.run_sync(_check, stored_hash, password)


def new_refresh_token() -> str:
    """A random refresh token of 256 bits."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: int
    expires_at: datetime


def issue_access_token(
    key: str, user_id: int, session_id: int, ttl: timedelta, now: datetime | None = None
) -> tuple[str, datetime]:
    issued = now or datetime.now(UTC)
    expires = issued + ttl
    payload = {
        "sub": str(user_id),
        "sid": str(session_id),
        "aud": ACCESS_TOKEN_AUDIENCE,
        "iat": issued,
        "exp": expires,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(payload, key, algorithm=_ALGORITHM), expires


def read_access_token(key: str, token: str, now: datetime | None = None) -> AccessClaims | None:
    """The claims of a valid, unexpired access token, or None for anything else."""
    claims = _verified_claims(key, token)
    if claims is None or claims.expires_at <= (now or datetime.now(UTC)):
        return None
    return claims


@lru_cache(maxsize=4096)
def _verified_claims(key: str, token: str) -> AccessClaims | None:
    # A client sends the same token on every request for its lifetime: verify its signature
    # once. The cache key is the whole signed token, so nothing unverified is ever served.
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=ACCESS_TOKEN_AUDIENCE,
            options={"require": ["sub", "sid", "exp", "aud"]},
        )
        user_id, session_id = _row_id(payload["sub"]), _row_id(payload["sid"])
        if user_id is None or session_id is None:
            return None
        return AccessClaims(user_id, session_id, datetime.fromtimestamp(payload["exp"], UTC))
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, OSError):
        # A well-signed token with claims out of range (an `exp` past year 9999, say) is as
        # good as no token.
        return None


def _row_id(claim: object) -> int | None:
    """A claim that names a row: a decimal string of a positive 64-bit integer."""
    if not isinstance(claim, str) or not (claim.isascii() and claim.isdigit()) or len(claim) > 19:
        return None
    value = int(claim)
    return value if 0 < value < 2**63 else None
