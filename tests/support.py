"""Helpers for talking GraphQL to the app in tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

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
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

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


def holdfast_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for a `holdfast` process: ours without HOLDFAST_*, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update({"HOLDFAST_DATA_DIR": str(data_dir), **extra})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    started: list[tuple[Path, str, subprocess.Popen[bytes], IO[bytes]]] = []
    try:
        for data_dir, options, settings in specs:
            port = free_port()
            data_dir.mkdir(parents=True, exist_ok=True)
            log = server_log(data_dir).open("wb")
            process = subprocess.Popen(
                [HOLDFAST, "serve", "--port", str(port), *options],
                env=holdfast_env(data_dir, **settings),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            started.append((data_dir, f"http://127.0.0.1:{port}", process, log))
        for data_dir, base, process, log in started:
            _wait_until_healthy(data_dir, base, process, log)
        yield [(base, process) for _, base, process, _ in started]
    finally:
        for _, _, process, log in started:
            process.terminate()
            process.wait(timeout=10)
            log.close()


def _wait_until_healthy(
    data_dir: Path, base: str, process: subprocess.Popen[bytes], log: IO[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.flush()
            raise AssertionError(f"server did not start: {server_log(data_dir).read_text()}")
        time.sleep(0.1)


def server_log(data_dir: Path) -> Path:
    """Where `serve(data_dir)` writes the server's log lines."""
    return data_dir.with_name(data_dir.name + ".log")
