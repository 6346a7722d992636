"""The storage contract: every `StorageProvider` passes these same cases against a real
backend (a directory, moto's S3 server), so that switching providers by configuration is
proven rather than hoped for."""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import secrets
import signal
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from providers import registry
from providers.errors import DigestMismatch, InvalidKey, NotFound, ProviderError
from providers.storage.base import CHUNK_SIZE, MAX_KEY_LENGTH, ObjectInfo, StorageProvider
from providers.storage.keys import MAX_SEGMENT_LENGTH
from tests.servers import MotoServer

MiB = 1024 * 1024
PART_SIZE = 5 * MiB

PROVIDERS = ["local", "s3", "libcloud-s3", "libcloud-local"]
PRESIGNED_UPLOADS = {"s3"}
PRESIGNED_DOWNLOADS = {"s3", "libcloud-s3"}


class SourceBroke(Exception):
    pass


def options_for(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    bucket = f"contract-{secrets.token_hex(6)}"
    if name == "local":
        return "local", {"root": tmp_path / "objects"}
    if name == "libcloud-local":
        base = tmp_path / "libcloud"
        base.mkdir()
        return "libcloud", {
            "driver": "LOCAL",
            "container": "objects",
            "key": str(base),
            "create_container": True,
        }
    moto: MotoServer = request.getfixturevalue("moto_server")
    if name == "s3":
        return "s3", {
            "bucket": bucket,
            "endpoint_url": moto.endpoint,
            "addressing_style": "path",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "part_size": PART_SIZE,
            "create_bucket": True,
        }
    assert name == "libcloud-s3"
    return "libcloud", {
        "driver": "S3",
        "container": bucket,
        "key": "testing",
        "secret": "testing",
        "driver_options": {
            "host": "127.0.0.1",
            "port": moto.port,
            "secure": False,
            "region": "us-east-1",
        },
        "create_container": True,
    }


@pytest.fixture(params=PROVIDERS)
def provider_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def storage(
    provider_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageProvider]:
    kind, options = options_for(provider_name, request, tmp_path)
    provider: StorageProvider = registry.load("storage", kind, options)
    try:
        yield provider
    finally:
        await provider.close()
        if "moto_server" in request.fixturenames:
            moto: MotoServer = request.getfixturevalue("moto_server")
            await anyio.to_thread.run_sync(moto.reset)


async def stream(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(storage: StorageProvider, key: str, **kwargs: Any) -> bytes:
    chunks = [chunk async for chunk in storage.get(key, **kwargs)]
    assert all(len(chunk) <= CHUNK_SIZE for chunk in chunks)
    return b"".join(chunks)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def keys(storage: StorageProvider, prefix: str = "") -> list[str]:
    found: list[str] = []
    token = None
    while True:
        page = await storage.list(prefix, token=token)
        found.extend(info.key for info in page.objects)
        token = page.next_token
        if token is None:
            return found


async def test_is_a_storage_provider(storage: StorageProvider) -> None:
    assert isinstance(storage, StorageProvider)
    assert storage.kind in {"local", "s3", "libcloud"}


async def test_put_head_get_round_trip(storage: StorageProvider) -> None:
    data = os.urandom(300_000)
    info = await storage.put("photos/one.jpg", stream(data), content_type="image/jpeg")
    assert info == ObjectInfo("photos/one.jpg", len(data), sha256(data), "image/jpeg")

    head = await storage.head("photos/one.jpg")
    assert (head.key, head.size, head.sha256, head.content_type) == (
        "photos/one.jpg",
        len(data),
        sha256(data),
        "image/jpeg",
    )
    assert await read(storage, "photos/one.jpg") == data


async def test_empty_object(storage: StorageProvider) -> None:
    info = await storage.put("empty", stream(b""), content_type="text/plain")
    assert (info.size, info.sha256) == (0, sha256(b""))
    head = await storage.head("empty")
    assert (head.size, head.sha256, head.content_type) == (0, sha256(b""), "text/plain")
    assert await read(storage, "empty") == b""


async def test_object_larger_than_a_part(storage: StorageProvider) -> None:
    data = os.urandom(12 * MiB + 123)
    info = await storage.put("big/blob.bin", stream(data, 100_000), content_type="video/mp4")
    assert (info.size, info.sha256) == (len(data), sha256(data))
    head = await storage.head("big/blob.bin")
    assert (head.size, head.sha256, head.content_type) == (len(data), sha256(data), "video/mp4")
    assert await read(storage, "big/blob.bin") == data


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, 10), (10, None), (990, 100), (1000, None), (1500, None), (5, 0), (0, None)],
)
async def test_ranged_get(storage: StorageProvider, offset: int, length: int | None) -> None:
    data = os.urandom(1000)
    await storage.put("ranged", stream(data, 7), content_type="application/octet-stream")
    end = None if length is None else offset + length
    assert await read(storage, "ranged", offset=offset, length=length) == data[offset:end]


