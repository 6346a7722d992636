"""The `holdfast` command: serve, worker, migrate, users create-admin, seed, timelines
rebuild/trim, jobs status/retry-dead, storage migrate/verify/orphans/status, payments
sync/reconcile/migrate/report, fleet plan/apply/status, dns export, backup
create/list/restore/prune, scheduler, evacuate."""

from __future__ import annotations

import asyncio
import getpass
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from app.settings import RESTORE_DATABASE_URL_ENV, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from datetime import datetime

    from app.hosting.backup import BackupInfo, RestoreReport
    from app.models import StorageMove
    from app.services import Services
    from app.services.billing_switch import SwitchReport
    from app.storage import Storage
    from app.storage.audit import Audit, BackendTotal, Deletion, Orphan
    from app.storage.move import MoveReport
    from providers.storage.base import StorageProvider

T = TypeVar("T")

# No locals in tracebacks: they may hold passwords and keys.
cli = typer.Typer(
    help="Holdfast: a social network backend that can leave any vendor.",
    pretty_exceptions_show_locals=False,
)
users_cli = typer.Typer(help="Manage accounts.")
cli.add_typer(users_cli, name="users")
timelines_cli = typer.Typer(help="Maintain home timelines.")
cli.add_typer(timelines_cli, name="timelines")
jobs_cli = typer.Typer(help="Inspect background jobs.")
cli.add_typer(jobs_cli, name="jobs")
storage_cli = typer.Typer(help="Stored objects: move them to another backend, check them.")
cli.add_typer(storage_cli, name="storage")
payments_cli = typer.Typer(
    help="Premium subscriptions: plans at the processors, missed events, moving subscribers "
    "to another processor."
)
cli.add_typer(payments_cli, name="payments")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(make: Callable[[], Awaitable[T]]) -> T:
    from app.nodes import NodeLeaseError

    async def wrapped() -> T:
        return await make()

    try:
        return asyncio.run(wrapped())
    except NodeLeaseError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None


@asynccontextmanager
async def _database(settings: Settings, *, role: str | None) -> AsyncIterator[None]:
    """The database open, and a node id held for `role`; None for a command that makes no
    ids (it would only keep a node id from others, and fail when all are held)."""
    from tortoise import Tortoise

    from app import nodes
    from app.db import tortoise_config

    await Tortoise.init(config=tortoise_config(settings))
    try:
        if role is None:
            yield
        else:
            async with nodes.hold(settings, role=role):
                yield
    finally:
        await Tortoise.close_connections()


@asynccontextmanager
async def _services(settings: Settings, *, role: str | None) -> AsyncIterator[Services]:
    """The database, the services and their pub/sub, as a serving process has them."""
    from app.services import Services

    services = Services.from_settings(settings)
    async with _database(settings, role=role):
        await services.pubsub.start()
        try:
            yield services
        finally:
            await services.close()


@cli.command()
def migrate() -> None:
    """Apply the database migrations that have not been applied yet."""
    from app.db import migrate as apply

    settings = _settings()
    _run(lambda: apply(settings))
    typer.echo("migrations applied")


@cli.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default: HOLDFAST_PORT or 8000).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: HOLDFAST_HOST).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    migrate_first: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations before serving (default: only for the embedded SQLite).",
        ),
    ] = None,
) -> None:
    """Serve the API (GraphQL at /graphql)."""
    import uvicorn

    from app.db import migrate as apply
    from app.logs import configure_logging

    settings = _settings()
    if workers < 1:
        typer.echo("holdfast: --workers must be at least 1", err=True)
        raise typer.Exit(2)
    if settings.node_id is not None and workers > 1:
        # Every worker process reads the same environment, so all would make ids with one node
        # id: the same id twice in one millisecond.
        typer.echo(
            f"holdfast: HOLDFAST_NODE_ID gives all {workers} --workers the same node id; "
            "unset it (each worker then leases its own) or run one process per assigned id",
            err=True,
        )
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    if migrate_first is None:
        migrate_first = settings.effective_database_url.startswith("sqlite://")
    if migrate_first:
        _run(lambda: apply(settings))
    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        # On SIGTERM: stop accepting, let requests in flight finish for this long, then the
        # lifespan closes (the node id is given back).
        timeout_graceful_shutdown=settings.http.graceful_shutdown_seconds,
        # Keep-alive for subscriptions: uvicorn pings, and closes a socket whose pong is late.
        ws_ping_interval=settings.live.ping_interval,
        ws_ping_timeout=settings.live.ping_timeout,
        # A WebSocket message is held to what a request body is.
        ws_max_size=settings.http.max_body_bytes,
    )


