"""Rate limits: in process memory by default, in Redis when `redis_url` is set (shared by all
app processes). Sliding-window counters from the `limits` library."""

from __future__ import annotations

import redis.asyncio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.settings import Settings


class LoginLimiter:
    """Counts sign-in attempts per account and per client address."""

    def __init__(
        self,
        storage: Storage,
        per_account: str,
        per_ip: str,
        redis_pool: redis.asyncio.ConnectionPool | None = None,
    ) -> None:
        self._storage = storage
        self._redis_pool = redis_pool
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._per_account: RateLimitItem = parse(per_account)
        self._per_ip: RateLimitItem = parse(per_ip)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimiter:
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
        return cls(storage, auth.login_attempts_per_account, auth.login_attempts_per_ip, pool)

    async def allow_attempt(self, account_key: str, client_ip: str | None) -> bool:
        """Record one attempt; False when either limit is already spent."""
        allowed = await self._limiter.hit(self._per_account, "login-account", account_key)
        if client_ip is not None:
            allowed = await self._limiter.hit(self._per_ip, "login-ip", client_ip) and allowed
        return allowed

    async def reset_account(self, account_key: str) -> None:
        """Forget an account's attempts after it signs in successfully."""
        await self._limiter.clear(self._per_account, "login-account", account_key)

    async def reset(self) -> None:
        """Forget every count (tests and operators clearing a lock-out)."""
        await self._storage.reset()

    async def close(self) -> None:
        if self._redis_pool is not None:
            await self._redis_pool.aclose()