async def test_ranged_get_across_chunks(storage: StorageProvider) -> None:
    data = os.urandom(3 * MiB)
    await storage.put("ranged-big", stream(data, MiB), content_type="application/octet-stream")
    got = await read(storage, "ranged-big", offset=MiB + 17, length=MiB + 5)
    assert got == data[MiB + 17 : 2 * MiB + 22]


async def test_missing_key(storage: StorageProvider) -> None:
    with pytest.raises(NotFound):
        await read(storage, "no/such/key")
    with pytest.raises(NotFound):
        await read(storage, "no/such/key", offset=3, length=4)
    with pytest.raises(NotFound):
        await storage.head("no/such/key")


async def test_delete(storage: StorageProvider) -> None:
    await storage.put("doomed", stream(b"bye"), content_type="text/plain")
    await storage.put("doomed-not", stream(b"stay"), content_type="text/plain")
    await storage.delete("doomed")
    with pytest.raises(NotFound):
        await storage.head("doomed")
    with pytest.raises(NotFound):
        await read(storage, "doomed")
    await storage.delete("doomed")
    await storage.delete("never/was")
    assert await keys(storage) == ["doomed-not"]


async def test_put_replaces(storage: StorageProvider) -> None:
    await storage.put("avatar", stream(b"first version"), content_type="image/png")
    info = await storage.put("avatar", stream(b"second"), content_type="image/webp")
    assert (info.size, info.sha256) == (6, sha256(b"second"))
    head = await storage.head("avatar")
    assert (head.size, head.sha256, head.content_type) == (6, sha256(b"second"), "image/webp")
    assert await read(storage, "avatar") == b"second"
    assert await keys(storage) == ["avatar"]


async def test_list_by_prefix_in_pages(storage: StorageProvider) -> None:
    names = ["list/c", "list/a", "list/e", "list/b", "list/d"]
    for name in names:
        await storage.put(name, stream(name.encode()), content_type="text/plain")
    for other in ["lis", "list-x", "other/list/a"]:
        await storage.put(other, stream(b"other"), content_type="text/plain")

    pages = []
    token = None
    while True:
        page = await storage.list("list/", token=token, limit=2)
        pages.append([info.key for info in page.objects])
        assert all(info.size == 6 for info in page.objects)
        token = page.next_token
        if token is None:
            break
        assert len(pages) < 5, "pagination does not end"
    assert pages == [["list/a", "list/b"], ["list/c", "list/d"], ["list/e"]]


async def test_list_orders_keys_as_strings(storage: StorageProvider) -> None:
    # '-' sorts before '/', which sorts before letters: a naive directory walk gets this wrong.
    names = ["ab", "a/c/d", "a-c", "a/b", "a/c-e"]
    for name in names:
        await storage.put(name, stream(b"x"), content_type="text/plain")
    assert await keys(storage) == sorted(names)
    assert await keys(storage, "a/") == ["a/b", "a/c-e", "a/c/d"]
    assert await keys(storage, "a/c") == ["a/c-e", "a/c/d"]
    assert await keys(storage, "zz") == []


async def test_copy(storage: StorageProvider) -> None:
    data = os.urandom(70_000)
    await storage.put("source", stream(data), content_type="audio/ogg")
    info = await storage.copy("source", "copies/dest")
    assert (info.key, info.size, info.sha256, info.content_type) == (
        "copies/dest",
        len(data),
        sha256(data),
        "audio/ogg",
    )
    head = await storage.head("copies/dest")
    assert (head.size, head.sha256, head.content_type) == (len(data), sha256(data), "audio/ogg")
    assert await read(storage, "copies/dest") == data
    assert await read(storage, "source") == data
    with pytest.raises(NotFound):
        await storage.copy("no-source", "copies/none")
    assert await keys(storage) == ["copies/dest", "source"]


@pytest.mark.parametrize("fail_after", [1000, 6 * MiB], ids=["small", "past-a-part"])
async def test_failed_put_leaves_nothing(storage: StorageProvider, fail_after: int) -> None:
    async def failing() -> AsyncIterator[bytes]:
        sent = 0
        step = min(fail_after, 64 * 1024)
        while sent < fail_after:
            yield b"x" * step
            sent += step
        raise SourceBroke("the client went away")

    with pytest.raises(SourceBroke):
        await storage.put("broken", failing(), content_type="text/plain")
    with pytest.raises(NotFound):
        await storage.head("broken")
    assert await keys(storage) == []


async def test_cancelled_put_leaves_nothing(storage: StorageProvider) -> None:
    waiting = anyio.Event()
    never = anyio.Event()
    finished = False

    async def stalled() -> AsyncIterator[bytes]:
        for _ in range(6):  # past a part, so that a multipart upload is under way
            yield os.urandom(MiB)
        waiting.set()
        await never.wait()
        yield b"never sent"

    async def put() -> None:
        nonlocal finished
        await storage.put("stalled", stalled(), content_type="text/plain")
        finished = True

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(put)
            await waiting.wait()  # the put has taken 6 MiB and waits for more: cancel it
            group.cancel_scope.cancel()
    assert not finished
    with pytest.raises(NotFound):
        await storage.head("stalled")
    assert await keys(storage) == []


