"""Read-side data for the API: plain slotted dataclasses, loaded in few statements.

A page of posts (with authors, counts, the viewer's state and the replied-to and quoted
posts) is one statement whatever its length: each row carries the post, its author, whether
the viewer likes, reposted or bookmarked it, and the same for the posts it replies to and
quotes when the viewer may see them.

Who may see a post is decided here, in SQL, once (`VISIBLE`), and every read path uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import orjson

from app import sql
from app.models import Role, Visibility
from app.services.relations import blocked, muted
from app.sql import Row

# The columns of an account card (AccountCard), as page rows carry them.
_ACCOUNT_FIELDS = (
    "id",
    "username",
    "display_name",
    "bio",
    "is_locked",
    "role",
    "email",
    "created_at",
    "follower_count",
    "following_count",
)


def audience(p: str, viewer: str = ":viewer") -> str:
    """The audience of post `p` includes the viewer (`viewer`: the parameter :viewer, NULL when
    signed out, or a column when one statement checks many viewers) when neither side blocks
    the other and its visibility lets them in. SUBSCRIBERS posts are for the author and every
    account with premium access now (a subscription's `access_until`, app/models/billing.py,
    is in the future: paid, in its grace period, or complimentary). `:now` is bound by
    app/sql.py to the statement's time unless the caller gives it."""
    return f"""
(
  {p}.visibility = 'public'
  OR {p}.author_id = {viewer}
  OR ({p}.visibility = 'followers' AND EXISTS (
        SELECT 1 FROM follows vf
        WHERE vf.follower_id = {viewer} AND vf.followee_id = {p}.author_id))
  OR ({p}.visibility = 'direct' AND EXISTS (
        SELECT 1 FROM mentions vm WHERE vm.post_id = {p}.id AND vm.user_id = {viewer}))
  OR ({p}.visibility = 'subscribers' AND {premium(viewer)})
)
AND NOT {blocked(viewer, f"{p}.author_id", "vb")}
"""


def premium(viewer: str = ":viewer") -> str:
    """The viewer has premium access now: the one definition of it (app/services/billing.py
    reads it through here too)."""
    return f"""EXISTS (
        SELECT 1 FROM subscriptions vsub
        WHERE vsub.user_id = {viewer} AND {gives_access("vsub")})"""


def gives_access(s: str) -> str:
    """Subscription row `s` gives premium access now (paid, in its grace period, or
    complimentary): what `premium` asks of a viewer's subscriptions, and what billing's
    badges and perks ask of the plans an account has access through."""
    return f"{s}.access_until > :now"


def visible(p: str = "p", viewer: str = ":viewer") -> str:
    """Visible: in the audience and not deleted. A deleted post shows as a tombstone (in
    threads) only to its audience, so even its existence stays private."""
    return f"{p}.deleted_at IS NULL AND " + audience(p, viewer)


def not_muted(p: str = "p", viewer: str = ":viewer") -> str:
    """Timelines and notifications also leave out accounts the viewer muted."""
    return f"""
NOT {muted(viewer, f"{p}.author_id", "vmu")}
"""


def in_version_audience(
    post: PostView, mentioned_ids: list[int] | None, viewer_id: int | None
) -> bool:
    """Whether the viewer of a visible post was in the audience of one of its earlier versions
    (`mentioned_ids`: the accounts that version mentioned). As in `audience`, only a DIRECT
    post's audience depends on its text: the author and the accounts mentioned. A version
    whose mentions were not recorded (NULL, kept before migration 0004) is its author's."""
    if post.visibility is not Visibility.DIRECT or post.author.id == viewer_id:
        return True
    return viewer_id is not None and viewer_id in (mentioned_ids or ())


@cache
def post_columns(
    p: str, u: str, prefix: str, viewer_state: bool = True, viewer: str = ":viewer"
) -> str:
    """Post `p`, its author `u` and (unless not asked) the viewer's state, as columns named
    `<prefix>...`."""
    return select_list(post_fields(p, u, prefix, viewer_state, viewer))


