"""Where node-id leases are kept: a Redis hash, or the `node_leases` table.

A lease is a node id, its holder and the end of its window `until_ms` (Unix milliseconds, in
the holder's clock: the clock its ids are written in). A record is kept after its holder
leaves, so that the next holder knows where the last one's ids ended: a process takes over a
node id only once its own clock has reached the recorded end, and starts its ids there, so the
two never encode the same millisecond even when their clocks disagree.

Both stores take over a lease in one atomic step (a Lua script; a conditional UPDATE or an
INSERT that the primary key lets only one process win), so two processes racing for one node
id cannot both get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis.asyncio as redis
from tortoise.exceptions import IntegrityError

from app.models import NodeLease

REDIS_KEY = "holdfast:nodes"
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Record:
    node_id: int
    holder: str
    until_ms: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """The node id taken, or None; `retry_at_ms` when ids may become free by waiting."""

    node_id: int | None
    retry_at_ms: int | None = None


class LeaseStore(Protocol):
    async def acquire(
        self, holder: str, now_ms: int, until_ms: int, candidates: Sequence[int]
    ) -> Attempt:
        """Take the first of `candidates` that has no record or whose window ended by
        `now_ms`, for `holder` until `until_ms`."""
        ...

    async def extend(self, node_id: int, holder: str, until_ms: int) -> bool:
        """Set the end of `holder`'s lease (a renewal, or a release when it is `now` or the
        last millisecond used plus one); False when `holder` no longer holds it."""
        ...

    async def records(self) -> list[Record]:
        """Every lease recorded, by node id (the live ones end in the future)."""
        ...

    async def close(self) -> None: ...


# Both scripts first check that the hash was written by this very Redis run. Its `run_id`
# (INFO server) is stamped in the hash: a different one means the data came from elsewhere (a
# restart from a snapshot or AOF older than the latest writes, a failover to a replica that may
# lag), so the records may miss leases granted or renewed since, and a renewal could succeed for
# a process whose node id was taken over meanwhile. Such a hash is dropped and started anew, as
# when Redis comes back empty (below). A hash with records but no `run_id` (written before
# `run_id` was kept) is adopted as it is, so that upgrading does not cut every lease.
_SAME_RUN = """
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%x+)')
local stamped = redis.call('HGET', KEYS[1], 'run_id')
if stamped ~= run then
  if stamped or not redis.call('HGET', KEYS[1], 'created') then
    redis.call('DEL', KEYS[1])
  end
  redis.call('HSET', KEYS[1], 'run_id', run)
end
"""

# KEYS[1] the hash; ARGV now_ms, until_ms, holder, lease_ms, candidates... Fields are node ids
# with "<until_ms> <holder>". A missing hash means Redis lost its data (or this is the first
# lease ever): whoever held node ids before may still be making ids for up to one lease, so no
# node id is free until one lease after the hash was (re)created.
_ACQUIRE = (
    _SAME_RUN
    + """
local now = tonumber(ARGV[1])
local created = redis.call('HGET', KEYS[1], 'created')
if not created then
  redis.call('HSET', KEYS[1], 'created', ARGV[1])
  created = ARGV[1]
end
local unrecorded_free_at = tonumber(created) + tonumber(ARGV[4])
if now < unrecorded_free_at then
  return {-1, unrecorded_free_at}
end
for i = 5, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if not held or tonumber(string.match(held, '^%d+')) <= now then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[2] .. ' ' .. ARGV[3])
    return {tonumber(ARGV[i]), 0}
  end
end
return {-1, 0}
"""
)

# KEYS[1] the hash; ARGV node id, until_ms, holder.
_EXTEND = (
    _SAME_RUN
    + """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
if string.sub(held, string.find(held, ' ', 1, true) + 1) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""
)

_NOT_NODES = {"created", "run_id"}


class RedisLeases:
    """Leases in one Redis hash (per Redis database), at most one field per node id."""

    def __init__(self, url: str, *, lease_ms: int, key: str = REDIS_KEY) -> None:
        timeout = max(1.0, lease_ms / 4_000)
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._key = key
        self._lease_ms = lease_ms
        self._acquire = self._client.register_script(_ACQUIRE)
        self._extend = self._client.register_script(_EXTEND)

    async def acquire(
        self, holder: str, now_ms: int, until_ms: int, candidates: Sequence[int]
    ) -> Attempt:
        node_id, retry_at = await self._acquire(
            keys=[self._key], args=[now_ms, until_ms, holder, self._lease_ms, *candidates]
        )
        if node_id >= 0:
            return Attempt(int(node_id))
        return Attempt(None, int(retry_at) if retry_at > now_ms else None)

    async def extend(self, node_id: int, holder: str, until_ms: int) -> bool:
        return bool(await self._extend(keys=[self._key], args=[node_id, until_ms, holder]))

    async def records(self) -> list[Record]:
        found = []
        for field, value in (await self._client.hgetall(self._key)).items():
            name = field.decode() if isinstance(field, bytes) else field
            if name in _NOT_NODES:
                continue
            text = value.decode() if isinstance(value, bytes) else value
            until, _, holder = text.partition(" ")
            found.append(Record(int(name), holder, int(until)))
        return sorted(found, key=lambda record: record.node_id)

    async def close(self) -> None:
        await self._client.aclose()


def _at(ms: int) -> datetime:
    return _UNIX_EPOCH + ms * _MILLISECOND


def _ms(moment: datetime) -> int:
    return (moment - _UNIX_EPOCH) // _MILLISECOND


class DatabaseLeases:
    """Leases in the `node_leases` table of the open Tortoise connection (the embedded default,
    or PostgreSQL when there is no Redis)."""

    async def acquire(
        self, holder: str, now_ms: int, until_ms: int, candidates: Sequence[int]
    ) -> Attempt:
        ends = {
            node: _ms(end)
            for node, end in await NodeLease.all().values_list("node_id", "expires_at")
        }
        for node in candidates:
            end = ends.get(node)
            if end is None:
                try:
                    await NodeLease.create(node_id=node, holder=holder, expires_at=_at(until_ms))
                except IntegrityError:  # another process recorded it first
                    continue
                return Attempt(node)
            # The condition is checked again by the UPDATE itself: only one process that read
            # the lease as ended can take it.
            if end <= now_ms and await NodeLease.filter(
                node_id=node, expires_at__lte=_at(now_ms)
            ).update(holder=holder, expires_at=_at(until_ms)):
                return Attempt(node)
        return Attempt(None)

    async def extend(self, node_id: int, holder: str, until_ms: int) -> bool:
        updated = await NodeLease.filter(node_id=node_id, holder=holder).update(
            expires_at=_at(until_ms)
        )
        return bool(updated)

    async def records(self) -> list[Record]:
        rows = await NodeLease.all().order_by("node_id")
        return [Record(row.node_id, row.holder, _ms(row.expires_at)) for row in rows]

    async def close(self) -> None:
        return None
