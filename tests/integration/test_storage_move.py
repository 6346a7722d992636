"""Moving every stored object between backends (app/storage/move.py) and checking the records
against the backends (app/storage/audit.py), on real servers: the local disk, moto's S3 (boto3)
and libcloud's S3 driver against the same moto, with failures injected (tests/storage_faults.py)
and a `holdfast storage migrate` process killed part-way.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from tortoise import connections
from tortoise.queryset import QuerySet

from app import sql
from app.models import (
    Job,
    Media,
    MediaPurpose,
    MediaState,
    MoveState,
    StorageMove,
    StoredObject,
    User,
)
from app.services.media_purge import DELETE_OBJECTS, MediaPurger, purge_media
from app.settings import MediaSettings, Settings, StorageSettings
from app.storage import Storage, Written
from app.storage import lease as storage_lease
from app.storage import move as move_module
from app.storage.audit import OrphansBusy, delete_orphans, find_orphans, verify
from app.storage.move import MoveAborted, MoveError, MoveProgress, MoveReport, abandon, move
from tests.conftest import BACKEND
from tests.servers import MotoServer, start_moto_server
from tests.storage_faults import NAME as FAULTY
from tests.storage_faults import FaultyStorage, entry_point_dir
from tests.support import HOLDFAST, holdfast_env

pytestmark = pytest.mark.usefixtures("app")

REPO = Path(__file__).resolve().parents[2]
PART = 8 * 1024 * 1024  # the S3 provider's part size
BIG = 9 * 1024 * 1024  # above it: a multipart copy
FAST = (0.01, 0.01)  # retry delays


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def faults_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return entry_point_dir(tmp_path_factory.mktemp("faults"))


@pytest.fixture(autouse=True)
def _faulty_registered(faults_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(faults_path))


def backends(tmp_path: Path, moto: MotoServer) -> dict[str, Any]:
    """`local`, `s3` (boto3) and `libcloud` (its S3 driver, against the same moto), in a
    directory and two buckets of their own."""
    tag = secrets.token_hex(4)
    return {
        "local": {"provider": "local", "options": {"root": str(tmp_path / "local")}},
        "s3": {
            "provider": "s3",
            "options": {
                "bucket": f"move-s3-{tag}",
                "endpoint_url": moto.endpoint,
                "addressing_style": "path",
                "access_key_id": "testing",
                "secret_access_key": "testing",
                "create_bucket": True,
            },
        },
        "libcloud": {
            "provider": "libcloud",
            "options": {
                "driver": "S3",
                "container": f"move-lc-{tag}",
                "key": "testing",
                "secret": "testing",
                "driver_options": {
                    "host": "127.0.0.1",
                    "port": moto.port,
                    "secure": False,
                    "region": "us-east-1",
                },
                "create_container": True,
            },
        },
    }


def with_faults(configured: dict[str, Any], **wrapped: dict[str, Any]) -> dict[str, Any]:
    """`configured` with each backend named in `wrapped` behind a FaultyStorage with those
    options (the same directory or bucket)."""
    result = dict(configured)
    for name, faults in wrapped.items():
        inner = configured[name]
        result[name] = {
            "provider": FAULTY,
            "options": {"provider": inner["provider"], "options": inner["options"], **faults},
        }
    return result


@pytest.fixture
def configured(tmp_path: Path, moto: MotoServer) -> dict[str, Any]:
    return backends(tmp_path, moto)


@pytest.fixture
async def storages() -> AsyncIterator[list[Storage]]:
    """Storages made by `make_storage`, closed after the test."""
    made: list[Storage] = []
    yield made
    for storage in made:
        await storage.close()


def make_storage(
    made: list[Storage], configured: dict[str, Any], *, default: str = "local", **options: Any
) -> Storage:
    """A Storage of `configured`, its moves finishing as soon as nothing is left (no settle
    time) unless `options` say otherwise."""
    values: dict[str, Any] = {"move_concurrency": 4, "move_settle_seconds": 0, **options}
    storage = Storage(StorageSettings(default=default, backends=configured, **values))
    made.append(storage)
    return storage


async def chunked(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def seed(
    storage: Storage, sizes: list[int], prefix: str = "media", *, named: bool = False
) -> dict[str, bytes]:
    """Objects of `sizes` written and recorded through `Storage`; key -> bytes. Keys are
    `<prefix>/<number>/<a, b, c...>.bin` when `named`, else with a random name."""
    rng = random.Random(len(sizes))  # noqa: S311 (test data)
    contents = {}
    for number, size in enumerate(sizes):
        name = "abcdefghijklmnopqrstuvwxyz"[number] if named else secrets.token_hex(4)
        key = f"{prefix}/{number:03d}/{name}.bin"
        data = rng.randbytes(size)
        written = await storage.put(key, chunked(data), content_type="application/octet-stream")
        await storage.record(connections.get("default"), written, owner_id=None)
        contents[key] = data
    return contents


SIZES = [1, 10, 1_000, 50_000, 300_000, 1_100_000, BIG, 2_000, 3_000, 4_000, 5_000]


async def read(storage: Storage, key: str) -> bytes:
    obj = await StoredObject.get(key=key)
    return b"".join([chunk async for chunk in storage.open(obj)])


async def assert_all_at(storage: Storage, backend: str, contents: dict[str, bytes]) -> None:
    rows = await StoredObject.all()
    assert {row.key: row.backend for row in rows} == dict.fromkeys(contents, backend)
    for key, data in contents.items():
        assert await read(storage, key) == data, key
    audit = await verify(storage)
    assert audit.checked == len(contents)
    assert audit.missing == []
    assert audit.differing == []


async def test_local_to_s3_to_libcloud(configured: dict[str, Any], storages: list[Storage]) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, SIZES)
    seen: list[MoveProgress] = []

    report = await move(storage, "s3", on_progress=seen.append)

    assert report.ok
    assert report.finished
    assert report.copied == len(contents)
    assert report.copied_bytes == sum(map(len, contents.values()))
    assert (report.skipped, report.failed, report.remaining) == (0, [], 0)
    assert report.next_step() == "set HOLDFAST_STORAGE__DEFAULT=s3"
    assert seen[-1].done_objects == seen[-1].total_objects == len(contents)
    await assert_all_at(storage, "s3", contents)
    # The sources stay, as orphans of `local` whose rows are elsewhere.
    orphans = await find_orphans(storage)
    assert {(o.backend, o.key, o.recorded_in) for o in orphans} == {
        ("local", key, "s3") for key in contents
    }
    assert (await StorageMove.get(target="s3")).state is MoveState.FINISHED
    assert await storage.write_target() == "s3"

    report = await move(storage, "libcloud")

    assert report.ok
    assert report.finished
    assert report.copied == len(contents)
    await assert_all_at(storage, "libcloud", contents)
    assert await storage.write_target() == "libcloud"
    # Nothing left: a rerun copies nothing and counts everything as there already.
    again = await move(storage, "libcloud")
    assert (again.copied, again.skipped, again.remaining, again.ok) == (0, len(contents), 0, True)


async def test_reads_never_fail_and_writes_go_to_the_target(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    # A slow target, so that the reads overlap the whole move.
    storage = make_storage(storages, with_faults(configured, s3={"delay": 0.05}))
    contents = await seed(storage, [1_000 * (n + 1) for n in range(16)] + [BIG])
    keys = list(contents)
    reads: dict[str, set[str]] = {key: set() for key in keys}
    failures: list[BaseException] = []
    moving = asyncio.Event()
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            for key in keys:
                try:
                    obj = await StoredObject.get(key=key)
                    data = b"".join([chunk async for chunk in storage.open(obj)])
                    assert data == contents[key], key
                    reads[key].add(obj.backend)
                except Exception as exc:
                    failures.append(exc)

    async def writer() -> str:
        await moving.wait()
        written = await storage.put("media/new.bin", chunked(b"new"), content_type="text/plain")
        await storage.record(connections.get("default"), written, owner_id=None)
        return written.backend

    def progress(state: MoveProgress) -> None:
        if state.done_objects >= 2:
            moving.set()

    readers = [asyncio.create_task(reader()) for _ in range(2)]
    writing = asyncio.create_task(writer())
    report = await move(storage, "s3", concurrency=2, on_progress=progress)
    done.set()
    await asyncio.gather(*readers)

    assert failures == []
    assert report.ok
    assert report.copied == len(contents)
    assert await writing == "s3"
    # Every object was read from where it was, before and after its switch.
    assert all(backends <= {"local", "s3"} and backends for backends in reads.values())
    assert any(backends == {"local", "s3"} for backends in reads.values())
    contents["media/new.bin"] = b"new"
    await assert_all_at(storage, "s3", contents)


async def test_failures_are_reported_and_a_rerun_completes(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    failing_keys = ["media/001/b.bin", "media/002/c.bin"]
    flaky_source = "media/004/e.bin"
    # The target errors on two objects for more attempts than a run makes, and the source on
    # one once (retried within the run).
    storage = make_storage(
        storages,
        with_faults(
            configured,
            s3={"fail_keys": failing_keys, "failures": len(FAST) + 1},
            local={"fail_keys": [flaky_source], "failures": 1, "fail_on": "get"},
        ),
    )
    contents = await seed(storage, [2_000, 70_000, BIG, 3_000, 4_000, 5_000], named=True)
    failing = sorted(failing_keys)
    report = await move(storage, "s3", retry_delays=FAST)

    assert not report.ok
    assert not report.finished
    assert sorted(failure.key for failure in report.failed) == failing
    assert all("injected failure" in failure.reason for failure in report.failed)
    assert report.copied == len(contents) - 2
    assert report.remaining == 2
    assert storage.backends["local"].calls[flaky_source] == 2  # type: ignore[attr-defined]
    rows = {row.key: row.backend for row in await StoredObject.all()}
    assert {key for key, backend in rows.items() if backend == "local"} == set(failing)
    assert (await StorageMove.get(target="s3")).state is MoveState.RUNNING
    for key, data in contents.items():
        assert await read(storage, key) == data

    # The injected failures are used up: the rerun resumes the same move and completes it.
    report = await move(storage, "s3", retry_delays=FAST)

    assert report.ok
    assert report.finished
    assert (report.copied, report.skipped, report.failed) == (2, len(contents) - 2, [])
    assert await StorageMove.filter(target="s3").count() == 1
    await assert_all_at(storage, "s3", contents)


async def test_a_corrupt_source_is_not_switched(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 2_000])
    bad = sorted(contents)[0]
    (tmp_path / "local" / bad).write_bytes(b"x" * 1_000)  # same size, other bytes

    report = await move(storage, "s3", retry_delays=FAST)

    assert [failure.key for failure in report.failed] == [bad]
    assert "SHA-256" in report.failed[0].reason
    assert (await StoredObject.get(key=bad)).backend == "local"
    # The bad copy was not left at the target.
    assert [o.key for o in await find_orphans(storage) if o.backend == "s3"] == []


@pytest.mark.parametrize("target", ["s3", "libcloud"])
async def test_the_target_is_read_back_only_when_it_did_not_check(
    configured: dict[str, Any],
    storages: list[Storage],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    """S3 checks each upload against the SHA-256 sent with it: no `head` follows the put.
    A target that cannot (libcloud, the local disk) is read back with a `head`."""
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 70_000, BIG])
    provider = storage.provider(target)
    heads: list[str] = []
    head = provider.head

    async def counted(key: str) -> Any:
        heads.append(key)
        return await head(key)

    monkeypatch.setattr(provider, "head", counted)

    report = await move(storage, target)

    assert report.ok
    assert sorted(heads) == ([] if target == "s3" else sorted(contents))
    await assert_all_at(storage, target, contents)


def incomplete_uploads(configured: dict[str, Any]) -> set[str]:
    """Keys of the `s3` backend's multipart uploads begun and never completed nor aborted."""
    import boto3

    options = configured["s3"]["options"]
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        found = client.list_multipart_uploads(Bucket=options["bucket"])
    finally:
        client.close()
    return {upload["Key"] for upload in found.get("Uploads", [])}