@cli.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs at once (default: HOLDFAST_JOBS__CONCURRENCY).")
    ] = None,
) -> None:
    """Run background jobs (no HTTP) until SIGTERM or SIGINT, then stop gracefully: running
    jobs get HOLDFAST_JOBS__SHUTDOWN_GRACE_SECONDS to finish, the rest go back to the queue."""
    from app.logs import configure_logging

    settings = _settings()
    if concurrency is not None:
        if concurrency < 1:
            typer.echo("holdfast: --concurrency must be at least 1", err=True)
            raise typer.Exit(2)
        jobs = settings.jobs.model_copy(update={"concurrency": concurrency})
        settings = settings.model_copy(update={"jobs": jobs})
    configure_logging(settings.log_level)

    async def work() -> None:
        async with _services(settings, role="worker") as services:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await services.jobs.start(services.changes)
            try:
                await stop.wait()
            finally:
                await services.jobs.stop()

    _run(work)


@users_cli.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="3 to 30 letters, digits or underscores.")],
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    display_name: Annotated[str | None, typer.Option(help="Defaults to the username.")] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input instead of a prompt.")
    ] = False,
) -> None:
    """Create an account with the admin role."""
    from app.changes import Changes
    from app.errors import DomainError
    from app.models import Role
    from app.pubsub import LocalPubSub
    from app.ratelimit import RateLimiter
    from app.services.accounts import AccountService

    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            typer.echo("holdfast: the passwords differ", err=True)
            raise typer.Exit(1)

    async def create() -> int:
        async with _database(settings, role="users create-admin"):
            # A new account has no sessions: nothing to announce to anyone.
            changes = Changes(LocalPubSub())
            accounts = AccountService(settings, RateLimiter.from_settings(settings), changes)
            user = await accounts.create_user(
                username=username,
                email=email,
                password=password,
                display_name=display_name or username,
                role=Role.ADMIN,
            )
            return int(user.id)

    try:
        user_id = _run(create)
    except DomainError as exc:
        typer.echo(f"holdfast: {exc.field or 'error'}: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created admin {username} (id {user_id})")


@cli.command()
def seed(
    users: Annotated[int, typer.Option(help="Accounts to create (user00001, ...).")] = 1_000,
    posts: Annotated[int, typer.Option(help="Posts to create over the last 30 days.")] = 50_000,
    random_seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same options give the same data.")
    ] = 1,
    subscribers_share: Annotated[
        float | None,
        typer.Option(help="Share of posts for subscribers (default 0.05).", show_default=False),
    ] = None,
    premium_share: Annotated[
        float | None,
        typer.Option(
            help="Share of accounts with premium access (default 0.1).", show_default=False
        ),
    ] = None,
) -> None:
    """Fill an empty database with a realistic synthetic data set (benchmarks, demos)."""
    from dataclasses import replace

    from app.db import migrate as apply
    from app.seed import SeedError, SeedOptions
    from app.seed import seed as run_seed

    settings = _settings()
    options = SeedOptions(users=users, posts=posts, seed=random_seed)
    if subscribers_share is not None:
        options = replace(options, subscribers_share=subscribers_share)
    if premium_share is not None:
        options = replace(options, premium_share=premium_share)

    async def fill() -> str:
        await apply(settings)
        async with _database(settings, role="seed"):
            report = await run_seed(settings, options, progress=typer.echo)
            return report.summary()

    try:
        summary = _run(fill)
    except SeedError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"seeded {summary}")
    typer.echo(f"every account's password: {options.password}")


