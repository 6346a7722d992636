"""Read-side data for the API: plain slotted dataclasses, loaded in few statements.

A page of posts (with authors, counts, the viewer's state and the replied-to and quoted
posts) is one statement whatever its length: each row carries the post, its author, whether
the viewer likes, reposted or bookmarked it, and the same for the posts it replies to and
quotes when the viewer may see them.

Who may see a post is decided here, in SQL, once (`VISIBLE`), and every read path uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import orjson

from app import sql
from app.models import Role, Visibility
from app.services.relations import blocked, muted
from app.sql import Row


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


def post_columns(
    p: str, u: str, prefix: str, viewer_state: bool = True, viewer: str = ":viewer"
) -> str:
    """Post `p`, its author `u` and (unless not asked) the viewer's state, as columns named
    `<prefix>...`."""
    if not viewer_state:
        state = f"NULL AS {prefix}v_liked, NULL AS {prefix}v_reposted, NULL AS {prefix}v_bookmarked"
        return _post_columns(p, u, prefix) + ",\n" + state
    return (
        _post_columns(p, u, prefix)
        + f""",
EXISTS (SELECT 1 FROM likes vl WHERE vl.user_id = {viewer} AND vl.post_id = {p}.id)
  AS {prefix}v_liked,
EXISTS (SELECT 1 FROM reposts vr WHERE vr.user_id = {viewer} AND vr.post_id = {p}.id)
  AS {prefix}v_reposted,
EXISTS (SELECT 1 FROM bookmarks vk WHERE vk.user_id = {viewer} AND vk.post_id = {p}.id)
  AS {prefix}v_bookmarked
"""
    )


def _post_columns(p: str, u: str, prefix: str) -> str:
    return f"""
{p}.id AS {prefix}id, {p}.text AS {prefix}text, {p}.content_warning AS {prefix}content_warning,
{p}.visibility AS {prefix}visibility, {p}.entities AS {prefix}entities,
{p}.like_count AS {prefix}like_count, {p}.repost_count AS {prefix}repost_count,
{p}.reply_count AS {prefix}reply_count, {p}.quote_count AS {prefix}quote_count,
{p}.created_at AS {prefix}created_at, {p}.edited_at AS {prefix}edited_at,
{p}.deleted_at AS {prefix}deleted_at, {p}.reply_to_id AS {prefix}reply_to_id,
{p}.quote_of_id AS {prefix}quote_of_id,
{user_columns(u, prefix + "a_")}"""


def user_columns(u: str, prefix: str) -> str:
    return f"""
{u}.id AS {prefix}id, {u}.username AS {prefix}username,
{u}.display_name AS {prefix}display_name, {u}.bio AS {prefix}bio,
{u}.is_locked AS {prefix}is_locked, {u}.role AS {prefix}role, {u}.email AS {prefix}email,
{u}.created_at AS {prefix}created_at, {u}.follower_count AS {prefix}follower_count,
{u}.following_count AS {prefix}following_count
"""


def page_columns(viewer: str = ":viewer") -> str:
    """A page row: post `p` (author `u`) with the post it replies to (r_...) and the one it
    quotes (q_...), when the viewer may see them (deleted ones as tombstones), joined by
    `related_joins`: one statement for a whole page. The referred posts' viewer state is
    loaded only if a query asks for it (see `PostView.viewer_state_loaded`): a page rarely
    shows it, and it is 6 lookups a row."""
    return f"""{post_columns("p", "u", "", viewer=viewer)},
{post_columns("rp", "ru", "r_", viewer_state=False)},
{post_columns("qp", "qu", "q_", viewer_state=False)}"""


def related_joins(viewer: str = ":viewer") -> str:
    return f"""
LEFT JOIN posts rp ON rp.id = p.reply_to_id AND {audience("rp", viewer)}
LEFT JOIN users ru ON ru.id = rp.author_id
LEFT JOIN posts qp ON qp.id = p.quote_of_id AND {audience("qp", viewer)}
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
_POST_FIELDS = (
    "id",
    "text",
    "content_warning",
    "visibility",
    "entities",
    "like_count",
    "repost_count",
    "reply_count",
    "quote_count",
    "created_at",
    "edited_at",
    "deleted_at",
    "reply_to_id",
    "quote_of_id",
    "v_liked",
    "v_reposted",
    "v_bookmarked",
)
_ROLES = {role.value: role for role in Role}
_VISIBILITIES = {visibility.value: visibility for visibility in Visibility}


@cache
def _keys(prefix: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    # Column names with their prefix, built once: a page converts ~60 rows' worth of them.
    return tuple(prefix + name for name in fields)


def account_from_row(row: Row, prefix: str = "a_") -> AccountCard:
    (id_, username, display_name, bio, is_locked, role, email, created_at, followers,
     following) = (row[key] for key in _keys(prefix, _ACCOUNT_FIELDS))  # fmt: skip
    return AccountCard(
        id=id_,
        username=username,
        display_name=display_name,
        bio=bio,
        is_locked=bool(is_locked),
        role=_ROLES[role],
        email=email,
        created_at=_datetime(created_at),
        follower_count=followers,
        following_count=following,
    )


def post_from_row(row: Row, prefix: str = "") -> PostView:
    (id_, text, warning, visibility, entities, likes, reposts, replies, quotes, created_at,
     edited_at, deleted_at, reply_to_id, quote_of_id, liked, reposted,
     bookmarked) = (row[key] for key in _keys(prefix, _POST_FIELDS))  # fmt: skip
    deleted = deleted_at is not None
    if isinstance(entities, str):
        entities = orjson.loads(entities)
    return PostView(
        id=id_,
        author=account_from_row(row, prefix + "a_"),
        # A tombstone keeps its place in the thread and nothing of its content.
        text="" if deleted else text,
        content_warning="" if deleted else warning,
        visibility=_VISIBILITIES[visibility],
        entities=[] if deleted else entities,
        like_count=likes,
        repost_count=reposts,
        reply_count=replies,
        quote_count=quotes,
        created_at=_datetime(created_at),
        edited_at=_datetime(edited_at) if edited_at is not None else None,
        is_deleted=deleted,
        reply_to_id=reply_to_id,
        quote_of_id=quote_of_id,
        sort_key=row.get("sort_key") or id_,
        viewer_has_liked=bool(liked),
        viewer_has_reposted=bool(reposted),
        viewer_has_bookmarked=bool(bookmarked),
        viewer_state_loaded=liked is not None,
    )


def page_post_from_row(row: Row) -> PostView:
    """A post of a page row with PAGE_COLUMNS: the post with its referred posts attached."""
    post = post_from_row(row)
    if not post.is_deleted:
        if row["r_id"] is not None:
            post.reply_to = post_from_row(row, "r_")
        if row["q_id"] is not None:
            post.quote_of = post_from_row(row, "q_")
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


async def hydrate(viewer_id: int | None, posts: list[PostView]) -> list[PostView]:
    """Attach the replied-to and quoted posts (with the viewer's state, like every post
    loaded here): one statement."""
    wanted = {
        ref
        for post in posts
        for ref in (post.reply_to_id, post.quote_of_id)
        if ref is not None and not post.is_deleted
    }
    related = await posts_by_ids(viewer_id, list(wanted), tombstones=True) if wanted else {}
    for post in posts:
        if not post.is_deleted:
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