def marked(marks: Path, key: str, event: str) -> Path:
    """The mark a FaultyStorage with `mark_dir=marks` leaves at `event` of a put of `key`."""
    return marks / f"{key.replace('/', '_')}.{event}"


async def until_marked(process: subprocess.Popen[bytes], *marks: Path) -> None:
    """Wait until the `holdfast` process has left every one of `marks`."""
    deadline = time.monotonic() + 60
    while not all(mark.exists() for mark in marks):
        assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, [mark.name for mark in marks if not mark.exists()]
        await asyncio.sleep(0.02)


async def test_a_migrate_killed_mid_copy_resumes(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage], settings: Settings
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # The target takes the big object's first part, then no more of it: its copy stalls
    # mid-stream until the process is killed.
    stalling = with_faults(configured, s3={"stall_after": PART, "mark_dir": str(marks)})
    storage = make_storage(storages, stalling)
    # The big object first: the walk starts with it.
    contents = await seed(storage, [BIG] + [500 * (n + 1) for n in range(24)])
    big = next(iter(contents))
    await storage.provider("s3").list()  # the bucket exists
    env = cli_env(tmp_path, settings, stalling, HOLDFAST_STORAGE__MOVE_LEASE_SECONDS="10")

    process = start_holdfast(env, "storage", "migrate", "--to", "s3", "--concurrency", "2")
    try:
        # Its put has sent its first part (a multipart upload exists) and waits for the
        # rest: kill it there.
        await until_marked(process, marked(marks, big, "stalled"))
        assert big in await asyncio.to_thread(incomplete_uploads, configured)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()  # type: ignore[union-attr]

    # The killed run's lease holds a rerun off until it runs out (read first: a loaded
    # machine can take seconds to start the rerun's process).
    held = await storage_lease.holder()
    assert held is not None
    refused = holdfast(env, "storage", "migrate", "--to", "s3")
    assert refused.returncode == 2, refused.stderr
    assert "another `holdfast storage migrate`" in refused.stderr

    assert marked(marks, big, "put").exists()
    assert (await StoredObject.get(key=big)).backend == "local"
    switched = await StoredObject.filter(backend="s3").count()
    assert switched < len(contents)
    audit = await verify(storage)  # every switched row has its whole copy
    assert (audit.missing, audit.differing) == ([], [])
    for key, data in contents.items():
        assert await read(storage, key) == data

    await asyncio.sleep(max(0, (held[1] - datetime.now(UTC)).total_seconds()) + 0.1)
    # The same target, which takes whole objects again.
    env = cli_env(tmp_path, settings, configured, HOLDFAST_STORAGE__MOVE_LEASE_SECONDS="10")
    rerun = holdfast(env, "storage", "migrate", "--to", "s3", "--concurrency", "4")

    assert rerun.returncode == 0, rerun.stderr
    assert f"already at s3: {switched}" in rerun.stdout
    assert "last step: set HOLDFAST_STORAGE__DEFAULT=s3" in rerun.stdout
    await assert_all_at(storage, "s3", contents)
    # The killed process's unfinished upload of the big object was aborted by the rerun's
    # put of the same key: nothing is left behind, nothing billed.
    assert await asyncio.to_thread(incomplete_uploads, configured) == set()


