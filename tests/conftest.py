"""Shared fixtures: one app per test run on a fresh database (SQLite, or PostgreSQL when
TEST_DATABASE=postgres), tables emptied between tests, GraphQL over real HTTP semantics.

Environment (test-only, read here and nowhere in the app):
- TEST_DATABASE: `sqlite` (default) or `postgres`
- TEST_POSTGRES_URL: an admin URL; each run creates and drops its own database
- TEST_REDIS_URL: a Redis database the Redis tests may flush
- TEST_REQUIRE_SERVICES=1: a test that would skip for a missing server fails instead (CI)
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from tortoise import Tortoise, connections

from app.db import migrate
from app.logs import configure_logging
from app.main import create_app
from app.models import NodeLease
from app.settings import Settings
from tests.live import served_in_loop
from tests.servers import PowerDNS, need_powerdns, start_powerdns
from tests.support import GraphQLClient, serve

if TYPE_CHECKING:
    from tests.differential import Differential

BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
REQUIRE_SERVICES = os.environ.get("TEST_REQUIRE_SERVICES") == "1"

# Tests stop `holdfast` processes with Ctrl-C (SIGINT). A shell without job control starts a
# background command with SIGINT ignored, and the processes it starts inherit that (Python
# then installs no KeyboardInterrupt handler): give this process Python's handler back, so
# that the processes it starts take SIGINT however the suite was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def need_service(variable: str) -> str:
    """The URL of a server a test needs, or skip (fail in CI) when it is not configured."""
    value = os.environ.get(variable)
    if not value:
        message = f"{variable} is not set"
        if REQUIRE_SERVICES:
            pytest.fail(message + " but TEST_REQUIRE_SERVICES=1")
        pytest.skip(message)
    return value


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@asynccontextmanager
async def fresh_database(directory: Path, name: str = "test") -> AsyncIterator[str]:
    """The URL of a new database of this run's backend: a SQLite file in `directory`, or a
    PostgreSQL database dropped afterwards."""
    if BACKEND == "sqlite":
        yield f"sqlite://{directory / (name + '.sqlite3')}"
        return
    if BACKEND != "postgres":
        raise RuntimeError(f"TEST_DATABASE must be sqlite or postgres, not {BACKEND!r}")
    admin_url = need_service("TEST_POSTGRES_URL")
    database = f"holdfast_{name}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await create_database(admin, database)
        yield _with_database(admin_url, database)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def create_database(
    admin: asyncpg.Connection, name: str, *, template: str | None = None
) -> None:
    """A new PostgreSQL database (a copy of `template` when given) whose commits do not wait
    for the disk: `synchronous_commit` off, as a database setting, so that the test process
    and every `holdfast` process it starts commit alike. A crash of the server could lose the
    last commits (no test crashes it); a commit then costs about 0.6 ms instead of 4 ms, and
    the PostgreSQL pass commits tens of thousands of times."""
    copy = f' TEMPLATE "{template}"' if template is not None else ""
    await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


@pytest.fixture(scope="session")
async def database_url(data_dir: Path) -> AsyncIterator[str]:
    async with fresh_database(data_dir) as url:
        try:
            yield url
        finally:
            await Tortoise.close_connections()


TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "auth": {
            "login_attempts_per_account": "5/minute",
            "login_attempts_per_ip": "20/minute",
            "signups_per_ip": "1000/minute",  # every test client signs up from one address
        },
        # High enough that no other test meets it; tests/integration/test_request_budget.py
        # builds apps with a tiny one.
        "graphql": {"requests_per_viewer": "100000/minute"},
        # The shared app works no jobs: job tests build their own queues and workers (with
        # short leases and backoffs), which must be the only ones claiming from the table.
        # Nor does it schedule backups (tests/integration/test_scheduler.py runs schedulers).
        "jobs": {"work_in_web": False, "schedule_in_web": False},
        # The test process's apps use an assigned node id: a leased one is renewed by a task
        # of the loop that started the app, which is idle while other tests' loops run, so
        # the lease would lapse mid-run. Lease tests use the ids below it.
        "node_id": 1023,
        "nodes": {"first_id": 1000, "last_id": 1022},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(data_dir: Path, database_url: str) -> Settings:
    return make_settings(data_dir, database_url)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    configure_logging("INFO")
    # Imported here: it builds on schema/, which only the app's tests need.
    from tests.differential import installed

    await migrate(settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        with installed(application, settings) as differential:
            application.state.differential = differential
            yield application
    # What the harness cost, in the session's summary (pytest_terminal_summary below).
    DIFFERENTIAL_TOTALS.append((differential.pairs, differential.stock_seconds))


DIFFERENTIAL_TOTALS: list[tuple[int, float]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for pairs, seconds in DIFFERENTIAL_TOTALS:
        terminalreporter.write_line(
            f"differential: {pairs} operations ran under both executors; "
            f"the stock runs took {seconds:.2f} s"
        )


@pytest.fixture(autouse=True)
def _same_answers(request: pytest.FixtureRequest) -> Iterator[None]:
    """The shared app runs every operation under the fast and the stock executor
    (tests/differential.py); a test whose documents got different answers fails here, with
    both. `@pytest.mark.no_differential`: the fast run only."""
    if "app" not in request.fixturenames:
        yield
        return
    differential: Differential = request.getfixturevalue("app").state.differential
    differential.enabled = request.node.get_closest_marker("no_differential") is None
    differential.mismatches.clear()
    yield
    mismatches, differential.mismatches = differential.mismatches, []
    differential.enabled = True
    if mismatches:
        pytest.fail("\n\n".join(str(m) for m in mismatches), pytrace=False)


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: Starlette = request.getfixturevalue("app")
    await application.state.services.limiter.reset()
    await empty_database()


async def empty_database() -> None:
    """Delete every row of every table (between tests, and between a property test's
    examples); the app's own node id lease stays: it is this process's, not a test's."""
    tables = [
        model._meta.db_table for model in Tortoise.apps["models"].values() if model is not NodeLease
    ]
    # Children first (RefreshToken -> Session -> User), all in one transaction: one commit.
    # DELETE, not TRUNCATE: a test leaves a few rows, which DELETE removes in about a
    # millisecond, where PostgreSQL's TRUNCATE of every table takes about half a second (new
    # files for each table and index), and it runs after every test.
    deletes = " ".join(f"DELETE FROM {table};" for table in reversed(tables))
    await connections.get("default").execute_script(f"BEGIN; {deletes} COMMIT;")


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="session")
async def live_server(app: Starlette) -> AsyncIterator[str]:
    """The test app behind a real uvicorn server in the test loop (WebSocket clients connect
    to it); its base URL."""
    async with served_in_loop(app) as base:
        yield base


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A real `holdfast serve` process on the embedded defaults; its base URL."""
    with serve(tmp_path / "data") as base:
        yield base


@pytest.fixture
def gql(app: Starlette, http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient.settling(http, app)


@pytest.fixture
def monkeypatch_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A monkeypatch with every HOLDFAST_* variable removed, for settings tests."""
    for key in list(os.environ):
        if key.startswith("HOLDFAST_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def powerdns() -> Iterator[PowerDNS]:
    """One PowerDNS authoritative server for the whole session, shared by the DNS contract
    and the hosting DNS tests (each test uses zones of its own); skipped, or failed in CI,
    when PowerDNS is not installed."""
    need_powerdns()
    with start_powerdns() as server:
        yield server
