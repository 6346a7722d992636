"""`holdfast storage`: move stored objects to another backend, verify, orphans, status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import _database, _run, _settings, _size, cli
from app.settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    from app.models import StorageMove
    from app.storage import Storage
    from app.storage.audit import Audit, BackendTotal, Deletion, Orphan
    from app.storage.move import MoveReport


storage_cli = typer.Typer(help="Stored objects: move them to another backend, check them.")
cli.add_typer(storage_cli, name="storage")


@asynccontextmanager
async def _storage(settings: Settings, *, role: str | None) -> AsyncIterator[Storage]:
    """The database open and every configured storage backend."""
    from app.storage import Storage
    from providers.errors import ConfigurationError

    try:
        # Opening the backends checks their providers and options.
        storage = Storage(settings.storage)
    except ConfigurationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        async with _database(settings, role=role):
            yield storage
    finally:
        await storage.close()


@storage_cli.command("migrate")
def storage_migrate(
    to: Annotated[str, typer.Option("--to", help="The backend (a name in storage.backends).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would move; change nothing.")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Objects copied at once (default: storage.move_concurrency)."),
    ] = None,
    abandon: Annotated[
        bool,
        typer.Option(
            "--abandon",
            help="Give up the newest move if it goes to this backend, running or finished: "
            "new writes go to the default again (objects already moved stay readable where "
            "they are).",
        ),
    ] = False,
) -> None:
    """Copy every stored object to another backend, verified (size and SHA-256), switching
    each object's record as its copy is confirmed. Safe to interrupt at any moment: run it
    again to resume. New writes go to that backend as soon as the move starts. Exits 0 when
    everything was copied (finished, or waiting for writes begun before the move: run it
    again later), 1 when objects failed, 2 when it cannot start (another run holds the
    storage lease), 3 when it stopped on an unexpected error."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from app.models import MoveState
    from app.storage.move import MoveAborted, MoveError, MoveProgress, move
    from app.storage.move import abandon as give_up

    settings = _settings()

    if abandon:

        async def stop() -> tuple[MoveState | None, str]:
            async with _storage(settings, role=None) as storage:  # updates one row
                return await give_up(to), await storage.write_target()

        was, write_target = _run(stop)
        if was is None:
            typer.echo(f"holdfast: the newest move is no move to {to!r} to give up", err=True)
            raise typer.Exit(1)
        typer.echo(f"move to {to} ({was.value}) abandoned: new objects go to {write_target}")
        return

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    volume = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    )
    tasks: dict[str, TaskID] = {}

    def show(state: MoveProgress) -> None:
        if not tasks:
            tasks["objects"] = progress.add_task("objects", total=state.total_objects, failed=0)
            tasks["bytes"] = volume.add_task("bytes  ", total=state.total_bytes)
        progress.update(tasks["objects"], completed=state.done_objects, failed=state.failed)
        volume.update(tasks["bytes"], completed=state.done_bytes)

    async def run() -> MoveReport:
        async with _storage(settings, role=None if dry_run else "storage migrate") as storage:
            if dry_run:
                return await move(storage, to, dry_run=True)
            with Live(Group(progress, volume), console=console, refresh_per_second=4):
                return await move(
                    storage,
                    to,
                    concurrency=concurrency,
                    on_progress=show,
                    upload_url_ttl=settings.media.upload_url_ttl,
                )

    try:
        report = _run(run)
    except MoveError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: every object recorded at {to} was verified there, the rest are "
            f"where they were; run `holdfast storage migrate --to {to}` again to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    except Exception as exc:
        reason = str(exc) if isinstance(exc, MoveAborted) else f"{type(exc).__name__}: {exc}"
        typer.echo(
            f"holdfast: the move stopped on an error: {reason}\nevery object recorded at {to} "
            f"was verified there, the rest are where they were; once the cause is fixed, run "
            f"`holdfast storage migrate --to {to}` again to resume",
            err=True,
        )
        raise typer.Exit(3) from None
    _print_move_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_move_report(report: MoveReport) -> None:
    target = report.target
    if report.dry_run:
        typer.echo(
            f"dry run: {report.remaining:,} objects ({_size(report.remaining_bytes)}) would be "
            f"copied to {target}; {report.skipped:,} are there already"
        )
        return
    typer.echo(
        f"copied {report.copied:,} objects ({_size(report.copied_bytes)}) to {target} in "
        f"{report.elapsed:.1f} s: {report.objects_per_second:,.1f} objects/s, "
        f"{report.megabytes_per_second:,.1f} MB/s"
    )
    typer.echo(f"already at {target}: {report.skipped:,}")
    typer.echo(f"failed: {len(report.failed):,}")
    for failure in report.failed:
        typer.echo(f"  {failure.key} (at {failure.backend}): {failure.reason}")
    if report.gone:
        typer.echo(f"deleted while moving (nothing to move): {report.gone:,}")
    typer.echo(f"left elsewhere: {report.remaining:,} ({_size(report.remaining_bytes)})")
    if report.finished:
        step = report.next_step()
        typer.echo(
            f"move finished; last step: {step}"
            if step
            else f"move finished; {target} is the default already"
        )
        typer.echo(
            "source objects were not deleted: once `holdfast storage verify` is clean but for "
            "them, remove them with `holdfast storage orphans --delete`, or close the old "
            "account"
        )
    elif report.ok:
        when = (
            f"after {report.retry_after:%Y-%m-%d %H:%M} UTC"
            if report.retry_after
            else "in a few minutes"
        )
        typer.echo(
            f"all copied; not finished yet because {'; and '.join(report.waiting)}; new "
            f"objects go to {report.write_target}; run `holdfast storage migrate --to "
            f"{target}` again {when} (do not close the old account before the move is "
            "finished)"
        )
    else:
        typer.echo(
            f"move not finished: new objects go to {report.write_target}; run "
            f"`holdfast storage migrate --to {target}` again"
        )


