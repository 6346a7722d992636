"""Automatic persisted queries with the clients that speak them: Apollo Client 4's persisted
query link (`useGETForHashedQueries`) and urql's persisted exchange
(`preferGetForPersistedQueries`), run by Node.js (tests/clients/apq.mjs) against real
`holdfast serve` processes, one with APQ and one in trusted-documents mode, started together.

Each client's query is a miss (404), then the client's retry with the full query (stored),
then a hit by hash alone; the server's access log shows the same requests, and a raw request
with only a client's hash is answered afterwards (the store kept what the client sent). In
trusted-documents mode an unregistered document is refused, and the client surfaces the
typed error.

Needs node and tests/clients/node_modules (`make test` installs them with
`npm ci --prefix tests/clients`): skipped without them, failed with TEST_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKEND, REQUIRE_SERVICES
from tests.support import serve_processes, server_log

# The servers run on their embedded SQLite databases whatever the pass: the PostgreSQL pass
# would only repeat this.
pytestmark = pytest.mark.skipif(BACKEND == "postgres", reason="embedded SQLite: the SQLite pass")

CLIENTS = Path(__file__).parents[1] / "clients"
NOT_ALLOWED = {
    "message": "This server runs only registered operations, and this document is not one of them.",
    "code": "PERSISTED_QUERY_NOT_ALLOWED",
}
# uvicorn's access log line (its query string is not logged).
ACCESS = re.compile(r'"(GET|POST) /graphql[^"]*" (\d{3})')


def need_node() -> str:
    """The node executable, with the clients installed; skip (fail in CI) without them."""
    node = shutil.which("node")
    if node is None:
        missing = "node is not installed"
    elif not (CLIENTS / "node_modules" / ".package-lock.json").is_file():
        missing = "tests/clients/node_modules is missing (npm ci --prefix tests/clients)"
    else:
        return node
    if REQUIRE_SERVICES:
        pytest.fail(missing + " but TEST_REQUIRE_SERVICES=1")
    pytest.skip(missing)


def graphql_requests(log: Path) -> list[tuple[str, int]]:
    """The method and status of each request to /graphql that the server logged."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line).get("event", "")
        except json.JSONDecodeError:
            continue
        match = ACCESS.search(event) if isinstance(event, str) else None
        if match:
            found.append((match[1], int(match[2])))
    return found


def sent(requests: list[dict[str, Any]]) -> list[tuple[str, bool, bool, int]]:
    """Each request a client sent: method, with the query?, with the hash?, status."""
    return [(r["method"], r["query"], r["hash"], r["status"]) for r in requests]


def by_hash_alone(base: str, sha256: str) -> httpx.Response:
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    return httpx.post(f"{base}/graphql", json={"extensions": extensions}, timeout=10)


def test_apollo_and_urql_persisted_queries_round_trip(tmp_path: Path) -> None:
    node = need_node()
    apq_dir, trusted_dir = tmp_path / "apq", tmp_path / "trusted"
    with serve_processes(
        (apq_dir, (), {}),
        (trusted_dir, (), {"HOLDFAST_GRAPHQL__TRUSTED_DOCUMENTS": "true"}),
    ) as [(apq_base, _), (trusted_base, _)]:
        run = subprocess.run(
            [node, "apq.mjs", apq_base, trusted_base],
            cwd=CLIENTS,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        apq_log = graphql_requests(server_log(apq_dir))
        trusted_log = graphql_requests(server_log(trusted_dir))
        stored = {
            name: [by_hash_alone(apq_base, sha256) for sha256 in report[name]["hashes"]]
            for name in ("apollo", "urql")
        }
        never_sent = by_hash_alone(apq_base, "0" * 64)

    apollo, urql = report["apollo"], report["urql"]
    # The miss by hash alone over GET (404: no client turns APQ off on it), the retry with the
    # full query (Apollo's over POST, urql's over GET), then the hit by hash alone over GET.
    assert sent(apollo["requests"]) == [
        ("GET", False, True, 404),
        ("POST", True, True, 200),
        ("GET", False, True, 200),
    ]
    assert sent(urql["requests"]) == [
        ("GET", False, True, 404),
        ("GET", True, True, 200),
        ("GET", False, True, 200),
    ]
    assert apollo["data"][0] == apollo["data"][1]
    assert apollo["data"][0]["publicTimeline"]["edges"] == []
    assert urql["data"] == [{"viewer": None}, {"viewer": None}]
    assert urql["errors"] == [None, None]
    # The server saw the same requests, in the same order.
    assert apq_log == [
        (method, status) for method, _, _, status in sent(apollo["requests"] + urql["requests"])
    ]
    # It kept what each client sent under the client's hash, and nothing else.
    for name, answers in stored.items():
        assert len(answers) == 1, name
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["data"] == report[name]["data"][0]
    assert never_sent.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # Trusted documents: one request each (no retry on a 403), the typed error in the client.
    for client in (apollo, urql):
        assert sent(client["trusted"]["requests"]) == [("GET", False, True, 403)]
        assert client["trusted"]["refused"] == [NOT_ALLOWED]
    assert trusted_log == [("GET", 403), ("GET", 403)]
