"""Reading media: the views the API shows, a post's and an account's media, and whether a
stored rendition may be served (and to whom).

Whether everyone may see a medium (`PUBLIC`) is decided here once, for the URLs the API
hands out and for the media route that serves them, from the rule of who may see a post
(app/services/views.py) for a signed-out viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from app import sql
from app.ids import parse_id
from app.models import MediaPurpose, MediaState, StoredObject, User
from app.services.views import visible


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


# Whether everyone may see a medium: a signed-out viewer may see the post it is attached to
# (`views.visible` with no viewer: public and not deleted), or it is its owner's avatar or
# header. Media `m`, its post `p` (LEFT JOIN), its owner `ou`. The media route and the URLs
# the API hands out both use it.
PUBLIC = f"""(
  (p.id IS NOT NULL AND {visible("p", "NULL")})
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
