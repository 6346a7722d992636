"""The job `media.process`: an upload's bytes become re-encoded renditions, or a typed refusal.

A staged job (app/jobs/queue.py `Stage`): fetching, decoding, re-encoding and storing run
before any transaction opens (on SQLite an open transaction stops every other write), and only
the outcome commits with the job. Idempotent, as every job (it runs at least once): a medium
that is no longer processing is left alone. Each run writes its renditions under keys of its
own (`media/<id>/<run>-full.webp`), so a run never overwrites what another run recorded; the
commit step records them only if the medium is still processing, and otherwise (or if it fails)
deletes them. The upload's original bytes are deleted only after the outcome committed. A
refused image (`ImageError`) fails the medium with its code and keeps nothing; a storage
failure (a backend no longer configured included) raises, so the job is retried, with nothing
recorded. A job that dies that way (or whose worker vanished on its last attempt) leaves the
medium processing until the `media.expire` check recorded with the job fails it
(`PROCESSING_FAILED`, app/services/media_purge.py). A medium that became ready or failed is
expired (`media.expire`) if still unused `unattached_ttl` seconds later.
"""

from __future__ import annotations

import functools
import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from app import imaging
from app.changes import Change
from app.jobs import DeadJob
from app.jobs.queue import Commit, nothing
from app.models import Media, MediaState
from app.services.media_purge import EXPIRE_MEDIA, rendition_prefix
from app.settings import MediaSettings
from app.storage import Storage, Written
from providers.errors import NotFound, ProviderError

log = logging.getLogger("holdfast.media")

UPLOAD_MISSING = "upload_missing"  # an error code beside imaging's: the bytes never came
_EXTENSIONS = {"image/webp": "webp", "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif"}


def rendition_key(media_id: int, run: str, name: str, content_type: str) -> str:
    return f"{rendition_prefix(media_id)}{run}-{name}.{_EXTENSIONS.get(content_type, 'bin')}"