@timelines_cli.command("rebuild")
def rebuild_timelines(
    username: Annotated[
        str | None, typer.Option(help="One account's home timeline (default: every account).")
    ] = None,
    enqueue: Annotated[
        bool, typer.Option(help="Record one background job per account instead of waiting.")
    ] = False,
) -> None:
    """Rebuild home timelines from the follow graph (after a restore, or a fan-out fault)."""
    from app.models import User
    from app.services import fanout

    settings = _settings()
    limits = settings.timelines

    async def owners_of() -> list[int]:
        query = User.all() if username is None else User.filter(username_key=username.lower())
        return [user.id for user in await query.only("id")]

    async def record() -> tuple[int, int]:
        async with _services(settings, role="timelines rebuild") as services:
            owners = await owners_of()
            return len(owners), len(await services.rebuilds.enqueue_home_rebuilds(owners))

    async def rebuild() -> tuple[int, int]:
        async with _database(settings, role="timelines rebuild"):
            owners = await owners_of()
            entries = 0
            for owner in owners:
                entries += await fanout.rebuild_home(
                    owner,
                    max_entries=limits.home_max_entries,
                    big_account=limits.fanout_max_followers,
                )
            return len(owners), entries

    accounts, count = _run(record if enqueue else rebuild)
    if username is not None and accounts == 0:
        typer.echo(f"holdfast: no account {username!r}", err=True)
        raise typer.Exit(1)
    if enqueue:
        typer.echo(f"queued {count} home timeline rebuilds")
    else:
        typer.echo(f"rebuilt {accounts} home timelines ({count} entries)")


@timelines_cli.command("trim")
def trim_timelines() -> None:
    """Cut every home timeline to its newest HOLDFAST_TIMELINES__HOME_MAX_ENTRIES entries."""
    from app.services import fanout

    settings = _settings()

    async def trim() -> int:
        async with _database(settings, role=None):  # deletes only
            return await fanout.trim_homes(settings.timelines.home_max_entries)

    typer.echo(f"trimmed {_run(trim)} entries")


@jobs_cli.command("status")
def jobs_status() -> None:
    """How many jobs are pending, running, done (kept a while) and dead."""
    from app.jobs import outbox
    from app.models import JobState

    settings = _settings()

    async def count() -> dict[str, int]:
        async with _database(settings, role=None):  # reads only
            return await outbox.counts()

    counts = _run(count)
    typer.echo(" ".join(f"{state.value}={counts.get(state.value, 0)}" for state in JobState))


@jobs_cli.command("run")
def jobs_run() -> None:
    """Work every job that is due now in the foreground, then exit (a drain before
    maintenance, or cron on a small install); failed ones wait for their retry."""
    settings = _settings()

    async def work() -> int:
        async with _services(settings, role="jobs run") as services:
            return await services.jobs.run_due(services.changes)

    typer.echo(f"ran {_run(work)} jobs")


@jobs_cli.command("retry-dead")
def jobs_retry_dead(
    name: Annotated[str | None, typer.Option(help="Only jobs of this name.")] = None,
) -> None:
    """Give dead jobs (after the fault that killed them is fixed) a fresh set of attempts."""
    from app.jobs import outbox

    settings = _settings()

    async def retry() -> int:
        # Updates rows and wakes workers: no ids made.
        async with _services(settings, role=None) as services:
            revived = await outbox.retry_dead(name)
            if revived:
                await services.jobs.hand_over()
            return revived

    typer.echo(f"{_run(retry)} dead jobs pending again")


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


def _size(count: int) -> str:
    if count < 1000:
        return f"{count:,} B"
    value = count / 1000
    units = ["KB", "MB", "GB"]
    while value >= 1000 and len(units) > 1:
        value /= 1000
        units.pop(0)
    return f"{value:,.1f} {units[0]}"


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


# --- payments ------------------------------------------------------------------------------


@asynccontextmanager
async def _payments(settings: Settings, *, role: str | None) -> AsyncIterator[Services]:
    """The services with every configured payment provider open (a bad provider or option:
    exit 2, naming it)."""
    from app.services import Services
    from providers.errors import ConfigurationError

    try:
        services = Services.from_settings(settings)
    except ConfigurationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    async with _database(settings, role=role):
        await services.pubsub.start()
        try:
            yield services
        finally:
            await services.close()


def _unknown_configuration(names: list[str], known: list[str]) -> None:
    unknown = [name for name in names if name not in known]
    if unknown:
        configured = ", ".join(known) or "none"
        typer.echo(
            f"holdfast: no payment configuration {unknown[0]!r} (configured: {configured})",
            err=True,
        )
        raise typer.Exit(2)


