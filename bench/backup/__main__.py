"""Backup and verified restore of a seeded database: `holdfast backup create`, then a restore
into a fresh database with every table's rows counted and checksummed.

1. Creates two throwaway PostgreSQL databases (source and target) on `--postgres`, or two
   SQLite files with `--sqlite`; migrates both (`holdfast migrate`, as a process).
2. Seeds the source with `holdfast seed --users U --posts P` (as a process).
3. Times `holdfast backup create` (a process: pg_dump or SQLite's backup API, per-table
   checks in the same snapshot, SHA-256 while it streams, dump and manifest into the local
   storage backend).
4. Times the restore of that backup into the migrated, empty target (`restore_backup`: the
   dump's SHA-256 checked, restored, then every table's row count and checksum compared with
   the manifest's).
5. Prints rows, dump size, and both durations with rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

HOLDFAST = str(Path(sys.executable).with_name("holdfast"))


def run(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([HOLDFAST, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="SQLite files instead")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="holdfast-bench-backup-"))
    names = [f"bench_backup_{uuid.uuid4().hex[:8]}_{side}" for side in ("source", "target")]
    admin = None
    if args.sqlite:
        urls = [f"sqlite://{scratch / name}.sqlite3" for name in names]
    else:
        admin = await asyncpg.connect(args.postgres)
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        base = args.postgres.rsplit("/", 1)[0]
        urls = [f"{base}/{name}" for name in names]
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
            "HOLDFAST_DATA_DIR": str(scratch / "data"),
            "HOLDFAST_DATABASE_URL": urls[0],
            "HOLDFAST_SECRET_KEY": "b" * 48,
        }
        for url in urls:
            run({**env, "HOLDFAST_DATABASE_URL": url}, "migrate")
        seeding = run(env, "seed", "--users", str(args.users), "--posts", str(args.posts))
        dumping = run(env, "backup", "create")

        os.environ.update(env)
        from app.hosting.backup import backup_storage, list_backups, restore_backup
        from app.settings import load_settings

        settings = load_settings()
        storage = backup_storage(settings)
        (backup,) = await list_backups(settings, storage)
        started = time.perf_counter()
        report = await restore_backup(settings, storage, backup, database_url=urls[1])
        restoring = time.perf_counter() - started
        await storage.close()

        rows = sum(check.rows for check in report.tables.values())
        engine = "SQLite" if args.sqlite else "PostgreSQL"
        print(f"{engine}: {args.users} users, {args.posts} posts seeded in {seeding:.1f} s")
        print(f"  {len(report.tables)} tables, {rows} rows, dump {backup.size / 1e6:.1f} MB")
        print(f"  backup create : {dumping:6.2f} s  ({rows / dumping:,.0f} rows/s, with start-up)")
        print(f"  restore+verify: {restoring:6.2f} s  ({rows / restoring:,.0f} rows/s)")
    finally:
        if admin is not None:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
