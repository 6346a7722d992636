"""Node-id leases on each store (the test database, SQLite or PostgreSQL, and Redis): one
holder per node id at a time, taken over only once the lease has ended, and the next holder's
ids start after the last one's."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from starlette.applications import Starlette

from app.ids import IdGenerator, ms_of, now_ms
from app.models import NodeLease
from app.node_stores import DatabaseLeases, LeaseStore, RedisLeases
from app.nodes import Grant, Lease, NodeLeaseError
from tests.conftest import need_service
from tests.support import sleep_until

LONG_MS = 60_000
SHORT_MS = 300


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, app: Starlette) -> AsyncIterator[LeaseStore]:
    if request.param == "database":
        yield DatabaseLeases()
        # The ids below 1000 are the tests'; the test process's own lease stays.
        await NodeLease.filter(node_id__lt=1000).delete()
        return
    url = need_service("TEST_REDIS_URL")
    key = f"holdfast:nodes:test:{secrets.token_hex(4)}"
    leases = RedisLeases(url, lease_ms=SHORT_MS, key=key)
    # A new hash makes its first holder wait one lease (it may be Redis having lost its data):
    # get that out of the way.
    warm_up = Lease(leases, holder="warm-up", lease_ms=SHORT_MS, candidates=[999])
    await warm_up.acquire()
    await warm_up.release(None)
    yield leases
    await leases.close()
    client = redis.Redis.from_url(url)
    await client.delete(key)
    await client.aclose()


async def holders(store: LeaseStore) -> dict[int, str]:
    """Who holds the node ids these tests use (below 100)."""
    return {r.node_id: r.holder for r in await store.records() if r.node_id < 100}


def lease(store: LeaseStore, holder: str, *nodes: int, lease_ms: int = LONG_MS) -> Lease:
    return Lease(store, holder=holder, lease_ms=lease_ms, candidates=nodes)


async def test_one_holder_per_node_id(store: LeaseStore) -> None:
    first = await lease(store, "first", 7).acquire()

    with pytest.raises(NodeLeaseError, match=r"every node id in 7\.\.7 is held"):
        await lease(store, "second", 7).acquire()

    assert first.node_id == 7
    assert await holders(store) == {7: "first"}


async def test_racing_processes_get_distinct_node_ids(store: LeaseStore) -> None:
    racers = [lease(store, f"racer {i}", 10, 11, 12, 13) for i in range(8)]

    results = await asyncio.gather(*(r.acquire() for r in racers), return_exceptions=True)

    granted = [r.node_id for r in results if isinstance(r, Grant)]
    refused = [r for r in results if isinstance(r, NodeLeaseError)]
    assert sorted(granted) == [10, 11, 12, 13]
    assert len(refused) == 4
    assert await holders(store) == {g.node_id: r.holder for r in racers if (g := r.grant)}


async def test_a_given_back_node_id_is_free_at_once_and_ids_go_on_after(
    store: LeaseStore,
) -> None:
    first = lease(store, "first", 20)
    grant = await first.acquire()
    generator = IdGenerator(grant.node_id, start_ms=grant.start_ms, until_ms=grant.until_ms)
    made = [generator.next_id() for _ in range(5_000)]  # into a second millisecond at least

    await first.release(generator.last_ms)
    second = await lease(store, "second", 20).acquire()

    assert second.node_id == 20
    assert second.start_ms > max(ms_of(i) for i in made)
    following = IdGenerator(20, start_ms=second.start_ms, until_ms=second.until_ms).next_id()
    assert following > max(made)


async def test_a_lease_ends_unless_renewed(store: LeaseStore) -> None:
    # A process that stops renewing (killed, or paused) keeps its node id until its lease ends.
    holder = lease(store, "holder", 30, lease_ms=SHORT_MS)
    first = await holder.acquire()
    renewed = await holder.renew()
    assert renewed is not None
    assert renewed.until_ms >= first.until_ms
    with pytest.raises(NodeLeaseError):
        await lease(store, "early", 30).acquire()

    await sleep_until(renewed.until_ms)
    taken = await lease(store, "late", 30).acquire()

    assert taken.node_id == 30
    assert taken.start_ms >= renewed.until_ms
    # The old holder learns at its next renewal that the id is no longer its own.
    assert await holder.renew() is None
    assert holder.grant is None
    assert await holders(store) == {30: "late"}


async def test_releasing_a_lost_lease_changes_nothing(store: LeaseStore) -> None:
    holder = lease(store, "holder", 31, lease_ms=SHORT_MS)
    await holder.acquire()
    await asyncio.sleep(SHORT_MS / 1000)
    taker = lease(store, "taker", 31)
    taken = await taker.acquire()

    assert await holder.renew() is None
    await holder.release(None)

    record = next(r for r in await store.records() if r.node_id == 31)
    assert (record.holder, record.until_ms) == ("taker", taken.until_ms)


@pytest.mark.redis
async def test_a_new_redis_hash_makes_the_first_holder_wait_one_lease() -> None:
    # Redis restarted without its data: processes that held node ids may still be making ids
    # until their leases end, so nobody gets a node id until one lease has passed.
    url = need_service("TEST_REDIS_URL")
    key = f"holdfast:nodes:test:{secrets.token_hex(4)}"
    leases = RedisLeases(url, lease_ms=SHORT_MS, key=key)
    try:
        started = time.monotonic()
        first = await lease(leases, "first", 1, lease_ms=SHORT_MS).acquire()
        waited = time.monotonic() - started
        started = time.monotonic()
        await lease(leases, "second", 2, lease_ms=SHORT_MS).acquire()
        again = time.monotonic() - started
    finally:
        await leases.close()
        client = redis.Redis.from_url(url)
        await client.delete(key)
        await client.aclose()

    assert first.node_id == 1
    assert waited >= SHORT_MS / 1000
    assert again < SHORT_MS / 1000


@pytest.mark.redis
async def test_a_hash_from_another_redis_run_is_started_anew() -> None:
    # Redis restarted from a snapshot older than its last writes, or a lagging replica took
    # over: the hash may lack leases granted or renewed since, so it counts as new (nobody gets
    # a node id for one lease, and no lease in it can be renewed). A rewritten `run_id` is what
    # such a hash looks like to this Redis.
    url = need_service("TEST_REDIS_URL")
    key = f"holdfast:nodes:test:{secrets.token_hex(4)}"
    leases = RedisLeases(url, lease_ms=SHORT_MS, key=key)
    client = redis.Redis.from_url(url)
    other_run = "0" * 40
    try:
        holder = lease(leases, "holder", 1, lease_ms=SHORT_MS)
        await holder.acquire()  # a new hash: after one lease
        assert await holder.renew() is not None
        await sleep_until(now_ms() + SHORT_MS)  # the hash is older than one lease now

        await client.hset(key, "run_id", other_run)
        started = time.monotonic()
        second = await lease(leases, "second", 2, lease_ms=SHORT_MS).acquire()
        waited = time.monotonic() - started
        await client.hset(key, "run_id", other_run)
        renewed = await holder.renew()
        stamped = await client.hget(key, "run_id")
        run_id = (await client.info("server"))["run_id"]
    finally:
        await leases.close()
        await client.delete(key)
        await client.aclose()

    assert second.node_id == 2
    assert waited >= SHORT_MS / 1000
    assert renewed is None
    assert holder.grant is None
    assert stamped is not None
    assert stamped.decode() == run_id


@pytest.mark.redis
async def test_a_hash_written_before_run_ids_were_kept_is_adopted() -> None:
    # Upgrading must not cut the leases of processes running the previous version.
    url = need_service("TEST_REDIS_URL")
    key = f"holdfast:nodes:test:{secrets.token_hex(4)}"
    leases = RedisLeases(url, lease_ms=SHORT_MS, key=key)
    client = redis.Redis.from_url(url)
    now = now_ms()
    try:
        await client.hset(
            key, mapping={"created": now - 10 * SHORT_MS, "5": f"{now + LONG_MS} old"}
        )
        started = time.monotonic()
        taken = await lease(leases, "new", 5, 6, lease_ms=SHORT_MS).acquire()
        waited = time.monotonic() - started
        kept = await leases.extend(5, "old", now + LONG_MS)
    finally:
        await leases.close()
        await client.delete(key)
        await client.aclose()

    assert taken.node_id == 6
    assert waited < SHORT_MS / 1000
    assert kept