async def test_failed_replace_keeps_the_previous_object(storage: StorageProvider) -> None:
    await storage.put("kept", stream(b"old"), content_type="text/plain")

    async def failing() -> AsyncIterator[bytes]:
        yield b"new new new"
        raise SourceBroke

    with pytest.raises(SourceBroke):
        await storage.put("kept", failing(), content_type="text/plain")
    head = await storage.head("kept")
    assert (head.size, head.sha256) == (3, sha256(b"old"))
    assert await read(storage, "kept") == b"old"


async def test_presigned_upload(storage: StorageProvider, provider_name: str) -> None:
    upload = await storage.presigned_upload(
        "direct/upload.png", content_type="image/png", max_size=10_000, expires_in=300
    )
    if upload is None:
        assert provider_name not in PRESIGNED_UPLOADS
        return
    assert upload.method == "POST"
    body = os.urandom(5000)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            upload.url,
            data=dict(upload.fields),
            files={"file": ("upload.png", body, "image/png")},
        )
    assert response.status_code in (200, 201, 204), response.text
    head = await storage.head("direct/upload.png")
    assert (head.size, head.content_type) == (len(body), "image/png")
    assert await read(storage, "direct/upload.png") == body


async def test_presigned_download(storage: StorageProvider, provider_name: str) -> None:
    data = os.urandom(20_000)
    await storage.put("shared/file.pdf", stream(data), content_type="application/pdf")
    url = await storage.presigned_download("shared/file.pdf", expires_in=300)
    if url is None:
        assert provider_name not in PRESIGNED_DOWNLOADS
        return
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data


@pytest.mark.parametrize(
    "key",
    ["dossier/été 2024/photo #1 - ü 🎉.jpg", "with space", "a+b=c&d?e.txt", "percent%20kept"],
)
async def test_unusual_but_valid_keys(storage: StorageProvider, key: str) -> None:
    data = key.encode() * 3
    await storage.put(key, stream(data), content_type="text/plain; charset=utf-8")
    head = await storage.head(key)
    assert (head.key, head.size, head.sha256) == (key, len(data), sha256(data))
    assert head.content_type == "text/plain; charset=utf-8"
    assert await read(storage, key) == data
    assert await keys(storage) == [key]
    await storage.delete(key)
    assert await keys(storage) == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a\x00b",
        "é" * (MAX_KEY_LENGTH // 2 + 1),
        "s" * (MAX_SEGMENT_LENGTH + 1),
        "dir/" + "é" * (MAX_SEGMENT_LENGTH // 2 + 1) + "/file",
        "../x",
        "/etc/passwd",
        "a/../../x",
        "a/./b",
        "a//b",
        "trailing/",
        "back\\slash",
        "line\nbreak",
        ".holdfast/meta/x",
    ],
)
async def test_invalid_keys(storage: StorageProvider, key: str) -> None:
    consumed = False

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed = True
        yield b"data"

    with pytest.raises(InvalidKey):
        await storage.put(key, chunks(), content_type="text/plain")
    assert not consumed
    with pytest.raises(InvalidKey):
        await read(storage, key)
    with pytest.raises(InvalidKey):
        await storage.head(key)
    with pytest.raises(InvalidKey):
        await storage.delete(key)
    with pytest.raises(InvalidKey):
        await storage.copy(key, "fine")
    await storage.put("fine", stream(b"ok"), content_type="text/plain")
    with pytest.raises(InvalidKey):
        await storage.copy("fine", key)
    assert await keys(storage) == ["fine"]


async def test_longest_key_is_accepted(storage: StorageProvider) -> None:
    # Segments of at most 255 bytes: local filesystems cap a file name there.
    key = "/".join(["k" * MAX_SEGMENT_LENGTH, "é" * 127, "k"])
    assert len(key.encode()) == MAX_KEY_LENGTH
    await storage.put(key, stream(b"long"), content_type="text/plain")
    assert (await storage.head(key)).size == 4
    assert await keys(storage) == [key]


