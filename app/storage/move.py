"""Moving every stored object to another backend (`holdfast storage migrate --to NAME`).

A move is a `StorageMove` row. From the moment it exists new objects are written to its
target (`Storage.write_target`), in every process, so the set of objects left at the old
backends only shrinks. The move walks the rows of `stored_objects` not yet at the target (in
id order, a page at a time) and, several objects at once, streams each from its backend into
the target, checks the size and SHA-256 the target computed against the row, confirms them
at the target, then switches the row with a conditional UPDATE (`WHERE backend = <source>`,
verified copies a batch at a time). Reads follow the row, so every object stays readable
throughout: from the old backend until its row switches, from the target afterwards.

Each copy is checked at the destination without being read back where the vendor can check
it for us: the put is given the row's SHA-256 (`put(sha256=...)`: it fails, leaving nothing,
when the streamed bytes differ), and S3-compatibles receive the SHA-256 with the upload and
refuse bytes that do not match it (`ObjectInfo.checksum_confirmed`). Other targets (local
disk, libcloud), or S3 with `send_checksums` off, are confirmed by a `head` after the put:
its size and SHA-256 must be the row's.

Interrupting a move at any instant (Ctrl-C, SIGKILL, a lost machine) loses nothing: a row
switches only after its copy was verified, and a rerun copies whatever is left, overwriting
any copy that was made but not recorded. Source objects are never deleted: after
`holdfast storage verify` they are orphans of the old backend (`holdfast storage orphans
--delete`), or the old account is simply closed.

One run at a time: a run holds the storage lease (app/storage/lease.py), which `orphans
--delete` holds too; a second run is refused, and a killed run's lease runs out after
`storage.move_lease_seconds`.

Finishing. Writes that chose the old backend before the move row existed can still land
there afterwards: a `put` streaming when the move started, a `media.process` run between
storing its renditions and recording them, a direct upload to a URL issued before the move
(valid `media.upload_url_ttl` seconds), and the upload of a medium still pending or
processing, read from its `upload_backend` until it is processed. So a run that finds
nothing left marks the move finished only when also (a) no medium is processing from
another backend, (b) no medium pending at another backend got its upload URL within
`upload_url_ttl + move_settle_seconds`, and (c) the move started at least
`storage.move_settle_seconds` ago (longer than any single upload or processing run). Until
then the move stays running, writes still go to the target, and a later run copies whatever
landed elsewhere meanwhile and finishes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.functions import Count, Sum

from app import sql
from app.models import Media, MediaState, MoveState, StorageMove, StoredObject
from app.settings import MediaSettings
from app.storage import Storage
from app.storage import lease as storage_lease
from providers.errors import (
    ConfigurationError,
    DigestMismatch,
    InvalidKey,
    NotFound,
    ProviderError,
)
from providers.storage.base import StorageProvider

PAGE_SIZE = 500
"""Rows read per keyset page; a page's copies overlap the next page's read."""

SWITCH_BATCH = 100
SWITCH_SECONDS = 0.2
"""Verified copies are recorded together, by one UPDATE, when this many are waiting or the
oldest waited this long: a commit per object would cost more than a small object's copy. An
interruption loses at most those copies' records (a rerun copies them again)."""

RETRY_DELAYS = (0.5, 2.0, 5.0)
"""Seconds before each retry of an object whose copy failed with a provider error."""

_PERMANENT = (NotFound, InvalidKey, ConfigurationError)
_RETRIED = (ProviderError, OSError)
"""A provider should wrap OSError; one that did not (a local disk) fails the object all the
same, not the run."""

UPLOAD_URL_TTL: int = MediaSettings.model_fields["upload_url_ttl"].default


class MoveError(Exception):
    """The move cannot start: an unknown target, a move to another target is running, or
    another run (of `migrate`, or `orphans --delete`) holds the storage lease."""


