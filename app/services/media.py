"""Media: uploads (direct to the storage vendor, or through the application), their
settings (alt text, focus point), attaching them to posts and profiles, and reading them.

An upload goes pending -> processing -> ready | failed. The original bytes wait under
`uploads/<id>` until the job `media.process` (app/services/media_processing.py) has turned
them into re-encoded renditions or refused them; they are never served.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.changes import Changes
from app.errors import DomainError, ErrorCode
from app.ids import new_id, parse_id
from app.models import Media, MediaPurpose, MediaState, StoredObject, User
from app.services.media_links import MediaLinks
from app.settings import Settings
from app.storage import Storage
from app.text import TextRule, clean_text
from providers.errors import NotFound, ProviderError
from providers.storage.base import PresignedUpload

if TYPE_CHECKING:
    from app.services.accounts import Viewer

PROCESS_MEDIA = "media.process"
ACCEPTED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})
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


def upload_key(media_id: int) -> str:
    return f"uploads/{media_id}"


@dataclass(frozen=True, slots=True)
class Focus:
    """The point to keep in view when an image is cropped: x and y in -1..1, (0, 0) the
    centre, (-1, 1) the top left corner."""

    x: float
    y: float


@dataclass(slots=True)
class MediaView:
    id: int
    owner_id: int
    purpose: MediaPurpose
    state: MediaState
    error_code: str | None
    error_message: str | None
    alt_text: str
    focus_x: float
    focus_y: float
    width: int | None
    height: int | None
    blurhash: str | None
    animated: bool
    full_key: str | None
    thumb_key: str | None
    post_id: int | None
    position: int
    # Everyone may see it (a public post's, an avatar or header in use): plain URLs.
    public: bool


# Whether everyone may see a medium: the post it is attached to is public and not deleted, or
# it is its owner's avatar or header. Media `m`, its post `p` (LEFT JOIN), its owner `ou`.
# The media route and the URLs the API hands out both use it.
PUBLIC = """(
  (p.id IS NOT NULL AND p.visibility = 'public' AND p.deleted_at IS NULL)
  OR (m.post_id IS NULL AND (ou.avatar_id = m.id OR ou.header_id = m.id))
)"""

_SELECT = f"""
SELECT m.id, m.owner_id, m.purpose, m.state, m.error_code, m.error_message, m.alt_text,
       m.focus_x, m.focus_y, m.width, m.height, m.blurhash, m.animated, m.post_id, m.position,
       f.key AS full_key, t.key AS thumb_key,
       CASE WHEN {PUBLIC} THEN 1 ELSE 0 END AS public
FROM media m
JOIN users ou ON ou.id = m.owner_id
LEFT JOIN posts p ON p.id = m.post_id
LEFT JOIN stored_objects f ON f.id = m.full_id
LEFT JOIN stored_objects t ON t.id = m.thumb_id
"""


def _view(row: sql.Row) -> MediaView:
    return MediaView(
        id=row["id"],
        owner_id=row["owner_id"],
        purpose=MediaPurpose(row["purpose"]),
        state=MediaState(row["state"]),
        error_code=row["error_code"],
        error_message=row["error_message"],
        alt_text=row["alt_text"],
        focus_x=row["focus_x"],
        focus_y=row["focus_y"],
        width=row["width"],
        height=row["height"],
        blurhash=row["blurhash"],
        animated=bool(row["animated"]),
        full_key=row["full_key"],
        thumb_key=row["thumb_key"],
        post_id=row["post_id"],
        position=row["position"],
        public=bool(row["public"]),
    )


async def media_by_ids(
    ids: Sequence[int], conn: BaseDBAsyncClient | None = None
) -> list[MediaView]:
    if not ids:
        return []
    rows = await sql.fetch(f"{_SELECT} WHERE m.id IN (:ids)", {"ids": sql.ids_param(ids)}, conn)
    return [_view(row) for row in rows]


async def media_by_posts(post_ids: Sequence[int]) -> dict[int, list[MediaView]]:
    """The ready media of each post, in order: one statement. The posts must be ones the
    viewer may see (loaded through app/services/views.py): their media are shown with them."""
    found: dict[int, list[MediaView]] = {post_id: [] for post_id in post_ids}
    if not post_ids:
        return found
    rows = await sql.fetch(
        f"{_SELECT} WHERE m.post_id IN (:ids) AND m.state = 'ready' "
        "ORDER BY m.post_id, m.position, m.id",
        {"ids": sql.ids_param(post_ids)},
    )
    for row in rows:
        found[row["post_id"]].append(_view(row))
    return found


async def profile_media(user_ids: Sequence[int]) -> dict[int, tuple[MediaView | None, ...]]:
    """Each account's (avatar, header): one statement."""
    found: dict[int, tuple[MediaView | None, ...]] = {user_id: (None, None) for user_id in user_ids}
    if not user_ids:
        return found
    rows = await sql.fetch(
        f"{_SELECT} WHERE m.state = 'ready' AND m.id IN "
        "(SELECT a.avatar_id FROM users a WHERE a.id IN (:ids) AND a.avatar_id IS NOT NULL "
        "UNION ALL SELECT h.header_id FROM users h WHERE h.id IN (:ids) "
        "AND h.header_id IS NOT NULL)",
        {"ids": sql.ids_param(user_ids)},
    )
    users = await User.filter(id__in=list(found)).values("id", "avatar_id", "header_id")
    by_id = {row["id"]: _view(row) for row in rows}
    for user in users:
        found[user["id"]] = (by_id.get(user["avatar_id"]), by_id.get(user["header_id"]))
    return found


