"""A storage provider that fails and slows down on purpose, for the move tests.

`FaultyStorage` delegates to a real provider (any registry name with its options) and raises
`error` (`Unavailable`, an `OSError`, or a `RuntimeError` standing for a bug) for the keys in
`fail_keys` on their first `failures` calls of `fail_on`; it waits `delay` seconds before
every `put`, and a `put` that has streamed `stall_after` bytes takes no more (it waits until
cancelled: its process stopped).
With `mark_dir` it creates `<mark_dir>/<key with / as _>.put` when a `put` of that key
begins, `.stalled` when it stalls and `.stored` when it has stored the object (so that a test
can tell, from outside a `holdfast` process, where a copy is). In the test process,
`after_put` (an async callable taking the key) runs after each `put` of the inner provider.

It is configured like any backend, so it also works in a `holdfast` subprocess:
`entry_point_dir` writes a distribution's metadata that registers it under the entry-point
group `holdfast.providers.storage` as `faulty`; put that directory on the path (sys.path, or
PYTHONPATH for a subprocess).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from providers import registry
from providers.errors import Unavailable
from providers.storage.base import ObjectInfo, ObjectPage, PresignedUpload, StorageProvider

NAME = "faulty"


def entry_point_dir(directory: Path) -> Path:
    """`directory` holding the metadata that registers `FaultyStorage` as `faulty`."""
    info = directory / "holdfast_test_faults-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: holdfast-test-faults\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[holdfast.providers.storage]\n{NAME} = tests.storage_faults:FaultyStorage\n"
    )
    return directory


class FaultyStorage:
    kind: ClassVar[str] = NAME

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        provider: str
        options: dict[str, Any] = {}
        fail_keys: list[str] = []
        failures: int = 0
        fail_on: Literal["put", "get", "delete"] = "put"
        error: Literal["unavailable", "oserror", "runtime"] = "unavailable"
        delay: float = 0.0
        stall_after: int | None = None
        mark_dir: str | None = None

    def __init__(self, options: FaultyStorage.Options) -> None:
        self.options = options
        self.inner: StorageProvider = registry.load("storage", options.provider, options.options)
        self.left = dict.fromkeys(options.fail_keys, options.failures)
        self.calls: dict[str, int] = {}
        self.after_put: Callable[[str], Awaitable[None]] | None = None

    def _maybe_fail(self, operation: str, key: str) -> None:
        if operation != self.options.fail_on:
            return
        self.calls[key] = self.calls.get(key, 0) + 1
        if self.left.get(key, 0) > 0:
            self.left[key] -= 1
            message = f"injected failure of {operation} {key}"
            if self.options.error == "oserror":
                raise OSError(message)
            if self.options.error == "runtime":
                raise RuntimeError(message)
            raise Unavailable(message)

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> ObjectInfo:
        self._mark(key, "put")
        if self.options.delay:
            await asyncio.sleep(self.options.delay)
        self._maybe_fail("put", key)
        if self.options.stall_after is not None:
            chunks = self._stalling(key, chunks, self.options.stall_after)
        info = await self.inner.put(key, chunks, content_type=content_type, sha256=sha256)
        self._mark(key, "stored")
        if self.after_put is not None:
            await self.after_put(key)
        return info

    def _mark(self, key: str, event: str) -> None:
        if self.options.mark_dir is not None:
            (Path(self.options.mark_dir) / f"{key.replace('/', '_')}.{event}").touch()

    async def _stalling(
        self, key: str, chunks: AsyncIterable[bytes], after: int
    ) -> AsyncIterator[bytes]:
        streamed = 0
        async for chunk in chunks:
            if streamed >= after:
                self._mark(key, "stalled")
                await asyncio.Event().wait()  # until cancelled
            streamed += len(chunk)
            yield chunk

    async def get(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        self._maybe_fail("get", key)
        async for chunk in self.inner.get(key, offset=offset, length=length):
            yield chunk

    async def head(self, key: str) -> ObjectInfo:
        return await self.inner.head(key)

    async def delete(self, key: str) -> None:
        self._maybe_fail("delete", key)
        await self.inner.delete(key)

    async def list(
        self, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ObjectPage:
        return await self.inner.list(prefix, token=token, limit=limit)

    async def copy(self, source_key: str, dest_key: str) -> ObjectInfo:
        return await self.inner.copy(source_key, dest_key)

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> PresignedUpload | None:
        return await self.inner.presigned_upload(
            key, content_type=content_type, max_size=max_size, expires_in=expires_in
        )

    async def presigned_download(
        self, key: str, *, expires_in: int, content_type: str | None = None
    ) -> str | None:
        return await self.inner.presigned_download(
            key, expires_in=expires_in, content_type=content_type
        )

    async def close(self) -> None:
        await self.inner.close()