async def test_an_interrupted_migrate_leaves_no_partial_upload(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage], settings: Settings
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    stalling = with_faults(configured, s3={"stall_after": PART, "mark_dir": str(marks)})
    storage = make_storage(storages, stalling)
    contents = await seed(storage, [BIG, 1_000, 2_000])
    big, *small = contents
    await storage.provider("s3").list()  # the bucket exists
    env = cli_env(tmp_path, settings, stalling)

    process = start_holdfast(env, *MIGRATE_S3, "--concurrency", "2")
    try:
        # The small objects stored, the big one's first part sent and the rest awaited.
        stored = [marked(marks, key, "stored") for key in small]
        await until_marked(process, marked(marks, big, "stalled"), *stored)
        assert big in await asyncio.to_thread(incomplete_uploads, configured)
        process.send_signal(signal.SIGINT)  # Ctrl-C while the big object streams
        stderr = (await asyncio.to_thread(process.communicate, timeout=60))[1].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    assert "interrupted: every object recorded at s3 was verified there" in stderr
    assert await asyncio.to_thread(incomplete_uploads, configured) == set()
    assert (await StoredObject.get(key=big)).backend == "local"
    assert await StoredObject.filter(backend="s3").count() == 2  # recorded on the way out
    assert await storage_lease.holder() is None  # given back