@storage_cli.command("verify")
def storage_verify(
    deep: Annotated[
        bool, typer.Option("--deep", help="Read every object and hash it (not only its head).")
    ] = False,
) -> None:
    """Check every record against its backend and every backend against the records: lists
    missing, differing and orphaned objects, and records left at another backend than a
    finished move's target (stragglers); exits 1 when there is any."""
    from app.services.media import inflight_keys
    from app.storage.audit import reserved_prefixes, verify

    settings = _settings()

    async def check() -> Audit:
        async with _storage(settings, role=None) as storage:  # reads only
            return await verify(
                storage, deep=deep, keep=inflight_keys, reserved=reserved_prefixes(settings)
            )

    audit = _run(check)
    for missing in audit.missing:
        typer.echo(f"missing    {missing.backend}  {missing.key}: {missing.reason}")
    for differing in audit.differing:
        typer.echo(
            f"differing  {differing.backend}  {differing.key}: {differing.size} bytes, "
            f"SHA-256 {differing.sha256 or 'unknown'} (recorded: {differing.recorded_size} "
            f"bytes, SHA-256 {differing.recorded_sha256})"
        )
    for orphan in audit.orphans:
        typer.echo(_orphan_line(orphan))
    for straggler in audit.stragglers:
        typer.echo(
            f"straggler  {straggler.backend}  {straggler.key}: not at {straggler.target}, where "
            f"the finished move put everything (`holdfast storage migrate --to "
            f"{straggler.target}` moves it)"
        )
    stragglers = f", {len(audit.stragglers):,} stragglers" if audit.stragglers else ""
    typer.echo(
        f"checked {audit.checked:,} objects: {len(audit.missing):,} missing, "
        f"{len(audit.differing):,} differing, {len(audit.orphans):,} orphaned{stragglers}"
    )
    if not audit.clean:
        raise typer.Exit(1)


