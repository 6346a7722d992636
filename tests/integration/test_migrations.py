"""Migrations upgrade a database that already holds data (run in a subprocess, so the test
run's own ORM state is untouched): to the first migrations, a row, then to the latest."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.conftest import BACKEND, need_service

UPGRADE = """
import asyncio, sys
from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from app.db import tortoise_config
from app.settings import Settings

settings = Settings(data_dir=sys.argv[1], database_url=sys.argv[2])

async def main():
    config = tortoise_config(settings)
    await migrate(config=config, target="models.0002_search")
    await connections.get("default").execute_query(
        "INSERT INTO users (id, username, username_key, email, password_hash, display_name,"
        " bio, is_locked, role, follower_count, following_count, notifications_read_id,"
        " created_at, updated_at) VALUES (1, 'Old', 'old', 'old@example.org', 'x',"
        " 'Old Timer', '', false, 'user', 0, 0, 0, '2026-01-01 00:00:00+00:00',"
        " '2026-01-01 00:00:00+00:00')"
    )
    await connections.get("default").execute_query(
        "INSERT INTO users (id, username, username_key, email, password_hash, display_name,"
        " bio, is_locked, role, follower_count, following_count, notifications_read_id,"
        " created_at, updated_at) VALUES (4, 'Gross', 'gross', 'straße@example.org', 'x',"
        " 'G', '', false, 'user', 0, 0, 0, '2026-01-01 00:00:00+00:00',"
        " '2026-01-01 00:00:00+00:00')"
    )
    await connections.get("default").execute_query(
        "INSERT INTO posts (id, author_id, text, content_warning, visibility, entities,"
        " like_count, repost_count, reply_count, quote_count, created_at) VALUES (2, 1,"
        " 'now', '', 'direct', '[]', 0, 0, 0, 0, '2026-01-01 00:00:00+00:00')"
    )
    await connections.get("default").execute_query(
        "INSERT INTO post_edits (id, post_id, text, content_warning, published_at)"
        " VALUES (3, 2, 'before', '', '2026-01-01 00:00:00+00:00')"
    )
    await Tortoise.close_connections()
    await migrate(config=config)
    rows = await connections.get("default").execute_query_dict(
        "SELECT username, display_name_key, email FROM users ORDER BY id"
    )
    applied = await connections.get("default").execute_query_dict(
        "SELECT COUNT(*) AS n FROM tortoise_migrations"
    )
    edits = await connections.get("default").execute_query_dict(
        "SELECT text, mentioned_ids FROM post_edits"
    )
    await Tortoise.close_connections()
    print(
        rows[0]["username"],
        rows[0]["display_name_key"],
        applied[0]["n"],
        edits[0]["text"],
        edits[0]["mentioned_ids"],
        rows[1]["email"],
        sep="|",
    )

asyncio.run(main())
"""

MIGRATIONS = len(list((Path(__file__).parents[2] / "app" / "migrations").glob("0*.py")))


def _upgrade(data_dir: Path, url: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", UPGRADE, str(data_dir), url], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_every_migration_applies_over_existing_rows(tmp_path: Path) -> None:
    if BACKEND != "postgres":
        url = f"sqlite://{tmp_path / 'upgrade.sqlite3'}"
        assert (
            _upgrade(tmp_path, url) == f"Old|old timer|{MIGRATIONS}|before|None|strasse@example.org"
        )
        return
    import asyncio

    import asyncpg

    admin = need_service("TEST_POSTGRES_URL")
    name = f"holdfast_upgrade_{os.getpid()}_{secrets.token_hex(4)}"

    async def admin_run(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin_run(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.rpartition("/")[0] + "/" + name
        assert (
            _upgrade(tmp_path, url) == f"Old|old timer|{MIGRATIONS}|before|None|strasse@example.org"
        )
    finally:
        asyncio.run(admin_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