class MoveAborted(Exception):
    """The run stopped on an error that is not one object's (the database, a bug, a lost
    lease): verified copies were recorded, the rest stay where they are."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An object left where it was, and why."""

    key: str
    backend: str
    reason: str


@dataclass(frozen=True, slots=True)
class MoveProgress:
    """Where a running move is, for a progress bar (passed after every object)."""

    total_objects: int
    total_bytes: int
    done_objects: int
    done_bytes: int
    failed: int


@dataclass(slots=True)
class MoveReport:
    """What one run of a move did."""

    target: str
    dry_run: bool
    default: str
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    """Objects already recorded at the target when the run started."""
    failed: list[Failure] = field(default_factory=list)
    remaining: int = 0
    """Objects still recorded elsewhere when the run ended (the failed ones among them);
    for a dry run, those that would be copied."""
    remaining_bytes: int = 0
    gone: int = 0
    """Objects deleted while they were being moved (a purged medium): nothing to move."""
    elapsed: float = 0.0
    finished: bool = False
    """No object is left elsewhere and no write begun before the move can still land
    elsewhere: the move is marked finished."""
    waiting: list[str] = field(default_factory=list)
    """Why a move with nothing left is not finished yet (writes that may still land at the
    old backend)."""
    retry_after: datetime | None = None
    """When a rerun can finish it, as far as known."""
    write_target: str = ""
    """Where new objects go when the run ended."""

    @property
    def objects_per_second(self) -> float:
        return self.copied / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.copied_bytes / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing is left (a dry run: the move could run)."""
        return self.dry_run or (not self.failed and self.remaining == 0)

    def next_step(self) -> str | None:
        """The last step once every object is at the target."""
        if not self.finished or self.default == self.target:
            return None
        return f"set HOLDFAST_STORAGE__DEFAULT={self.target}"


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    key: str
    backend: str
    size: int
    sha256: str
    content_type: str


class _Mismatch(Exception):
    """The copy is not the recorded object (a corrupt source, or a transfer that went
    wrong): the row does not switch."""


async def running_move() -> StorageMove | None:
    """The move in progress, if any (the latest, should a race have started two)."""
    return await StorageMove.filter(state=MoveState.RUNNING).order_by("-id").first()


async def latest_move() -> StorageMove | None:
    """The newest move, whatever its state: the only one that can steer writes."""
    return await StorageMove.all().order_by("-id").first()


async def abandon(target: str) -> MoveState | None:
    """Give up the newest move if it goes to `target` and is running or finished: new writes
    go to the default again. Objects already moved stay where their rows say. Returns the
    state it had, None when the newest move is no such move."""
    move = await latest_move()
    if move is None or move.target != target or move.state is MoveState.ABANDONED:
        return None
    finished_at = move.finished_at or datetime.now(UTC)
    updated = await StorageMove.filter(id=move.id, state=move.state).update(
        state=MoveState.ABANDONED, finished_at=finished_at
    )
    return move.state if updated else None


async def move(
    storage: Storage,
    target: str,
    *,
    concurrency: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[MoveProgress], None] | None = None,
    retry_delays: Sequence[float] = RETRY_DELAYS,
    upload_url_ttl: int = UPLOAD_URL_TTL,
) -> MoveReport:
    """Copy every object not yet at the backend `target` there, verified, switching each
    row as its copy is confirmed; resume the running move to `target` if there is one.

    MoveError when `target` is not a configured backend, another move is running, or another
    run holds the storage lease. A provider error on one object is retried after each of
    `retry_delays`, then the object counts as failed and the run goes on; any other error
    stops the run (MoveAborted) once the copies verified so far are recorded. `dry_run`
    counts what would move and changes nothing. `upload_url_ttl` is `media.upload_url_ttl`
    (see the module's docstring: finishing).
    """
    if target not in storage.backends:
        known = ", ".join(sorted(storage.backends))
        raise MoveError(f"no storage backend {target!r} is configured (known: {known})")
    await _check_running(target)
    if dry_run:
        report = MoveReport(target=target, dry_run=True, default=storage.settings.default)
        report.skipped = await StoredObject.filter(backend=target).count()
        report.remaining, report.remaining_bytes = await _left(target)
        return report
    try:
        async with storage_lease.hold(
            storage.settings.move_lease_seconds, role="storage migrate"
        ) as lease:
            return await _run(
                storage,
                target,
                lease,
                concurrency=concurrency,
                on_progress=on_progress,
                retry_delays=retry_delays,
                upload_url_ttl=upload_url_ttl,
            )
    except storage_lease.LeaseLost as exc:
        raise MoveAborted(str(exc)) from None
    except storage_lease.LeaseHeld as exc:
        raise MoveError(
            f"another `holdfast storage migrate` or `holdfast storage orphans --delete` is "
            f"running ({exc.holder}; its lease runs until {exc.expires_at:%Y-%m-%d %H:%M:%S} "
            "UTC): wait for it to end; a killed run's lease runs out by then"
        ) from None


async def _check_running(target: str) -> StorageMove | None:
    running = await running_move()
    if running is not None and running.target != target:
        raise MoveError(
            f"a move to {running.target!r} is running (started "
            f"{running.started_at:%Y-%m-%d %H:%M} UTC): finish it with "
            f"`holdfast storage migrate --to {running.target}`, "
            f"or give it up with `--to {running.target} --abandon`"
        )
    return running


async def _run(
    storage: Storage,
    target: str,
    lease: storage_lease.Lease,
    *,
    concurrency: int | None,
    on_progress: Callable[[MoveProgress], None] | None,
    retry_delays: Sequence[float],
    upload_url_ttl: int,
) -> MoveReport:
    running = await _check_running(target)
    report = MoveReport(target=target, dry_run=False, default=storage.settings.default)
    started = time.monotonic()
    report.skipped = await StoredObject.filter(backend=target).count()
    report.remaining, report.remaining_bytes = await _left(target)
    if running is None:
        running = await _start(storage, target)
    copier = _Copier(
        storage,
        target,
        lease,
        concurrency=concurrency or storage.settings.move_concurrency,
        retry_delays=retry_delays,
        report=report,
        on_progress=on_progress,
        total=(report.remaining, report.remaining_bytes),
    )
    try:
        await copier.run()
    finally:
        report.elapsed = time.monotonic() - started
    # What may still land elsewhere is read before what is left: a write that lands in
    # between is then counted as left.
    report.waiting, report.retry_after = await _unsettled(
        running, target, settle=storage.settings.move_settle_seconds, upload_url_ttl=upload_url_ttl
    )
    report.remaining, report.remaining_bytes = await _left(target)
    if report.remaining == 0 and not report.waiting:
        lease.check()
        updated = await StorageMove.filter(id=running.id, state=MoveState.RUNNING).update(
            state=MoveState.FINISHED, finished_at=datetime.now(UTC)
        )
        report.finished = updated > 0
        if not report.finished:
            report.waiting.append("the move was abandoned while this run copied")
    report.write_target = await storage.write_target()
    report.elapsed = time.monotonic() - started
    return report


async def _unsettled(
    move: StorageMove, target: str, *, settle: int, upload_url_ttl: int
) -> tuple[list[str], datetime | None]:
    """Why writes begun before `move` may still land at a backend other than `target`, and
    when that ends as far as known."""
    now = datetime.now(UTC)
    reasons: list[str] = []
    ends: list[datetime] = []
    settled_at = move.started_at + timedelta(seconds=settle)
    if now < settled_at:
        reasons.append(
            f"the move started at {move.started_at:%H:%M:%S} UTC: a write begun before it may "
            f"still land at the old backend until {settled_at:%H:%M:%S} UTC "
            "(storage.move_settle_seconds)"
        )
        ends.append(settled_at)
    processing = (
        await Media.filter(state=MediaState.PROCESSING).exclude(upload_backend=target).count()
    )
    if processing:
        reasons.append(
            f"{processing} media uploaded to another backend are still being processed "
            "(their renditions go to the target; their uploads are read where they are)"
        )
    window = timedelta(seconds=upload_url_ttl + settle)
    pending = Media.filter(state=MediaState.PENDING, created_at__gt=now - window).exclude(
        upload_backend=target
    )
    newest = await pending.order_by("-created_at").first()
    if newest is not None:
        until = newest.created_at + window
        reasons.append(
            f"{await pending.count()} uploads may still arrive at another backend until "
            f"{until:%H:%M:%S} UTC (upload URLs issued before the move, valid "
            "media.upload_url_ttl seconds)"
        )
        ends.append(until)
    return reasons, max(ends) if ends else None


async def _start(storage: Storage, target: str) -> StorageMove:
    created = await StorageMove.create(target=target, from_default=storage.settings.default)
    # Under the storage lease no other run starts one; should a lease have been lost, the
    # older row wins and this one is withdrawn (it steered nothing: it never ran).
    other = (
        await StorageMove.filter(state=MoveState.RUNNING, id__lt=created.id)
        .exclude(target=target)
        .first()
    )
    if other is not None:
        await StorageMove.filter(id=created.id).delete()
        raise MoveError(f"a move to {other.target!r} started at the same time")
    return created


async def _left(target: str) -> tuple[int, int]:
    rows = (
        await StoredObject.exclude(backend=target)
        .annotate(objects=Count("id"), bytes=Sum("size"))
        .values("objects", "bytes")
    )
    if not rows:
        return 0, 0
    return int(rows[0]["objects"] or 0), int(rows[0]["bytes"] or 0)


class _Copier:
    """One run's copies: a keyset walk feeding a bounded set of copy tasks."""

    def __init__(
        self,
        storage: Storage,
        target: str,
        lease: storage_lease.Lease,
        *,
        concurrency: int,
        retry_delays: Sequence[float],
        report: MoveReport,
        on_progress: Callable[[MoveProgress], None] | None,
        total: tuple[int, int],
    ) -> None:
        self.storage = storage
        self.target = target
        self.target_provider = storage.provider(target)
        self.lease = lease
        self.concurrency = concurrency
        self.retry_delays = tuple(retry_delays)
        self.report = report
        self.on_progress = on_progress
        self.total_objects, self.total_bytes = total
        self.done_objects = 0
        self.done_bytes = 0
        self.verified: list[_Row] = []
        self.flushed_at = time.monotonic()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        self._progress()
        try:
            async with asyncio.TaskGroup() as tasks:
                async for row in self._rows():
                    await slots.acquire()
                    self.lease.check()
                    task = tasks.create_task(self._move_one(row))
                    task.add_done_callback(lambda _: slots.release())
        except* storage_lease.LeaseLost as group:
            raise MoveAborted(str(group.exceptions[0])) from None
        except* Exception as group:
            first = _first(group)
            raise MoveAborted(f"{type(first).__name__}: {first}") from group
        finally:
            # Copies verified before an error or an interruption are recorded all the same
            # (unless the lease is lost: the next run copies them again).
            if self.lease.held:
                await self._flush()

    async def _rows(self) -> AsyncIterator[_Row]:
        after = 0
        while True:
            page = (
                await StoredObject.filter(id__gt=after)
                .exclude(backend=self.target)
                .order_by("id")
                .limit(PAGE_SIZE)
                .values_list("id", "key", "backend", "size", "sha256", "content_type")
            )
            for values in page:
                yield _Row(*values)
            if len(page) < PAGE_SIZE:
                return
            after = page[-1][0]

    async def _move_one(self, row: _Row) -> None:
        try:
            source = self.storage.provider(row.backend)
        except LookupError as exc:
            self._failed(row, str(exc))
            return
        mismatches = 0
        errors = 0
        while True:
            try:
                await self._copy(source, row)
            except _Mismatch as exc:
                mismatches += 1
                if mismatches > 1:
                    await self._discard(row)
                    self._failed(row, str(exc))
                    return
            except _PERMANENT as exc:
                if isinstance(exc, NotFound) and not await StoredObject.exists(id=row.id):
                    # Deleted (a purged medium) while it was copied: nothing to move.
                    await self._discard(row)
                    self._gone(row)
                    return
                self._failed(row, _reason(exc))
                return
            except _RETRIED as exc:
                if errors >= len(self.retry_delays):
                    self._failed(row, _reason(exc))
                    return
                await asyncio.sleep(self.retry_delays[errors])
                errors += 1
                self.lease.check()
            else:
                break
        await self._switch(row)

    async def _copy(self, source: StorageProvider, row: _Row) -> None:
        target = self.target_provider
        try:
            info = await target.put(
                row.key,
                source.get(row.key),
                content_type=row.content_type,
                sha256=row.sha256,
            )
        except DigestMismatch as exc:
            raise _Mismatch(f"copied: {exc}") from None
        _check(row, info.size, info.sha256, "copied")
        if not info.checksum_confirmed:
            # The vendor did not check the stored bytes itself: read back what it holds.
            head = await target.head(row.key)
            _check(row, head.size, head.sha256, f"at {self.target}")

    async def _switch(self, row: _Row) -> None:
        """Queue the row's switch; written with others in one statement (`_flush`)."""
        self.verified.append(row)
        if (
            len(self.verified) >= SWITCH_BATCH
            or time.monotonic() - self.flushed_at >= SWITCH_SECONDS
        ):
            await self._flush()

    async def _flush(self) -> None:
        batch, self.verified = self.verified, []
        self.flushed_at = time.monotonic()
        if not batch:
            return
        self.lease.check()
        by_source: dict[str, list[_Row]] = {}
        for row in batch:
            by_source.setdefault(row.backend, []).append(row)
        for source, rows in by_source.items():
            switched = {
                record["id"]
                for record in await sql.fetch(
                    "UPDATE stored_objects SET backend = :target "
                    "WHERE backend = :source AND id IN (:ids) RETURNING id",
                    {"target": self.target, "source": source, "ids": [row.id for row in rows]},
                )
            }
            for row in rows:
                if row.id in switched:
                    self.report.copied += 1
                    self.report.copied_bytes += row.size
                    self._done(row)
                elif not await StoredObject.exists(id=row.id):
                    # Deleted (purged) after its copy: the copy would be an orphan. A purge
                    # deleting it after the switch names the target in its job instead.
                    await self._discard(row)
                    self._gone(row)
                else:
                    self._done(row)

    async def _discard(self, row: _Row) -> None:
        """Delete the copy at the target, unless the row names the target (then the copy is
        the object)."""
        if await StoredObject.exists(id=row.id, backend=self.target):
            return
        # Should it fail: an orphan for `holdfast storage orphans --delete`.
        with contextlib.suppress(*_RETRIED):
            await self.target_provider.delete(row.key)

    def _failed(self, row: _Row, reason: str) -> None:
        self.report.failed.append(Failure(row.key, row.backend, reason))
        self._done(row)

    def _gone(self, row: _Row) -> None:
        self.report.gone += 1
        self._done(row)

    def _done(self, row: _Row) -> None:
        self.done_objects += 1
        self.done_bytes += row.size
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(
                MoveProgress(
                    total_objects=self.total_objects,
                    total_bytes=self.total_bytes,
                    done_objects=self.done_objects,
                    done_bytes=self.done_bytes,
                    failed=len(self.report.failed),
                )
            )


def _check(row: _Row, size: int, sha256: str | None, where: str) -> None:
    if size != row.size or sha256 != row.sha256:
        raise _Mismatch(
            f"{where}: {size} bytes, SHA-256 {sha256 or 'unknown'}; recorded: {row.size} "
            f"bytes, SHA-256 {row.sha256}"
        )


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first error of a task group's, however deeply nested."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