def _orphan_line(orphan: Orphan) -> str:
    where = (
        f" (recorded in {orphan.recorded_in}: a copy left by a move)"
        if orphan.recorded_in
        else " (no record)"
    )
    return f"orphan     {orphan.backend}  {orphan.key}: {_size(orphan.size)}{where}"


@storage_cli.command("orphans")
def storage_orphans(
    delete: Annotated[bool, typer.Option("--delete", help="Delete them.")] = False,
) -> None:
    """List objects no record places where they are (a crash between upload and record, or
    copies a move left at the old backend); `--delete` removes them. Listing exits 0 whatever
    it finds (`holdfast storage verify` exits 1 on orphans); `--delete` exits 1 when some
    could not be deleted, 2 while a `storage migrate` or another deletion runs."""
    from app.services.media import inflight_keys
    from app.storage.audit import OrphansBusy, delete_orphans, find_orphans, reserved_prefixes
    from app.storage.lease import LeaseLost

    settings = _settings()
    backups = reserved_prefixes(settings)  # objects without rows by design

    async def clean() -> tuple[list[Orphan], Deletion | None]:
        async with _storage(settings, role=None) as storage:  # deletes only
            found = await find_orphans(storage, keep=inflight_keys, reserved=backups)
            if not delete:
                return found, None
            return found, await delete_orphans(storage, found, keep=inflight_keys, reserved=backups)

    try:
        found, deletion = _run(clean)
    except OrphansBusy as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except LeaseLost as exc:
        typer.echo(f"holdfast: stopped deleting: {exc}; run it again", err=True)
        raise typer.Exit(1) from None
    for orphan in found:
        typer.echo(_orphan_line(orphan))
    if deletion is None:
        typer.echo(f"{len(found):,} orphans")
        return
    for orphan, reason in deletion.failed:
        typer.echo(f"not deleted  {orphan.backend}  {orphan.key}: {reason}")
    typer.echo(
        f"deleted {len(deletion.deleted):,} of {len(found):,} orphans"
        + (f"; {len(deletion.failed):,} failed" if deletion.failed else "")
        + (f"; {len(deletion.kept):,} no longer orphans" if deletion.kept else "")
    )
    if deletion.failed:
        raise typer.Exit(1)


@storage_cli.command("status")
def storage_status() -> None:
    """Objects and bytes recorded per backend, the default, where new objects go, the move in
    progress and who holds the storage lease."""
    from app.storage import lease
    from app.storage.audit import steering_target, totals
    from app.storage.move import running_move

    settings = _settings()

    async def read() -> tuple[
        list[BackendTotal], StorageMove | None, str, str | None, tuple[str, datetime] | None
    ]:
        async with _storage(settings, role=None) as storage:  # reads only
            return (
                await totals(),
                await running_move(),
                await storage.write_target(),
                await steering_target(storage),
                await lease.holder(),
            )

    counts, running, write_target, steering, holder = _run(read)
    recorded = {total.backend: total for total in counts}
    for name in sorted(settings.storage.backends.keys() | recorded.keys()):
        total = recorded.get(name)
        objects, size = (total.objects, total.bytes) if total else (0, 0)
        notes = []
        if name == settings.storage.default:
            notes.append("default")
        if name == write_target:
            notes.append("new objects go here")
        if name not in settings.storage.backends:
            notes.append("NOT CONFIGURED")
        if steering is not None and name != steering and objects:
            notes.append(f"left behind by the finished move to {steering}: migrate again")
        note = f"  ({', '.join(notes)})" if notes else ""
        typer.echo(f"{name:<16} {objects:>10,} objects {_size(size):>12}{note}")
    if running is not None:
        typer.echo(
            f"move to {running.target} running since {running.started_at:%Y-%m-%d %H:%M} UTC "
            f"(`holdfast storage migrate --to {running.target}` resumes it)"
        )
    else:
        typer.echo("no move running")
    if holder is not None:
        typer.echo(f"storage lease held by {holder[0]} until {holder[1]:%Y-%m-%d %H:%M:%S} UTC")