class BackendMissing(Exception):
    """The upload's backend is not configured (any more): the job fails and is retried."""


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class MediaProcessor:
    def __init__(self, settings: MediaSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage

    async def stage(self, payload: dict[str, Any]) -> Commit:
        """The stage of `media.process` ({"media": id}): the renditions stored, and the step
        that records them."""
        media_id = payload.get("media")
        if not isinstance(media_id, int):
            raise DeadJob(f"not a media id: {media_id!r}")
        media = await Media.filter(id=media_id).first()
        if media is None or media.state is not MediaState.PROCESSING:
            return nothing  # done by an earlier run, or gone with its account
        try:
            processed = await self._process(media)
        except _Refused as refused:
            return functools.partial(
                self._fail, media=media, code=refused.code, message=refused.message
            )
        run = secrets.token_hex(4)
        written: list[Written] = []
        try:
            for rendition in processed.renditions:
                key = rendition_key(media.id, run, rendition.name, rendition.content_type)
                written.append(
                    await self.storage.put(
                        key, _chunks(rendition.data), content_type=rendition.content_type
                    )
                )
        except BaseException:
            # Nothing half-stored: what this run wrote goes (the retry writes anew).
            await self._forget(written)
            raise

        async def commit(change: Change) -> None:
            try:
                recorded = await self._record(change, media, processed, written)
            except BaseException:
                await self._forget(written)
                raise
            if not recorded:
                change.after_commit(functools.partial(self._forget, written))

        return commit

    async def _record(
        self,
        change: Change,
        media: Media,
        processed: imaging.ProcessedImage,
        written: list[Written],
    ) -> bool:
        """Record the renditions and the medium ready, if it is still processing (under its
        row lock); False when another run or a deletion came first."""
        conn = change.conn
        current = await Media.filter(id=media.id).select_for_update().using_db(conn).first()
        if current is None or current.state is not MediaState.PROCESSING:
            return False
        by_name = {}
        for rendition, done in zip(processed.renditions, written, strict=True):
            by_name[rendition.name] = await self.storage.record(conn, done, owner_id=media.owner_id)
        await (
            Media.filter(id=media.id)
            .using_db(conn)
            .update(
                state=MediaState.READY,
                width=processed.width,
                height=processed.height,
                blurhash=processed.blurhash,
                animated=processed.animated,
                full_id=by_name["full"].id,
                thumb_id=by_name["thumb"].id,
                error_code=None,
                error_message=None,
            )
        )
        self._delete_upload_after(change, media)
        await self._expire_unused(change, media, MediaState.READY)
        return True

    async def _forget(self, written: list[Written]) -> None:
        for done in written:
            await self._delete_quietly(done.backend, done.info.key)

    async def _process(self, media: Media) -> imaging.ProcessedImage:
        """The upload's bytes, fetched to a temporary file (at most the limit and one byte
        more), decoded and re-encoded in a worker thread."""
        directory = Path(tempfile.mkdtemp(prefix="holdfast-media-"))
        try:
            path = directory / "upload"
            await self._fetch(media, path)
            try:
                return await anyio.to_thread.run_sync(
                    functools.partial(
                        imaging.process,
                        path,
                        max_bytes=self.settings.max_upload_bytes,
                        max_pixels=self.settings.max_pixels,
                        full_size=self.settings.full_size,
                        thumb_size=self.settings.thumb_size,
                    )
                )
            except imaging.ImageError as exc:
                raise _Refused(exc.code.value, exc.message) from None
        finally:
            await anyio.to_thread.run_sync(
                functools.partial(shutil.rmtree, directory, ignore_errors=True)
            )

    async def _fetch(self, media: Media, path: Path) -> None:
        limit = self.settings.max_upload_bytes
        size = 0
        try:
            provider = self.storage.provider(media.upload_backend)
        except LookupError as exc:
            # A backend removed from the settings may come back: a failure like a vendor's,
            # retried; if it does not, the processing timeout fails the medium.
            raise BackendMissing(str(exc)) from None
        try:
            async with await anyio.open_file(path, "wb") as file:
                async for chunk in provider.get(media.upload_key, length=limit + 1):
                    size += len(chunk)
                    if size > limit:
                        raise _Refused(
                            imaging.ImageErrorCode.TOO_LARGE.value,
                            f"Files are at most {limit} bytes.",
                        )
                    await file.write(chunk)
        except NotFound:
            raise _Refused(UPLOAD_MISSING, "The uploaded file is gone; upload it again.") from None

    async def _fail(self, change: Change, *, media: Media, code: str, message: str) -> None:
        updated = await (
            Media.filter(id=media.id, state=MediaState.PROCESSING)
            .using_db(change.conn)
            .update(state=MediaState.FAILED, error_code=code, error_message=message[:300])
        )
        if updated:
            self._delete_upload_after(change, media)
            await self._expire_unused(change, media, MediaState.FAILED)

    async def _expire_unused(self, change: Change, media: Media, state: MediaState) -> None:
        """A medium nobody puts to use (on a post, as an avatar or header) in
        `unattached_ttl` seconds is purged then (app/services/media_purge.py)."""
        await change.enqueue(
            EXPIRE_MEDIA,
            {"media": media.id, "state": state.value},
            delay=self.settings.unattached_ttl,
        )

    def _delete_upload_after(self, change: Change, media: Media) -> None:
        """The original bytes are never served: once the outcome is committed they go (if
        this fails, the upload is an orphan for `holdfast storage orphans`)."""

        async def delete() -> None:
            await self._delete_quietly(media.upload_backend, media.upload_key)

        change.after_commit(delete)

    async def _delete_quietly(self, backend: str, key: str) -> None:
        try:
            await self.storage.provider(backend).delete(key)
        except (ProviderError, LookupError, OSError) as exc:
            log.warning("could not delete %s from %s: %s", key, backend, exc)
