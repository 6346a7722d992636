"""Any apache-libcloud storage driver (Azure Blobs, Google Storage, Swift, S3, local, ...).

The only module that imports libcloud. Its drivers are synchronous and not thread-safe:
each worker thread gets its own driver (`threading.local`) for calls that begin and end in
that thread, and every call runs in a worker thread through this provider's limiters. A
`get` stream, whose reads run in whichever worker thread is free, has a driver of its own
for its whole life instead (`_checkout`), which no other call uses meanwhile.

Two things libcloud's API cannot do, and how this provider does them:
- Metadata written after the bytes. Drivers take metadata when an upload starts, before the
  SHA-256 of a streamed object is known, and libcloud has no copy-in-place to add it later
  (and its local driver drops metadata altogether). So the SHA-256 and content type live in
  a small JSON sidecar object `.holdfast/meta/<key>` (keys under `.holdfast/` are reserved,
  never listed), together with the object's size and the driver's version hash of it
  (ETag, or the local driver's mtime hash): a sidecar that does not match the object in
  front of it is stale and ignored, so `head` never reports a wrong hash.
- A streamed upload that fails part-way leaving nothing, and the previous object intact. The
  S3 family aborts its multipart upload and block-blob stores never commit. libcloud's local
  driver writes the file in place, so for it every upload (object and sidecar) goes to a
  temporary key `.holdfast/tmp/<random>` and is renamed onto its key (`os.replace`, atomic
  in the container's directory) only once whole; a failed upload deletes its temporary file.
- A put whose sidecar cannot be written: the object just stored is deleted again (if it is
  still the one this put wrote), and the put fails. (On a replace, the previous object is
  gone by then: it was replaced before the sidecar could be written.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from libcloud.common.types import LibcloudError
from libcloud.storage.base import Container, Object, StorageDriver
from libcloud.storage.drivers.s3 import BaseS3StorageDriver, S3StorageDriver
from libcloud.storage.providers import get_driver
from libcloud.storage.types import (
    ContainerAlreadyExistsError,
    ContainerDoesNotExistError,
    ObjectDoesNotExistError,
    Provider,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.errors import (
    ConfigurationError,
    DigestMismatch,
    InvalidKey,
    NotFound,
    ProviderError,
)
from providers.libcloud_errors import close_session, map_error
from providers.storage.base import CHUNK_SIZE, ObjectInfo, ObjectPage, PresignedUpload
from providers.storage.keys import RESERVED_SEGMENT, check_key, check_prefix, check_range

DEFAULT_CONTENT_TYPE = "application/octet-stream"
SIDECAR_PREFIX = f"{RESERVED_SEGMENT}/meta/"
TMP_PREFIX = "/".join((RESERVED_SEGMENT, "tmp", ""))
AFTER_RESERVED = f"{RESERVED_SEGMENT}/\U0010ffff"
"""A listing marker past every reserved key: each of them starts with `.holdfast/` and sorts
before this (U+10FFFF is the last code point, and the largest UTF-8 sequence)."""

_WRITES_IN_PLACE = frozenset({"LOCAL"})
"""Drivers whose streamed upload overwrites the target as it goes (uploads go to a temporary
key and are renamed into place), and whose ranged read loads the whole file (ranges are read
by skipping instead)."""

_FILTERS_LISTS_ITSELF = frozenset({"LOCAL", "BACKBLAZE_B2", "ATMOS", "DUMMY"})
"""Drivers that list everything and filter by prefix in Python, with a warning: this
provider filters instead, without the warning."""

T = TypeVar("T")


class LibcloudStorage:
    """A `StorageProvider` on one container of a libcloud storage driver."""

    kind: ClassVar[str] = "libcloud"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        driver: str
        """A libcloud `Provider` constant name: S3, AZURE_BLOBS, GOOGLE_STORAGE, LOCAL, ..."""
        container: str
        key: str
        """The driver's first argument: an access key, an account name, or for LOCAL the
        base directory."""
        secret: SecretStr | None = None
        driver_options: dict[str, Any] = Field(default_factory=dict)
        """Passed to the driver's constructor: host, port, secure, region, ..."""
        create_container: bool = False
        max_concurrency: int = Field(default=8, ge=1)
        """Uploads at once, and other calls at once (each their own budget, so that copies,
        which read while they upload, cannot starve each other)."""

        @field_validator("driver")
        @classmethod
        def _known_driver(cls, value: str) -> str:
            if not value.isupper() or not hasattr(Provider, value):
                raise ValueError(f"unknown libcloud storage driver {value!r}")
            return value

    def __init__(self, options: LibcloudStorage.Options) -> None:
        self.options = options
        self._driver_class: type[StorageDriver] = get_driver(getattr(Provider, options.driver))
        self._local = threading.local()
        self._idle: list[StorageDriver] = []
        """Drivers for `get` streams (each stream has one to itself), kept for reuse."""
        self._idle_lock = threading.Lock()
        self._uploads = anyio.CapacityLimiter(options.max_concurrency)
        self._calls = anyio.CapacityLimiter(options.max_concurrency)

    # -- the interface ------------------------------------------------------------------

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        hasher = hashlib.sha256()
        size = 0
        # The caller's chunks are read by a task of this loop (so cancelling the put stops
        # it) into a channel of two chunks, which the driver drains in its worker thread:
        # memory stays at the driver's own part buffer plus two chunks.
        send, receive = anyio.create_memory_object_stream[bytes](max_buffer_size=2)
        source = _Source()

        async def produce() -> None:
            async with send:
                try:
                    async for chunk in chunks:
                        if chunk:
                            await send.send(chunk)
                except anyio.BrokenResourceError:
                    return  # the upload ended (failed) before the source did
                except Exception as exc:
                    source.error = exc
                    return
                source.complete = True

        def stream() -> Iterator[bytes]:
            nonlocal size
            while True:
                try:
                    chunk = anyio.from_thread.run(receive.receive)
                except anyio.EndOfStream:
                    if source.complete and sha256 not in (None, hasher.hexdigest()):
                        # Failed like a broken source, so that the driver aborts its upload.
                        source.error = DigestMismatch(
                            f"libcloud put {key[:200]!r}: the bytes have SHA-256 "
                            f"{hasher.hexdigest()}, not {sha256}"
                        )
                        raise _SourceFailed from None
                    if source.complete:
                        return
                    # Raised through the driver, which aborts its upload on the way out.
                    raise _SourceFailed from None
                except BaseException:
                    # The put was cancelled (anyio cancels this receive with it): an
                    # Exception, not the cancellation itself, so that drivers clean up.
                    raise _SourceFailed from None
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        def upload() -> Object:
            driver, container = self._driver()
            return self._upload(driver, container, key, stream(), content_type)

        # The task group's body must not raise (anyio would wrap it in an ExceptionGroup):
        # the upload's outcome is kept and acted on after it.
        outcome: Object | Exception
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(produce)
            try:
                outcome = await self._run("put", upload, limiter=self._uploads)
            except Exception as exc:
                outcome = exc
            finally:
                receive.close()
        if isinstance(outcome, Exception):
            await anyio.lowlevel.checkpoint_if_cancelled()
            if isinstance(outcome, _SourceFailed):
                if source.error is not None:
                    raise source.error
                raise ProviderError("libcloud put: the chunk source ended early")
            raise outcome
        uploaded = outcome
        version = _version(uploaded)
        info = ObjectInfo(key=key, size=size, sha256=hasher.hexdigest(), content_type=content_type)
        sidecar = json.dumps(
            {
                "sha256": info.sha256,
                "content_type": content_type,
                "size": size,
                "version": version,
            }
        ).encode()

        def upload_sidecar() -> None:
            driver, container = self._driver()
            try:
                self._upload(
                    driver, container, SIDECAR_PREFIX + key, iter([sidecar]), "application/json"
                )
            except InvalidKey:
                raise ProviderError("libcloud put: the sidecar's place is taken") from None

        try:
            await self._run("put", upload_sidecar)
        except BaseException:
            # The put fails as a whole: the object without its sidecar must not stay behind
            # as one the caller believes unwritten.
            with anyio.CancelScope(shield=True), contextlib.suppress(ProviderError):
                await self._run("put", partial(self._delete_written, key, version))
            raise
        return info

    async def get(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(key)
        check_range(offset, length)
        obj = await self._run("get", lambda: self._get_object(key))
        end = obj.size if length is None else min(obj.size, offset + length)
        if offset >= end:
            return
        whole = offset == 0 and end == obj.size
        # The local driver's ranged read loads the whole file: read from the start, skipping.
        skip = offset if self.options.driver in _WRITES_IN_PLACE else 0
        # The stream has a driver to itself for its whole life: its reads run in whichever
        # worker thread is free, but no other call uses that driver (and its connection) in
        # between, as one thread's own driver would be. One chunk is read at a time, so
        # memory stays at one chunk; a consumer that stops early leaves no thread running.
        driver = await self._run("get", self._checkout)
        exhausted = False

        def open_stream() -> Iterator[bytes]:
            container = Container(self.options.container, {}, driver)
            mine = Object(obj.name, obj.size, obj.hash, obj.extra, obj.meta_data, container, driver)
            if whole or skip:
                return iter(driver.download_object_as_stream(mine, chunk_size=CHUNK_SIZE))
            return iter(
                driver.download_object_range_as_stream(mine, offset, end, chunk_size=CHUNK_SIZE)
            )

        stream: Iterator[bytes] | None = None
        try:
            stream = await self._run("get", open_stream)
            remaining = end - offset
            while remaining > 0:
                data = await self._run("get", partial(next, stream, None))
                if data is None:
                    break
                if skip:
                    dropped = min(skip, len(data))
                    data = data[dropped:]
                    skip -= dropped
                data = data[:remaining]
                remaining -= len(data)
                for start in range(0, len(data), CHUNK_SIZE):
                    yield data[start : start + CHUNK_SIZE]
            exhausted = remaining <= 0 or data is None
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._release, driver, stream, exhausted)

    async def head(self, key: str) -> ObjectInfo:
        check_key(key)
        obj = await self._run("head", lambda: self._get_object(key))
        sidecar = await self._read_sidecar(key)
        sha256: str | None = None
        content_type = (obj.extra or {}).get("content_type") or DEFAULT_CONTENT_TYPE
        if sidecar.get("size") == obj.size and sidecar.get("version") == _version(obj):
            recorded = sidecar.get("sha256")
            sha256 = recorded if isinstance(recorded, str) else None
            if isinstance(sidecar.get("content_type"), str):
                content_type = sidecar["content_type"]
        return ObjectInfo(key, obj.size, sha256, content_type, _extra(obj))

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._run("delete", lambda: self._delete_object(key))
        await self._run("delete", lambda: self._delete_object(SIDECAR_PREFIX + key))

    async def list(
        self, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ObjectPage:
        """The S3 family (S3, GCS's XML API, MinIO, Spaces, ...) lists from `token` on with
        the vendor's own marker, a request per page, skipping the reserved keys with one
        marker jump. Other drivers have no start marker in libcloud's API: each page lists
        from the start of the prefix and skips to `token`, so a page costs the listing of
        the pages before it, and a full walk of N objects lists O(N^2 / limit) entries (the
        local driver also walks and sorts its whole directory tree for every page)."""
        check_prefix(prefix)
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")

        filters_itself = self.options.driver in _FILTERS_LISTS_ITSELF

        def page() -> ObjectPage:
            driver, container = self._driver()
            if isinstance(driver, BaseS3StorageDriver):
                return _s3_page(driver, container, prefix, token, limit)
            found: list[ObjectInfo] = []
            native_prefix = prefix if prefix and not filters_itself else None
            for obj in driver.iterate_container_objects(container, prefix=native_prefix):
                name: str = obj.name
                if (
                    not name.startswith(prefix)
                    or name.startswith(RESERVED_SEGMENT + "/")
                    or (token is not None and name <= token)
                ):
                    continue
                if len(found) == limit:
                    return ObjectPage(tuple(found), found[-1].key)
                found.append(ObjectInfo(name, obj.size, None, DEFAULT_CONTENT_TYPE, _extra(obj)))
            return ObjectPage(tuple(found), None)

        return await self._run("list", page)

    async def copy(self, source_key: str, dest_key: str) -> ObjectInfo:
        """Streamed through this process (libcloud has no server-side copy)."""
        check_key(dest_key)
        source = await self.head(source_key)
        return await self.put(dest_key, self.get(source_key), content_type=source.content_type)

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> PresignedUpload | None:
        """None: libcloud signs only bare URLs, which could bind neither the content type
        nor a size limit."""
        check_key(key)
        return None

    async def presigned_download(
        self, key: str, *, expires_in: int, content_type: str | None = None
    ) -> str | None:
        """A SigV4 presigned GET for the S3 drivers (the object's stored content type is
        served: libcloud cannot sign a response override); None for other drivers."""
        check_key(key)
        if not issubclass(self._driver_class, S3StorageDriver):
            return None

        def sign() -> str:
            driver, container = self._driver()
            assert isinstance(driver, S3StorageDriver)
            obj = Object(key, 0, "", {}, {}, container, driver)
            url: str = driver.get_object_cdn_url(obj, ex_expiry=expires_in / 3600)
            return url

        return await self._run("presign", sign)

    async def close(self) -> None:
        # Drivers of worker threads belong to those threads and go with them; the idle
        # drivers of streams are closed here.
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for driver in idle:
            await anyio.to_thread.run_sync(close_session, driver)

    # -- in worker threads -------------------------------------------------------------------

    def _driver(self) -> tuple[StorageDriver, Container]:
        """This thread's driver and container."""
        driver: StorageDriver | None = getattr(self._local, "driver", None)
        if driver is None:
            driver = self._new_driver()
            self._local.driver = driver
            self._local.container = self._container(driver)
        return driver, self._local.container

    def _new_driver(self) -> StorageDriver:
        options = self.options
        secret = None if options.secret is None else options.secret.get_secret_value()
        return self._driver_class(options.key, secret, **options.driver_options)

    def _checkout(self) -> StorageDriver:
        """A driver for one stream's use alone: an idle one, or a new one."""
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self._new_driver()

    def _release(
        self, driver: StorageDriver, stream: Iterator[bytes] | None, exhausted: bool
    ) -> None:
        """The end of a stream: close it, and keep its driver for the next stream if it
        was read to the end (a stream stopped early may hold its connection mid-response:
        that driver is closed instead)."""
        close = getattr(stream, "close", None)
        try:
            if close is not None:
                close()
        except Exception:
            exhausted = False
        with self._idle_lock:
            if exhausted and len(self._idle) < self.options.max_concurrency:
                self._idle.append(driver)
                return
        close_session(driver)

    def _upload(
        self,
        driver: StorageDriver,
        container: Container,
        key: str,
        chunks: Iterator[bytes],
        content_type: str,
    ) -> Object:
        """Upload `chunks` to `key`; for drivers that write in place, through a temporary
        key renamed into place once whole, so that a failure leaves the previous object."""
        extra = {"content_type": content_type}
        if self.options.driver not in _WRITES_IN_PLACE:
            return driver.upload_object_via_stream(chunks, container, key, extra=extra)
        tmp_key = TMP_PREFIX + secrets.token_hex(16)
        local: Any = driver  # the LOCAL driver: its container is a directory
        base: str = local.get_container_cdn_url(container, check=True)
        tmp_path = os.path.join(base, tmp_key)
        try:
            driver.upload_object_via_stream(chunks, container, tmp_key, extra=extra)
            target = os.path.join(base, key)
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(tmp_path, target)
            except (IsADirectoryError, NotADirectoryError, FileExistsError):
                raise InvalidKey(
                    "key is a prefix of other keys, or under another object, on this disk"
                ) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
        return driver.get_object(container.name, key)

    def _delete_written(self, key: str, version: str | None) -> None:
        """Delete `key` and its sidecar if the object there is still the `version` this
        provider wrote (not one a concurrent put stored since)."""
        driver, container = self._driver()
        try:
            obj = driver.get_object(container.name, key)
        except ObjectDoesNotExistError:
            return
        if _version(obj) != version:
            return
        with contextlib.suppress(ObjectDoesNotExistError):
            driver.delete_object(obj)
        self._delete_object(SIDECAR_PREFIX + key)

    def _container(self, driver: StorageDriver) -> Container:
        name = self.options.container
        try:
            return driver.get_container(name)
        except ContainerDoesNotExistError:
            if not self.options.create_container:
                raise ConfigurationError(f"libcloud container {name!r} does not exist") from None
        try:
            return driver.create_container(name)
        except ContainerAlreadyExistsError:
            return driver.get_container(name)

    def _get_object(self, key: str) -> Object:
        driver, container = self._driver()
        try:
            return driver.get_object(container.name, key)
        except ObjectDoesNotExistError:
            raise NotFound(f"no object {key[:200]!r}") from None

    def _delete_object(self, key: str) -> None:
        driver, container = self._driver()
        try:
            obj = driver.get_object(container.name, key)
        except ObjectDoesNotExistError:
            return
        with contextlib.suppress(ObjectDoesNotExistError):
            driver.delete_object(obj)

    async def _read_sidecar(self, key: str) -> dict[str, Any]:
        def read() -> bytes:
            driver, container = self._driver()
            try:
                obj = driver.get_object(container.name, SIDECAR_PREFIX + key)
            except ObjectDoesNotExistError:
                return b""
            if obj.size > 4096:
                return b""
            return b"".join(driver.download_object_as_stream(obj))

        raw = await self._run("head", read)
        try:
            sidecar = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return sidecar if isinstance(sidecar, dict) else {}

    async def _run(
        self,
        operation: str,
        function: Callable[[], T],
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> T:
        try:
            return await anyio.to_thread.run_sync(function, limiter=limiter or self._calls)
        except (ProviderError, _SourceFailed):
            raise
        except ObjectDoesNotExistError:
            raise NotFound(f"libcloud {operation}: no such object") from None
        except Exception as exc:
            mapped = map_error(operation, exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None


class _SourceFailed(Exception):
    """The caller's chunks failed or stopped: raised inside the driver so that it cleans up."""


class _Source:
    """How the caller's chunk iterator ended, for the worker thread reading its chunks."""

    def __init__(self) -> None:
        self.complete = False
        self.error: Exception | None = None


def _s3_page(
    driver: BaseS3StorageDriver, container: Container, prefix: str, token: str | None, limit: int
) -> ObjectPage:
    """A page of an S3-family listing (ListObjects with `marker`), starting after `token`.

    Requested here rather than through `iterate_container_objects`, which always starts at
    the beginning of the prefix. The body is parsed from its bytes: libcloud decodes it as
    text first, and as S3 names no charset that decoding is a guess, which long non-ASCII
    keys lead astray."""
    found: list[ObjectInfo] = []
    marker = token
    s3: Any = driver  # its listing helpers are untyped (and private: pinned by the tests)
    path: str = s3._get_container_path(container)
    while True:
        params = {"max-keys": str(min(1000, limit + 1 - len(found)))}
        if prefix:
            params["prefix"] = prefix
        if marker is not None:
            params["marker"] = marker
        response = s3.connection.request(path, params=params, raw=True)
        if response.status != 200:
            raise LibcloudError(f"unexpected status {response.status}", driver=driver)
        # The body is from the storage vendor this provider is configured with: trusted as
        # libcloud's own XML parsing trusts it.
        body = ET.fromstring(b"".join(response.iter_content(64 * 1024)))  # noqa: S314
        last: str | None = None
        for obj in s3._to_objs(obj=body, xpath="Contents", container=container):
            name: str = obj.name
            last = name
            if name.startswith(RESERVED_SEGMENT + "/"):
                continue
            if len(found) == limit:
                return ObjectPage(tuple(found), found[-1].key)
            found.append(ObjectInfo(name, obj.size, None, DEFAULT_CONTENT_TYPE, _extra(obj)))
        namespace = s3.namespace
        tag = f"{{{namespace}}}IsTruncated" if namespace else "IsTruncated"
        truncated = (body.findtext(tag) or "").lower() == "true"
        if not truncated or last is None:
            return ObjectPage(tuple(found), None)
        if len(found) == limit:
            # More keys follow (possibly only reserved ones: then the next page is empty).
            return ObjectPage(tuple(found), found[-1].key)
        marker = last
        if marker.startswith(RESERVED_SEGMENT + "/") and AFTER_RESERVED.startswith(prefix):
            marker = AFTER_RESERVED


def _version(obj: Object) -> str | None:
    value = obj.hash
    return None if value is None else str(value).strip('"')


def _extra(obj: Object) -> dict[str, Any]:
    extra = obj.extra or {}
    return {name: extra[name] for name in ("etag", "last_modified", "modify_time") if name in extra}