async def test_memory_stays_bounded(storage: StorageProvider) -> None:
    size = 64 * MiB
    block = os.urandom(MiB)
    expected = hashlib.sha256()

    async def generated() -> AsyncIterable[bytes]:
        for index in range(size // MiB):
            chunk = index.to_bytes(8, "big") + block[8:]
            expected.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        info = await storage.put("huge", generated(), content_type="application/octet-stream")
        got = hashlib.sha256()
        total = 0
        async for chunk in storage.get("huge"):
            got.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (info.size, info.sha256) == (size, expected.hexdigest())
    assert (total, got.hexdigest()) == (size, expected.hexdigest())
    assert peak < 32 * MiB, f"peak {peak / MiB:.1f} MiB"


async def test_put_hashes_off_the_event_loop(
    storage: StorageProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing a part takes 10-15 ms per 8 MiB: every provider does it in a worker thread,
    never on the event loop's thread."""
    loop_thread = threading.get_ident()
    hashed_on: set[int] = set()

    class Recording:
        def __init__(self) -> None:
            self._hash = hashlib.sha256()

        def update(self, data: bytes) -> None:
            hashed_on.add(threading.get_ident())
            self._hash.update(data)

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    module = sys.modules[type(storage).__module__]
    monkeypatch.setattr(module, "hashlib", SimpleNamespace(sha256=Recording))
    data = os.urandom(PART_SIZE + 300_000)
    info = await storage.put("hashed", stream(data), content_type="text/plain")
    assert info.sha256 == sha256(data)
    assert hashed_on
    assert loop_thread not in hashed_on


@pytest.mark.parametrize("size", [70_000, PART_SIZE + 300_000], ids=["small", "past-a-part"])
async def test_put_with_the_expected_sha256(storage: StorageProvider, size: int) -> None:
    data = os.urandom(size)
    info = await storage.put(
        "known/hash.bin", stream(data, MiB), content_type="image/png", sha256=sha256(data)
    )
    assert (info.size, info.sha256, info.content_type) == (len(data), sha256(data), "image/png")
    head = await storage.head("known/hash.bin")
    assert (head.size, head.sha256, head.content_type) == (len(data), sha256(data), "image/png")
    assert await read(storage, "known/hash.bin") == data


@pytest.mark.parametrize(
    "size", [0, 70_000, PART_SIZE + 300_000], ids=["empty", "small", "past-a-part"]
)
async def test_put_with_a_wrong_sha256_fails_and_leaves_nothing(
    storage: StorageProvider, size: int
) -> None:
    data = os.urandom(size)
    with pytest.raises(DigestMismatch):
        await storage.put(
            "wrong/hash.bin", stream(data, MiB), content_type="text/plain", sha256=sha256(b"other")
        )
    assert issubclass(DigestMismatch, ProviderError)
    with pytest.raises(NotFound):
        await storage.head("wrong/hash.bin")
    assert await keys(storage) == []


async def test_put_with_a_wrong_sha256_keeps_the_previous_object(
    storage: StorageProvider,
) -> None:
    await storage.put("kept", stream(b"old"), content_type="text/plain")
    with pytest.raises(DigestMismatch):
        await storage.put(
            "kept", stream(b"new"), content_type="text/plain", sha256=sha256(b"not new")
        )
    head = await storage.head("kept")
    assert (head.size, head.sha256) == (3, sha256(b"old"))
    assert await read(storage, "kept") == b"old"


# -- the local disk's own guarantees ---------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> StorageProvider:
    provider: StorageProvider = registry.load("storage", "local", {"root": tmp_path / "root"})
    return provider


async def test_local_refuses_symlinks_out_of_root(local: StorageProvider, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    root = tmp_path / "root"
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "file-link").symlink_to(outside / "secret")
    (root / "real").mkdir()
    (root / "real" / "nested-link").symlink_to(outside, target_is_directory=True)

    for key in ["link/secret", "file-link", "real/nested-link/secret"]:
        with pytest.raises(InvalidKey):
            await read(local, key)
        with pytest.raises(InvalidKey):
            await local.head(key)
    for key in ["link/new", "link/deeper/new", "real/nested-link/new"]:
        with pytest.raises(InvalidKey):
            await local.put(key, stream(b"escaped"), content_type="text/plain")
    with pytest.raises(InvalidKey):
        await local.delete("link/secret")
    assert sorted(path.name for path in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"do not read"
    assert await keys(local) == []


async def test_local_leaves_no_temporary_files(local: StorageProvider, tmp_path: Path) -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise SourceBroke

    await local.put("a/b", stream(b"whole"), content_type="text/plain")
    with pytest.raises(SourceBroke):
        await local.put("a/c", failing(), content_type="text/plain")
    files = sorted(
        str(path.relative_to(tmp_path / "root"))
        for path in (tmp_path / "root").rglob("*")
        if path.is_file()
    )
    assert files == [".holdfast/meta/a/b", "a/b"]


async def test_local_ignores_a_stale_sidecar(local: StorageProvider, tmp_path: Path) -> None:
    await local.put("doc", stream(b"original"), content_type="text/plain")
    # Replaced behind the provider's back (or a crash between the rename and the sidecar):
    # the sidecar describes another file, so it must not be believed.
    target = tmp_path / "root" / "doc"
    replacement = tmp_path / "root" / "replacement"
    replacement.write_bytes(b"replaced")
    replacement.replace(target)
    head = await local.head("doc")
    assert (head.size, head.sha256, head.content_type) == (8, None, "application/octet-stream")


async def test_local_key_under_an_object_is_refused(local: StorageProvider) -> None:
    await local.put("a", stream(b"file"), content_type="text/plain")
    with pytest.raises(InvalidKey):
        await local.put("a/b", stream(b"under a file"), content_type="text/plain")
    with pytest.raises(NotFound):
        await local.head("a/b")
    await local.put("d/e", stream(b"x"), content_type="text/plain")
    with pytest.raises(InvalidKey):
        await local.put("d", stream(b"over a prefix"), content_type="text/plain")
    with pytest.raises(NotFound):
        await local.head("d")


async def test_local_reads_no_fifo(local: StorageProvider, tmp_path: Path) -> None:
    """A FIFO under the root is no object, and reading it must not block: a blocking open
    would wait for a writer forever. If one does block, a watchdog opens the FIFOs for
    writing every 5 s (so that the test fails rather than hangs)."""
    root = tmp_path / "root"
    (root / "dir").mkdir()
    await local.put("plain", stream(b"ok"), content_type="text/plain")
    sidecar = root / ".holdfast" / "meta" / "plain"
    sidecar.unlink()
    fifos = [root / "pipe", root / "dir" / "pipe", sidecar]
    for fifo in fifos:
        os.mkfifo(fifo)

    unblocked: list[Path] = []

    def unblock() -> None:
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue  # ENXIO: no reader waiting on it
            unblocked.append(fifo)

    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(5):
            unblock()

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        for key in ["pipe", "dir/pipe"]:
            with pytest.raises(NotFound):
                await local.head(key)
            with pytest.raises(NotFound):
                await read(local, key)
        head = await local.head("plain")
    finally:
        stop.set()
        watchdog.join()
    assert unblocked == [], "a read blocked on a FIFO"
    assert (head.size, head.sha256) == (2, None)
    assert await keys(local) == ["plain"]


async def test_local_wraps_os_errors(local: StorageProvider, tmp_path: Path) -> None:
    """A disk that fails (here: a file where the provider's own directory must be, then a
    write refused for its size) surfaces as ProviderError, never a raw OSError."""
    root = tmp_path / "root"
    tmp_dir = root / ".holdfast" / "tmp"
    tmp_dir.rmdir()
    tmp_dir.write_bytes(b"not a directory")
    with pytest.raises(ProviderError) as caught:
        await local.put("a", stream(b"data"), content_type="text/plain")
    assert not isinstance(caught.value, InvalidKey)  # the key is fine; the disk is not
    tmp_dir.unlink()
    tmp_dir.mkdir()

    # A write that fails part-way (as with a full disk): RLIMIT_FSIZE makes write() fail
    # with EFBIG once the file would pass 64 KiB (SIGXFSZ ignored, as it would kill us).
    await local.put("kept", stream(b"old"), content_type="text/plain")
    previous_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, previous_limit[1]))
    try:
        with pytest.raises(ProviderError) as caught:
            await local.put("kept", stream(os.urandom(MiB)), content_type="text/plain")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_signal)
    assert "errno" in str(caught.value)
    head = await local.head("kept")
    assert (head.size, head.sha256) == (3, sha256(b"old"))
    assert os.listdir(tmp_dir) == []


