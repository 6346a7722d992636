"""Backups (app/hosting/backup.py) on this pass's database engine (TEST_DATABASE: SQLite, or
a PostgreSQL database of its own), into the local disk and moto's S3: a backup restored into
a freshly migrated database equals the source table by table; a target holding rows, a
corrupted dump and a table that differs from the manifest are refused; retention and failed
backups' leftovers; the `holdfast backup` commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient
from starlette.applications import Starlette

from app.hosting.backup import (
    BackupError,
    BackupInfo,
    NoUserData,
    TableCheck,
    backup_storage,
    create_backup,
    latest_backup,
    list_backups,
    prune,
    restore_backup,
    verify_backup,
)
from app.hosting.databases import restore, sqlite_path, table_checks
from app.settings import Settings
from providers.storage.base import StorageProvider
from tests.conftest import (
    BACKEND,
    _with_database,
    create_database,
    fresh_database,
    make_settings,
    need_service,
)
from tests.media import post_with_media, ready_media
from tests.servers import MotoServer, start_moto_server
from tests.social import follow, post
from tests.support import GraphQLClient, holdfast_env

HOLDFAST = str(Path(sys.executable).with_name("holdfast"))


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


def backup_settings(
    tmp_path: Path, database_url: str, kind: str, moto: MotoServer | None = None, **backup: Any
) -> Settings:
    """Settings whose backups go to the local disk under `tmp_path` or to a bucket of their
    own in moto's S3."""
    backends: dict[str, Any] = {}
    if kind == "s3":
        assert moto is not None
        backends["s3"] = {
            "provider": "s3",
            "options": {
                "bucket": f"backups-{secrets.token_hex(4)}",
                "endpoint_url": moto.endpoint,
                "addressing_style": "path",
                "access_key_id": "testing",
                "secret_access_key": "testing",
                "create_bucket": True,
            },
        }
        backup["storage"] = "s3"
    return make_settings(tmp_path, database_url, storage={"backends": backends}, backup=backup)


