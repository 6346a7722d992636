"""`holdfast operations register/list/remove` against a running `holdfast serve` in
trusted-documents mode: what one process registers or removes, the other runs or refuses on
its next request (the server re-reads the list on every request here:
`registered_refresh_seconds=0`; the interval itself is tested with a clock in
test_persisted_operations.py). Each manifest format; a bad set refused whole (registering
again is tested on the service, in test_persisted_operations.py: a process less here)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKEND
from tests.live import live_client
from tests.support import HOLDFAST, holdfast_env, serve

# The server and the command run on the embedded SQLite database whatever the pass: the same
# test on the PostgreSQL pass would only repeat it (the service's statements are tested on
# both, in test_persisted_operations.py).
pytestmark = pytest.mark.skipif(BACKEND == "postgres", reason="embedded SQLite: the SQLite pass")

VIEWER = "query Viewer { viewer { id } }"
TIMELINE = "query Timeline { publicTimeline(first: 2) { edges { node { id } } } }"
ME = "query Me {\n  viewer {\n    username\n  }\n}\n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def holdfast(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, "operations", *args],
        env=holdfast_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_by_hash(base: str, text: str) -> dict[str, Any]:
    """The first answer to the operation named by the hash of `text` (as Apollo's and urql's
    links send a persisted query over graphql-transport-ws)."""
    persisted = {"version": 1, "sha256Hash": sha256(text)}
    async with live_client(base) as client:
        await client.init()
        await client.send(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"extensions": {"persistedQuery": persisted}},
            }
        )
        return await client.receive()


def refused(message: dict[str, Any]) -> bool:
    return message["type"] == "error" and [e["extensions"]["code"] for e in message["payload"]] == [
        "PERSISTED_QUERY_NOT_ALLOWED"
    ]


async def test_what_the_command_line_registers_or_removes_a_running_server_runs_or_refuses(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    apollo = tmp_path / "persisted-query-manifest.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": sha256(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER}
                ],
            }
        )
    )
    codegen = tmp_path / "persisted-documents.json"
    codegen.write_text(json.dumps({sha256(TIMELINE): TIMELINE}))
    me = tmp_path / "me.graphql"
    me.write_text(ME)
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({sha256("query Bad { viewer { nope } }"): "query Bad { viewer { nope } }"})
    )

    with serve(
        data,
        HOLDFAST_GRAPHQL__TRUSTED_DOCUMENTS="true",
        HOLDFAST_GRAPHQL__REGISTERED_REFRESH_SECONDS="0",
    ) as base:
        before = await run_by_hash(base, VIEWER)
        refusal = holdfast(data, "register", str(apollo), str(bad))
        after_refusal = await run_by_hash(base, VIEWER)
        registered = holdfast(data, "register", str(apollo), str(codegen), str(me))
        after = [await run_by_hash(base, text) for text in (VIEWER, TIMELINE, ME)]
        listed = holdfast(data, "list")
        removed = holdfast(data, "remove", f"sha256:{sha256(VIEWER)}")
        after_removal = await run_by_hash(base, VIEWER)

    assert refused(before)
    # All or nothing: the good manifest beside the bad one was not registered either.
    assert refusal.returncode == 2
    problem, last = refusal.stderr.splitlines()
    assert problem.startswith(
        f"holdfast: {bad}: operation Bad: Cannot query field 'nope' on type 'User'."
    )
    assert problem.endswith("(GRAPHQL_VALIDATION_FAILED)")
    assert last == "holdfast: nothing registered"
    assert refused(after_refusal)
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith("3 operations: 3 registered, 0 already registered")
    assert [message["type"] for message in after] == ["next", "next", "next"]
    assert after[0]["payload"] == {"data": {"viewer": None}}
    # hash, date, time, names
    assert {line.split()[0]: line.split()[3] for line in listed.stdout.splitlines()} == {
        sha256(VIEWER): "Viewer",
        sha256(TIMELINE): "Timeline",
        sha256(ME): "Me",
    }
    assert removed.returncode == 0, removed.stderr
    assert refused(after_removal)


@pytest.mark.no_database
def test_before_migrate_the_commands_say_so_and_change_nothing(tmp_path: Path) -> None:
    # A release's operations registered before its `holdfast migrate` (the README's order).
    data = tmp_path / "data"
    me = tmp_path / "me.graphql"
    me.write_text(ME)

    for args in (("register", str(me)), ("list",), ("remove", sha256(ME))):
        result = holdfast(data, *args)

        assert result.returncode == 2, result
        assert "run `holdfast migrate` first (nothing changed)" in result.stderr
        assert "Traceback" not in result.stderr