def post_fields(
    p: str, u: str, prefix: str, viewer_state: bool = True, viewer: str = ":viewer"
) -> list[tuple[str, str]]:
    """`post_columns` as (column name, SQL expression) pairs. A deleted post is a tombstone:
    its text, content warning and entities are empty (NULL entities) here, for every reader."""
    shown = f"{p}.deleted_at IS NULL"
    fields = [
        (f"{prefix}id", f"{p}.id"),
        (f"{prefix}text", f"CASE WHEN {shown} THEN {p}.text ELSE '' END"),
        (f"{prefix}content_warning", f"CASE WHEN {shown} THEN {p}.content_warning ELSE '' END"),
        (f"{prefix}visibility", f"{p}.visibility"),
        (f"{prefix}entities", f"CASE WHEN {shown} THEN {p}.entities END"),
        *(
            (f"{prefix}{name}", f"{p}.{name}")
            for name in (
                "like_count",
                "repost_count",
                "reply_count",
                "quote_count",
                "created_at",
                "edited_at",
                "deleted_at",
                "reply_to_id",
                "quote_of_id",
            )
        ),
        *account_fields(u, prefix + "a_"),
    ]
    state = (
        ("liked", "likes", "vl"),
        ("reposted", "reposts", "vr"),
        ("bookmarked", "bookmarks", "vk"),
    )
    if not viewer_state:
        return [*fields, *((f"{prefix}v_{flag}", "NULL") for flag, _, _ in state)]
    return [
        *fields,
        *(
            (
                f"{prefix}v_{flag}",
                f"EXISTS (SELECT 1 FROM {table} {t} "
                f"WHERE {t}.user_id = {viewer} AND {t}.post_id = {p}.id)",
            )
            for flag, table, t in state
        ),
    ]


@cache
def user_columns(u: str, prefix: str) -> str:
    return select_list(account_fields(u, prefix))


def account_fields(u: str, prefix: str) -> list[tuple[str, str]]:
    """`user_columns` as (column name, SQL expression) pairs."""
    return [(prefix + name, f"{u}.{name}") for name in _ACCOUNT_FIELDS]


def select_list(fields: list[tuple[str, str]], wanted: Collection[str] | None = None) -> str:
    """A select list of `fields`, only those named in `wanted` when given."""
    return ",\n".join(
        f"{expression} AS {name}" for name, expression in fields if wanted is None or name in wanted
    )


def page_fields(viewer: str = ":viewer") -> list[tuple[str, str]]:
    """A page row's columns (see `page_columns`) as (column name, SQL expression) pairs."""
    return [
        *post_fields("p", "u", "", viewer=viewer),
        *post_fields("rp", "ru", "r_", viewer_state=False),
        *post_fields("qp", "qu", "q_", viewer_state=False),
    ]


@cache
def page_columns(viewer: str = ":viewer") -> str:
    """A page row: post `p` (author `u`) with the post it replies to (r_...) and the one it
    quotes (q_...), when the viewer may see them (deleted ones as tombstones), joined by
    `related_joins`: one statement for a whole page. The referred posts' viewer state is
    loaded only if a query asks for it (see `PostView.viewer_state_loaded`): a page rarely
    shows it, and it is 6 lookups a row."""
    return select_list(page_fields(viewer))


# Where a page row carries a post's related objects, by the PostView field: the columns of
# each start with the post's prefix and this. An object is there when its `id` column is not
# NULL (LEFT JOINs: a post the viewer may not see, none referred, or no reposter).
PAGE_OBJECTS = {"author": "a_", "reply_to": "r_", "quote_of": "q_"}


@cache
def related_joins(viewer: str = ":viewer") -> str:
    """The posts a page's post `p` replies to and quotes, when the viewer may see them and `p`
    shows them (`shows_referred`, here in SQL)."""
    return f"""
LEFT JOIN posts rp ON rp.id = p.reply_to_id AND p.deleted_at IS NULL AND {audience("rp", viewer)}
LEFT JOIN users ru ON ru.id = rp.author_id
LEFT JOIN posts qp ON qp.id = p.quote_of_id AND p.deleted_at IS NULL AND {audience("qp", viewer)}
LEFT JOIN users qu ON qu.id = qp.author_id
"""


