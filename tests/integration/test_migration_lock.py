"""`holdfast migrate` started several times at once (web nodes on a fresh fleet, a Kubernetes
Job beside init containers) migrates once: the others wait for its lock, then find nothing
left to do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from app.db import MIGRATION_LOCK_KEY
from tests.conftest import BACKEND, fresh_database

pytestmark = pytest.mark.skipif(
    BACKEND != "postgres", reason="a PostgreSQL advisory lock (the PostgreSQL pass)"
)

MIGRATIONS = len(list((Path(__file__).parents[2] / "app" / "migrations").glob("0*.py")))


def start_migrate(url: str, data_dir: Path) -> subprocess.Popen[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")
    }
    environment.update(HOLDFAST_DATABASE_URL=url, HOLDFAST_DATA_DIR=str(data_dir))
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "holdfast"), "migrate"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def applied(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT COUNT(*) FROM tortoise_migrations"))
    finally:
        await connection.close()


async def test_migrators_started_together_all_succeed(tmp_path: Path) -> None:
    async with fresh_database(tmp_path, "migrate_together") as url:
        processes = [start_migrate(url, tmp_path) for _ in range(3)]
        results = [process.communicate(timeout=180) for process in processes]

        for process, (_, stderr) in zip(processes, results, strict=True):
            assert process.returncode == 0, stderr[-3000:]
        assert await applied(url) == MIGRATIONS


async def test_migrate_waits_for_the_lock(tmp_path: Path) -> None:
    async with fresh_database(tmp_path, "migrate_waits") as url:
        holder = await asyncpg.connect(url)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            process = start_migrate(url, tmp_path)
            # Until its session waits for the lock (seen by the server), then no longer.
            deadline = time.monotonic() + 60
            while not await _waits_for_the_lock(holder):
                assert process.poll() is None, process.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "holdfast migrate never asked for the lock"
                await asyncio.sleep(0.05)
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert not await _table_exists(holder)  # it has not begun
        finally:
            await holder.close()  # the session ends: the lock is released

        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr[-3000:]
        assert await applied(url) == MIGRATIONS


async def _waits_for_the_lock(connection: asyncpg.Connection) -> bool:
    """Whether a `holdfast migrate` session of this database waits for an advisory lock."""
    return bool(
        await connection.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'holdfast migrate' AND wait_event = 'advisory'"
        )
    )


async def _table_exists(connection: asyncpg.Connection) -> bool:
    return bool(await connection.fetchval("SELECT to_regclass('tortoise_migrations') IS NOT NULL"))
