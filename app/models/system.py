"""Records of the running system itself (not of its users)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.models.base import SnowflakeModel


class NodeLease(Model):
    """A snowflake node id held by one live process until `expires_at` (renewed while it runs),
    so no two live processes make ids with the same node bits."""

    node_id = fields.IntField(primary_key=True, generated=False)
    holder = fields.CharField(max_length=200)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "node_leases"


class JobState(StrEnum):
    PENDING = "pending"  # waiting for `run_after`
    RUNNING = "running"  # claimed by `lease_owner` until `lease_expires_at`
    DONE = "done"  # committed together with its handler's effects
    DEAD = "dead"  # gave up after its last attempt; `last_error` says why


class Job(SnowflakeModel):
    """Work a committed change owes (the transactional outbox): written in the change's own
    transaction, run at least once by a worker (app/jobs)."""

    name = fields.CharField(max_length=100)
    payload: fields.Field[dict[str, Any]] = fields.JSONField()
    state = fields.CharEnumField(JobState, max_length=16, default=JobState.PENDING)
    attempts = fields.IntField(default=0)
    run_after = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=200, null=True)
    lease_expires_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=1_000, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"
        # Claiming (pending by due time) and lease expiry (running) read one state's rows in
        # due-time order; purging reads done rows by when they finished (a job due long ago
        # may have finished just now, after retries or a long wait).
        indexes = (Index(fields=("state", "run_after")), Index(fields=("state", "finished_at")))
