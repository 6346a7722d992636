"""Helpers for talking GraphQL to the app in tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette

if TYPE_CHECKING:
    from app.settings import Settings
    from schema.http import GraphQLHTTP

HOLDFAST = str(Path(sys.executable).with_name("holdfast"))

STRONG_PASSWORD = "correct horse battery staple"

SESSION_FIELDS = "session { accessToken refreshToken accessTokenExpiresAt refreshTokenExpiresAt }"
ERROR_FIELDS = "... on MutationError { message field } "

SIGN_UP = f"""
mutation($input: SignUpInput!) {{
  signUp(input: $input) {{
    __typename
    ... on SignUpSuccess {{ user {{ id username email displayName }} {SESSION_FIELDS} }}
    ... on SignUpError {{ code message field }}
  }}
}}"""

LOG_IN = f"""
mutation($input: LogInInput!) {{
  logIn(input: $input) {{
    __typename
    ... on LogInSuccess {{ user {{ id username }} {SESSION_FIELDS} }}
    ... on LogInError {{ code message field }}
  }}
}}"""

REFRESH = f"""
mutation($token: String!) {{
  refreshSession(input: {{refreshToken: $token}}) {{
    __typename
    ... on RefreshSessionSuccess {{ user {{ username }} {SESSION_FIELDS} }}
    ... on RefreshSessionError {{ code message }}
  }}
}}"""


def sign_up_input(**overrides: str) -> dict[str, dict[str, str]]:
    """Variables for SIGN_UP: alice's, with `overrides`."""
    values = {
        "username": "alice",
        "email": "alice@example.org",
        "password": STRONG_PASSWORD,
        "displayName": "Alice",
    }
    values.update(overrides)
    return {"input": values}


VIEWER = "{ viewer { id username email displayName bio isLocked role } }"


@dataclass
class Account:
    id: str
    username: str
    access_token: str
    refresh_token: str


class GraphQLClient:
    """GraphQL over `http`. `settle`, when given, runs after every request: the shared app's
    fixture passes one that runs the jobs the request's changes recorded (fan-out,
    notifications), so a test sees what a real worker makes of them a moment later."""

    def __init__(
        self, http: httpx.AsyncClient, settle: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.http = http
        self.settle = settle

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        if self.settle is not None:
            await self.settle()
        return response

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """Run an operation that must succeed at the GraphQL level; return its data."""
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    @classmethod
    def settling(cls, http: httpx.AsyncClient, app: Starlette) -> GraphQLClient:
        """A client of `app` that runs the app's due jobs after every request."""
        services = app.state.services
        return cls(http, settle=lambda: services.jobs.run_due(services.changes))

    async def sign_up(
        self,
        username: str,
        email: str | None = None,
        password: str = STRONG_PASSWORD,
        display_name: str | None = None,
    ) -> Account:
        data = await self(
            SIGN_UP,
            {
                "input": {
                    "username": username,
                    "email": email or f"{username.lower()}@example.org",
                    "password": password,
                    "displayName": display_name or username.title(),
                }
            },
        )
        result = data["signUp"]
        assert result["__typename"] == "SignUpSuccess", result
        return Account(
            id=result["user"]["id"],
            username=result["user"]["username"],
            access_token=result["session"]["accessToken"],
            refresh_token=result["session"]["refreshToken"],
        )

    async def log_in(self, login: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        data = await self(LOG_IN, {"input": {"login": login, "password": password}})
        result: dict[str, Any] = data["logIn"]
        return result

    async def viewer(self, token: str | None) -> dict[str, Any] | None:
        data = await self(VIEWER, token=token)
        viewer: dict[str, Any] | None = data["viewer"]
        return viewer


def graphql_endpoint(settings: Settings, *, ide: bool = False) -> GraphQLHTTP:
    """The GraphQL-over-HTTP endpoint alone, as `create_app` builds it for `settings` (its
    own schema and caches; documents found as the app finds them), with the GraphiQL page
    when `ide`."""
    from app.services import Services
    from schema import build_schema
    from schema.http import GraphQLHTTP
    from schema.persisted import PersistedDocuments
    from schema.view import GraphQLView

    schema = build_schema(settings)
    services = Services.from_settings(settings)
    documents = PersistedDocuments(schema.pipeline, services.operations, settings.graphql)
    view = GraphQLView(schema, services, documents) if ide else None
    return GraphQLHTTP(schema, services, documents, ide=view)


def holdfast_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a `holdfast` process: ours without HOLDFAST_*, plus `extra`; a
    `holdfast serve` schedules no backups unless `extra` says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(
        {"HOLDFAST_DATA_DIR": str(data_dir), "HOLDFAST_JOBS__SCHEDULE_IN_WEB": "false", **extra}
    )
    return env


async def sleep_until(ms: int) -> None:
    """Sleep until the wall clock reaches `ms` (Unix milliseconds, as leases are written)."""
    await asyncio.sleep(max(0, ms - time.time_ns() // 1_000_000) / 1000 + 0.005)


async def a_fresh_window(needed: float = 20, window: int = 60) -> None:
    """Wait, if need be, for the next rate-limit window (aligned to the epoch, as `limits`
    aligns them) so that `needed` seconds of attempts fall in one window: its sliding-window
    counter weighs the previous window's count down as the new one goes on, so attempts
    straddling two windows may add up to less than the limit."""
    left = window - time.time() % window
    if left < needed:
        await asyncio.sleep(left + 0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A `holdfast serve` process; its log lines (stderr) go to `log`."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(data_dir: Path, *args: str, log: Path | None = None, **settings: str) -> Server:
    """`holdfast serve` started with `args` and `settings` as HOLDFAST_* variables, not yet
    answering (`wait_until_up`)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or server_log(data_dir)
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [HOLDFAST, "serve", "--port", str(port), *args],
            env=holdfast_env(data_dir, **settings),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def wait_until_up(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{server.base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start: {server.log_text()}")
        time.sleep(0.05)


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def serve(data_dir: Path, **settings: str) -> Iterator[str]:
    """`holdfast serve` as `make run` starts it (embedded defaults, migrating itself), with
    `settings` as HOLDFAST_* variables; yields its base URL. Its log lines (stderr) go to
    `server_log(data_dir)`."""
    with serve_process(data_dir, **settings) as (base, _):
        yield base


@contextmanager
def serve_process(
    data_dir: Path, *options: str, **settings: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `serve` (with extra `holdfast serve` options), yielding the process too."""
    with serve_processes((data_dir, options, settings)) as [served]:
        yield served


@contextmanager
def serve_processes(
    *specs: tuple[Path, tuple[str, ...], dict[str, str]],
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Several `holdfast serve` processes (data dir, options, settings each), started at
    once; their base URLs and processes."""
    servers: list[Server] = []
    try:
        for data_dir, options, settings in specs:
            servers.append(start_server(data_dir, *options, **settings))
        for server in servers:
            wait_until_up(server)
        yield [(server.base, server.process) for server in servers]
    finally:
        for server in servers:
            stop_server(server)


def server_log(data_dir: Path) -> Path:
    """Where `serve(data_dir)` writes the server's log lines."""
    return data_dir.with_name(data_dir.name + ".log")