async def test_local_failed_sidecar_fails_the_put(local: StorageProvider, tmp_path: Path) -> None:
    """A sidecar that cannot be written (a directory planted where it goes) fails the put,
    and the object it would have described is not left behind."""
    (tmp_path / "root" / ".holdfast" / "meta" / "doc" / "planted").mkdir(parents=True)
    with pytest.raises(ProviderError):
        await local.put("doc", stream(b"bytes"), content_type="text/plain")
    with pytest.raises(NotFound):
        await local.head("doc")
    assert await keys(local) == []


# -- S3's own options and races ----------------------------------------------------------------


@pytest.fixture
async def s3_factory(
    request: pytest.FixtureRequest, tmp_path: Path, moto_server: MotoServer
) -> AsyncIterator[Any]:
    """`make(**options)`: an S3 provider on moto with `options` over the contract's."""
    made: list[StorageProvider] = []

    def make(**extra: Any) -> Any:
        _, options = options_for("s3", request, tmp_path)
        provider: Any = registry.load("storage", "s3", {**options, **extra})
        made.append(provider)
        return provider

    try:
        yield make
    finally:
        for provider in made:
            await provider.close()
        await anyio.to_thread.run_sync(moto_server.reset)


async def test_s3_direct_upload_by_presigned_put(s3_factory: Any) -> None:
    storage = s3_factory(direct_upload="put")
    upload = await storage.presigned_upload(
        "direct/put.png", content_type="image/png", max_size=10_000, expires_in=300
    )
    assert upload is not None
    assert (upload.method, dict(upload.headers), dict(upload.fields)) == (
        "PUT",
        {"Content-Type": "image/png"},
        {},
    )
    body = os.urandom(5000)
    async with httpx.AsyncClient() as client:
        response = await client.put(upload.url, content=body, headers=dict(upload.headers))
    assert response.status_code == 200, response.text
    head = await storage.head("direct/put.png")
    assert (head.size, head.content_type, head.sha256) == (len(body), "image/png", None)
    assert await read(storage, "direct/put.png") == body


