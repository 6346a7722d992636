"""Records of stored objects: the truth a vanished storage vendor is rebuilt from."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.models.account import User
from app.models.base import SnowflakeModel


class StoredObject(SnowflakeModel):
    """One object in one storage backend, with what it must be: its size and whole-object
    SHA-256, computed by us while it streamed in. `backend` names a configuration of
    `HOLDFAST_STORAGE__BACKENDS` (not a vendor), so changing a backend's vendor settings
    never loses track of where an object is; a move (`holdfast storage migrate`) rewrites
    `backend` only after the copy was verified."""

    key = fields.CharField(max_length=512, unique=True)
    backend = fields.CharField(max_length=64)
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64)
    content_type = fields.CharField(max_length=100)
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    owner_id: int | None

    class Meta:
        table = "stored_objects"
        # A move walks one backend's objects in id order.
        indexes = (Index(fields=("backend", "id")),)


class MoveState(StrEnum):
    RUNNING = "running"  # copying; new writes go to the target
    FINISHED = "finished"  # every object is at the target; writes still go there
    ABANDONED = "abandoned"  # the operator gave up on it (`storage migrate --abandon`)


class StorageMove(SnowflakeModel):
    """A move of every object to the backend `target`, started while `from_default` was the
    default backend. While it is the newest move, the default is still `from_default` and it
    is not abandoned, new writes go to `target` (`Storage.write_target`), so switching the
    default afterwards is one setting. It finishes only once nothing is left elsewhere and
    nothing begun before it can still land elsewhere (app/storage/move.py)."""

    target = fields.CharField(max_length=64)
    from_default = fields.CharField(max_length=64)
    state = fields.CharEnumField(MoveState, max_length=16, default=MoveState.RUNNING)
    started_at = fields.DatetimeField(auto_now_add=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "storage_moves"


class StorageLease(Model):
    """Work on the stored objects that must never run twice at once, held by one process
    until `expires_at` (renewed while it runs; a killed holder's lease simply runs out):
    `holdfast storage migrate` and `holdfast storage orphans --delete` share the lease
    `storage`, so two moves never copy (and discard) the same objects, and no orphan is
    deleted while a move may be switching its row. Other singletons use the same table under
    their own name: `scheduler`, the one scheduler process of a fleet."""

    name = fields.CharField(max_length=32, primary_key=True)
    holder = fields.CharField(max_length=200)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "storage_leases"
