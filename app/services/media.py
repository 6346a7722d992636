"""Media: uploads (direct to the storage vendor, or through the application), their
settings (alt text, focus point), attaching them to posts and profiles (reading them:
app/services/media_reads.py).

An upload goes pending -> processing -> ready | failed. The original bytes wait under
`uploads/<id>` until the job `media.process` (app/services/media_processing.py) has turned
them into re-encoded renditions or refused them; they are never served. When a medium's use
ends (its post deleted, dropped by an edit, its account deleted, replaced as avatar or
header) or it was never used, it is purged: app/services/media_purge.py.
"""

from __future__ import annotations

import contextlib
import functools
import math
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app.changes import Change, Changes
from app.errors import DomainError, ErrorCode
from app.ids import new_id
from app.models import Media, MediaPurpose, MediaState
from app.services.media_links import MediaLinks
from app.services.media_purge import EXPIRE_MEDIA, purge_media, rendition_prefix
from app.services.media_reads import MediaView, media_by_ids, media_by_posts, profile_media
from app.settings import Settings
from app.storage import Storage
from app.text import TextRule, clean_text
from providers.errors import NotFound, ProviderError
from providers.storage.base import PresignedUpload

if TYPE_CHECKING:
    from app.services.accounts import Viewer

PROCESS_MEDIA = "media.process"
ACCEPTED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
# Types that say nothing of a file (a part sent without a type, or as bytes): uploadMedia
# leaves them to the job, which decides by the file's magic bytes.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
ALT_TEXT_MAX = 1_500
ALT_TEXT = TextRule(
    field="altText",
    label="Alt text",
    max_length=ALT_TEXT_MAX,
    multiline=True,
    too_long=ErrorCode.TEXT_TOO_LONG,
)


class Unchanged(Enum):
    """A profile field left as it is (None would clear it)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def upload_key(media_id: int, attempt: str | None = None) -> str:
    """Where an upload's original bytes wait: `uploads/<id>` (a new medium, a createUpload
    one), or a key of its own under `attempts_prefix` for uploadMedia on a pending medium, so
    that an upload losing a race with another (or with finalizeUpload) never overwrites the
    bytes that won."""
    return f"uploads/{media_id}" if attempt is None else f"{attempts_prefix(media_id)}{attempt}"


def attempts_prefix(media_id: int) -> str:
    """Where uploadMedia streams the bytes of the pending medium `media_id` before it knows
    whether they will be the ones processed."""
    return f"uploads/sent/{media_id}/"


STORAGE_UNAVAILABLE = "Storage is unavailable; try again."


# What a storage call raises when the backend fails: the vendor's error, LookupError for a
# backend no longer configured, and OSError, which a provider should have wrapped (local
# disks; as media.delete_objects, taken as a failure of the backend all the same).
_STORAGE_FAILURES = (ProviderError, LookupError, OSError)


@contextlib.contextmanager
def _storage_call() -> Iterator[None]:
    """A storage backend's failure as the typed UNAVAILABLE error of the mutation, not an
    unexpected (masked) one."""
    try:
        yield
    except _STORAGE_FAILURES as exc:
        raise DomainError(ErrorCode.UNAVAILABLE, STORAGE_UNAVAILABLE) from exc


@dataclass(frozen=True, slots=True)
class Focus:
    """The point to keep in view when an image is cropped: x and y in -1..1, (0, 0) the
    centre, (-1, 1) the top left corner."""

    x: float
    y: float


async def attach_to_post(
    change: Change, *, author_id: int, post_id: int, media_ids: list[int], limit: int
) -> None:
    """Make `media_ids`, in this order, the media of the post (in the change that writes the
    post): each ready, the author's, uploaded for a post and on no other post. Media the post
    had and `media_ids` lacks are purged (edit history keeps no media). A DomainError leaves
    the caller's change to roll back, so nothing changes."""
    conn = change.conn
    if len(media_ids) > limit:
        raise DomainError(
            ErrorCode.TOO_MANY_ATTACHMENTS, f"A post has at most {limit} media.", "mediaIds"
        )
    if len(set(media_ids)) != len(media_ids):
        raise DomainError(ErrorCode.INVALID_INPUT, "A medium is listed twice.", "mediaIds")
    # Locked, so that two posts cannot both take one medium.
    found = {
        m.id: m for m in await Media.filter(id__in=media_ids).select_for_update().using_db(conn)
    }
    for media_id in media_ids:
        media = found.get(media_id)
        if media is None or media.owner_id != author_id:
            raise DomainError(ErrorCode.NOT_FOUND, "No such media of yours.", "mediaIds")
        if media.purpose is not MediaPurpose.POST:
            raise DomainError(
                ErrorCode.WRONG_MEDIA_PURPOSE, "This media was uploaded for a profile.", "mediaIds"
            )
        if media.state is not MediaState.READY:
            raise DomainError(ErrorCode.MEDIA_NOT_READY, "This media is not ready.", "mediaIds")
        if media.post_id is not None and media.post_id != post_id:
            raise DomainError(
                ErrorCode.MEDIA_IN_USE, "This media is attached to another post.", "mediaIds"
            )
    dropped = await (
        Media.filter(post_id=post_id)
        .exclude(id__in=media_ids)
        .using_db(conn)
        .values_list("id", flat=True)
    )
    if dropped:
        await purge_media(change, id__in=list(dropped))
    for position, media_id in enumerate(media_ids):
        await Media.filter(id=media_id).using_db(conn).update(post_id=post_id, position=position)