async def test_verify_and_orphans(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 2_000, 3_000, 4_000])
    gone, changed, rewritten, _ = sorted(contents)
    local = storage.provider("local")
    await local.delete(gone)
    await local.put(changed, chunked(b"other"), content_type="text/plain")
    (tmp_path / "local" / rewritten).write_bytes(b"y" * 3_000)  # behind the provider's back
    await local.put("media/orphan.bin", chunked(b"o"), content_type="text/plain")
    await local.put("uploads/inflight.bin", chunked(b"i"), content_type="text/plain")
    await local.put("media/7/run-full.webp", chunked(b"r"), content_type="image/webp")
    await storage.provider("s3").put("stray.bin", chunked(b"s"), content_type="text/plain")

    async def inflight() -> set[str]:
        return {"uploads/inflight.bin", "media/7/"}  # a key, and a prefix

    audit = await verify(storage, keep=inflight)

    assert not audit.clean
    assert audit.checked == 4
    assert [(m.backend, m.key) for m in audit.missing] == [("local", gone)]
    assert [(d.key, d.size) for d in audit.differing] == [(changed, 5)]
    assert [(o.backend, o.key, o.recorded_in) for o in audit.orphans] == [
        ("local", "media/orphan.bin", None),
        ("s3", "stray.bin", None),
    ]
    deep = await verify(storage, deep=True, keep=inflight)
    assert sorted(d.key for d in deep.differing) == sorted([changed, rewritten])

    deletion = await delete_orphans(storage, audit.orphans, keep=inflight)

    assert [o.key for o in deletion.deleted] == ["media/orphan.bin", "stray.bin"]
    assert (deletion.failed, deletion.kept) == ([], [])
    assert (await verify(storage, keep=inflight)).orphans == []
    assert [o.key for o in await find_orphans(storage)] == [
        "media/7/run-full.webp",
        "uploads/inflight.bin",
    ]


async def test_a_copy_in_flight_is_no_orphan(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000])
    (key,) = contents
    # A move's copy made, not yet recorded: an orphan only once no move is running.
    await StorageMove.create(target="s3", from_default="local")
    await storage.provider("s3").put(key, chunked(contents[key]), content_type="text/plain")
    assert await find_orphans(storage) == []
    assert (await delete_orphans(storage, [*(await verify(storage)).orphans])).deleted == []
    assert await abandon("s3")
    assert [(o.backend, o.recorded_in) for o in await find_orphans(storage)] == [("s3", "local")]


async def test_dry_run_changes_nothing(configured: dict[str, Any], storages: list[Storage]) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 2_000, 3_000])

    report = await move(storage, "s3", dry_run=True)

    assert report.ok
    assert not report.finished
    assert (report.remaining, report.remaining_bytes, report.copied) == (3, 6_000, 0)
    assert await StorageMove.all().count() == 0
    assert {row.backend for row in await StoredObject.all()} == {"local"}
    assert (await storage.provider("s3").list()).objects == ()
    assert await storage.write_target() == "local"
    assert len(contents) == 3


async def test_one_move_at_a_time(configured: dict[str, Any], storages: list[Storage]) -> None:
    storage = make_storage(storages, with_faults(configured, s3={"delay": 0.1}))
    await seed(storage, [1_000] * 6)
    started = asyncio.Event()
    first = asyncio.create_task(
        move(storage, "s3", concurrency=1, on_progress=lambda _: started.set())
    )
    await started.wait()

    with pytest.raises(MoveError, match="a move to 's3' is running"):
        await move(storage, "libcloud")
    with pytest.raises(MoveError, match="no storage backend 'nowhere'"):
        await move(storage, "nowhere")

    assert (await first).finished
    assert (await move(storage, "libcloud")).finished


