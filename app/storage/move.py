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
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tortoise.functions import Count, Sum

from app import sql
from app.models import MoveState, StorageMove, StoredObject
from app.storage import Storage
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


class MoveError(Exception):
    """The move cannot start: an unknown target, or a move to another target is running."""


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
    elapsed: float = 0.0
    finished: bool = False
    """No object is left elsewhere: the move is marked finished."""

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


async def abandon(target: str) -> bool:
    """Give up the running move to `target`: new writes go to the default again. Objects
    already moved stay where their rows say. False when no such move is running."""
    updated = await StorageMove.filter(target=target, state=MoveState.RUNNING).update(
        state=MoveState.ABANDONED, finished_at=datetime.now(UTC)
    )
    return updated > 0


async def move(
    storage: Storage,
    target: str,
    *,
    concurrency: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[MoveProgress], None] | None = None,
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> MoveReport:
    """Copy every object not yet at the backend `target` there, verified, switching each
    row as its copy is confirmed; resume the running move to `target` if there is one.

    MoveError when `target` is not a configured backend or another move is running. A
    provider error on one object is retried after each of `retry_delays`, then the object
    counts as failed and the run goes on. `dry_run` counts what would move and changes
    nothing.
    """
    if target not in storage.backends:
        known = ", ".join(sorted(storage.backends))
        raise MoveError(f"no storage backend {target!r} is configured (known: {known})")
    running = await running_move()
    if running is not None and running.target != target:
        raise MoveError(
            f"a move to {running.target!r} is running (started "
            f"{running.started_at:%Y-%m-%d %H:%M} UTC): finish it with "
            f"`holdfast storage migrate --to {running.target}`, "
            f"or give it up with `--to {running.target} --abandon`"
        )
    report = MoveReport(target=target, dry_run=dry_run, default=storage.settings.default)
    started = time.monotonic()
    report.skipped = await StoredObject.filter(backend=target).count()
    report.remaining, report.remaining_bytes = await _left(target)
    if dry_run:
        return report
    if running is None:
        await _start(storage, target)
    copier = _Copier(
        storage,
        target,
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
    report.remaining, report.remaining_bytes = await _left(target)
    if report.remaining == 0:
        await StorageMove.filter(target=target, state=MoveState.RUNNING).update(
            state=MoveState.FINISHED, finished_at=datetime.now(UTC)
        )
        report.finished = True
    report.elapsed = time.monotonic() - started
    return report


async def _start(storage: Storage, target: str) -> None:
    created = await StorageMove.create(target=target, from_default=storage.settings.default)
    # Two `migrate` runs started together could each see no running move: the older row
    # wins, the newer one steps aside.
    other = (
        await StorageMove.filter(state=MoveState.RUNNING, id__lt=created.id)
        .exclude(target=target)
        .first()
    )
    if other is not None:
        await StorageMove.filter(id=created.id).update(state=MoveState.ABANDONED)
        raise MoveError(f"a move to {other.target!r} started at the same time")


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
        async with asyncio.TaskGroup() as tasks:
            async for row in self._rows():
                await slots.acquire()
                task = tasks.create_task(self._move_one(row))
                task.add_done_callback(lambda _: slots.release())
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
                    await self._discard(row.key)
                    self._failed(row, str(exc))
                    return
            except _PERMANENT as exc:
                self._failed(row, _reason(exc))
                return
            except ProviderError as exc:
                if errors >= len(self.retry_delays):
                    self._failed(row, _reason(exc))
                    return
                await asyncio.sleep(self.retry_delays[errors])
                errors += 1
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
                elif not await StoredObject.filter(key=row.key).exists():
                    # Deleted while it was copied: the copy would be an orphan.
                    await self._discard(row.key)
                self._done(row)

    async def _discard(self, key: str) -> None:
        # Should it fail: an orphan for `holdfast storage orphans --delete`.
        with contextlib.suppress(ProviderError):
            await self.target_provider.delete(key)

    def _failed(self, row: _Row, reason: str) -> None:
        self.report.failed.append(Failure(row.key, row.backend, reason))
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


def _reason(exc: ProviderError) -> str:
    return f"{type(exc).__name__}: {exc}"