@payments_cli.command("sync")
def payments_sync(
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", help="Only this configuration (repeatable; default: all)."),
    ] = None,
) -> None:
    """Copy the configured plans into the ledger and create or update the matching objects
    at each payment provider (idempotent: run it after changing plans)."""
    settings = _settings()
    _unknown_configuration(provider or [], list(settings.payments.providers))

    async def sync() -> tuple[int, dict[str, dict[str, str]]]:
        async with _payments(settings, role="payments sync") as services:
            result = await services.billing.sync(provider or None)
            return len(await services.billing.plans()), result

    plans, result = _run(sync)
    typer.echo(f"plans: {plans}")
    for name, ids in result.items():
        typer.echo(f"{name}: {len(ids)} objects at the provider")


@payments_cli.command("reconcile")
def payments_reconcile(
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this configuration (default: all).")
    ] = None,
) -> None:
    """Pull each provider's events since the last one seen and apply those missed (webhooks
    that never arrived); prints how many were new."""
    settings = _settings()
    names = [provider] if provider is not None else list(settings.payments.providers)
    _unknown_configuration(names, list(settings.payments.providers))

    async def reconcile() -> dict[str, int]:
        async with _payments(settings, role="payments reconcile") as services:
            counts = {name: await services.billing.ledger.reconcile(name) for name in names}
            # Apply what was recorded now, as a worker would a moment later.
            await services.jobs.run_due(services.changes)
            return counts

    for name, new in _run(reconcile).items():
        typer.echo(f"{name}: {new} new events")


@payments_cli.command("migrate")
def payments_migrate(
    source: Annotated[str, typer.Option("--from", help="The configuration being left.")],
    target: Annotated[str, typer.Option("--to", help="The configuration to move to.")],
) -> None:
    """Move every subscriber of one payment configuration to another: their subscriptions
    renew no more (the old provider is told so by retried jobs, and the move goes on when it
    does not answer), they keep access to the end of what they paid, and each is asked to
    subscribe again through the new one. Idempotent: run it again to mark newcomers and see
    who has moved. Set the old configuration's accept_new to false first."""
    _switch(source, target, migrate=True)


@payments_cli.command("report")
def payments_report(
    source: Annotated[str, typer.Option("--from", help="The configuration being left.")],
    target: Annotated[str, typer.Option("--to", help="The configuration moved to.")],
) -> None:
    """Who of a move's subscribers has subscribed through the new configuration, and who has
    not yet (with when their access ends); changes nothing."""
    _switch(source, target, migrate=False)