async def test_s3_direct_upload_off(s3_factory: Any) -> None:
    storage = s3_factory(direct_upload="off")
    upload = await storage.presigned_upload(
        "direct/none.png", content_type="image/png", max_size=10_000, expires_in=300
    )
    assert upload is None


def record_requests(storage: Any) -> list[tuple[str, dict[str, str]]]:
    """(operation, headers) of every request the S3 provider's client sends from now on."""
    sent: list[tuple[str, dict[str, str]]] = []

    def before_send(request: Any, event_name: str, **_: Any) -> None:
        headers = {
            name.lower(): value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
        }
        sent.append((event_name.rsplit(".", 1)[-1], headers))

    storage._client.meta.events.register("before-send.s3", before_send)
    return sent


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.mark.parametrize("known", [True, False], ids=["sha256-given", "sha256-not-given"])
async def test_s3_uploads_carry_their_sha256(s3_factory: Any, known: bool) -> None:
    """Every upload request carries the SHA-256 of its body for S3 to check (and is not
    signed over its payload: the signed checksum header covers it), so the put is confirmed
    without a read-back. With the SHA-256 given, a multipart upload records it when it
    starts, and no self-copy follows."""
    storage = s3_factory()
    sent = record_requests(storage)
    small = os.urandom(70_000)
    big = os.urandom(PART_SIZE + 1000)
    for key, data in (("small", small), ("big", big)):
        info = await storage.put(
            key,
            stream(data, MiB),
            content_type="video/mp4",
            sha256=sha256(data) if known else None,
        )
        assert info.checksum_confirmed
        assert (info.size, info.sha256) == (len(data), sha256(data))
        head = await storage.head(key)
        assert (head.size, head.sha256, head.content_type) == (len(data), sha256(data), "video/mp4")
        assert await read(storage, key) == data

    uploads = [(op, headers) for op, headers in sent if op in ("PutObject", "UploadPart")]
    assert [op for op, _ in uploads] == ["PutObject", "UploadPart", "UploadPart"]
    bodies = [small, big[:PART_SIZE], big[PART_SIZE:]]
    for (_, headers), body in zip(uploads, bodies, strict=True):
        assert headers["x-amz-checksum-sha256"] == b64_sha256(body)
        assert headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
        # moto is plain http: there the signature covers the body too (nothing else would
        # authenticate it; on https botocore leaves it to TLS and the checksum).
        assert headers["x-amz-content-sha256"] == sha256(body)
    (create,) = [headers for op, headers in sent if op == "CreateMultipartUpload"]
    assert create["x-amz-checksum-algorithm"] == "SHA256"
    assert create.get("x-amz-meta-sha256") == (sha256(big) if known else None)
    copies = [op for op, _ in sent if op == "CopyObject"]
    assert copies == ([] if known else ["CopyObject"])
    stored = await anyio.to_thread.run_sync(
        lambda: storage._client.head_object(
            Bucket=storage._bucket, Key="small", ChecksumMode="ENABLED"
        )
    )
    assert stored["ChecksumSHA256"] == b64_sha256(small)


async def test_s3_send_checksums_off(s3_factory: Any) -> None:
    storage = s3_factory(send_checksums=False)
    sent = record_requests(storage)
    for key, data in (("small", os.urandom(70_000)), ("big", os.urandom(PART_SIZE + 1000))):
        info = await storage.put(key, stream(data, MiB), content_type="text/plain")
        assert not info.checksum_confirmed
        head = await storage.head(key)
        assert (head.size, head.sha256) == (len(data), sha256(data))
    assert sent
    for _, headers in sent:
        assert "x-amz-checksum-sha256" not in headers
        assert "x-amz-sdk-checksum-algorithm" not in headers