AUDIENCE = audience("p")
VISIBLE = visible()
NOT_MUTED = not_muted()
POST_COLUMNS = post_columns("p", "u", "")
PAGE_COLUMNS = page_columns()
RELATED_JOINS = related_joins()

USER_COLUMNS = user_columns("u", "a_")


@dataclass(slots=True)
class AccountCard:
    id: int
    username: str
    display_name: str
    bio: str
    is_locked: bool
    role: Role
    email: str
    created_at: datetime
    follower_count: int
    following_count: int


@dataclass(slots=True)
class PostView:
    id: int
    author: AccountCard
    text: str
    content_warning: str
    visibility: Visibility
    entities: list[dict[str, Any]]
    like_count: int
    repost_count: int
    reply_count: int
    quote_count: int
    created_at: datetime
    edited_at: datetime | None
    is_deleted: bool
    reply_to_id: int | None
    quote_of_id: int | None
    # Filled by `page_post_from_row` or `hydrate`: the referred posts when visible (None when
    # not, or when not loaded; `related_loaded` tells which).
    reply_to: PostView | None = None
    quote_of: PostView | None = None
    related_loaded: bool = False
    viewer_has_liked: bool = False
    viewer_has_reposted: bool = False
    viewer_has_bookmarked: bool = False
    # False when the three flags above were not loaded (schema.loaders fetches them then).
    viewer_state_loaded: bool = True
    # Timeline entries only: who reposted it into this timeline, and the entry's sort key.
    reposted_by: AccountCard | None = None
    sort_key: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _optional_datetime(value: Any) -> datetime | None:
    return None if value is None else _datetime(value)


def _entities(value: Any) -> list[dict[str, Any]]:
    if value is None:  # a tombstone (post_fields)
        return []
    return orjson.loads(value) if isinstance(value, str) else value  # type: ignore[no-any-return]


def _is_set(value: Any) -> bool:
    return value is not None


class Read(NamedTuple):
    """How one field of a view is read from a row: its column (after the row's prefix) and
    what turns the column's value into the field's (None: taken as it is)."""

    column: str
    convert: Callable[[Any], Any] | None = None


_ROLES = {role.value: role for role in Role}
_VISIBILITIES = {visibility.value: visibility for visibility in Visibility}

# The one reading of a row's columns into AccountCard and PostView fields: account_from_row and
# post_from_row read through these, and so do compiled page plans (schema/rowplan.py), which
# build a query's answer straight from the rows.
ACCOUNT_READS: dict[str, Read] = {
    "id": Read("id"),
    "username": Read("username"),
    "display_name": Read("display_name"),
    "bio": Read("bio"),
    "is_locked": Read("is_locked", bool),
    "role": Read("role", _ROLES.__getitem__),
    "email": Read("email"),
    "created_at": Read("created_at", _datetime),
    "follower_count": Read("follower_count"),
    "following_count": Read("following_count"),
}
POST_READS: dict[str, Read] = {
    "id": Read("id"),
    "text": Read("text"),
    "content_warning": Read("content_warning"),
    "visibility": Read("visibility", _VISIBILITIES.__getitem__),
    "entities": Read("entities", _entities),
    "like_count": Read("like_count"),
    "repost_count": Read("repost_count"),
    "reply_count": Read("reply_count"),
    "quote_count": Read("quote_count"),
    "created_at": Read("created_at", _datetime),
    "edited_at": Read("edited_at", _optional_datetime),
    "is_deleted": Read("deleted_at", _is_set),
    "reply_to_id": Read("reply_to_id"),
    "quote_of_id": Read("quote_of_id"),
    "viewer_has_liked": Read("v_liked", bool),
    "viewer_has_reposted": Read("v_reposted", bool),
    "viewer_has_bookmarked": Read("v_bookmarked", bool),
}
# The viewer's state of a post was loaded when this column is not NULL.
VIEWER_STATE_LOADED = "v_liked"


_READS = {"account": ACCOUNT_READS, "post": POST_READS}