@pytest.fixture(params=["local", "s3"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage_settings(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, database_url: str
) -> Settings:
    moto = request.getfixturevalue("moto") if kind == "s3" else None
    return backup_settings(tmp_path, database_url, kind, moto)


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[StorageProvider]:
    storage = backup_storage(settings)
    try:
        yield storage
    finally:
        await storage.close()


async def run_holdfast(data_dir: Path, *args: str, **settings: str) -> tuple[int, str]:
    env = holdfast_env(data_dir, **{f"HOLDFAST_{k.upper()}": v for k, v in settings.items()})
    process = await asyncio.create_subprocess_exec(
        HOLDFAST,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database of this pass's engine migrated by `holdfast migrate` (in its own process:
    this one's Tortoise serves the shared app), copied for each restore target: a migrate
    process per target was most of these tests' time."""
    directory = tmp_path_factory.mktemp("template")
    with contextlib.ExitStack() as stack:
        loop = stack.enter_context(contextlib.closing(asyncio.new_event_loop()))
        database = fresh_database(directory, "template")
        url = loop.run_until_complete(database.__aenter__())
        stack.callback(lambda: loop.run_until_complete(database.__aexit__(None, None, None)))
        code, out = loop.run_until_complete(run_holdfast(directory, "migrate", database_url=url))
        assert code == 0, out
        yield url


@contextlib.asynccontextmanager
async def migrated_target(
    template: str, directory: Path, name: str = "target"
) -> AsyncIterator[str]:
    """A new, freshly migrated database of this pass's engine: a copy of `template`."""
    if BACKEND == "sqlite":
        async with fresh_database(directory, f"{name}_{secrets.token_hex(3)}") as url:
            shutil.copyfile(sqlite_path(template), sqlite_path(url))
            yield url
        return
    admin_url = need_service("TEST_POSTGRES_URL")
    database = f"holdfast_{name}_{os.getpid()}_{secrets.token_hex(4)}"
    source = template.rpartition("/")[2].partition("?")[0]
    admin = await asyncpg.connect(admin_url)
    try:
        await create_database(admin, database, template=source)
        yield _with_database(admin_url, database)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def execute(url: str, statement: str) -> None:
    if BACKEND == "postgres":
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()
    else:
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn:
            conn.execute(statement)
            conn.commit()


async def count(url: str, table: str) -> int:
    """Rows of `table`, counted without the code under test."""
    if BACKEND == "postgres":
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f'SELECT count(*) FROM "{table}"'))
        finally:
            await conn.close()
    with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


async def populate(app: Starlette, gql: GraphQLClient, http: AsyncClient) -> None:
    """Accounts, posts, follows, a medium and what they cause (home entries, notifications,
    stored objects) in the shared database."""
    alice = await gql.sign_up("alice")
    bob = await gql.sign_up("bob")
    carol = await gql.sign_up("carol")
    await follow(gql, bob, alice)
    await follow(gql, carol, alice)
    await follow(gql, alice, carol)
    for n in range(3):
        await post(gql, alice, f"alice's post {n}: ünïcödé, 'quotes' and \"more\"\nnew line")
    await post(gql, bob, "bob says hello", contentWarning="greetings")
    media = await ready_media(http, gql, app, alice)
    result = await post_with_media(gql, alice, [media["id"]])
    assert result["__typename"] == "CreatePostSuccess", result


POPULATED = {"users": 3, "follows": 3, "posts": 5, "media": 1}


async def test_a_backup_restored_into_a_migrated_database_equals_the_source(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    storage_settings: Settings,
    database_url: str,
    tmp_path: Path,
) -> None:
    await populate(app, gql, http)
    async with opened(storage_settings) as storage:
        backup = await create_backup(storage_settings, storage)
        assert backup.engine == BACKEND
        for table, rows in POPULATED.items():
            assert backup.tables[table].rows == rows == await count(database_url, table)
        assert backup.tables["home_entries"].rows > 0
        assert backup.migration_head is not None
        # Listed from the storage alone, as its manifest says.
        assert await list_backups(storage_settings, storage) == [backup]

        async with migrated_target(template, tmp_path) as target:
            report = await restore_backup(storage_settings, storage, backup, database_url=target)
            assert report.tables == backup.tables
            for table, rows in POPULATED.items():
                assert await count(target, table) == rows
            assert await verify_backup(backup, database_url=target) == backup.tables
            # What a restored database is checked against is the source's own rows: the same
            # function over the source gives the same checks.
            assert await verify_backup(backup, database_url=database_url) == backup.tables


async def test_writes_during_a_backup_are_in_neither_the_dump_nor_its_checks(
    template: str, app: Starlette, database_url: str, tmp_path: Path
) -> None:
    """The checks come from the snapshot that is dumped: rows written while the backup runs
    would otherwise make a faithful restore fail its verification."""
    settings = backup_settings(tmp_path, database_url, "local")
    written = 0
    started, done = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        nonlocal written
        while not done.is_set() or written < 2:
            await execute(
                database_url,
                "INSERT INTO storage_leases (name, holder, expires_at) "
                f"VALUES ('w{written}', 'writer', '2026-01-01 00:00:00+00:00')",
            )
            written += 1
            started.set()
            await asyncio.sleep(0)

    writer = asyncio.create_task(write())
    try:
        await started.wait()
        async with opened(settings) as storage:
            backup = await create_backup(settings, storage)
            done.set()
            await writer
            assert 1 <= backup.tables["storage_leases"].rows < written
            async with migrated_target(template, tmp_path, "busy") as target:
                await restore_backup(settings, storage, backup, database_url=target)
                assert await count(target, "storage_leases") == backup.tables["storage_leases"].rows
    finally:
        done.set()
        await writer


async def test_a_target_holding_rows_is_refused_and_left_unchanged(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    settings = backup_settings(tmp_path, database_url, "local")
    await populate(app, gql, http)
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        async with migrated_target(template, tmp_path) as target:
            await execute(
                target,
                "INSERT INTO storage_leases (name, holder, expires_at) "
                "VALUES ('storage', 'someone', '2026-01-01 00:00:00+00:00')",
            )
            before = await table_checks(target)
            with pytest.raises(BackupError, match=r"not empty.*'storage_leases' has rows"):
                await restore_backup(settings, storage, backup, database_url=target)
            assert await table_checks(target) == before
            assert await count(target, "users") == 0


async def flip_a_byte(storage: StorageProvider, key: str) -> None:
    data = bytearray(b"".join([chunk async for chunk in storage.get(key)]))
    data[len(data) // 2] ^= 0x01

    async def chunks() -> AsyncIterator[bytes]:
        yield bytes(data)

    await storage.put(key, chunks(), content_type="application/octet-stream")


async def test_a_corrupted_dump_is_refused_before_anything_is_touched(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    storage_settings: Settings,
    tmp_path: Path,
) -> None:
    await populate(app, gql, http)
    async with opened(storage_settings) as storage:
        backup = await create_backup(storage_settings, storage)
        await flip_a_byte(storage, backup.key)
        async with migrated_target(template, tmp_path) as target:
            before = await table_checks(target)
            with pytest.raises(BackupError, match=r"corrupt.*checksum mismatch"):
                await restore_backup(storage_settings, storage, backup, database_url=target)
            assert await table_checks(target) == before


async def test_a_table_that_differs_from_the_manifest_is_named(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    settings = backup_settings(tmp_path, database_url, "local")
    await populate(app, gql, http)
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        async with migrated_target(template, tmp_path, "tampered") as target:
            await restore_backup(settings, storage, backup, database_url=target)
            # One changed value in one row.
            await execute(target, "UPDATE posts SET text = 'edited' WHERE text = 'bob says hello'")
            with pytest.raises(BackupError, match="table 'posts' has rows that differ"):
                await verify_backup(backup, database_url=target)
            await execute(target, "DELETE FROM follows")
            with pytest.raises(BackupError, match="table 'follows' has 0 rows, the backup 3"):
                await verify_backup(backup, database_url=target)

        # A manifest whose checksum does not match what its dump restores.
        wrong = dict(backup.tables)
        wrong["users"] = TableCheck(wrong["users"].rows, "0" * 64)
        lying = dataclasses.replace(backup, tables=wrong)
        async with migrated_target(template, tmp_path, "lied_to") as target:
            with pytest.raises(BackupError, match="table 'users' has rows that differ"):
                await restore_backup(settings, storage, lying, database_url=target)
            if BACKEND == "sqlite":  # checked before it is moved into place
                assert await count(target, "users") == 0


async def test_retention_keeps_the_newest_and_the_young(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    settings = backup_settings(tmp_path, database_url, "local", keep=2, keep_days=1)
    async with opened(settings) as storage:
        made = [await create_backup(settings, storage) for _ in range(4)]
        newest_first = made[::-1]
        assert [b.id for b in await list_backups(settings, storage)] == [b.id for b in newest_first]
        # All younger than a day: all kept.
        assert await prune(settings, storage) == []
        assert len(await list_backups(settings, storage)) == 4
        # Two days on: only the newest two.
        later = datetime.now(UTC) + timedelta(days=2)
        pruned = await prune(settings, storage, now=later)
        assert [b.id for b in pruned] == [b.id for b in newest_first[2:]]
        assert await list_backups(settings, storage) == newest_first[:2]
        left = (await storage.list(settings.backup.prefix)).objects
        assert {obj.key.split("/")[1] for obj in left} == {b.id for b in newest_first[:2]}


async def test_a_dump_without_manifest_is_no_backup_and_is_pruned_after_a_day(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    settings = backup_settings(tmp_path, database_url, "local", keep=1)
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        old = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y%m%dT%H%M%S%fZ")
        young = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y%m%dT%H%M%S%fZ")
        for stray in (old, young):

            async def chunks() -> AsyncIterator[bytes]:
                yield b"half a dump"

            await storage.put(
                f"backups/{stray}/database.dump", chunks(), content_type="application/x"
            )
        assert await list_backups(settings, storage) == [backup]
        assert await prune(settings, storage) == []
        keys = {obj.key for obj in (await storage.list("backups/")).objects}
        assert keys == {backup.key, backup.manifest_key, f"backups/{young}/database.dump"}


async def test_a_failed_backup_leaves_no_backup(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    settings = backup_settings(tmp_path, database_url, "local")
    if BACKEND == "postgres":
        missing = database_url.rpartition("/")[0] + "/holdfast_no_such_database"
        match = "cannot connect"
    else:
        missing = f"sqlite://{tmp_path / 'missing.sqlite3'}"
        match = "no SQLite database"
    async with opened(settings) as storage:
        with pytest.raises(BackupError, match=match):
            await create_backup(settings, storage, database_url=missing)
        assert await list_backups(settings, storage) == []
        assert (await storage.list("")).objects == ()


async def test_a_storage_failure_is_a_backup_error_and_leaves_nothing(
    app: Starlette, database_url: str, tmp_path: Path, moto: MotoServer
) -> None:
    settings = backup_settings(tmp_path, database_url, "s3", moto)
    options = settings.storage.backends["s3"].options
    # A bucket that does not exist (and is not created): every put fails.
    missing = settings.storage.backends["s3"].model_copy(
        update={"options": {**options, "create_bucket": False}}
    )
    broken = settings.model_copy(
        update={
            "storage": settings.storage.model_copy(
                update={"backends": {**settings.storage.backends, "s3": missing}}
            )
        }
    )
    async with opened(broken) as storage:
        with pytest.raises(BackupError, match=r"storing backup \S+ failed"):
            await create_backup(broken, storage)
    async with opened(settings) as storage:  # the same bucket, created now: empty
        assert await list_backups(settings, storage) == []
        assert (await storage.list("")).objects == ()


async def test_a_missing_pg_dump_is_a_clear_error(
    app: Starlette, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if BACKEND != "postgres":
        pytest.skip("pg_dump is PostgreSQL's")
    settings = backup_settings(tmp_path, database_url, "local")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    async with opened(settings) as storage:
        with pytest.raises(BackupError, match="pg_dump is not installed"):
            await create_backup(settings, storage)
        assert (await storage.list("")).objects == ()


async def test_a_backup_of_another_engine_is_refused(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    settings = backup_settings(tmp_path, database_url, "local")
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        other = "sqlite" if BACKEND == "postgres" else "postgres"
        other_url = (
            f"sqlite://{tmp_path / 'x.sqlite3'}"
            if other == "sqlite"
            else "postgres://nobody:secret@127.0.0.1:1/x"
        )
        with pytest.raises(BackupError, match=rf"is a {BACKEND} dump.*is {other}"):
            await restore_backup(settings, storage, backup, database_url=other_url)


async def test_the_backup_commands(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    """`holdfast backup create|list|restore|prune` as an operator runs them (local storage in
    the data directory)."""
    await populate(app, gql, http)
    code, out = await run_holdfast(tmp_path, "backup", "list", database_url=database_url)
    assert (code, out.strip()) == (0, "no backups")
    code, out = await run_holdfast(tmp_path, "backup", "create", database_url=database_url)
    assert code == 0, out
    assert out.startswith("created ")
    settings = backup_settings(tmp_path, database_url, "local")
    async with opened(settings) as storage:
        (backup,) = await list_backups(settings, storage)
    code, out = await run_holdfast(tmp_path, "backup", "list", database_url=database_url)
    assert code == 0, out
    assert out.startswith(backup.id)

    async with migrated_target(template, tmp_path, "cli") as target:
        # Into the configured database (it holds rows): refused, exit 1.
        code, out = await run_holdfast(
            tmp_path, "backup", "restore", "latest", "--yes", database_url=database_url
        )
        assert code == 1, out
        assert "not empty" in out
        # A password on the command line (`ps` shows it) is refused before anything else.
        code, out = await run_holdfast(
            tmp_path,
            "backup",
            "restore",
            backup.id,
            "--database-url",
            "postgres://holdfast:hunter2@127.0.0.1:1/x",
            "--yes",
            database_url=database_url,
        )
        assert code == 2, out
        assert "HOLDFAST_RESTORE_DATABASE_URL" in out
        assert "hunter2" not in out
        # The target from the environment instead.
        code, out = await run_holdfast(
            tmp_path,
            "backup",
            "restore",
            backup.id,
            "--yes",
            database_url=database_url,
            restore_database_url=target,
        )
        assert code == 0, out
        assert f"restored backup {backup.id}" in out
        assert f"{sum(c.rows for c in backup.tables.values()):,} rows verified" in out
        assert await count(target, "posts") == POPULATED["posts"]
    code, out = await run_holdfast(
        tmp_path, "backup", "restore", "no-such-id", "--yes", database_url=database_url
    )
    assert code == 1
    assert "no backup 'no-such-id'" in out
    code, out = await run_holdfast(tmp_path, "backup", "prune", database_url=database_url)
    assert (code, out.strip()) == (0, "pruned 0 backups")


def test_backup_info_lists_rows() -> None:
    info = BackupInfo(
        id="x",
        key="backups/x/database.dump",
        created_at=datetime.now(UTC),
        engine="sqlite",
        size=1,
        sha256="0" * 64,
        tables={"a": TableCheck(2, "c"), "b": TableCheck(3, "d")},
    )
    assert info.rows == 5
    assert info.manifest_key == "backups/x/manifest.json"


async def test_storage_orphans_and_verify_leave_backups_alone(
    app: Starlette, database_url: str, tmp_path: Path
) -> None:
    """Backups have no stored_objects rows: `holdfast storage orphans --delete` must not take
    them for orphans (it deleted every backup), while a real orphan beside them still goes."""
    settings = backup_settings(tmp_path, database_url, "local")
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)

        async def chunks() -> AsyncIterator[bytes]:
            yield b"no row"

        await storage.put("stray/orphan", chunks(), content_type="application/octet-stream")
    code, out = await run_holdfast(tmp_path, "storage", "verify", database_url=database_url)
    assert code == 1, out  # the stray object
    assert "stray/orphan" in out
    assert "backups/" not in out
    code, out = await run_holdfast(
        tmp_path, "storage", "orphans", "--delete", database_url=database_url
    )
    assert code == 0, out
    assert "deleted 1 of 1 orphans" in out
    async with opened(settings) as storage:
        assert await list_backups(settings, storage) == [backup]
        keys = {obj.key for obj in (await storage.list("")).objects}
        assert keys == {backup.key, backup.manifest_key}


async def test_a_failed_postgres_restore_leaves_the_target_unchanged(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A dump that breaks off (pg_restore fails half-way) changes nothing: the migrated
    schema's drop and the restore are one transaction, committed only when pg_restore
    succeeded."""
    if BACKEND != "postgres":
        pytest.skip("pg_restore is PostgreSQL's")
    settings = backup_settings(tmp_path, database_url, "local")
    await populate(app, gql, http)
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        data = b"".join([chunk async for chunk in storage.get(backup.key)])
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    async with migrated_target(template, tmp_path, "truncated") as target:
        before = await table_checks(target)
        assert "users" in before
        with pytest.raises(BackupError, match=r"pg_restore failed.*nothing was restored"):
            await restore(truncated, target, backup.tables)
        assert await table_checks(target) == before


async def test_latest_is_the_newest_backup_holding_user_data(
    template: str,
    app: Starlette,
    gql: GraphQLClient,
    http: AsyncClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A fresh fleet backs up an empty database: that backup must never become what `restore
    latest` restores, and the scheduler's backups skip such a database."""
    settings = backup_settings(tmp_path, database_url, "local")
    async with opened(settings) as storage:
        with pytest.raises(NoUserData, match="holds no user data"):
            await create_backup(settings, storage, require_user_data=True)
        assert (await storage.list("")).objects == ()
        await populate(app, gql, http)
        real = await create_backup(settings, storage, require_user_data=True)
        assert real.user_data
        async with migrated_target(template, tmp_path, "empty") as empty:
            newer = await create_backup(settings, storage, database_url=empty)
        assert not newer.user_data
        assert [b.id for b in await list_backups(settings, storage)] == [newer.id, real.id]
        assert await latest_backup(settings, storage) == real
        manifest = json.loads(b"".join([chunk async for chunk in storage.get(newer.manifest_key)]))
        assert manifest["user_data"] is False


async def test_dumps_are_spooled_under_the_data_directory(
    template: str,
    app: Starlette,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not in TMPDIR, which is memory on a tmpfs (PrivateTmp, a container's /tmp): with no
    usable temporary directory at all, backing up and restoring still work."""
    settings = backup_settings(tmp_path, database_url, "local")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    async with opened(settings) as storage:
        backup = await create_backup(settings, storage)
        async with migrated_target(template, tmp_path, "spooled") as target:
            await restore_backup(settings, storage, backup, database_url=target)
    assert (settings.data_dir / "tmp").is_dir()
    assert list((settings.data_dir / "tmp").iterdir()) == []  # cleaned up
