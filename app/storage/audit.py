"""Checking the records against the backends (`holdfast storage verify`, `orphans`, `status`).

- *missing*: a row whose backend has no object under its key;
- *differing*: the backend's object has another size or SHA-256 than the row (the SHA-256
  the provider kept at `put`; `deep` reads the bytes and hashes them);
- *orphan*: an object in a configured backend that no row places there: a crash between
  `Storage.put` and `Storage.record`, or the copy a move left at the backend it moved from
  (`recorded_in` then names where the row is). Not orphans: the keys `keep` returns (uploads
  in flight, which have no row yet; an entry ending in `/` keeps every key under it) and
  copies at the target of the newest move (unless abandoned) whose row still names another
  backend (a running move records them once verified; after a finished one, a rerun does);
- *straggler*: once the newest move finished (and still steers writes), a row at another
  backend than its target: a write begun before the move that landed after it, which
  `holdfast storage migrate --to <target>` moves. The old backend is not to be closed while
  there is any.

`holdfast storage orphans --delete` holds the storage lease (app/storage/lease.py), so no
move runs while it deletes, and checks each small batch against the rows again just before
deleting it.

Backups (app/hosting/backup.py) are objects without rows: the keys under `backup.prefix` in
the backup backend are reserved (`reserved_prefixes`), never listed as orphans nor deleted.

Each backend's listing is held in memory as key -> size while the check runs (about 100
bytes an object).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tortoise.functions import Count, Sum

from app.models import MoveState, StorageMove, StoredObject
from app.storage import Storage
from app.storage import lease as storage_lease
from app.storage.move import latest_move
from providers.errors import NotFound, ProviderError

if TYPE_CHECKING:
    from app.settings import Settings

KeepKeys = Callable[[], Awaitable[set[str]]]
"""Keys that must never count as orphans (the media service's uploads in flight)."""

Reserved = Mapping[str, tuple[str, ...]]
"""Backend -> key prefixes whose objects have no rows by design (backups): never orphans."""

_PAGE = 1000
_LOOKUP_BATCH = 500
_DELETE_BATCH = 50
"""Orphans checked again against the rows, then deleted, at a time."""


@dataclass(frozen=True, slots=True)
class Missing:
    key: str
    backend: str
    reason: str


@dataclass(frozen=True, slots=True)
class Differing:
    key: str
    backend: str
    recorded_size: int
    recorded_sha256: str
    size: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class Orphan:
    backend: str
    key: str
    size: int
    recorded_in: str | None
    """The backend the object's row names, when it has one elsewhere (a copy a move left
    behind); None for an object with no row at all."""


@dataclass(frozen=True, slots=True)
class Straggler:
    """A row at another backend than the target of the finished move that steers writes."""

    key: str
    backend: str
    target: str


@dataclass(slots=True)
class Audit:
    checked: int = 0
    missing: list[Missing] = field(default_factory=list)
    differing: list[Differing] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    stragglers: list[Straggler] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.differing or self.orphans or self.stragglers)


class OrphansBusy(Exception):
    """Another run (`storage migrate` or `orphans --delete`) holds the storage lease."""


@dataclass(slots=True)
class Deletion:
    """What `delete_orphans` did with each orphan it was given."""

    deleted: list[Orphan] = field(default_factory=list)
    failed: list[tuple[Orphan, str]] = field(default_factory=list)
    """Orphans the backend did not delete, and why."""
    kept: list[Orphan] = field(default_factory=list)
    """No orphans any more when checked again (recorded, in flight, or a move's copy)."""


@dataclass(frozen=True, slots=True)
class BackendTotal:
    backend: str
    objects: int
    bytes: int


