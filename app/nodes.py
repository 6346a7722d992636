"""Node ids for snowflake ids: every process that makes ids holds one that no other live
process holds.

`hold(settings, role=...)` is what every command that makes ids runs inside (serve's
lifespan, seed, users create-admin, timelines rebuild, the worker): with `HOLDFAST_NODE_ID` set
it uses that id (operators who assign ids themselves); otherwise it leases one from
`HOLDFAST_NODES__FIRST_ID` to `..LAST_ID`, in Redis when `HOLDFAST_REDIS_URL` is set, else in
the database, and renews the lease every `HOLDFAST_NODES__RENEW_SECONDS` while the process
runs. On a clean exit the lease is given back, ending where this process's last id ended.

A lease covers ids up to its end (`until_ms`): the generator refuses to encode a later
millisecond, so a process that could not renew in time (paused, cut off from the store) stops
making ids (`NodeIdUnavailable`) instead of risking another holder's. If meanwhile another
process took the node id over, this one leases a different node id and carries on; until it
has one, making an id fails loudly. A process killed without a clean exit keeps its node id
for at most one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from redis.exceptions import RedisError
from tortoise.exceptions import BaseORMException

from app import ids
from app.node_stores import DatabaseLeases, LeaseStore, RedisLeases
from app.settings import Settings

log = logging.getLogger("holdfast.nodes")

_RETRY_SECONDS = 1.0  # after a failed renewal, sooner than the renewal interval
_RELEASE_WAIT_MS = 50


class NodeLeaseError(Exception):
    """No node id could be leased: every one is held, or the lease store cannot be reached."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A leased node id: ids from it may encode milliseconds in [start_ms, until_ms)."""

    node_id: int
    start_ms: int
    until_ms: int


class Lease:
    """One process's lease of a node id in a store: acquire, renew, release."""

    def __init__(
        self, store: LeaseStore, *, holder: str, lease_ms: int, candidates: Sequence[int]
    ) -> None:
        self.store = store
        self.holder = holder
        self._lease_ms = lease_ms
        self._candidates = list(candidates)
        self.grant: Grant | None = None

    async def acquire(self) -> Grant:
        """Lease a node id no live process holds (waiting only when the store says one frees
        soon); NodeLeaseError when all are held."""
        while True:
            # Random order: processes starting together do not all race for the same id.
            order = random.sample(self._candidates, len(self._candidates))
            now = ids.now_ms()
            until = now + self._lease_ms
            attempt = await self.store.acquire(self.holder, now, until, order)
            if attempt.node_id is not None:
                self.grant = Grant(attempt.node_id, start_ms=now, until_ms=until)
                return self.grant
            if attempt.retry_at_ms is None:
                first, last = min(self._candidates), max(self._candidates)
                raise NodeLeaseError(
                    f"every node id in {first}..{last} is held by a live process "
                    "(HOLDFAST_NODES__FIRST_ID/LAST_ID choose the range)"
                )
            wait = (attempt.retry_at_ms - now) / 1000
            log.warning("lease records are new or were lost: waiting %.1f s for node ids", wait)
            await asyncio.sleep(wait)

    async def renew(self) -> Grant | None:
        """Extend the lease by one lease from now; None when another process holds it now."""
        grant = self.grant
        if grant is None:
            return None
        until = max(ids.now_ms() + self._lease_ms, grant.until_ms)  # never shorten it
        if not await self.store.extend(grant.node_id, self.holder, until):
            self.grant = None
            return None
        self.grant = replace(grant, until_ms=until)
        return self.grant

    async def release(self, last_ms: int | None) -> None:
        """Give the node id back, recording where this holder's ids ended (`last_ms`, the
        latest millisecond encoded, None if none was)."""
        grant, self.grant = self.grant, None
        if grant is None:
            return
        end = grant.start_ms if last_ms is None else last_ms + 1
        # Recorded once this clock has reached it, the end lets the next process in at once.
        await asyncio.sleep(min(_RELEASE_WAIT_MS, max(0, end - ids.now_ms())) / 1000)
        await self.store.extend(grant.node_id, self.holder, min(end, grant.until_ms))


def store_for(settings: Settings) -> LeaseStore:
    if settings.redis_url:
        return RedisLeases(settings.redis_url, lease_ms=_lease_ms(settings))
    return DatabaseLeases()


def _lease_ms(settings: Settings) -> int:
    return round(settings.nodes.lease_seconds * 1000)


def process_name(role: str) -> str:
    """Who holds a node id lease or a job's claim, for operators reading the records; the
    token tells two holders in one process apart. At most 200 characters (the columns')."""
    return f"{role} {socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"[:200]


_depth = 0  # nested holds in this process (the worker inside serve): they share one node id


@asynccontextmanager
async def hold(settings: Settings, *, role: str) -> AsyncIterator[int]:
    """Hold a node id for this process while inside (the database must be open when there is
    no Redis); yields the node id it starts with."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield ids.current().node_id
        finally:
            _depth -= 1
        return
    _depth = 1
    try:
        if settings.node_id is not None:
            ids.configure(settings.node_id)
            try:
                yield settings.node_id
            finally:
                ids.clear()
            return
        async with _leased(settings, role) as node_id:
            yield node_id
    finally:
        _depth = 0


@asynccontextmanager
async def _leased(settings: Settings, role: str) -> AsyncIterator[int]:
    nodes = settings.nodes
    store = store_for(settings)
    lease = Lease(
        store,
        holder=process_name(role),
        lease_ms=_lease_ms(settings),
        candidates=range(nodes.first_id, nodes.last_id + 1),
    )
    try:
        try:
            grant = await lease.acquire()
        except (BaseORMException, RedisError, OSError) as exc:
            raise NodeLeaseError(
                f"cannot lease a node id ({type(exc).__name__}: {exc}); "
                "is the database migrated (holdfast migrate) and the lease store reachable?"
            ) from exc
        ids.configure(grant.node_id, start_ms=grant.start_ms, until_ms=grant.until_ms)
        log.info("leased node id %d", grant.node_id)
        keeper = asyncio.create_task(_keep(lease, nodes.renew_seconds), name="holdfast-node-lease")
        try:
            yield grant.node_id
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            generator = ids.clear()
            held = lease.grant
            last = (
                generator.last_ms
                if generator and held and generator.node_id == held.node_id
                else None
            )
            try:
                await lease.release(last)
            except (BaseORMException, RedisError, OSError):
                # Not given back: it frees itself when the lease ends.
                log.warning("could not release node id lease", exc_info=True)
    finally:
        await store.close()


async def _keep(lease: Lease, every: float) -> None:
    """Renew the lease; when it was lost, lease another node id."""
    delay = every
    while True:
        await asyncio.sleep(delay)
        delay = every
        try:
            if lease.grant is None:
                grant = await lease.acquire()
                ids.configure(grant.node_id, start_ms=grant.start_ms, until_ms=grant.until_ms)
                log.warning("leased node id %d instead", grant.node_id)
                continue
            lost = lease.grant.node_id
            renewed = await lease.renew()
            if renewed is not None:
                ids.extend(renewed.node_id, renewed.until_ms)
                continue
            log.error(
                "node id %d was taken over by another process after its lease ran out "
                "(was this process paused?); leasing another",
                lost,
            )
            delay = 0
        except Exception:
            # This loop must outlive an outage of the store: ids stop at the lease's end,
            # and resume once a renewal gets through.
            log.warning("could not renew the node id lease; retrying", exc_info=True)
            delay = min(every, _RETRY_SECONDS)