async def test_s3_refused_or_altered_checksum_is_a_digest_mismatch(s3_factory: Any) -> None:
    """S3 refuses bytes that do not match the checksum sent (BadDigest; moto 5.2.5 does not
    check, so the refusal is raised by a wrapper), and a checksum echoed other than the one
    sent fails the put too, leaving nothing."""
    import botocore.exceptions

    storage = s3_factory()
    client = storage._client
    put_object = client.put_object

    def refused(**kwargs: Any) -> Any:
        raise botocore.exceptions.ClientError(
            {
                "Error": {"Code": "BadDigest", "Message": "did not match"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "PutObject",
        )

    client.put_object = refused
    with pytest.raises(DigestMismatch):
        await storage.put("refused", stream(b"bytes"), content_type="text/plain")

    def altered(**kwargs: Any) -> Any:
        response = put_object(**kwargs)
        return {**response, "ChecksumSHA256": b64_sha256(b"something else")}

    client.put_object = altered
    with pytest.raises(DigestMismatch):
        await storage.put("altered", stream(b"bytes"), content_type="text/plain")
    assert await keys(storage) == []


async def test_s3_vendor_that_echoes_no_checksum_confirms_nothing(s3_factory: Any) -> None:
    """An S3-compatible that ignores `x-amz-checksum-sha256` answers without echoing it: the
    put then says nothing was checked at the vendor (a move reads such copies back), for a
    single PutObject and for a multipart upload alike; a vendor that echoes confirms."""
    storage = s3_factory(part_size=5 * 1024 * 1024)
    client = storage._client
    put_object, upload_part = client.put_object, client.upload_part

    def without_echo(method: Any) -> Any:
        def call(**kwargs: Any) -> Any:
            response = dict(method(**kwargs))
            response.pop("ChecksumSHA256", None)
            return response

        return call

    big = b"x" * (6 * 1024 * 1024)
    echoed_small = await storage.put("echoed", stream(b"bytes"), content_type="text/plain")
    echoed_big = await storage.put("echoed-big", stream(big), content_type="text/plain")
    client.put_object = without_echo(put_object)
    client.upload_part = without_echo(upload_part)
    small = await storage.put("small", stream(b"bytes"), content_type="text/plain")
    multipart = await storage.put("big", stream(big), content_type="text/plain")

    assert echoed_small.checksum_confirmed
    assert echoed_big.checksum_confirmed
    assert not small.checksum_confirmed
    assert not multipart.checksum_confirmed
    assert (small.size, multipart.size) == (5, len(big))  # stored all the same


async def test_s3_put_that_loses_the_metadata_race_fails(s3_factory: Any) -> None:
    """Another writer replaces the key between our multipart upload's completion and the
    self-copy that records its SHA-256: the put must not report our hash for their object.

    S3 answers that copy `412 PreconditionFailed` (CopySourceIfMatch); moto 5.2.5 ignores
    the condition, so the other writer's object is really written on moto and the 412 S3
    would give is raised by a wrapper around the client's copy_object."""
    import botocore.exceptions

    storage = s3_factory()
    client = storage._client
    complete = client.complete_multipart_upload
    copy_object = client.copy_object
    theirs = b"the other writer's bytes"

    def complete_then_replaced(**kwargs: Any) -> Any:
        result = complete(**kwargs)
        client.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=theirs)
        return result

    def copy_with_precondition(**kwargs: Any) -> Any:
        if "CopySourceIfMatch" in kwargs:
            head = client.head_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"])
            if head["ETag"] != kwargs["CopySourceIfMatch"]:
                raise botocore.exceptions.ClientError(
                    {
                        "Error": {"Code": "PreconditionFailed", "Message": "At least one"},
                        "ResponseMetadata": {"HTTPStatusCode": 412},
                    },
                    "CopyObject",
                )
        return copy_object(**kwargs)

    client.complete_multipart_upload = complete_then_replaced
    client.copy_object = copy_with_precondition
    data = os.urandom(PART_SIZE + 1000)
    with pytest.raises(ProviderError, match="another writer"):
        await storage.put("raced", stream(data, MiB), content_type="video/mp4")
    head = await storage.head("raced")
    assert (head.size, head.sha256) == (len(theirs), None)
    assert await read(storage, "raced") == theirs


# -- libcloud's own guarantees -----------------------------------------------------------------


def recording_driver(base: type[Any]) -> type[Any]:
    """`base` (a libcloud storage driver class), recording what its instances do: which
    driver made each call, what each stream returned, how many listed objects it parsed;
    and failing sidecar uploads while `fail_sidecars` is set."""

    class Recording(base):  # type: ignore[misc, valid-type]
        calls: list[tuple[int, str]] = []
        streams: list[tuple[int, Any]] = []
        parsed = 0
        fail_sidecars = False

        def get_object(self, container_name: str, object_name: str) -> Any:
            Recording.calls.append((id(self), "get_object"))
            return super().get_object(container_name, object_name)

        def upload_object_via_stream(
            self, iterator: Any, container: Any, name: str, **kw: Any
        ) -> Any:
            Recording.calls.append((id(self), "upload"))
            if Recording.fail_sidecars and name.startswith(".holdfast/meta/"):
                from libcloud.common.types import LibcloudError

                raise LibcloudError("injected sidecar failure", driver=self)
            return super().upload_object_via_stream(iterator, container, name, **kw)

        def download_object_as_stream(self, obj: Any, chunk_size: Any = None) -> Any:
            stream = super().download_object_as_stream(obj, chunk_size=chunk_size)
            Recording.streams.append((id(self), stream))
            return stream

        def _to_objs(self, obj: Any, xpath: str, container: Any) -> Any:
            found = super()._to_objs(obj=obj, xpath=xpath, container=container)
            Recording.parsed += len(found)
            return found

    return Recording


@pytest.fixture
def libcloud_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def recorded(
    libcloud_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Any, type[Any]]]:
    """A libcloud provider whose drivers are `recording_driver`s."""
    _, options = options_for(libcloud_name, request, tmp_path)
    provider: Any = registry.load("storage", "libcloud", options)
    provider._driver_class = recording_driver(provider._driver_class)
    try:
        yield provider, provider._driver_class
    finally:
        await provider.close()
        if "moto_server" in request.fixturenames:
            moto: MotoServer = request.getfixturevalue("moto_server")
            await anyio.to_thread.run_sync(moto.reset)


