"""The jobs table as a queue: every statement a worker runs against it, for both databases.

A job moves pending -> running (claimed, with a lease) -> done, or back to pending with a later
`run_after` after a failure, or to dead after its last attempt. Every update of a claimed row
names the claim it belongs to (`lease_owner` and `attempts`, the fencing token), so a worker
whose lease was taken over changes nothing.

On PostgreSQL the claim takes rows `FOR UPDATE SKIP LOCKED`: workers never wait for each other
nor take one row twice, and a row whose handler transaction is running is locked by it, so it
is skipped by lease expiry too. SQLite has one writer at a time, which gives the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.ids import new_id
from app.logs import truncate

log = logging.getLogger("holdfast.jobs")

MAX_ERROR = 1_000  # characters of `last_error` (the column's size)
_CREDENTIALS_IN_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this worker holds: what to run, and the claim that updates must name."""

    id: int
    name: str
    payload: dict[str, Any]
    attempts: int  # including this one
    owner: str


def _lock_clause(conn: BaseDBAsyncClient | None = None) -> str:
    return " FOR UPDATE SKIP LOCKED" if sql.dialect(conn) == "postgres" else ""


async def record(
    conn: BaseDBAsyncClient, name: str, payload: str, run_after: datetime | None = None
) -> int:
    """Write a pending job in the transaction `conn`; returns its id."""
    job_id = new_id()
    when = run_after or now()
    await sql.execute(
        "INSERT INTO jobs (id, name, payload, state, attempts, run_after, created_at) "
        "VALUES (:id, :name, :payload, 'pending', 0, :run_after, :created_at)",
        {"id": job_id, "name": name, "payload": payload, "run_after": when, "created_at": now()},
        conn,
    )
    return job_id


class BadPayload(ValueError):
    """A stored payload that is not a JSON object: no handler can run it."""


