"""The `holdfast` command and a real uvicorn process, as an operator and a newcomer use them."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support import HOLDFAST, LOG_IN, SIGN_UP, STRONG_PASSWORD, VIEWER, holdfast_env

# Every command here keeps its own SQLite file in the test's directory.
pytestmark = pytest.mark.no_database


def test_create_admin_after_migrate(tmp_path: Path) -> None:
    env = holdfast_env(tmp_path)
    migrated = subprocess.run([HOLDFAST, "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr

    created = subprocess.run(
        [
            HOLDFAST,
            "users",
            "create-admin",
            "--username",
            "root_op",
            "--email",
            "Ops@Example.org",
            "--password-stdin",
        ],
        env=env,
        input=STRONG_PASSWORD + "\n",
        capture_output=True,
        text=True,
    )

    assert created.returncode == 0, created.stderr
    assert "created admin root_op" in created.stdout
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        rows = db.execute("SELECT username, email, role FROM users").fetchall()
    assert rows == [("root_op", "ops@example.org", "admin")]


def test_create_admin_refuses_a_weak_password(tmp_path: Path) -> None:
    env = holdfast_env(tmp_path)
    subprocess.run([HOLDFAST, "migrate"], env=env, check=True, capture_output=True)

    created = subprocess.run(
        [
            HOLDFAST,
            "users",
            "create-admin",
            "--username",
            "root_op",
            "--email",
            "ops@example.org",
            "--password-stdin",
        ],
        env=env,
        input="password\n",
        capture_output=True,
        text=True,
    )

    assert created.returncode == 1
    assert "password" in created.stderr
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_unknown_setting_stops_the_command_and_names_the_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [HOLDFAST, "migrate"],
        env=holdfast_env(tmp_path, HOLDFAST_PROT="1"),
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2
    assert "HOLDFAST_PROT" in result.stderr


def test_serve_refuses_one_assigned_node_id_for_several_workers(tmp_path: Path) -> None:
    # Each worker process would make ids with the same node id.
    refused = subprocess.run(
        [HOLDFAST, "serve", "--workers", "2", "--no-migrate"],
        env=holdfast_env(tmp_path, HOLDFAST_NODE_ID="7"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert refused.returncode == 2
    assert "HOLDFAST_NODE_ID" in refused.stderr
    assert "--workers" in refused.stderr


def test_commands_that_make_no_ids_hold_no_node_id(tmp_path: Path) -> None:
    env = holdfast_env(tmp_path, HOLDFAST_NODES__FIRST_ID="5", HOLDFAST_NODES__LAST_ID="5")
    subprocess.run([HOLDFAST, "migrate"], env=env, check=True, capture_output=True)
    held = (5, "another process", "2999-01-01 00:00:00+00:00")
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        db.execute("INSERT INTO node_leases VALUES (?, ?, ?)", held)

    # Every node id is held, yet these run: they need none.
    results = [
        subprocess.run([HOLDFAST, *command], env=env, capture_output=True, text=True, timeout=60)
        for command in (
            ("jobs", "status"),
            ("jobs", "retry-dead"),
            ("timelines", "trim"),
            ("storage", "status"),
            ("storage", "verify"),
            ("storage", "orphans"),
            ("storage", "migrate", "--to", "local", "--dry-run"),
        )
    ]
    writing = subprocess.run(
        [HOLDFAST, "timelines", "rebuild"], env=env, capture_output=True, text=True, timeout=60
    )

    assert [r.returncode for r in results] == [0] * 7, [r.stderr for r in results]
    assert results[0].stdout == "pending=0 running=0 done=0 dead=0\n"
    assert writing.returncode == 1
    assert "every node id in 5..5 is held" in writing.stderr
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        assert db.execute("SELECT * FROM node_leases").fetchall() == [held]


def test_served_api_signs_up_logs_in_and_answers_viewer(served: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=served) as client:
        page = client.get("/graphql", headers={"accept": "text/html"})
        signed_up = client.post(
            "/graphql",
            json={
                "query": SIGN_UP,
                "variables": {
                    "input": {
                        "username": "newcomer",
                        "email": "new@example.org",
                        "password": STRONG_PASSWORD,
                        "displayName": "New",
                    }
                },
            },
        ).json()
        logged_in = client.post(
            "/graphql",
            json={
                "query": LOG_IN,
                "variables": {"input": {"login": "newcomer", "password": STRONG_PASSWORD}},
            },
        ).json()
        token = logged_in["data"]["logIn"]["session"]["accessToken"]
        viewer = client.post(
            "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
        ).json()

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert signed_up["data"]["signUp"]["__typename"] == "SignUpSuccess"
    assert viewer["data"]["viewer"]["username"] == "newcomer"
    assert viewer["data"]["viewer"]["email"] == "new@example.org"
    assert (tmp_path / "data" / "holdfast.sqlite3").exists()
    assert (tmp_path / "data" / "secret_key").exists()


def test_timelines_rebuild_and_trim_from_the_command_line(tmp_path: Path) -> None:
    env = holdfast_env(tmp_path, HOLDFAST_TIMELINES__HOME_MAX_ENTRIES="20")
    seeded = subprocess.run(
        [HOLDFAST, "seed", "--users", "30", "--posts", "600"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert seeded.returncode == 0, seeded.stderr
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        db.execute("DELETE FROM home_entries")

    rebuilt = subprocess.run(
        [HOLDFAST, "timelines", "rebuild"], env=env, capture_output=True, text=True
    )
    trimmed = subprocess.run(
        [HOLDFAST, "timelines", "trim"], env=env, capture_output=True, text=True
    )
    unknown = subprocess.run(
        [HOLDFAST, "timelines", "rebuild", "--username", "nobody"],
        env=env,
        capture_output=True,
        text=True,
    )

    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith("rebuilt 30 home timelines")
    assert trimmed.stdout == "trimmed 0 entries\n"  # rebuild already kept 20 each
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        longest = db.execute(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM home_entries GROUP BY owner_id)"
        ).fetchone()[0]
    assert longest == 20
    assert unknown.returncode == 1
    assert "no account 'nobody'" in unknown.stderr