async def check_profile_media(
    conn: BaseDBAsyncClient, owner_id: int, media_id: int, purpose: MediaPurpose, field: str
) -> None:
    """A medium the account may show as its avatar or header: its own, ready, uploaded for
    that purpose. Locked for the rest of the transaction `conn`, so that `media.expire` cannot
    purge it meanwhile."""
    media = (
        await Media.filter(id=media_id, owner_id=owner_id)
        .select_for_update()
        .using_db(conn)
        .first()
    )
    if media is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such media of yours.", field)
    if media.purpose is not purpose:
        raise DomainError(
            ErrorCode.WRONG_MEDIA_PURPOSE, f"This media was not uploaded as a {purpose}.", field
        )
    if media.state is not MediaState.READY:
        raise DomainError(ErrorCode.MEDIA_NOT_READY, "This media is not ready.", field)


class _Capped:
    """The chunks of an upload, refused past `limit` bytes (`exceeded` then says so, however
    the provider wraps the error)."""

    def __init__(self, chunks: AsyncIterable[bytes], limit: int) -> None:
        self.chunks = chunks
        self.limit = limit
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self.chunks:
            size += len(chunk)
            if size > self.limit:
                self.exceeded = True
                raise DomainError(ErrorCode.MEDIA_TOO_LARGE, "The file is too large.", "file")
            yield chunk