def _decode(payload: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(payload) if isinstance(payload, (str, bytes)) else payload
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"the payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadPayload(f"the payload is a JSON {type(value).__name__}, not an object")
    return value


async def claim(
    owner: str, limit: int, lease_seconds: float, *, names: Sequence[str]
) -> list[Claimed]:
    """Take up to `limit` due pending jobs named one of `names` (those this process has
    handlers for: during a rolling deploy an older worker leaves newer kinds of job to the
    workers that know them), oldest due first, leased to `owner`. A claimed row whose payload
    is not a JSON object is marked dead at once and not returned."""
    if limit <= 0 or not names:
        return []
    at = now()
    # MATERIALIZED: the locking subquery runs exactly once, so the UPDATE takes at most `limit`
    # rows (a subquery inside `IN (...)` may be planned as a join that runs it again).
    rows = await sql.fetch(
        "WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE state = 'pending' "
        "AND run_after <= :now AND name IN (:names) "
        f"ORDER BY run_after LIMIT :limit{_lock_clause()}) "
        "UPDATE jobs SET state = 'running', lease_owner = :owner, "
        "lease_expires_at = :lease, attempts = attempts + 1 "
        "WHERE id IN (SELECT id FROM due) "
        "RETURNING id, name, payload, attempts",
        {
            "owner": owner,
            "lease": at + timedelta(seconds=lease_seconds),
            "now": at,
            "limit": limit,
            "names": list(names),
        },
    )
    claimed: list[Claimed] = []
    for row in rows:
        job = Claimed(
            id=int(row["id"]),
            name=str(row["name"]),
            payload={},
            attempts=int(row["attempts"]),
            owner=owner,
        )
        # Row by row: one bad payload must not leave the rest of the batch claimed but unrun.
        try:
            claimed.append(replace(job, payload=_decode(row["payload"])))
        except BadPayload as exc:
            await _bury(job, exc)
    claimed.sort(key=lambda job: job.id)
    return claimed


async def _bury(job: Claimed, error: BadPayload) -> None:
    log.error("job %s (%s) is dead: %s", job.id, job.name, error)
    try:
        await fail(job, describe(error), None)
    except Exception:
        # Its lease runs out, and the next claim finds it bad again.
        log.exception("could not mark job %s dead", job.id)


_MINE = "id = :id AND state = 'running' AND lease_owner = :owner AND attempts = :attempts"


def _claim_params(job: Claimed) -> dict[str, Any]:
    return {"id": job.id, "owner": job.owner, "attempts": job.attempts}


async def hold(conn: BaseDBAsyncClient, job: Claimed) -> bool:
    """First statement of a handler's transaction: lock the job's row for the rest of it (no
    other worker can take the job over while its handler runs) and check the claim is still
    ours."""
    changed = await sql.execute(
        f"UPDATE jobs SET lease_owner = lease_owner WHERE {_MINE}", _claim_params(job), conn
    )
    return changed == 1


async def extend(job: Claimed, lease_seconds: float) -> bool:
    """Renew the lease of a job whose work runs outside a transaction (a staged job's
    stage), so it is not taken for lost; False when the claim is no longer ours."""
    changed = await sql.execute(
        f"UPDATE jobs SET lease_expires_at = :lease WHERE {_MINE}",
        {**_claim_params(job), "lease": now() + timedelta(seconds=lease_seconds)},
    )
    return changed == 1


async def complete(conn: BaseDBAsyncClient, job: Claimed) -> None:
    """Mark the job done in its handler's transaction, so effects and completion commit as one."""
    await sql.execute(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL, "
        f"finished_at = :now WHERE {_MINE}",
        {**_claim_params(job), "now": now()},
        conn,
    )


def describe(error: BaseException) -> str:
    """What `last_error` keeps of an exception: its type and message, bounded, with any
    credentials in URLs cut out."""
    text = f"{type(error).__name__}: {error}".strip()
    return truncate(_CREDENTIALS_IN_URL.sub(r"\1[redacted]@", text), MAX_ERROR)


async def fail(job: Claimed, error: str, retry_at: datetime | None) -> bool:
    """After a failed attempt: pending again from `retry_at`, or dead when it is None."""
    changed = await sql.execute(
        "UPDATE jobs SET state = :state, run_after = COALESCE(:retry_at, run_after), "
        "lease_owner = NULL, lease_expires_at = NULL, last_error = :error, "
        f"finished_at = :finished WHERE {_MINE}",
        {
            **_claim_params(job),
            "state": "pending" if retry_at is not None else "dead",
            "retry_at": retry_at,
            "error": truncate(error, MAX_ERROR),
            "finished": None if retry_at is not None else now(),
        },
    )
    return changed == 1


async def release(jobs: Sequence[Claimed]) -> int:
    """Give claimed jobs back unrun (a shutdown that could not wait for them): pending, due
    now, and the attempt not counted."""
    released = 0
    for job in jobs:
        released += await sql.execute(
            "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, "
            f"attempts = attempts - 1, run_after = :now WHERE {_MINE}",
            {**_claim_params(job), "now": now()},
        )
    return released


async def expire_leases(max_attempts: int, limit: int = 100) -> int:
    """Running jobs whose lease ran out (their worker died, or lost the database) go back to
    pending, or to dead once they have had every attempt. Jobs whose handler is running are
    locked and skipped (PostgreSQL) or waited for (SQLite)."""
    params = {"now": now(), "max": max_attempts, "limit": limit}
    expired = (
        "SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < :now "
        "AND attempts {} :max "
        f"ORDER BY run_after LIMIT :limit{_lock_clause()}"
    )
    lost = "last_error = 'worker lost (lease expired) on attempt ' || CAST(attempts AS TEXT)"
    retried = await sql.execute(
        f"UPDATE jobs SET state = 'pending', {lost}, lease_owner = NULL, "
        f"lease_expires_at = NULL WHERE id IN ({expired.format('<')})",
        params,
    )
    dead = await sql.execute(
        f"UPDATE jobs SET state = 'dead', {lost}, lease_owner = NULL, "
        f"lease_expires_at = NULL, finished_at = :now WHERE id IN ({expired.format('>=')})",
        params,
    )
    return retried + dead


async def purge_done(keep_seconds: int, limit: int = 1_000) -> int:
    """Delete up to `limit` done jobs that finished more than `keep_seconds` ago (not by due
    time: a job due long ago may have finished just now, after retries or a long queue)."""
    cutoff = now() - timedelta(seconds=keep_seconds)
    return await sql.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done' "
        "AND finished_at < :cutoff LIMIT :limit)",
        {"cutoff": cutoff, "limit": limit},
    )


async def counts() -> dict[str, int]:
    """Jobs by state."""
    rows = await sql.fetch("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
    return {str(row["state"]): int(row["n"]) for row in rows}


async def retry_dead(name: str | None = None) -> int:
    """Dead jobs (of one name, or all) become pending again with fresh attempts."""
    filter_name = "" if name is None else " AND name = :name"
    return await sql.execute(
        "UPDATE jobs SET state = 'pending', attempts = 0, run_after = :now, finished_at = NULL "
        f"WHERE state = 'dead'{filter_name}",
        {"now": now(), "name": name},
    )


async def interrupt_sqlite() -> None:
    """Abort the statement running on the SQLite connection (a cancelled handler's: aiosqlite
    runs it in a thread that cancelling the task does not stop, and the rollback waits behind
    it)."""
    client = connections.get("default")
    if sql.dialect(client) != "sqlite":
        return
    # Tortoise's SQLite client keeps its one aiosqlite connection here.
    raw = getattr(client, "_connection", None)
    if raw is not None:
        await raw.interrupt()
