"""Limits kept in Redis (sign-in attempts, the request budget) are shared by every app
process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from app.main import create_app
from app.ratelimit import RateLimiter
from app.settings import Settings
from tests.conftest import need_service

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_settings(tmp_path: Path) -> AsyncIterator[Settings]:
    url = need_service("TEST_REDIS_URL")
    settings = Settings(
        data_dir=tmp_path,
        redis_url=url,
        auth={"login_attempts_per_account": "3/minute", "login_attempts_per_ip": "5/minute"},
        graphql={"requests_per_viewer": "3/minute"},
    )
    yield settings
    cleaner = RateLimiter.from_settings(settings)
    await cleaner.reset()
    await cleaner.close()


@pytest.fixture
async def limiters(redis_settings: Settings) -> AsyncIterator[list[RateLimiter]]:
    """Two limiters on one Redis, as two app processes have."""
    made = [RateLimiter.from_settings(redis_settings) for _ in range(2)]
    await made[0].reset()
    yield made
    for limiter in made:
        await limiter.close()


async def test_two_processes_share_one_account_limit(limiters: list[RateLimiter]) -> None:
    first, second = limiters

    results = [
        await first.allow_attempt("alice", None),
        await second.allow_attempt("alice", None),
        await first.allow_attempt("alice", None),
        await second.allow_attempt("alice", None),
    ]

    assert results == [True, True, True, False]
    assert await second.allow_attempt("bob", None)


async def test_address_limit_counts_across_accounts(limiters: list[RateLimiter]) -> None:
    limiter = limiters[0]

    results = [await limiter.allow_attempt(f"user{i}", "198.51.100.1") for i in range(6)]

    assert results == [True] * 5 + [False]
    assert await limiter.allow_attempt("user9", "198.51.100.2")


async def test_success_clears_the_account_count(limiters: list[RateLimiter]) -> None:
    limiter = limiters[0]
    for _ in range(3):
        await limiter.allow_attempt("alice", None)

    await limiter.reset_account("alice")

    assert await limiter.allow_attempt("alice", None)


@pytest.fixture
async def apps(redis_settings: Settings) -> AsyncIterator[list[Starlette]]:
    """Two app processes on one Redis, each with a budget of 3 requests a minute."""
    made = [create_app(redis_settings) for _ in range(2)]
    await made[0].state.services.limiter.reset()
    yield made
    for app in made:
        await app.state.services.limiter.close()


async def test_two_processes_share_one_request_budget(apps: list[Starlette]) -> None:
    responses = []
    for app in [*apps, *apps]:
        transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 40_000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            responses.append(await http.post("/graphql", json={"query": "{ __typename }"}))

    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[0].json() == {"data": {"__typename": "Query"}}
    assert responses[3].json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED"}
    assert int(responses[3].headers["retry-after"]) <= 60
