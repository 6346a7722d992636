"""Rate limits: in process memory by default, in Redis when `redis_url` is set (shared by all
app processes). Sign-in and sign-up use sliding-window counters from the `limits` library; the
request budget uses a fixed window, so that its reset time is exact for the RateLimit headers."""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.settings import Settings


def client_key(client_ip: str) -> str:
    """What per-address limits count under: an IPv4 address, or an IPv6 address's /64 (one
    subscriber's network, where every host has an address of its own to rotate through)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:  # an IPv4 client behind a translator: count the client
            return str(embedded)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix


@dataclass(frozen=True, slots=True)
class Budget:
    """One request spent from a viewer's budget: whether it was allowed, and what is left."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int
    """Seconds until the window ends and the budget is whole again."""
    window: int
    """Seconds of one window."""

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), plus
        Retry-After when the request was refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_after)
        return headers


class RateLimiter:
    """Counts sign-in attempts per account and per client address, sign-ups per client
    address, and requests per viewer. One storage serves them all."""

    def __init__(
        self,
        storage: Storage,
        *,
        login_per_account: str,
        login_per_ip: str,
        signups_per_ip: str,
        requests_per_viewer: str,
        redis_pool: redis.asyncio.ConnectionPool | None = None,
    ) -> None:
        self._storage = storage
        self._redis_pool = redis_pool
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._per_account: RateLimitItem = parse(login_per_account)
        self._per_ip: RateLimitItem = parse(login_per_ip)
        self._signups_per_ip: RateLimitItem = parse(signups_per_ip)
        self._requests: RateLimitItem = parse(requests_per_viewer)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        storage: Storage
        pool = None
        if settings.redis_url:
            # Our own pool, so that close() can release its connections.
            pool = redis.asyncio.ConnectionPool.from_url(settings.redis_url)
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix="holdfast:limits",
                connection_pool=pool,  # type: ignore[arg-type]  # documented option
            )
        else:
            storage = MemoryStorage()
        auth = settings.auth
        return cls(
            storage,
            login_per_account=auth.login_attempts_per_account,
            login_per_ip=auth.login_attempts_per_ip,
            signups_per_ip=auth.signups_per_ip,
            requests_per_viewer=settings.graphql.requests_per_viewer,
            redis_pool=pool,
        )

    # --- sign-in and sign-up -------------------------------------------------------------

    async def allow_attempt(self, account_key: str, client_ip: str | None) -> bool:
        """Record one sign-in attempt; False when either limit is already spent."""
        allowed = await self._limiter.hit(self._per_account, "login-account", account_key)
        if client_ip is not None:
            address = client_key(client_ip)
            allowed = await self._limiter.hit(self._per_ip, "login-ip", address) and allowed
        return allowed

    async def reset_account(self, account_key: str) -> None:
        """Forget an account's attempts after it signs in successfully."""
        await self._limiter.clear(self._per_account, "login-account", account_key)

    async def allow_signup(self, client_ip: str | None) -> bool:
        """Record one sign-up from an address; False when its limit is already spent."""
        if client_ip is None:
            return True
        return await self._limiter.hit(self._signups_per_ip, "signup-ip", client_key(client_ip))

    # --- the request budget --------------------------------------------------------------

    async def spend_request(self, user_id: int | None, client_ip: str | None) -> Budget | None:
        """Spend one request of a viewer's budget: the account's when signed in, else the
        client address's; None when neither is known (nothing to count against). A refused
        request is counted too: hammering does not shorten the wait."""
        if user_id is not None:
            viewer_key = f"user:{user_id}"
        elif client_ip is not None:
            viewer_key = f"ip:{client_key(client_ip)}"
        else:
            return None
        item = self._requests
        key = item.key_for("request", viewer_key)
        window = item.get_expiry()
        used = await self._storage.incr(key, window)
        ends_at = await self._storage.get_expiry(key)
        return Budget(
            allowed=used <= item.amount,
            limit=item.amount,
            remaining=max(0, item.amount - used),
            reset_after=max(0, min(window, math.ceil(ends_at - time.time()))),
            window=window,
        )

    # --- operations ----------------------------------------------------------------------

    async def reset(self) -> None:
        """Forget every count (tests and operators clearing a lock-out)."""
        await self._storage.reset()

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.aclose()