@cache
def _keys(prefix: str, view: str) -> tuple[tuple[str, str, Any], ...]:
    # (field, column with its prefix, conversion), built once: a page reads ~60 rows' worth.
    return tuple((name, prefix + read.column, read.convert) for name, read in _READS[view].items())


def _read(row: Row, prefix: str, view: str) -> dict[str, Any]:
    return {
        name: row[key] if convert is None else convert(row[key])
        for name, key, convert in _keys(prefix, view)
    }


def account_from_row(row: Row, prefix: str = "a_") -> AccountCard:
    return AccountCard(**_read(row, prefix, "account"))


def post_from_row(row: Row, prefix: str = "") -> PostView:
    values = _read(row, prefix, "post")
    return PostView(
        author=account_from_row(row, prefix + PAGE_OBJECTS["author"]),
        sort_key=row.get("sort_key") or values["id"],
        viewer_state_loaded=row[prefix + VIEWER_STATE_LOADED] is not None,
        **values,
    )


def page_post_from_row(row: Row) -> PostView:
    """A post of a page row with PAGE_COLUMNS: the post with its referred posts attached
    (related_joins leaves them out of a deleted post)."""
    post = post_from_row(row)
    reply_to, quote_of = PAGE_OBJECTS["reply_to"], PAGE_OBJECTS["quote_of"]
    if row[reply_to + "id"] is not None:
        post.reply_to = post_from_row(row, reply_to)
    if row[quote_of + "id"] is not None:
        post.quote_of = post_from_row(row, quote_of)
    post.related_loaded = True
    return post


async def posts_by_ids(
    viewer_id: int | None, ids: list[int], *, tombstones: bool = False
) -> dict[int, PostView]:
    """The posts among `ids` the viewer may see (deleted ones as tombstones if asked), with
    authors; one statement. Nothing is hydrated."""
    if not ids:
        return {}
    visible = AUDIENCE if tombstones else VISIBLE
    rows = await sql.fetch(
        f"SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id "
        f"WHERE p.id IN (:ids) AND {visible}",
        {"ids": sql.ids_param(ids), "viewer": viewer_id},
    )
    return {row["id"]: post_from_row(row) for row in rows}


def shows_referred(post: PostView) -> bool:
    """Whether a post shows the posts it replies to and quotes: not when it is deleted (a
    tombstone keeps nothing of its content). `related_joins` is this rule in SQL."""
    return not post.is_deleted


async def hydrate(viewer_id: int | None, posts: list[PostView]) -> list[PostView]:
    """Attach the replied-to and quoted posts (with the viewer's state, like every post
    loaded here): one statement."""
    wanted = {
        ref
        for post in posts
        for ref in (post.reply_to_id, post.quote_of_id)
        if ref is not None and shows_referred(post)
    }
    related = await posts_by_ids(viewer_id, list(wanted), tombstones=True) if wanted else {}
    for post in posts:
        if shows_referred(post):
            post.reply_to = related.get(post.reply_to_id) if post.reply_to_id else None
            post.quote_of = related.get(post.quote_of_id) if post.quote_of_id else None
        post.related_loaded = True
    return posts


async def viewer_states(viewer_id: int, post_ids: list[int]) -> dict[int, tuple[bool, bool, bool]]:
    """Whether the viewer likes, reposted and bookmarked each post: one statement."""
    rows = await sql.fetch(
        """
        SELECT 'like' AS kind, post_id FROM likes WHERE user_id = :viewer AND post_id IN (:ids)
        UNION ALL
        SELECT 'repost', post_id FROM reposts WHERE user_id = :viewer AND post_id IN (:ids)
        UNION ALL
        SELECT 'bookmark', post_id FROM bookmarks WHERE user_id = :viewer AND post_id IN (:ids)
        """,
        {"viewer": viewer_id, "ids": sql.ids_param(post_ids)},
    )
    found = {(row["kind"], row["post_id"]) for row in rows}
    return {
        post_id: (
            ("like", post_id) in found,
            ("repost", post_id) in found,
            ("bookmark", post_id) in found,
        )
        for post_id in post_ids
    }