def _switch(source: str, target: str, *, migrate: bool) -> None:
    from app.errors import DomainError
    from app.models import Subscription

    settings = _settings()
    _unknown_configuration([target], list(settings.payments.providers))

    async def run() -> tuple[SwitchReport, dict[int, str]]:
        from app.models import User

        role = "payments migrate" if migrate else None
        async with _payments(settings, role=role) as services:
            # A configuration already removed from the settings may still have subscribers.
            if source not in services.payments.providers and not await Subscription.exists(
                provider=source
            ):
                _unknown_configuration([source], list(services.payments.providers))
            if migrate:
                report = await services.billing.switch.run(source, target)
            else:
                report = await services.billing.switch.report(source, target)
            ids = {u for u, _ in report.moved} | {u for u, _, _ in report.waiting}
            names = dict(await User.filter(id__in=list(ids)).values_list("id", "username"))
            return report, names

    try:
        report, names = _run(run)
    except DomainError as exc:
        typer.echo(f"holdfast: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if migrate:
        typer.echo(f"marked {report.marked} subscriptions of {source} to go on through {target}")
    typer.echo(f"moved to {target}: {len(report.moved)}")
    for user_id, sub_id in report.moved:
        typer.echo(f"  {names.get(user_id, '?')} (user {user_id}): subscription {sub_id}")
    typer.echo(f"not yet: {len(report.waiting)}")
    for user_id, _, until in report.waiting:
        when = until.isoformat(timespec="seconds") if until is not None else "-"
        typer.echo(f"  {names.get(user_id, '?')} (user {user_id}): access until {when}")


def main() -> None:
    cli()


# --- fleet (app/hosting/fleet.py) --------------------------------------------------------

fleet_cli = typer.Typer(
    help="The fleet of machines at a compute configuration: plan, apply, status, destroy."
)
cli.add_typer(fleet_cli, name="fleet")

_COMPUTE_OPTION = typer.Option(
    "--compute", help="The compute configuration (default: compute.active)."
)


def _compute_name(settings: Settings, compute: str | None) -> str:
    """The configuration asked for, or the active one; exit 2 naming the choices if none."""
    name = compute or settings.compute.active
    known = ", ".join(sorted(settings.compute.providers)) or "none"
    if name is None:
        typer.echo(
            "holdfast: no compute configuration given and compute.active is not set "
            f"(configured: {known})",
            err=True,
        )
        raise typer.Exit(2)
    if name not in settings.compute.providers:
        typer.echo(f"holdfast: no compute configuration {name!r} (configured: {known})", err=True)
        raise typer.Exit(2)
    return name


def _fleet_run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a fleet command: a vendor failure exits 1 with its message, a configuration
    error 2."""
    from app.hosting.fleet import FleetError
    from providers.errors import ConfigurationError, ProviderError

    try:
        return _run(make)
    except (ConfigurationError, FleetError) as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except ProviderError as exc:
        typer.echo(f"holdfast: the compute provider failed: {exc}", err=True)
        raise typer.Exit(1) from None


@fleet_cli.command("plan")
def fleet_plan(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
) -> None:
    """Show what `fleet apply` would create and destroy; changes nothing."""
    from app.hosting import fleet

    settings = _settings()
    name = _compute_name(settings, compute)

    async def run() -> fleet.FleetPlan:
        provider = fleet.open_compute(settings, name)
        try:
            return await fleet.plan(settings, name, provider)
        finally:
            await provider.close()

    typer.echo(_fleet_run(run).render())


@fleet_cli.command("apply")
def fleet_apply(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Apply without asking.")] = False,
) -> None:
    """Converge the fleet to its settings (create missing nodes, replace broken ones,
    destroy surplus ones; never a node without our tags), then record every node in the
    database. Idempotent: run it again after an interruption."""
    from app.hosting import fleet
    from providers.errors import ProviderError

    settings = _settings()
    name = _compute_name(settings, compute)

    async def make_plan() -> fleet.FleetPlan:
        provider = fleet.open_compute(settings, name)
        try:
            return await fleet.plan(settings, name, provider)
        finally:
            await provider.close()

    planned = _fleet_run(make_plan)
    typer.echo(planned.render())
    # Asked between two event loops, never inside one: a prompt blocks the loop's thread.
    if planned.changes and not yes and not typer.confirm("Apply these changes?"):
        raise typer.Exit(1)

    async def run() -> tuple[fleet.FleetPlan, list[str]]:
        provider = fleet.open_compute(settings, name)
        try:
            failed: ProviderError | None = None
            try:
                done = await fleet.apply(settings, name, provider, planned=planned)
            except ProviderError as exc:
                # What was created before the failure is recorded all the same.
                failed, done = exc, planned
            async with _database(settings, role="fleet apply"):
                rows = await fleet.record(name, provider, settings.fleet.name)
            if failed is not None:
                raise failed
            return done, [f"{row.name} {row.external_id} {row.state}" for row in rows]
        finally:
            await provider.close()

    done, rows = _fleet_run(run)
    typer.echo(f"created {len(done.create)}, destroyed {len(done.destroy)}")
    typer.echo(f"recorded {len(rows)} nodes")


@fleet_cli.command("destroy")
def fleet_destroy(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Destroy without asking.")] = False,
) -> None:
    """Destroy this deployment's fleet at a compute configuration: every node carrying our
    fleet and configuration tags, nothing else (machines made by hand or by another
    deployment stay), then record them as destroyed in the database."""
    from app.hosting import fleet
    from providers.compute.base import Node
    from providers.errors import ProviderError

    settings = _settings()
    name = _compute_name(settings, compute)

    async def listed() -> list[Node]:
        provider = fleet.open_compute(settings, name)
        try:
            return await provider.list_nodes(fleet.fleet_tags(settings.fleet.name, name))
        finally:
            await provider.close()

    nodes = _fleet_run(listed)
    typer.echo(f"compute {name}: {len(nodes)} to destroy")
    for node in nodes:
        typer.echo(f"  - {node.name}  {node.id} {node.state.value}")
    if not nodes:
        return
    # Asked between two event loops, never inside one: a prompt blocks the loop's thread.
    if not yes and not typer.confirm("Destroy these nodes?"):
        raise typer.Exit(1)

    async def run() -> int:
        provider = fleet.open_compute(settings, name)
        try:
            failed: ProviderError | None = None
            try:
                # Exactly the nodes shown and confirmed, not whatever is listed by now.
                for node in nodes:
                    await provider.destroy_node(node.id)
            except ProviderError as exc:
                failed = exc  # what was destroyed before the failure is recorded
            async with _database(settings, role="fleet destroy"):
                rows = await fleet.record(name, provider, settings.fleet.name)
            if failed is not None:
                raise failed
            return len(rows)
        finally:
            await provider.close()

    left = _fleet_run(run)
    typer.echo(f"destroyed {len(nodes)}; {left} of our nodes still listed")


@fleet_cli.command("status")
def fleet_status(
    compute: Annotated[str | None, _COMPUTE_OPTION] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the vendor first and record what it says.")
    ] = False,
) -> None:
    """The nodes recorded at a compute configuration (as last seen by `fleet apply` or
    `--refresh`), one per line: role, name, state, public address, vendor id, last seen."""
    from app.hosting import fleet

    settings = _settings()
    name = _compute_name(settings, compute)

    async def run() -> list[str]:
        async with _database(settings, role="fleet status" if refresh else None):
            if refresh:
                provider = fleet.open_compute(settings, name)
                try:
                    await fleet.record(name, provider, settings.fleet.name)
                finally:
                    await provider.close()
            rows = await fleet.recorded(name)
            return [
                "\t".join(
                    (
                        row.role,
                        row.name,
                        row.state,
                        (row.public_ips or ["-"])[0],
                        row.external_id,
                        row.seen_at.isoformat(timespec="seconds"),
                    )
                )
                for row in rows
            ]

    lines = _fleet_run(run)
    typer.echo(f"compute {name}: {len(lines)} nodes")
    for line in lines:
        typer.echo(line)


# --- dns -----------------------------------------------------------------------------------

dns_cli = typer.Typer(help="DNS: the records pointing the service's names at its web nodes.")
cli.add_typer(dns_cli, name="dns")


@dns_cli.command("export")
def dns_export(
    dns: Annotated[
        str | None,
        typer.Option("--dns", help="The DNS configuration (default: dns.active, or the only one)."),
    ] = None,
    zone: Annotated[
        str | None, typer.Option("--zone", help="The zone (default: dns.zone).")
    ] = None,
) -> None:
    """Print the zone as a BIND zone file: keep it, to recreate the zone at another DNS
    vendor (most import this format) if this one goes away."""
    from app.hosting.dns import open_dns
    from providers.errors import ConfigurationError, ProviderError

    settings = _settings()
    configured = sorted(settings.dns.providers)
    name = dns or settings.dns.active or (configured[0] if len(configured) == 1 else None)
    if name is None:
        known = ", ".join(configured) or "none"
        typer.echo(
            f"holdfast: name the DNS configuration with --dns (configured: {known})", err=True
        )
        raise typer.Exit(2)
    zone_name = zone or settings.dns.zone
    if zone_name is None:
        typer.echo("holdfast: name the zone with --zone (dns.zone is not set)", err=True)
        raise typer.Exit(2)

    async def run() -> str:
        provider = open_dns(settings, name)
        try:
            return await provider.export_zone(zone_name)
        finally:
            await provider.close()

    try:
        text = _run(run)
    except ConfigurationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except ProviderError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(text, nl=False)
    skipped = sum(1 for line in text.splitlines() if line.startswith("; skipped "))
    if skipped:
        typer.echo(
            f"holdfast: {skipped} record values could not be read and were left out "
            "(see the `; skipped` lines)",
            err=True,
        )


# Backups and the scheduler (README: Backups)

backup_cli = typer.Typer(help="Database backups in a storage backend: create, list, restore.")
cli.add_typer(backup_cli, name="backup")


def _backup_run(make: Callable[[StorageProvider], Awaitable[T]]) -> T:
    """Run `make` with the backup storage open; a BackupError is a message and exit 1."""
    from app.hosting.backup import BackupError, backup_storage

    settings = _settings()

    async def run() -> T:
        storage = backup_storage(settings)
        try:
            return await make(storage)
        finally:
            await storage.close()

    try:
        return _run(run)
    except BackupError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(1) from None


def _backup_line(backup: BackupInfo) -> str:
    when = backup.created_at.isoformat(timespec="seconds")
    head = backup.migration_head or "-"
    return (
        f"{backup.id}  {when}  {backup.engine:8}  {_size(backup.size):>9}  "
        f"{len(backup.tables)} tables  {backup.rows:,} rows  migration {head}"
        + ("" if backup.user_data else "  (no user data: `restore latest` skips it)")
    )


@backup_cli.command("create")
def backup_create() -> None:
    """Back up the database into the backup storage (backup.storage, else storage.default):
    the dump, then its manifest with every table's row count and checksum."""
    from app.hosting.backup import create_backup

    settings = _settings()
    backup = _backup_run(lambda storage: create_backup(settings, storage))
    typer.echo(f"created {_backup_line(backup)}")


@backup_cli.command("list")
def backup_list() -> None:
    """The backups in the backup storage, newest first (needs no database)."""
    from app.hosting.backup import list_backups

    settings = _settings()
    backups = _backup_run(lambda storage: list_backups(settings, storage))
    if not backups:
        typer.echo("no backups")
    for backup in backups:
        typer.echo(_backup_line(backup))


@backup_cli.command("restore")
def backup_restore(
    backup_id: Annotated[str, typer.Argument(metavar="ID", help="A backup id, or `latest`.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar=RESTORE_DATABASE_URL_ENV,
            show_envvar=True,
            help="The empty database to restore into (default: the configured one). Give a "
            f"URL with a password in {RESTORE_DATABASE_URL_ENV}: a command line is visible to "
            "every user (ps).",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Restore a backup into an empty database (a freshly migrated one is fine), then verify
    every table's row count and checksum against the backup's manifest. Exit 1, with the
    reason, when the database holds rows, the dump is corrupt or a table differs."""
    from urllib.parse import urlsplit

    from app.hosting.backup import BackupError, latest_backup, list_backups, restore_backup
    from app.hosting.databases import display_url

    if (
        database_url is not None
        and database_url != os.environ.get(RESTORE_DATABASE_URL_ENV)
        and urlsplit(database_url).password
    ):
        typer.echo(
            f"holdfast: --database-url has a password, which `ps` shows every user: set "
            f"{RESTORE_DATABASE_URL_ENV} to the URL instead",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings()
    url = database_url or settings.effective_database_url

    async def run(storage: StorageProvider) -> RestoreReport:
        latest = await latest_backup(settings, storage) if backup_id == "latest" else None
        if latest is not None:
            backup = latest
        else:
            backups = await list_backups(settings, storage)
            matching = [backup for backup in backups if backup.id == backup_id]
            if not matching:
                if backup_id == "latest" and backups:
                    raise BackupError("no backup holds user data (holdfast backup list)")
                raise BackupError(f"no backup {backup_id!r} (holdfast backup list)")
            backup = matching[0]
        target = display_url(url)
        if not yes and not typer.confirm(f"Restore backup {backup.id} into {target}?"):
            raise typer.Exit(1)
        return await restore_backup(settings, storage, backup, database_url=url)

    report = _backup_run(run)
    rows = sum(check.rows for check in report.tables.values())
    typer.echo(
        f"restored backup {report.backup.id} into {report.database}: "
        f"{len(report.tables)} tables, {rows:,} rows verified"
    )


@backup_cli.command("prune")
def backup_prune() -> None:
    """Delete the backups the retention policy lets go (all but the newest backup.keep,
    except those younger than backup.keep_days) and dumps of failed backups."""
    from app.hosting.backup import prune

    settings = _settings()
    pruned = _backup_run(lambda storage: prune(settings, storage))
    typer.echo(f"pruned {len(pruned)} backups")
    for backup in pruned:
        typer.echo(f"  {_backup_line(backup)}")


@cli.command()
def scheduler() -> None:
    """Run the fleet's one scheduler until SIGTERM or SIGINT: it enqueues a backup every
    backup.every_hours. A second scheduler started by mistake waits for the first's lease."""
    from app.hosting.schedule import run_scheduler
    from app.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level)

    async def schedule() -> None:
        async with _services(settings, role="scheduler") as services:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await run_scheduler(settings, services.changes, stop)

    _run(schedule)


# --- evacuate ------------------------------------------------------------------------------


@cli.command()
def evacuate(
    to: Annotated[str, typer.Option("--to", help="The compute configuration to move to.")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="The configuration being left (default: compute.active)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="The run's state file (default: data_dir/evacuation-<to>.json)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what each step would do; change nothing.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Begin a new run over a recorded one.")
    ] = False,
    old_gone: Annotated[
        bool,
        typer.Option(
            "--old-gone",
            help="The old vendor is gone for good: restore the latest backup, go on without "
            "media that cannot be copied, and mark its nodes unknown when it cannot be reached.",
        ),
    ] = False,
    dns_switched: Annotated[
        bool,
        typer.Option(
            "--dns-switched",
            help="No DNS configured: you pointed the domain at the new web nodes, so the old "
            "fleet may be destroyed.",
        ),
    ] = False,
    backup: Annotated[
        str | None,
        typer.Option("--backup", help="Restore this backup (an id of `holdfast backup list`)."),
    ] = None,
) -> None:
    """Bring the whole service up at another compute configuration and leave the current one:
    back up, restore, provision, wait until healthy, record, move media, switch DNS, destroy
    the old fleet. Resumable: each step is recorded, and a run stopped anywhere (a failing
    step: exit 1) resumes at the step not done. Bad input: exit 2, nothing changed."""
    from pathlib import Path

    from app.hosting import evacuate as evacuation
    from app.hosting.runbook import RunbookError, StepRecord, Stopped

    settings = _settings()
    try:
        request = evacuation.prepare(
            settings,
            to=to,
            source=source,
            state_path=Path(state) if state else None,
            old_gone=old_gone,
            dns_switched=dns_switched,
            backup_id=backup,
        )
    except evacuation.EvacuationError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        try:
            recorded, planned = _run(lambda: evacuation.dry_run(request))
        except RunbookError as exc:
            typer.echo(f"holdfast: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            f"dry run: evacuate {request.source} -> {request.target} "
            + (f"(resuming run {recorded.run_id})" if recorded else "(a new run)")
        )
        for number, step in enumerate(planned, 1):
            typer.echo(f"{number}. {step.name} [{step.status}]: {step.would}")
        typer.echo("nothing was changed")
        return
    names = list(evacuation.STEPS)

    def show(name: str, record: StepRecord) -> None:
        position = f"[{names.index(name) + 1}/{len(names)}] {name}"
        if record.status.value == "running":
            typer.echo(f"{position} ...")
            return
        typer.echo(
            f"{position}: {record.status.value}" + (f": {record.detail}" if record.detail else "")
        )
        for warning in record.warnings:
            typer.echo(f"  warning: {warning}")

    try:
        result = _run(lambda: evacuation.run(request, restart=restart, on_step=show))
    except KeyboardInterrupt:
        typer.echo(
            f"holdfast: interrupted; `holdfast evacuate --to {request.target}` resumes at the "
            "step that was running",
            err=True,
        )
        raise typer.Exit(130) from None
    except RunbookError as exc:
        typer.echo(f"holdfast: {exc}", err=True)
        raise typer.Exit(2) from None
    except Stopped as exc:
        typer.echo(
            f"holdfast: the evacuation from {request.source} to {request.target} stopped at "
            f"step {names.index(exc.step) + 1} of {len(names)} ({exc.step}): {exc.message}. "
            f"Steps before it are done and recorded in {request.state_path}; `holdfast "
            f"evacuate --to {request.target}` resumes at {exc.step}.",
            err=True,
        )
        raise typer.Exit(1) from None
    if result.already_finished:
        typer.echo(
            f"the evacuation from {request.source} to {request.target} (run "
            f"{result.state.run_id}) finished at {result.state.finished_at}: nothing to do "
            "(--restart begins a new one)"
        )
    else:
        typer.echo(f"evacuated from {request.source} to {request.target}")
    typer.echo("now set, wherever the service's settings live:")
    for line in evacuation.next_steps(request):
        typer.echo(f"  {line}")