@dataclass(frozen=True, slots=True)
class Served:
    """A rendition the media route may serve, and whether to anyone (else: with a signed
    URL only)."""

    obj: StoredObject
    public: bool


async def served_rendition(key: str) -> Served | None:
    """The rendition stored under `key` if it may be served at all: an object that is a
    ready medium's rendition (never an upload's original bytes), whose owner still exists
    and whose post, if any, is not deleted."""
    parts = key.split("/")
    media_id = parse_id(parts[1]) if len(parts) == 3 and parts[0] == "media" else None
    if media_id is None:
        return None
    obj = await StoredObject.get_or_none(key=key)
    if obj is None:
        return None
    rows = await sql.fetch(
        f"""
        SELECT CASE WHEN {PUBLIC} THEN 1 ELSE 0 END AS public
        FROM media m
        JOIN users ou ON ou.id = m.owner_id
        LEFT JOIN posts p ON p.id = m.post_id
        WHERE m.id = :media AND m.state = 'ready' AND (m.full_id = :obj OR m.thumb_id = :obj)
          AND p.deleted_at IS NULL
        """,
        {"media": media_id, "obj": obj.id},
    )
    return Served(obj, bool(rows[0]["public"])) if rows else None


async def attach_to_post(
    conn: BaseDBAsyncClient, *, author_id: int, post_id: int, media_ids: list[int], limit: int
) -> None:
    """Make `media_ids`, in this order, the media of the post (in the change that writes the
    post): each ready, the author's, uploaded for a post and on no other post. Media the post
    had and `media_ids` lacks are detached. A DomainError leaves the caller's change to roll
    back, so nothing changes."""
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
    await (
        Media.filter(post_id=post_id)
        .exclude(id__in=media_ids)
        .using_db(conn)
        .update(post_id=None, position=0)
    )
    for position, media_id in enumerate(media_ids):
        await Media.filter(id=media_id).using_db(conn).update(post_id=post_id, position=position)


async def check_profile_media(
    owner_id: int, media_id: int, purpose: MediaPurpose, field: str
) -> None:
    """A medium the account may show as its avatar or header: its own, ready, uploaded for
    that purpose."""
    media = await Media.get_or_none(id=media_id, owner_id=owner_id)
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
        backend, direct = await self.storage.presigned_upload(
            key,
            content_type=content_type,
            max_size=self.settings.max_upload_bytes,
            expires_in=self.settings.upload_url_ttl,
        )
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
        )
        return await self._reload(media_id), direct

    async def finalize_upload(self, viewer: Viewer, media_id: int) -> MediaView:
        """The bytes of a pending upload have arrived: process them. Finalizing again
        changes nothing."""
        media = await self._own(viewer, media_id, "id")
        if media.state is not MediaState.PENDING:
            return await self._reload(media_id)
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
        pending one `media_id`) and process them. Over the size limit nothing is kept."""
        self._check_declared(content_type, size or 0)
        alt, focus = self._settings_input(alt_text, focus)
        media: Media | None = None
        if media_id is not None:
            media = await self._own(viewer, media_id, "id")
            if media.state is not MediaState.PENDING:
                raise DomainError(
                    ErrorCode.UPLOAD_NOT_PENDING, "This media was already uploaded.", "id"
                )
            key = media.upload_key
        else:
            media_id = new_id()
            key = upload_key(media_id)
        capped = _Capped(chunks, self.settings.max_upload_bytes)
        try:
            written = await self.storage.put(key, capped, content_type=content_type)
        except Exception:
            if not capped.exceeded:
                raise
            # put leaves nothing behind by contract; this is for a provider that did.
            await self._delete_quietly(await self.storage.write_target(), key)
            raise self._too_large("file") from None
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
                await self._save_settings(media_id, alt, focus, conn)
                started = await (
                    Media.filter(id=media_id, state=MediaState.PENDING)
                    .using_db(conn)
                    .update(
                        state=MediaState.PROCESSING,
                        upload_backend=written.backend,
                        declared_size=written.info.size,
                    )
                )
            if started:
                await change.enqueue(PROCESS_MEDIA, {"media": media_id})
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
        found = await sql.fetch(
            f"{_SELECT} WHERE m.id = :id AND m.owner_id = :owner",
            {"id": media_id, "owner": viewer.user.id},
        )
        return _view(found[0]) if found else None

    async def inflight_upload_keys(self) -> set[str]:
        """Upload keys whose bytes are still wanted (media pending or processing): not
        orphans, whatever `holdfast storage orphans` finds without a stored_objects row."""
        keys: list[str] = await Media.filter(
            state__in=[MediaState.PENDING, MediaState.PROCESSING]
        ).values_list("upload_key", flat=True)  # type: ignore[assignment]
        return set(keys)

    # --- helpers -----------------------------------------------------------------------

    def _check_declared(self, content_type: str, size: int) -> None:
        if content_type not in ACCEPTED_TYPES:
            raise DomainError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                "Only JPEG, PNG, WebP and GIF images are accepted.",
                "contentType",
            )
        if size < 0:
            raise DomainError(ErrorCode.INVALID_INPUT, "A size is not negative.", "byteSize")
        if size > self.settings.max_upload_bytes:
            raise self._too_large("byteSize")

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
                await change.enqueue(PROCESS_MEDIA, {"media": media_id})

    async def _reload(self, media_id: int) -> MediaView:
        return (await media_by_ids([media_id]))[0]

    async def _delete_quietly(self, backend: str, key: str) -> None:
        # Failing, it is an orphan that `holdfast storage orphans` finds.
        with contextlib.suppress(ProviderError):
            await self.storage.provider(backend).delete(key)