async def test_abandon_sends_writes_back_to_the_default(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    await StorageMove.create(target="s3", from_default="local")
    assert await storage.write_target() == "s3"

    assert await abandon("s3")

    assert await storage.write_target() == "local"
    assert not await abandon("s3")


def cli_env(
    tmp_path: Path, settings: Settings, configured: dict[str, Any], **extra: str
) -> dict[str, str]:
    env = holdfast_env(
        tmp_path / "data",
        HOLDFAST_DATABASE_URL=settings.effective_database_url,
        HOLDFAST_STORAGE__DEFAULT="local",
        HOLDFAST_STORAGE__BACKENDS=json.dumps(configured),
        HOLDFAST_STORAGE__MOVE_SETTLE_SECONDS="0",
        **extra,
    )
    path = [str(entry_point_dir(tmp_path / "faults")), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_holdfast(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [HOLDFAST, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def holdfast(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOLDFAST, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_cli_exit_codes(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage], settings: Settings
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 2_000])
    env = cli_env(tmp_path, settings, configured)

    unknown = holdfast(env, "storage", "migrate", "--to", "nowhere")
    dry = holdfast(env, "storage", "migrate", "--to", "s3", "--dry-run")
    waiting = holdfast({**env, "HOLDFAST_STORAGE__MOVE_SETTLE_SECONDS": "600"}, *MIGRATE_S3)
    moved = holdfast(env, "storage", "migrate", "--to", "s3")
    status = holdfast(env, "storage", "status")
    dirty = holdfast(env, "storage", "verify")  # the sources are orphans now
    listed = holdfast(env, "storage", "orphans")
    orphans = holdfast(env, "storage", "orphans", "--delete")
    clean = holdfast(env, "storage", "verify", "--deep")

    assert unknown.returncode == 2
    assert "no storage backend 'nowhere'" in unknown.stderr
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 2 objects (3.0 KB) would be copied to s3" in dry.stdout
    # Everything copied, but writes begun before the move may still land at local.
    assert waiting.returncode == 0, waiting.stderr
    assert "copied 2 objects (3.0 KB) to s3" in waiting.stdout
    assert "all copied; not finished yet because the move started at" in waiting.stdout
    assert "run `holdfast storage migrate --to s3` again after" in waiting.stdout
    assert "source objects were not deleted" not in waiting.stdout
    assert moved.returncode == 0, moved.stderr
    assert "already at s3: 2" in moved.stdout
    assert "move finished; last step: set HOLDFAST_STORAGE__DEFAULT=s3" in moved.stdout
    assert "source objects were not deleted" in moved.stdout
    assert status.returncode == 0, status.stderr
    assert "2 objects" in status.stdout
    assert "new objects go here" in status.stdout
    assert dirty.returncode == 1
    assert "0 missing, 0 differing, 2 orphaned" in dirty.stdout
    assert listed.returncode == 0, listed.stderr
    assert "2 orphans" in listed.stdout
    assert orphans.returncode == 0
    assert "deleted 2 of 2 orphans" in orphans.stdout
    assert clean.returncode == 0, clean.stdout
    assert "checked 2 objects: 0 missing, 0 differing, 0 orphaned" in clean.stdout
    for key, data in contents.items():
        assert await read(storage, key) == data

    # An object that cannot be copied (gone at its backend): the move exits 1, verify too.
    (lost,) = await seed(storage, [10], prefix="more")
    await storage.provider("s3").delete(lost)
    partial = holdfast(env, "storage", "migrate", "--to", "libcloud")
    missing = holdfast(env, "storage", "verify")

    assert partial.returncode == 1
    assert f"{lost} (at s3): NotFound" in partial.stdout
    assert "failed: 1" in partial.stdout
    assert "move not finished" in partial.stdout
    assert missing.returncode == 1
    assert f"missing    s3  {lost}" in missing.stdout

    abandoned = holdfast(env, "storage", "migrate", "--to", "libcloud", "--abandon")
    again = holdfast(env, "storage", "migrate", "--to", "libcloud", "--abandon")

    assert abandoned.returncode == 0, abandoned.stderr
    assert "move to libcloud (running) abandoned: new objects go to local" in abandoned.stdout
    assert again.returncode == 1


MIGRATE_S3 = ("storage", "migrate", "--to", "s3")


async def test_cli_exit_codes_on_errors(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage], settings: Settings
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [1_000, 2_000], named=True)
    first, second = contents
    bug = with_faults(configured, s3={"fail_keys": [second], "failures": 1, "error": "runtime"})

    stopped = holdfast(cli_env(tmp_path, settings, bug), *MIGRATE_S3, "--concurrency", "1")

    assert stopped.returncode == 3, stopped.stderr
    assert "the move stopped on an error: RuntimeError: injected failure of put" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert {row.key: row.backend for row in await StoredObject.all()} == {
        first: "s3",
        second: "local",
    }

    await storage.provider("s3").put("stray.bin", chunked(b"s"), content_type="text/plain")
    stuck = with_faults(
        configured, s3={"fail_keys": ["stray.bin"], "failures": 9, "fail_on": "delete"}
    )
    env = cli_env(tmp_path, settings, stuck)
    listed = holdfast(env, "storage", "orphans")
    failed = holdfast(env, "storage", "orphans", "--delete")

    assert listed.returncode == 0, listed.stderr
    assert "orphan     s3  stray.bin: 1 B (no record)" in listed.stdout
    assert failed.returncode == 1, failed.stderr
    assert "not deleted  s3  stray.bin: Unavailable: injected failure of delete" in failed.stdout
    assert "deleted 1 of 2 orphans; 1 failed" in failed.stdout


# --- which backend new objects go to -------------------------------------------------------


async def test_only_the_newest_move_steers_writes(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    at_local = make_storage(storages, configured)
    await seed(at_local, [100, 200])
    assert (await move(at_local, "s3")).finished
    assert await at_local.write_target() == "s3"  # the default is still local
    at_s3 = make_storage(storages, configured, default="s3")  # the last step: default s3
    assert await at_s3.write_target() == "s3"
    assert (await move(at_s3, "local")).finished  # and, later, back
    assert await at_s3.write_target() == "local"

    back = make_storage(storages, configured)  # default local again
    # The first move (started from local) is not the newest: writes stay at local.
    assert await back.write_target() == "local"


async def test_abandoning_a_finished_move_ends_its_steering(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [100])
    assert (await move(storage, "s3")).finished
    assert await storage.write_target() == "s3"

    assert await abandon("libcloud") is None  # not the newest move's target
    assert await abandon("s3") is MoveState.FINISHED

    assert await storage.write_target() == "local"
    assert await abandon("s3") is None
    await assert_all_at(storage, "s3", contents)  # objects stay readable where they are


# --- when a move finishes ------------------------------------------------------------------


async def a_user() -> User:
    tag = secrets.token_hex(4)
    return await User.create(
        username=f"u{tag}",
        username_key=f"u{tag}",
        email=f"{tag}@example.org",
        password_hash="x",
        display_name="U",
    )


async def a_medium(owner: User, state: MediaState, backend: str, **fields: Any) -> Media:
    return await Media.create(
        owner_id=owner.id,
        purpose=MediaPurpose.POST,
        state=state,
        upload_key=f"uploads/{secrets.token_hex(4)}",
        upload_backend=backend,
        declared_type="image/png",
        declared_size=10,
        **fields,
    )


async def test_a_move_waits_for_its_settle_time(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured, move_settle_seconds=600)
    contents = await seed(storage, [100, 200])
    gate = asyncio.Event()

    async def late() -> AsyncIterator[bytes]:
        await gate.wait()
        yield b"late"

    # A put that chose local before the move started, and lands once everything was copied.
    put = asyncio.create_task(storage.put("media/late.bin", late(), content_type="text/plain"))
    await asyncio.sleep(0.05)

    report = await move(storage, "s3")

    assert report.ok
    assert (report.copied, report.remaining, report.finished) == (2, 0, False)
    assert "storage.move_settle_seconds" in report.waiting[0]
    move_row = await StorageMove.get(target="s3")
    assert move_row.state is MoveState.RUNNING
    assert report.retry_after is not None
    assert abs((report.retry_after - move_row.started_at).total_seconds() - 600) < 1
    assert await storage.write_target() == "s3"
    gate.set()
    written = await put
    assert written.backend == "local"
    await storage.record(connections.get("default"), written, owner_id=None)

    # Later (here: a settings change), a rerun moves the straggler and finishes.
    settled = make_storage(storages, configured)
    report = await move(settled, "s3")

    assert (report.copied, report.finished) == (1, True)
    contents["media/late.bin"] = b"late"
    await assert_all_at(settled, "s3", contents)


async def test_a_row_recorded_elsewhere_after_the_copies_keeps_the_move_running(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={}))
    contents = await seed(storage, [100, 200, 300])
    last = list(contents)[-1]
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)

    async def straggle(key: str) -> None:
        if key == last:  # a write begun before the move lands while its last copy is made
            info = await storage.provider("local").put(
                "media/straggler.bin", chunked(b"s"), content_type="text/plain"
            )
            await storage.record(connections.get("default"), Written("local", info), owner_id=None)

    target.after_put = straggle
    report = await move(storage, "s3", concurrency=1)

    assert (report.copied, report.remaining, report.finished) == (3, 1, False)
    assert (await StorageMove.get(target="s3")).state is MoveState.RUNNING
    target.after_put = None
    report = await move(storage, "s3")
    assert (report.copied, report.finished) == (1, True)
    contents["media/straggler.bin"] = b"s"
    await assert_all_at(storage, "s3", contents)


async def test_media_uploaded_elsewhere_keep_the_move_running(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    contents = await seed(storage, [100])
    owner = await a_user()
    # An upload URL issued before the move (at local), and an upload being processed from it.
    pending = await a_medium(owner, MediaState.PENDING, "local")
    processing = await a_medium(owner, MediaState.PROCESSING, "local")
    # Older than the upload URL lifetime and the settle time: no upload can come any more.
    stale = await a_medium(owner, MediaState.PENDING, "local")
    await Media.filter(id=stale.id).update(created_at=pending.created_at - timedelta(hours=1))
    await a_medium(owner, MediaState.PENDING, "s3")  # after the move began: at the target

    report = await move(storage, "s3", upload_url_ttl=900)

    assert (report.ok, report.remaining, report.finished) == (True, 0, False)
    assert len(report.waiting) == 2
    assert "1 media uploaded to another backend are still being processed" in report.waiting[0]
    assert "1 uploads may still arrive at another backend" in report.waiting[1]
    assert report.retry_after == pending.created_at + timedelta(seconds=900)
    assert (await StorageMove.get(target="s3")).state is MoveState.RUNNING

    await Media.filter(id=processing.id).update(state=MediaState.READY)
    report = await move(storage, "s3", upload_url_ttl=900)
    assert (report.finished, len(report.waiting)) == (False, 1)

    await Media.filter(id=pending.id).delete()  # expired
    report = await move(storage, "s3", upload_url_ttl=900)
    assert (report.finished, report.waiting) == (True, [])
    await assert_all_at(storage, "s3", contents)


# --- one run at a time ---------------------------------------------------------------------


async def test_two_runs_to_one_target_do_not_both_copy(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={"delay": 0.05}))
    contents = await seed(storage, [100] * 8)

    results = await asyncio.gather(
        move(storage, "s3", concurrency=2),
        move(storage, "s3", concurrency=2),
        return_exceptions=True,
    )

    reports = [r for r in results if isinstance(r, MoveReport)]
    refused = [r for r in results if isinstance(r, MoveError)]
    assert (len(reports), len(refused)) == (1, 1), results
    assert "another `holdfast storage migrate`" in str(refused[0])
    assert reports[0].finished
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)
    assert sum(target.calls.values()) == len(contents)  # each object copied once
    assert await StorageMove.all().count() == 1
    await assert_all_at(storage, "s3", contents)


