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
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections

from app.models import MoveState, StorageMove, StoredObject
from app.settings import Settings, StorageSettings
from app.storage import Storage
from app.storage.audit import delete_orphans, find_orphans, verify
from app.storage.move import MoveError, MoveProgress, abandon, move
from tests.servers import MotoServer, start_moto_server
from tests.storage_faults import NAME as FAULTY
from tests.storage_faults import entry_point_dir
from tests.support import HOLDFAST, holdfast_env

pytestmark = pytest.mark.usefixtures("app")

REPO = Path(__file__).resolve().parents[2]
BIG = 9 * 1024 * 1024  # above the S3 provider's 8 MiB part size: a multipart copy
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


async def test_a_migrate_killed_mid_copy_resumes(
    tmp_path: Path, configured: dict[str, Any], storages: list[Storage], settings: Settings
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # The target streams each 1 MiB chunk slowly: the big object's copy takes seconds.
    slow = with_faults(configured, s3={"chunk_delay": 0.3, "mark_dir": str(marks)})
    storage = make_storage(storages, slow)
    # The big object first: the walk starts with it.
    contents = await seed(storage, [BIG] + [500 * (n + 1) for n in range(24)])
    big = next(iter(contents))
    await storage.provider("s3").list()  # the bucket exists
    env = cli_env(tmp_path, settings, slow, HOLDFAST_STORAGE__MOVE_LEASE_SECONDS="2")

    process = start_holdfast(env, "storage", "migrate", "--to", "s3", "--concurrency", "2")
    try:
        deadline = time.monotonic() + 60
        # Its put has begun and sent its first part (a multipart upload exists): kill it
        # while the rest streams.
        while big not in await asyncio.to_thread(incomplete_uploads, configured):
            assert process.poll() is None, process.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()  # type: ignore[union-attr]

    assert (marks / (big.replace("/", "_") + ".put")).exists()
    assert (await StoredObject.get(key=big)).backend == "local"
    switched = await StoredObject.filter(backend="s3").count()
    assert switched < len(contents)
    audit = await verify(storage)  # every switched row has its whole copy
    assert (audit.missing, audit.differing) == ([], [])
    for key, data in contents.items():
        assert await read(storage, key) == data

    # The killed run's lease holds a rerun off until it runs out.
    refused = holdfast(env, "storage", "migrate", "--to", "s3")
    assert refused.returncode == 2, refused.stderr
    assert "another `holdfast storage migrate`" in refused.stderr
    await asyncio.sleep(2.1)
    rerun = holdfast(env, "storage", "migrate", "--to", "s3", "--concurrency", "4")

    assert rerun.returncode == 0, rerun.stderr
    assert f"already at s3: {switched}" in rerun.stdout
    assert "last step: set HOLDFAST_STORAGE__DEFAULT=s3" in rerun.stdout
    await assert_all_at(storage, "s3", contents)
    # The rerun left nothing behind; the killed process's upload of the big object stays
    # incomplete: nothing in `providers/storage` can list or abort another process's
    # unfinished uploads yet (a bucket lifecycle rule does, see README).
    leftovers = await asyncio.to_thread(incomplete_uploads, configured)
    assert leftovers <= {big}
    if leftovers:
        pytest.xfail("a SIGKILLed copy's incomplete multipart upload is left at the target")


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
    moved = holdfast(env, "storage", "migrate", "--to", "s3")
    status = holdfast(env, "storage", "status")
    dirty = holdfast(env, "storage", "verify")  # the sources are orphans now
    orphans = holdfast(env, "storage", "orphans", "--delete")
    clean = holdfast(env, "storage", "verify", "--deep")

    assert unknown.returncode == 2
    assert "no storage backend 'nowhere'" in unknown.stderr
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 2 objects (3.0 KB) would be copied to s3" in dry.stdout
    assert moved.returncode == 0, moved.stderr
    assert "copied 2 objects (3.0 KB) to s3" in moved.stdout
    assert "source objects were not deleted" in moved.stdout
    assert status.returncode == 0, status.stderr
    assert "2 objects" in status.stdout
    assert "new objects go here" in status.stdout
    assert dirty.returncode == 1
    assert "0 missing, 0 differing, 2 orphaned" in dirty.stdout
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
