"""Durable background jobs: a transactional outbox that is also the queue.

A change records the job it owes with `await change.enqueue(name, payload)` in its own
transaction (app/changes.py), so a crash at any instant loses nothing: before the commit
there is neither change nor job, after it both. Once committed, the job is handed over
(`JobQueue.hand_over`: a wake-up to the workers of every process, over Redis pub/sub when
configured). Workers claim due rows from the `jobs` table with a lease (`outbox.claim`), run
the handler inside `changes.begin()` and mark the row done in that same transaction, so a
handler's effects and its completion commit together: a worker killed mid-handler commits
neither, and the job runs again once its lease expires. Failures are retried with
exponential backoff and jitter up to `max_attempts`, then the job is dead with its last
error kept. Each poll also sweeps: expired leases back to pending, old done rows deleted, and
rows whose hand-over was lost (a crash between commit and wake-up) are simply due rows.

Roles: `holdfast serve` works jobs in-process unless `HOLDFAST_JOBS__WORK_IN_WEB=false`;
`holdfast worker` only works jobs. On SIGTERM a worker stops claiming, waits
`shutdown_grace_seconds` for running jobs, then cancels the rest (rolled back) and gives them
back to pending.

Why the table is the queue and Redis only a wake-up, rather than taskiq 0.13 + taskiq-redis
1.2.4 (read in their source):
- The outbox row must exist anyway (no broker survives a crash between our commit and its
  kick), and it has to be checked in the handler's transaction to apply effects once. With a
  broker every job would live in two places that need reconciling both ways: a message for
  a job already done, a pending row whose message never left. The row alone already says
  whether, when and by whom a job runs.
- Retries: `SmartRetryMiddleware` without a schedule source re-kicks at once with a `delay`
  label that neither `RedisStreamBroker` nor the receiver reads; with one it needs a separate
  `taskiq scheduler` process (exactly one), and its "exponent" is `delay * retries` (linear)
  capped by `max_delay_exponent`. Here the retry time is a column the claim query compares.
- Dead workers: `RedisStreamBroker.listen` runs XAUTOCLAIM only after an XREADGROUP that
  returned new messages (`if not fetched: continue` comes first), so on a quiet queue a
  killed worker's job waits for the next new job; the reclaim lock defaults to no timeout
  (`unacknowledged_lock_timeout=None`), so a worker killed while holding it blocks every
  listener; and a task running longer than `idle_timeout` (10 minutes) is delivered to a
  second worker while the first still runs (no lease renewal). Here a row lock held by the
  handler's transaction keeps a running job from being claimed again however long it runs,
  and the lease only has to outlive a dead worker's connection.
- One path everywhere: the embedded SQLite default and a PostgreSQL fleet run the same claim,
  lease and retry code (taskiq would be `InMemoryBroker` in one and Redis Streams in the
  other), and taskiq would add aiohttp, pycron and taskiq-dependencies to the install.
The cost: workers poll the table (one indexed query per `poll_seconds` each, plus one per
wake-up) and throughput is bounded by the database (claims are batched, `FOR UPDATE SKIP
LOCKED` on PostgreSQL). If that becomes the limit, a broker can carry the hand-over while the
row stays the record; the `JobQueue` interface does not change.
"""

from __future__ import annotations

from app.jobs.queue import JOBS_CHANNEL, DeadJob, Handler, JobQueue, backoff

__all__ = ["JOBS_CHANNEL", "DeadJob", "Handler", "JobQueue", "backoff"]