async def test_a_dead_runs_lease_runs_out(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured, move_lease_seconds=1)
    contents = await seed(storage, [100, 200])
    dead = storage_lease.Lease("storage migrate (killed)", 1.0)
    await dead.acquire()  # and never renewed nor given back

    with pytest.raises(MoveError, match=r"storage migrate \(killed\)"):
        await move(storage, "s3")
    assert await StorageMove.all().count() == 0

    await asyncio.sleep(1.05)
    assert (await move(storage, "s3")).finished
    await assert_all_at(storage, "s3", contents)
    assert await storage_lease.holder() is None  # given back at the end


async def test_a_run_that_lost_its_lease_stops(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(
        storages, with_faults(configured, s3={"delay": 0.2}), move_lease_seconds=1
    )
    await seed(storage, [100] * 10)
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)

    async def taken_over(key: str) -> None:
        # Another process took the lease over (this one was paused past its end).
        await storage_lease.StorageLease.all().update(holder="someone else")

    target.after_put = taken_over
    with pytest.raises(MoveAborted, match="lease"):
        await move(storage, "s3", concurrency=1)
    target.after_put = None
    # It stopped at its next renewal; whatever it switched had been verified.
    assert 0 < await StoredObject.filter(backend="local").count() < 10
    audit = await verify(storage)
    assert (audit.missing, audit.differing) == ([], [])