def reserved_prefixes(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The backups' keys in the backup backend (`backup.storage`, else `storage.default`):
    objects no row records, which deleting as orphans would delete every backup."""
    backend = settings.backup.storage or settings.storage.default
    return {backend: (settings.backup.prefix,)}


async def verify(
    storage: Storage,
    *,
    deep: bool = False,
    keep: KeepKeys | None = None,
    concurrency: int | None = None,
    reserved: Reserved | None = None,
) -> Audit:
    """Every row checked against its backend, and every backend's objects (but the
    `reserved` ones) against the rows."""
    listings = await _listings(storage, reserved)
    audit = Audit()
    recorded: dict[str, set[str]] = {name: set() for name in storage.backends}
    slots = asyncio.Semaphore(concurrency or storage.settings.move_concurrency)
    target = await steering_target(storage)

    async with asyncio.TaskGroup() as tasks:
        async for row in _all_rows():
            audit.checked += 1
            recorded.setdefault(row.backend, set()).add(row.key)
            if target is not None and row.backend != target:
                audit.stragglers.append(Straggler(row.key, row.backend, target))
            await slots.acquire()
            task = tasks.create_task(_check(storage, row, deep, audit))
            task.add_done_callback(lambda _: slots.release())
    audit.orphans = await _orphans(listings, recorded, keep, reserved)
    audit.missing.sort(key=lambda item: (item.backend, item.key))
    audit.differing.sort(key=lambda item: (item.backend, item.key))
    audit.stragglers.sort(key=lambda item: (item.backend, item.key))
    return audit


async def steering_target(storage: Storage) -> str | None:
    """The target of the newest move when it is finished and new objects go there: every
    row should then be there."""
    move = await latest_move()
    if move is None or move.state is not MoveState.FINISHED:
        return None
    return move.target if await storage.write_target() == move.target else None


async def find_orphans(
    storage: Storage, *, keep: KeepKeys | None = None, reserved: Reserved | None = None
) -> list[Orphan]:
    """The objects of every configured backend that no row places there (but the
    `reserved` ones)."""
    listings = await _listings(storage, reserved)
    recorded: dict[str, set[str]] = {name: set() for name in storage.backends}
    async for row in _all_rows():
        recorded.setdefault(row.backend, set()).add(row.key)
    return await _orphans(listings, recorded, keep, reserved)


async def delete_orphans(
    storage: Storage,
    orphans: Iterable[Orphan],
    *,
    keep: KeepKeys | None = None,
    reserved: Reserved | None = None,
) -> Deletion:
    """Delete `orphans` that are orphans still, holding the storage lease (no move runs
    meanwhile): a small batch at a time, each checked again against the rows, the newest
    move and `keep` just before it is deleted. OrphansBusy when a move or another deletion
    holds the lease."""
    candidates = list(orphans)
    result = Deletion()
    if not candidates:
        return result
    try:
        async with storage_lease.hold(
            storage.settings.move_lease_seconds, role="storage orphans --delete"
        ) as lease:
            for start in range(0, len(candidates), _DELETE_BATCH):
                batch = candidates[start : start + _DELETE_BATCH]
                by_backend: dict[str, dict[str, int]] = {}
                for orphan in batch:
                    by_backend.setdefault(orphan.backend, {})[orphan.key] = orphan.size
                recorded: dict[str, set[str]] = {name: set() for name in by_backend}
                still = await _orphans(by_backend, recorded, keep, reserved)
                confirmed = {(orphan.backend, orphan.key) for orphan in still}
                result.kept += [o for o in batch if (o.backend, o.key) not in confirmed]
                for orphan in still:
                    lease.check()
                    try:
                        await storage.provider(orphan.backend).delete(orphan.key)
                    except (ProviderError, LookupError, OSError) as exc:
                        result.failed.append((orphan, f"{type(exc).__name__}: {exc}"))
                        continue
                    result.deleted.append(orphan)
    except storage_lease.LeaseHeld as exc:
        raise OrphansBusy(
            f"a `holdfast storage migrate` or another `orphans --delete` is running "
            f"({exc.holder}; its lease runs until {exc.expires_at:%Y-%m-%d %H:%M:%S} UTC): "
            "run it again once that ended"
        ) from None
    return result


async def totals() -> list[BackendTotal]:
    """Objects and bytes recorded per backend."""
    rows = (
        await StoredObject.annotate(objects=Count("id"), bytes=Sum("size"))
        .group_by("backend")
        .order_by("backend")
        .values("backend", "objects", "bytes")
    )
    return [
        BackendTotal(row["backend"], int(row["objects"]), int(row["bytes"] or 0)) for row in rows
    ]


def _is_reserved(reserved: Reserved | None, backend: str, key: str) -> bool:
    return reserved is not None and key.startswith(reserved.get(backend, ()))


async def _listings(storage: Storage, reserved: Reserved | None) -> dict[str, dict[str, int]]:
    listings: dict[str, dict[str, int]] = {}
    for name, provider in storage.backends.items():
        sizes: dict[str, int] = {}
        token: str | None = None
        while True:
            page = await provider.list(token=token, limit=1000)
            for info in page.objects:
                if not _is_reserved(reserved, name, info.key):
                    sizes[info.key] = info.size
            token = page.next_token
            if token is None:
                break
        listings[name] = sizes
    return listings


async def _all_rows() -> AsyncIterator[StoredObject]:
    after = 0
    while True:
        page = (
            await StoredObject.filter(id__gt=after)
            .order_by("id")
            .limit(_PAGE)
            .only("id", "key", "backend", "size", "sha256")
        )
        for row in page:
            yield row
        if len(page) < _PAGE:
            return
        after = page[-1].id


async def _check(
    storage: Storage,
    row: StoredObject,
    deep: bool,
    audit: Audit,
) -> None:
    try:
        provider = storage.provider(row.backend)
    except LookupError:
        audit.missing.append(Missing(row.key, row.backend, "backend not configured"))
        return
    sha256: str | None
    try:
        if deep:
            size, sha256 = await _hash(provider.get(row.key))
        else:
            info = await provider.head(row.key)
            size, sha256 = info.size, info.sha256
    except NotFound:
        audit.missing.append(Missing(row.key, row.backend, "no object"))
        return
    except ProviderError as exc:
        audit.missing.append(Missing(row.key, row.backend, f"{type(exc).__name__}: {exc}"))
        return
    if size != row.size or sha256 != row.sha256:
        audit.differing.append(Differing(row.key, row.backend, row.size, row.sha256, size, sha256))


async def _hash(chunks: AsyncIterator[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        digest.update(chunk)
    return size, digest.hexdigest()


async def _orphans(
    listings: dict[str, dict[str, int]],
    recorded: dict[str, set[str]],
    keep: KeepKeys | None,
    reserved: Reserved | None,
) -> list[Orphan]:
    candidates = [
        (backend, key, size)
        for backend, sizes in listings.items()
        for key, size in sizes.items()
        if key not in recorded.get(backend, set()) and not _is_reserved(reserved, backend, key)
    ]
    if not candidates:
        return []
    kept = await keep() if keep is not None else set()
    kept_prefixes = tuple(entry for entry in kept if entry.endswith("/"))
    move: StorageMove | None = await latest_move()
    if move is not None and move.state is MoveState.ABANDONED:
        move = None
    # Rows recorded (or switched by a move) after the walk that collected `recorded`.
    rows: dict[str, str] = {}
    keys = sorted({key for _, key, _ in candidates})
    for start in range(0, len(keys), _LOOKUP_BATCH):
        batch = keys[start : start + _LOOKUP_BATCH]
        for key, backend in await StoredObject.filter(key__in=batch).values_list("key", "backend"):
            rows[key] = backend
    orphans = []
    for backend, key, size in candidates:
        row_backend = rows.get(key)
        if row_backend == backend or key in kept or key.startswith(kept_prefixes):
            continue
        if move is not None and move.target == backend and row_backend is not None:
            # A copy by the newest move (recorded once verified, or by a rerun): deleting
            # it could delete what the move is about to record.
            continue
        orphans.append(Orphan(backend, key, size, row_backend))
    orphans.sort(key=lambda item: (item.backend, item.key))
    return orphans
