"""Purging media: a medium's rows go in the change that ends its use, its bytes just after.

What purges, and when:
- in the change that ends the use: a deleted post's media (`delete_post`), the media an edit
  drops from a post (`edit_post`: edit history keeps no media), the avatar or header an
  account replaces or removes (`update_profile`), every medium of a deleted account;
- the job `media.expire` ({"media": id, "state": s}), recorded with a delay: by `createUpload`
  (a medium still pending `upload_url_ttl + pending_ttl` seconds later never got its bytes),
  and when a medium becomes ready or fails (one still unused `unattached_ttl` seconds later:
  on no post, not its owner's avatar or header). It checks, under the medium's row lock, that
  the medium is still in state `s` and unused, so a late or repeated run is harmless.

`media.expire` with state `processing` is recorded when a medium's file arrives (finalizeUpload,
uploadMedia), `Settings.processing_timeout()` seconds later: by then its `media.process` job
has succeeded, been refused, or died (every attempt failed, e.g. on a storage outage or a
backend no longer configured). A medium still processing then is not purged but fails with
`PROCESSING_FAILED` (its owner is told to upload again); its upload and whatever a dead run
left under its renditions prefix are deleted after the commit, and it expires like any
failed medium `unattached_ttl` seconds later.

Rows first, bytes after. `purge_media` deletes the media rows and their renditions'
`stored_objects` rows in the caller's transaction and, in that same transaction, records the
job `media.delete_objects` carrying each object's backend and key (the rows are gone by then,
and after an account's deletion nothing would lead to its objects any more: `Media.owner`
cascades, `StoredObject.owner` is SET NULL). The job deletes the bytes outside any transaction
(a staged job) and is retried while a backend fails. So no instant, crash or vendor outage
ever leaves a row naming bytes that are gone (served as missing, "missing" for `holdfast
storage verify`): the worst outcome, a job that ran out of attempts, is bytes without a row,
an orphan that `holdfast storage orphans --delete` removes (or `holdfast jobs retry-dead`,
once the backend is back). Deleting bytes first and rows after would leave rows pointing at
nothing whenever the job stopped between the two.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from tortoise.expressions import Q

from app import sql
from app.changes import Change
from app.jobs import DeadJob
from app.jobs.queue import MAX_PAYLOAD, Commit, nothing
from app.models import Media, MediaState, User
from app.settings import MediaSettings
from app.storage import Storage
from providers.errors import ProviderError

log = logging.getLogger("holdfast.media")

EXPIRE_MEDIA = "media.expire"
DELETE_OBJECTS = "media.delete_objects"
# The error code of a medium whose processing never finished (beside imaging's codes and
# media_processing's UPLOAD_MISSING).
PROCESSING_FAILED = "processing_failed"
PROCESSING_FAILED_MESSAGE = "Processing failed; upload the file again."

# Media purged per round of statements: at most 400 bound ids in one statement (two objects
# a medium), under the 999 variables older SQLite allows.
_CHUNK = 200
# Bytes of [backend, key] pairs per `media.delete_objects` job, under the payload limit with
# room for the envelope.
_BATCH_BYTES = MAX_PAYLOAD - 256


def rendition_prefix(media_id: int) -> str:
    """Where a medium's renditions are stored: every run of `media.process` writes its keys
    under it (app/services/media_processing.py)."""
    return f"media/{media_id}/"


class ObjectsNotDeleted(Exception):
    """Some objects could not be deleted: the job is retried (deleting again what is already
    gone is harmless)."""


async def purge_media(change: Change, **filters: Any) -> int:
    """Purge the media matching `filters` (Tortoise filters on `Media`, e.g. `post_id=...`)
    in the change: their rows and their objects' rows now, their bytes by `media.delete_objects`
    once it commits. Returns how many media were purged."""
    conn = change.conn
    purged = 0
    while True:
        rows = (
            await Media.filter(**filters)
            .order_by("id")
            .limit(_CHUNK)
            .using_db(conn)
            .values("id", "state", "upload_backend", "upload_key", "full_id", "thumb_id")
        )
        if not rows:
            return purged
        object_ids = [r[c] for r in rows for c in ("full_id", "thumb_id") if r[c] is not None]
        # An upload's original bytes are wanted until its outcome commits, which then deletes
        # them: only those of media not yet processed are still owed.
        targets = [
            (r["upload_backend"], r["upload_key"])
            for r in rows
            if r["state"] in (MediaState.PENDING, MediaState.PROCESSING)
        ]
        await Media.filter(id__in=[r["id"] for r in rows]).using_db(conn).delete()
        if object_ids:
            # Each object's backend as the DELETE finds it, not as read before: a storage move
            # may switch the row meanwhile (its UPDATE commits in between on PostgreSQL), and
            # the bytes to delete are then at the target.
            deleted = await sql.fetch(
                "DELETE FROM stored_objects WHERE id IN (:ids) RETURNING backend, key",
                {"ids": object_ids},
                conn,
            )
            targets += [(o["backend"], o["key"]) for o in deleted]
        for batch in _batches(targets):
            await change.enqueue(DELETE_OBJECTS, {"objects": batch})
        purged += len(rows)


def _batches(targets: list[tuple[str, str]]) -> list[list[list[str]]]:
    """[backend, key] pairs in payloads under the job payload limit (a key has at most 512
    characters, so a single pair always fits)."""
    batches: list[list[list[str]]] = []
    batch: list[list[str]] = []
    size = 0
    for backend, key in targets:
        item = [backend, key]
        item_size = len(orjson.dumps(item)) + 1
        if batch and size + item_size > _BATCH_BYTES:
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        batches.append(batch)
    return batches


class MediaPurger:
    """The handlers of `media.delete_objects` and `media.expire`."""

    def __init__(self, storage: Storage, settings: MediaSettings) -> None:
        self.storage = storage
        self.settings = settings

    async def delete_objects(self, payload: dict[str, Any]) -> Commit:
        """The stage of `media.delete_objects` ({"objects": [[backend, key], ...]}): delete
        each object's bytes (a missing one is not an error), outside any transaction. A
        backend that fails, or is no longer configured, fails the job after the others were
        tried, so that it is retried."""
        objects = payload.get("objects")
        if not isinstance(objects, list) or not all(
            isinstance(o, list) and len(o) == 2 and all(isinstance(v, str) for v in o)
            for o in objects
        ):
            raise DeadJob(f"not a list of [backend, key]: {objects!r}")
        failed: list[str] = []
        for backend, key in objects:
            try:
                await self.storage.provider(backend).delete(key)
            except (ProviderError, LookupError, OSError) as exc:
                failed.append(f"{key} in {backend}: {exc}")
        if failed:
            raise ObjectsNotDeleted(
                f"{len(failed)} of {len(objects)} objects not deleted, e.g. {failed[0]}"
            )
        return nothing

    async def expire(self, change: Change, payload: dict[str, Any]) -> None:
        """`media.expire` ({"media": id, "state": s}): purge the medium if it is still in
        state `s` and unused; a medium still processing fails instead."""
        media_id, state = payload.get("media"), payload.get("state")
        if not isinstance(media_id, int) or state not in tuple(MediaState):
            raise DeadJob(f"not a media id and state: {payload!r}")
        # Locked as `attach_to_post` and `update_profile` lock it to put it to use, and as
        # `media.process` locks it to record its outcome: whichever comes second sees what
        # the first did.
        media = await Media.filter(id=media_id).select_for_update().using_db(change.conn).first()
        if media is None or media.state != state:
            return
        if media.state is MediaState.PROCESSING:
            await self._processing_failed(change, media)
            return
        if await _in_use(change, media):
            return
        log.info("media %s expired (%s and unused)", media_id, state)
        await purge_media(change, id=media_id)

    async def _processing_failed(self, change: Change, media: Media) -> None:
        """The medium's job never finished: it fails, and what it may have left goes."""
        log.warning("media %s still processing after its timeout: failed", media.id)
        await (
            Media.filter(id=media.id)
            .using_db(change.conn)
            .update(
                state=MediaState.FAILED,
                error_code=PROCESSING_FAILED,
                error_message=PROCESSING_FAILED_MESSAGE,
            )
        )
        await change.enqueue(
            EXPIRE_MEDIA,
            {"media": media.id, "state": MediaState.FAILED.value},
            delay=self.settings.unattached_ttl,
        )
        backend, key, prefix = media.upload_backend, media.upload_key, rendition_prefix(media.id)

        async def delete() -> None:
            # Best effort, as after any outcome of media.process: what is left is an orphan
            # for `holdfast storage orphans`. A run still going stores renditions after this,
            # but its commit step finds the medium failed and deletes them.
            await self._delete_quietly(backend, key)
            for name in self.storage.backends:
                await self._delete_prefix_quietly(name, prefix)

        change.after_commit(delete)

    async def _delete_quietly(self, backend: str, key: str) -> None:
        try:
            await self.storage.provider(backend).delete(key)
        except (ProviderError, LookupError, OSError) as exc:
            log.warning("could not delete %s from %s: %s", key, backend, exc)

    async def _delete_prefix_quietly(self, backend: str, prefix: str) -> None:
        provider = self.storage.provider(backend)
        token: str | None = None
        try:
            while True:
                page = await provider.list(prefix, token=token)
                for obj in page.objects:
                    await provider.delete(obj.key)
                token = page.next_token
                if token is None:
                    return
        except (ProviderError, OSError) as exc:
            log.warning("could not delete %s* from %s: %s", prefix, backend, exc)


async def _in_use(change: Change, media: Media) -> bool:
    if media.post_id is not None:
        return True
    return (
        await User.filter(Q(avatar_id=media.id) | Q(header_id=media.id))
        .using_db(change.conn)
        .exists()
    )