# --- orphans --delete and moves --------------------------------------------------------------


async def test_orphans_delete_and_migrate_exclude_each_other(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={"delay": 0.1}))
    contents = await seed(storage, [100] * 4)
    await storage.provider("local").put("stray.bin", chunked(b"x"), content_type="text/plain")
    found = await find_orphans(storage)

    async with storage_lease.hold(30, role="storage orphans --delete"):
        with pytest.raises(MoveError, match="storage orphans --delete"):
            await move(storage, "s3")

    started = asyncio.Event()
    moving = asyncio.create_task(
        move(storage, "s3", concurrency=1, on_progress=lambda _: started.set())
    )
    await started.wait()
    with pytest.raises(OrphansBusy, match="storage migrate"):
        await delete_orphans(storage, found)
    assert (await moving).finished
    assert [o.key for o in (await delete_orphans(storage, found)).deleted] == ["stray.bin"]
    await assert_all_at(storage, "s3", contents)


async def test_a_move_cannot_start_while_orphans_are_deleted(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    """The copy an abandoned move left at s3 is an orphan; while `orphans --delete` deletes
    it, `migrate --to s3` is refused (it would overwrite that copy, switch the row to it, and
    the deletion would then delete the only copy)."""
    storage = make_storage(storages, with_faults(configured, s3={}))
    contents = await seed(storage, [100])
    (key,) = contents
    await StorageMove.create(target="s3", from_default="local")
    await storage.provider("s3").put(key, chunked(contents[key]), content_type="text/plain")
    assert await abandon("s3")
    found = await find_orphans(storage)
    assert [(o.backend, o.key) for o in found] == [("s3", key)]
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)
    real_delete = target.delete
    refused: list[MoveError] = []

    async def delete_while_a_move_starts(k: str) -> None:
        try:
            await move(storage, "s3")
        except MoveError as exc:
            refused.append(exc)
        await real_delete(k)

    target.delete = delete_while_a_move_starts  # type: ignore[method-assign]
    deletion = await delete_orphans(storage, found)
    target.delete = real_delete  # type: ignore[method-assign]

    assert [o.key for o in deletion.deleted] == [key]
    assert len(refused) == 1
    assert (await StoredObject.get(key=key)).backend == "local"
    assert (await move(storage, "s3")).finished
    await assert_all_at(storage, "s3", contents)


async def test_orphans_are_checked_again_batch_by_batch(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={}))
    keys = [f"stray/{n:03d}.bin" for n in range(60)]
    for key in keys:
        await storage.provider("s3").put(key, chunked(b"x"), content_type="text/plain")
    found = await find_orphans(storage)
    assert len(found) == len(keys)
    late = keys[55]  # in the second batch
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)
    real_delete = target.delete

    async def delete(key: str) -> None:
        if key == keys[0]:  # meanwhile, an upload of `late` finishes and is recorded
            info = await target.head(late)
            await storage.record(connections.get("default"), Written("s3", info), owner_id=None)
        await real_delete(key)

    target.delete = delete  # type: ignore[method-assign]
    deletion = await delete_orphans(storage, found)
    target.delete = real_delete  # type: ignore[method-assign]

    assert [o.key for o in deletion.kept] == [late]
    assert len(deletion.deleted) == len(keys) - 1
    assert (await verify(storage)).clean


async def test_a_finished_moves_target_copy_is_no_orphan_and_its_row_a_straggler(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, configured)
    await seed(storage, [100])
    assert (await move(storage, "s3")).finished
    # A write begun before the move, recorded at local after it finished, with a copy at s3
    # (a rerun of the move was interrupted after copying it).
    info = await storage.provider("local").put("media/late.bin", chunked(b"l"), content_type="x/y")
    await storage.record(connections.get("default"), Written("local", info), owner_id=None)
    await storage.provider("s3").put("media/late.bin", chunked(b"l"), content_type="x/y")

    orphans = await find_orphans(storage)
    audit = await verify(storage)

    assert ("s3", "media/late.bin") not in {(o.backend, o.key) for o in orphans}
    assert [(s.backend, s.key, s.target) for s in audit.stragglers] == [
        ("local", "media/late.bin", "s3")
    ]
    assert not audit.clean
    assert (await delete_orphans(storage, orphans)).failed == []
    assert await storage.provider("s3").head("media/late.bin")  # still there


# --- purges during a move ------------------------------------------------------------------


async def a_purgeable_object(storage: Storage, key: str, data: bytes) -> Media:
    """An object at local that is the full rendition of a ready medium."""
    info = await storage.provider("local").put(key, chunked(data), content_type="image/webp")
    obj = await storage.record(connections.get("default"), Written("local", info), owner_id=None)
    return await a_medium(await a_user(), MediaState.READY, "local", full_id=obj.id)


async def delete_jobs() -> list[list[str]]:
    return [
        pair for job in await Job.filter(name=DELETE_OBJECTS) for pair in job.payload["objects"]
    ]


