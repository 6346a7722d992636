"""Stored objects across storage backends: where to write, where each object is, reading it.

`Storage` opens every configured backend (`HOLDFAST_STORAGE__BACKENDS`, each a provider of
`providers/storage` with its options) when the application is built, so a misnamed provider or
option stops start-up naming the setting. Objects are written to the *write target*: the
default backend, or the target of the newest move (`holdfast storage migrate`,
app/storage/move.py) while the default is still the one it started from. Every object has a
row of `stored_objects` naming the backend that holds it, its size and its SHA-256; reads go
to that backend, so an object is readable from wherever it is during a move and the record
alone says where to find it afterwards.

Writing an object and recording it are two steps on purpose: `put` streams to the vendor
(no transaction may wait on that), then the caller records the row with `record` inside its
own change. A crash between the two leaves an object without a row: an orphan, which
`holdfast storage verify` lists and `holdfast storage orphans --delete` removes. Nothing is
ever recorded that was not stored whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app.models import MoveState, StorageMove, StoredObject
from app.settings import StorageSettings
from providers import registry
from providers.storage.base import ObjectInfo, PresignedUpload, StorageProvider


@dataclass(frozen=True, slots=True)
class Written:
    """An object `put` stored whole: the backend holding it and what it is."""

    backend: str
    info: ObjectInfo


class Storage:
    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.backends: dict[str, StorageProvider] = registry.load_each(
            "storage", settings.backends, where="storage.backends"
        )

    def provider(self, backend: str) -> StorageProvider:
        """The provider of a configured backend; LookupError for a name not configured (an
        object recorded in a backend that was since removed from the settings)."""
        try:
            return self.backends[backend]
        except KeyError:
            raise LookupError(f"storage backend {backend!r} is not configured") from None

    async def write_target(self) -> str:
        """The backend new objects go to: the target of the newest move (by id, whatever its
        state) if it was started from the current default and is not abandoned, else the
        default. Only the newest counts: after moving A -> B, setting the default to B, moving
        B -> A and setting the default back to A, the first move (from A) must not steer
        writes to B again."""
        default = self.settings.default
        move = await StorageMove.all().order_by("-id").first()
        if (
            move is not None
            and move.state is not MoveState.ABANDONED
            and move.from_default == default
            and move.target in self.backends
        ):
            return move.target
        return default

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, content_type: str) -> Written:
        """Stream `chunks` to `key` in the write target. Record it with `record` in the
        change that uses it."""
        backend = await self.write_target()
        info = await self.provider(backend).put(key, chunks, content_type=content_type)
        return Written(backend, info)

    async def record(
        self, conn: BaseDBAsyncClient, written: Written, *, owner_id: int | None
    ) -> StoredObject:
        """The row of an object `put` wrote, inserted in the transaction `conn`."""
        info = written.info
        if info.sha256 is None:
            raise ValueError(f"{info.key}: an object is recorded with its SHA-256")
        return await StoredObject.create(
            key=info.key,
            backend=written.backend,
            size=info.size,
            sha256=info.sha256,
            content_type=info.content_type,
            owner_id=owner_id,
            using_db=conn,
        )

    def open(
        self, obj: StoredObject, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of a recorded object, from the backend its row names."""
        return self.provider(obj.backend).get(obj.key, offset=offset, length=length)

    async def delete(self, obj: StoredObject) -> None:
        """Delete the stored bytes (the caller deletes the row in its change)."""
        await self.provider(obj.backend).delete(obj.key)

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> tuple[str, PresignedUpload | None]:
        """The write target and a direct-upload URL for `key` there (None: upload through
        the application)."""
        backend = await self.write_target()
        upload = await self.provider(backend).presigned_upload(
            key, content_type=content_type, max_size=max_size, expires_in=expires_in
        )
        return backend, upload

    async def download_url(self, obj: StoredObject, *, expires_in: int) -> str | None:
        """A vendor URL serving the object for `expires_in` seconds, or None (the
        application serves it)."""
        return await self.provider(obj.backend).presigned_download(
            obj.key, expires_in=expires_in, content_type=obj.content_type
        )

    async def close(self) -> None:
        for provider in self.backends.values():
            await provider.close()
