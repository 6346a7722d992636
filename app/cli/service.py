"""Serving and maintenance: migrate, serve, worker, users, seed, timelines, jobs."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from app.cli.common import _database, _run, _services, _settings, cli, stop_on_signals

users_cli = typer.Typer(help="Manage accounts.")
cli.add_typer(users_cli, name="users")
timelines_cli = typer.Typer(help="Maintain home timelines.")
cli.add_typer(timelines_cli, name="timelines")
jobs_cli = typer.Typer(help="Inspect background jobs.")
cli.add_typer(jobs_cli, name="jobs")


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
            stop = stop_on_signals()
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