async def test_a_purge_names_the_backend_a_move_switched_to_meanwhile(
    app: Starlette,
    configured: dict[str, Any],
    storages: list[Storage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = make_storage(storages, configured)
    key = "media/1/full.webp"
    medium = await a_purgeable_object(storage, key, b"full")
    # The move copied it to s3 ...
    await storage.provider("s3").put(key, chunked(b"full"), content_type="image/webp")
    real_delete = QuerySet.delete

    def delete(self: QuerySet[Any]) -> Any:
        query = real_delete(self)
        if self.model is not Media:
            return query

        async def switched_first() -> Any:
            # ... and its switch commits while the purge runs (READ COMMITTED: the purge's
            # next statements see it).
            await sql.execute(
                "UPDATE stored_objects SET backend = 's3' WHERE key = :key", {"key": key}, self._db
            )
            return await query

        return switched_first()

    monkeypatch.setattr(QuerySet, "delete", delete)
    async with app.state.services.changes.begin() as change:
        assert await purge_media(change, id=medium.id) == 1
    monkeypatch.undo()

    assert await delete_jobs() == [["s3", key]]
    await MediaPurger(storage, MediaSettings()).delete_objects({"objects": await delete_jobs()})
    # No copy is left at s3 without a row; the source copy at local is an orphan as after any
    # move.
    assert [(o.backend, o.key) for o in await find_orphans(storage)] == [("local", key)]


async def test_an_object_purged_during_its_copy_leaves_no_copy(
    app: Starlette, configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={}))
    contents = await seed(storage, [100])
    key = "media/2/full.webp"
    medium = await a_purgeable_object(storage, key, b"full")
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)

    async def purge(copied: str) -> None:
        if copied == key:  # copied, not yet switched: purged now
            async with app.state.services.changes.begin() as change:
                await purge_media(change, id=medium.id)

    target.after_put = purge
    report = await move(storage, "s3", concurrency=1)

    assert (report.copied, report.gone, report.failed, report.finished) == (1, 1, [], True)
    assert await delete_jobs() == [["local", key]]
    await MediaPurger(storage, MediaSettings()).delete_objects({"objects": await delete_jobs()})
    await assert_all_at(storage, "s3", contents)
    assert await find_orphans(storage) == [
        o for o in await find_orphans(storage) if o.backend == "local"
    ]
    assert {o.key for o in await find_orphans(storage)} == set(contents)


async def test_an_object_deleted_before_its_copy_is_gone_not_failed(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={}))
    contents = await seed(storage, [100, 200], named=True)
    first, second = contents
    target = storage.backends["s3"]
    assert isinstance(target, FaultyStorage)

    async def purge_second(copied: str) -> None:
        if copied == first:  # the second is purged (row, then bytes) before its copy
            await StoredObject.filter(key=second).delete()
            await storage.provider("local").delete(second)

    target.after_put = purge_second
    report = await move(storage, "s3", concurrency=1)

    assert (report.copied, report.gone, report.failed) == (1, 1, [])
    assert (report.ok, report.finished) == (True, True)
    del contents[second]
    await assert_all_at(storage, "s3", contents)


async def test_purges_bind_at_most_400_ids_a_statement(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await a_user()
    objects = [
        StoredObject(
            key=f"media/{n}/{name}",
            backend="local",
            size=1,
            sha256="0" * 64,
            content_type="image/webp",
        )
        for n in range(500)
        for name in ("full", "thumb")
    ]
    await StoredObject.bulk_create(objects)
    ids = {o.key: o.id for o in await StoredObject.all()}
    await Media.bulk_create(
        [
            Media(
                owner_id=owner.id,
                purpose=MediaPurpose.POST,
                state=MediaState.READY,
                upload_key=f"uploads/{n}",
                upload_backend="local",
                declared_type="image/png",
                declared_size=1,
                full_id=ids[f"media/{n}/full"],
                thumb_id=ids[f"media/{n}/thumb"],
            )
            for n in range(500)
        ]
    )
    limit = None
    if BACKEND == "sqlite":  # as older SQLite builds have it
        import sqlite3

        raw: Any = connections.get("default")._connection  # type: ignore[attr-defined]
        limit = await raw._execute(raw._conn.setlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    try:
        async with app.state.services.changes.begin() as change:
            assert await purge_media(change, owner_id=owner.id) == 500
    finally:
        if limit is not None:
            await raw._execute(raw._conn.setlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    assert await StoredObject.all().count() == 0
    assert len(await delete_jobs()) == 1000


# --- errors that are not one object's ------------------------------------------------------


async def test_an_os_error_fails_one_object_not_the_run(
    configured: dict[str, Any], storages: list[Storage]
) -> None:
    storage = make_storage(storages, with_faults(configured, s3={}))
    contents = await seed(storage, [100, 200, 300], named=True)
    bad = list(contents)[1]
    storage = make_storage(
        storages,
        with_faults(
            configured, s3={"fail_keys": [bad], "failures": len(FAST) + 1, "error": "oserror"}
        ),
    )

    report = await move(storage, "s3", retry_delays=FAST)

    assert [(f.key, f.reason.split(":")[0]) for f in report.failed] == [(bad, "OSError")]
    assert (report.copied, report.remaining, report.finished) == (2, 1, False)


async def test_an_unexpected_error_stops_the_run_after_recording_verified_copies(
    configured: dict[str, Any], storages: list[Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = await seed(make_storage(storages, configured), [100, 200, 300], named=True)
    bad = list(contents)[-1]
    storage = make_storage(
        storages,
        with_faults(configured, s3={"fail_keys": [bad], "failures": 1, "error": "runtime"}),
    )
    monkeypatch.setattr(move_module, "SWITCH_SECONDS", 3600.0)  # switches wait for the end

    with pytest.raises(MoveAborted, match="RuntimeError: injected failure of put"):
        await move(storage, "s3", concurrency=1)

    rows = {row.key: row.backend for row in await StoredObject.all()}
    assert rows == {**dict.fromkeys(contents, "s3"), bad: "local"}
    assert (await move(storage, "s3")).finished