LIBCLOUD = pytest.mark.parametrize(
    "libcloud_name", ["libcloud-s3", "libcloud-local"], indirect=True
)


@LIBCLOUD
async def test_libcloud_stream_has_its_driver_to_itself(recorded: tuple[Any, Any]) -> None:
    """libcloud drivers are not thread-safe: while a GET stream is open, no other call may
    use the driver it reads from (it would, were the stream opened on a worker thread's own
    driver, which that thread's next call uses again)."""
    storage, driver_class = recorded
    data = os.urandom(3 * MiB)
    await storage.put("streamed", stream(data, MiB), content_type="application/octet-stream")
    driver_class.calls.clear()

    reader = storage.get("streamed")
    got = [await anext(reader)]
    ((stream_driver, _),) = driver_class.streams
    for index in range(3):
        await storage.head("streamed")
        await storage.put(f"other/{index}", stream(b"x"), content_type="text/plain")
    got.extend([chunk async for chunk in reader])
    assert b"".join(got) == data
    used_meanwhile = {driver for driver, name in driver_class.calls[1:]}
    assert stream_driver not in used_meanwhile


@LIBCLOUD
async def test_libcloud_stream_stopped_early_is_closed(recorded: tuple[Any, Any]) -> None:
    storage, driver_class = recorded
    await storage.put("early", stream(os.urandom(3 * MiB), MiB), content_type="text/plain")
    reader = storage.get("early")
    await anext(reader)
    await reader.aclose()
    ((_, libcloud_stream),) = driver_class.streams
    assert libcloud_stream.gi_frame is None  # closed, not left suspended on a response


@LIBCLOUD
async def test_libcloud_failed_sidecar_fails_the_put(
    recorded: tuple[Any, Any], libcloud_name: str
) -> None:
    """A put whose sidecar cannot be written fails, and leaves no object behind (one with
    no sidecar, which the caller believes unwritten). On S3 the driver's sidecar upload
    fails by injection; on the LOCAL driver, for real: a directory is where it goes."""
    storage, driver_class = recorded
    await storage.put("other", stream(b"stays"), content_type="text/plain")
    if libcloud_name == "libcloud-s3":
        driver_class.fail_sidecars = True
    else:
        container = Path(storage.options.key) / storage.options.container
        (container / ".holdfast" / "meta" / "orphan" / "planted").mkdir(parents=True)
    with pytest.raises(ProviderError):
        await storage.put("orphan", stream(b"bytes"), content_type="text/plain")
    driver_class.fail_sidecars = False
    with pytest.raises(NotFound):
        await storage.head("orphan")
    assert await keys(storage) == ["other"]
    assert (await storage.head("other")).sha256 == sha256(b"stays")


@pytest.mark.parametrize("libcloud_name", ["libcloud-s3"], indirect=True)
async def test_libcloud_s3_pages_start_at_their_token(recorded: tuple[Any, Any]) -> None:
    """A page is listed from its token on (the vendor's marker), not from the start of the
    prefix: a full walk parses about as many entries as there are objects, not N^2/limit;
    the sidecars (one per object, all under `.holdfast/`) are jumped over, not listed."""
    storage, driver_class = recorded
    names = [f"obj-{index:02}" for index in range(30)]
    for name in names:
        await storage.put(name, stream(b"x"), content_type="text/plain")
    driver_class.parsed = 0
    found: list[str] = []
    token = None
    while True:
        page = await storage.list(token=token, limit=3)
        found.extend(info.key for info in page.objects)
        token = page.next_token
        if token is None:
            break
    assert found == names
    assert driver_class.parsed <= 2 * len(names), driver_class.parsed


@pytest.mark.parametrize("libcloud_name", ["libcloud-local"], indirect=True)
async def test_libcloud_local_leaves_no_temporary_files(recorded: tuple[Any, Any]) -> None:
    """LOCAL uploads go to `.holdfast/tmp/` and are renamed into place: a failed or
    cancelled upload removes its temporary file, and a whole one leaves none either."""
    storage, _ = recorded

    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise SourceBroke

    never = anyio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"part"
        await never.wait()
        yield b"never sent"

    await storage.put("a/b", stream(b"whole"), content_type="text/plain")
    with pytest.raises(SourceBroke):
        await storage.put("a/c", failing(), content_type="text/plain")
    with anyio.move_on_after(0.5):
        await storage.put("a/d", stalled(), content_type="text/plain")
    container = Path(storage.options.key) / storage.options.container
    files = sorted(
        str(path.relative_to(container)) for path in container.rglob("*") if path.is_file()
    )
    assert files == [".holdfast/meta/a/b", "a/b"]