class MediaService:
    def __init__(self, settings: Settings, changes: Changes, storage: Storage) -> None:
        self.settings = settings.media
        self.processing_timeout = settings.processing_timeout()
        self.storage = storage
        self.links = MediaLinks(settings)
        self._changes = changes

    # --- uploads -----------------------------------------------------------------------

    async def create_upload(
        self,
        viewer: Viewer,
        *,
        purpose: MediaPurpose,
        content_type: str,
        byte_size: int,
        alt_text: str | None = None,
        focus: Focus | None = None,
    ) -> tuple[MediaView, PresignedUpload | None]:
        """A pending medium and, where the storage vendor has them, a URL to upload its bytes
        to directly (then `finalize_upload`); without one, the client sends the bytes with
        `upload(media_id=...)`."""
        self._check_declared(content_type, byte_size)
        alt, focus = self._settings_input(alt_text, focus)
        media_id = new_id()
        key = upload_key(media_id)
        with _storage_call():
            backend, direct = await self.storage.presigned_upload(
                key,
                content_type=content_type,
                max_size=self.settings.max_upload_bytes,
                expires_in=self.settings.upload_url_ttl,
            )
        async with self._changes.begin() as change:
            await Media.create(
                id=media_id,
                owner_id=viewer.user.id,
                purpose=purpose,
                upload_key=key,
                upload_backend=backend,
                declared_type=content_type,
                declared_size=byte_size,
                alt_text=alt or "",
                focus_x=focus.x if focus else 0.0,
                focus_y=focus.y if focus else 0.0,
                using_db=change.conn,
            )
            # Bytes that never come: the medium (and any partial upload) goes once the URL
            # has expired and a slow upload begun just before had time to finish.
            await change.enqueue(
                EXPIRE_MEDIA,
                {"media": media_id, "state": MediaState.PENDING.value},
                delay=self.settings.upload_url_ttl + self.settings.pending_ttl,
            )
        return await self._reload(media_id), direct

    async def finalize_upload(self, viewer: Viewer, media_id: int) -> MediaView:
        """The bytes of a pending upload have arrived: process them. Finalizing again
        changes nothing."""
        media = await self._own(viewer, media_id, "id")
        if media.state is not MediaState.PENDING:
            return await self._reload(media_id)
        with _storage_call():
            provider = self.storage.provider(media.upload_backend)
            try:
                info = await provider.head(media.upload_key)
            except NotFound:
                raise DomainError(
                    ErrorCode.UPLOAD_MISSING, "No file was uploaded for this media yet.", "id"
                ) from None
            if info.size > self.settings.max_upload_bytes:
                # Refused and gone; the media stays pending for a smaller file.
                await provider.delete(media.upload_key)
                raise self._too_large("id")
        await self._start_processing(media_id, media.upload_backend, info.size)
        return await self._reload(media_id)

    async def upload(
        self,
        viewer: Viewer,
        *,
        chunks: AsyncIterable[bytes],
        content_type: str,
        size: int | None = None,
        purpose: MediaPurpose = MediaPurpose.POST,
        media_id: int | None = None,
        alt_text: str | None = None,
        focus: Focus | None = None,
    ) -> MediaView:
        """Store the bytes of an upload sent through the application (a new medium, or the
        pending one `media_id`) and process them. Over the size limit nothing is kept. A
        declared type that says nothing (`GENERIC_TYPES`: a part sent without one) is left to
        the job, which decides by the file's content."""
        self._check_declared(content_type, size or 0, check_type=content_type not in GENERIC_TYPES)
        alt, focus = self._settings_input(alt_text, focus)
        media: Media | None = None
        if media_id is not None:
            media = await self._own(viewer, media_id, "id")
            if media.state is not MediaState.PENDING:
                raise self._not_pending()
            # A key of this upload's own: the medium may stop being pending while the bytes
            # stream in (another upload, finalizeUpload), and those bytes must stay as they are.
            key = upload_key(media_id, secrets.token_hex(4))
        else:
            media_id = new_id()
            key = upload_key(media_id)
        capped = _Capped(chunks, self.settings.max_upload_bytes)
        try:
            written = await self.storage.put(key, capped, content_type=content_type)
        except Exception as exc:
            if capped.exceeded:
                # put leaves nothing behind by contract; this is for a provider that did.
                await self._delete_quietly(await self.storage.write_target(), key)
                raise self._too_large("file") from None
            if isinstance(exc, _STORAGE_FAILURES):
                raise DomainError(ErrorCode.UNAVAILABLE, STORAGE_UNAVAILABLE) from exc
            raise
        async with self._changes.begin() as change:
            conn = change.conn
            if media is None:
                await Media.create(
                    id=media_id,
                    owner_id=viewer.user.id,
                    purpose=purpose,
                    state=MediaState.PROCESSING,
                    upload_key=key,
                    upload_backend=written.backend,
                    declared_type=content_type,
                    declared_size=written.info.size,
                    alt_text=alt or "",
                    focus_x=focus.x if focus else 0.0,
                    focus_y=focus.y if focus else 0.0,
                    using_db=conn,
                )
                started = 1
            else:
                started = await (
                    Media.filter(id=media_id, state=MediaState.PENDING)
                    .using_db(conn)
                    .update(
                        state=MediaState.PROCESSING,
                        upload_key=key,
                        upload_backend=written.backend,
                        declared_size=written.info.size,
                    )
                )
                if started:
                    await self._save_settings(media_id, alt, focus, conn)
                    # Whatever waited under the pending medium's own key (a direct upload
                    # begun, then abandoned for this one) is wanted no more.
                    change.after_commit(
                        functools.partial(
                            self._delete_quietly, media.upload_backend, media.upload_key
                        )
                    )
            if started:
                await self._process(change, media_id)
        if not started:
            # Not pending any more (another upload or finalizeUpload came first, or it expired
            # or its account was deleted while the bytes streamed in): nothing wants them.
            await self._delete_quietly(written.backend, key)
            await self._reload(media_id)  # NOT_FOUND when it is gone
            raise self._not_pending()
        return await self._reload(media_id)

    async def update_media(
        self, viewer: Viewer, media_id: int, *, alt_text: str | None, focus: Focus | None
    ) -> MediaView:
        """Change a medium's alt text and focus point (None keeps each)."""
        await self._own(viewer, media_id, "id")
        alt, focus = self._settings_input(alt_text, focus)
        await self._save_settings(media_id, alt, focus)
        return await self._reload(media_id)

    async def own_media(self, viewer: Viewer, media_id: int) -> MediaView | None:
        """One of the viewer's media, in whatever state."""
        found = await media_by_ids([media_id])
        return found[0] if found and found[0].owner_id == viewer.user.id else None

    async def inflight_upload_keys(self) -> set[str]:
        return await inflight_keys()

    async def media_of_posts(self, post_ids: list[int]) -> dict[int, list[MediaView]]:
        """Each post's media, in order: one statement."""
        return await media_by_posts(post_ids)

    async def profile_media_of(
        self, user_ids: list[int]
    ) -> dict[int, tuple[MediaView | None, ...]]:
        """Each account's (avatar, header): one statement."""
        return await profile_media(user_ids)

    # --- helpers -----------------------------------------------------------------------

    def _check_declared(self, content_type: str, size: int, *, check_type: bool = True) -> None:
        if check_type and content_type not in ACCEPTED_TYPES:
            raise DomainError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                "Only JPEG, PNG, WebP and GIF images are accepted.",
                "contentType",
            )
        if size < 0:
            raise DomainError(ErrorCode.INVALID_INPUT, "A size is not negative.", "byteSize")
        if size > self.settings.max_upload_bytes:
            raise self._too_large("byteSize")

    @staticmethod
    def _not_pending() -> DomainError:
        return DomainError(ErrorCode.UPLOAD_NOT_PENDING, "This media was already uploaded.", "id")

    def _too_large(self, field: str) -> DomainError:
        limit = self.settings.max_upload_bytes
        return DomainError(ErrorCode.MEDIA_TOO_LARGE, f"Files are at most {limit} bytes.", field)

    @staticmethod
    def _settings_input(
        alt_text: str | None, focus: Focus | None
    ) -> tuple[str | None, Focus | None]:
        alt = clean_text(alt_text, ALT_TEXT) if alt_text is not None else None
        if focus is not None and not all(
            math.isfinite(v) and -1.0 <= v <= 1.0 for v in (focus.x, focus.y)
        ):
            raise DomainError(
                ErrorCode.INVALID_INPUT, "A focus point has x and y in -1..1.", "focus"
            )
        return alt, focus

    async def _save_settings(
        self,
        media_id: int,
        alt: str | None,
        focus: Focus | None,
        conn: BaseDBAsyncClient | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if alt is not None:
            changes["alt_text"] = alt
        if focus is not None:
            changes["focus_x"], changes["focus_y"] = focus.x, focus.y
        if changes:
            await Media.filter(id=media_id).using_db(conn).update(**changes)

    async def _own(self, viewer: Viewer, media_id: int, field: str) -> Media:
        media = await Media.get_or_none(id=media_id, owner_id=viewer.user.id)
        if media is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such media of yours.", field)
        return media

    async def _start_processing(self, media_id: int, backend: str, size: int) -> None:
        async with self._changes.begin() as change:
            started = (
                await Media.filter(id=media_id, state=MediaState.PENDING)
                .using_db(change.conn)
                .update(state=MediaState.PROCESSING, upload_backend=backend, declared_size=size)
            )
            if started:
                await self._process(change, media_id)

    async def _process(self, change: Change, media_id: int) -> None:
        """Record the job that processes a medium that just became processing, and the check
        that fails it if that job dies (app/services/media_purge.py)."""
        await change.enqueue(PROCESS_MEDIA, {"media": media_id})
        await change.enqueue(
            EXPIRE_MEDIA,
            {"media": media_id, "state": MediaState.PROCESSING.value},
            delay=self.processing_timeout,
        )

    async def _reload(self, media_id: int) -> MediaView:
        found = await media_by_ids([media_id])
        if not found:
            # Purged meanwhile (expired, or its account deleted).
            raise DomainError(ErrorCode.NOT_FOUND, "No such media of yours.", "id")
        return found[0]

    async def _delete_quietly(self, backend: str, key: str) -> None:
        # Failing, it is an orphan that `holdfast storage orphans` finds.
        with contextlib.suppress(*_STORAGE_FAILURES):
            await self.storage.provider(backend).delete(key)


async def inflight_keys() -> set[str]:
    """Keys whose bytes are still wanted though no stored_objects row names them yet, for
    `holdfast storage verify` and `orphans`: the upload keys of media pending or processing,
    the prefix (ending in `/`) where uploadMedia streams the bytes of a pending one, and the
    rendition prefix of those processing (a job stores renditions before it records them)."""
    rows = await Media.filter(state__in=[MediaState.PENDING, MediaState.PROCESSING]).values_list(
        "id", "upload_key", "state"
    )
    keys = {upload_key for _, upload_key, _ in rows}
    keys.update(attempts_prefix(id_) for id_, _, state in rows if state == MediaState.PENDING)
    keys.update(rendition_prefix(id_) for id_, _, state in rows if state == MediaState.PROCESSING)
    return keys
