"""Timelines, newest first, as index range scans on a cursor; each page is one statement
(with the replied-to and quoted posts joined in, see `views.PAGE_COLUMNS`).

The home timeline reads the fan-out table `home_entries`, merged at read time with the posts
of followed accounts too big to fan out; both halves are the rule of `home`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from app import sql
from app.auth import AccessClaims
from app.models import User
from app.services.accounts import OPEN_SESSION_USER, Viewer, viewer_from_row
from app.services.entities import HASHTAG_MAX
from app.services.home import is_big, merged_posts
from app.services.paging import Page, PageRequest, make_page
from app.services.relations import muted
from app.services.search import search_text
from app.services.views import (
    NOT_MUTED,
    PAGE_COLUMNS,
    POST_COLUMNS,
    RELATED_JOINS,
    VISIBLE,
    PostView,
    account_fields,
    account_from_row,
    hydrate,
    page_fields,
    page_post_from_row,
    post_from_row,
    select_list,
    user_columns,
)
from app.settings import Settings
from app.sql import Row
from app.text import check_argument

REPOSTER_COLUMNS = user_columns("rb", "rb_")


def reposter_not_muted(viewer: str = ":viewer") -> str:
    """A home entry `e` that came in as a repost is left out when the viewer muted the
    reposter (filtered before the LIMIT, so that entries left out never shorten a page)."""
    return f"(e.reposter_id IS NULL OR NOT {muted(viewer, 'e.reposter_id', 'rm')})"


def big_followees(viewer: str = ":viewer") -> str:
    """The accounts the viewer follows that have more than :big followers: their posts are
    not fanned out but merged into the viewer's home timeline at read time (the home rule,
    `home.merged_posts`)."""
    return (
        "SELECT f.followee_id FROM follows f "
        f"WHERE f.follower_id = {viewer} AND {is_big('f.followee_id', 'hbf')}"
    )


_REPOSTER_NOT_MUTED = reposter_not_muted()
# Posts of followed accounts too big to fan out, merged into the home timeline as it is read.
_MERGED = merged_posts(":viewer")

ANCESTORS_MAX = 40  # posts of a thread above one post that `ancestors` returns (as Mastodon)


async def _posts_page(
    viewer_id: int | None,
    request: PageRequest,
    *,
    source: str,
    where: str,
    sort_column: str,
    params: dict[str, Any],
    ascending: bool = False,
    mute_filter: bool = True,
) -> Page[PostView]:
    condition, order = request.keyset(sort_column, ascending)
    muted = f"AND {NOT_MUTED}" if mute_filter and viewer_id is not None else ""
    rows = await sql.fetch(
        f"""
        SELECT {PAGE_COLUMNS}, {sort_column} AS sort_key
        FROM {source} JOIN users u ON u.id = p.author_id {RELATED_JOINS}
        WHERE {where} AND {condition} AND {VISIBLE} {muted}
        ORDER BY {order} LIMIT :limit
        """,
        {**params, **request.params(), "viewer": viewer_id},
    )
    posts = [page_post_from_row(row) for row in rows]
    return make_page(request, posts, [p.sort_key for p in posts])


# Where a home row carries the account whose repost brought the post (REPOSTER_COLUMNS; its
# `id` column is NULL when none did).
REPOSTER = "rb_"


def home_post_from_row(row: Row) -> PostView:
    """A home timeline row (HOME_FIELDS): a page row with its sort key and the reposter's
    REPOSTER_COLUMNS."""
    post = page_post_from_row(row)
    if row[REPOSTER + "id"] is not None:
        post.reposted_by = account_from_row(row, REPOSTER)
    return post


# A home row's columns: a page row's, its sort key, the reposter's id and REPOSTER_COLUMNS.
HOME_FIELDS = [
    *page_fields(),
    ("sort_key", "h.sort_key"),
    ("reposter_id", "h.reposter_id"),
    *account_fields("rb", REPOSTER),
]
# The columns a home row always has, whatever else a caller wants (`home_rows_of_session`).
HOME_KEYS = frozenset({"id", "sort_key"})


def hashtag_key(tag: str) -> str:
    """A tag as given (with or without #) in the spelling posts store; INVALID_INPUT when
    it cannot be one."""
    checked = check_argument(
        tag.strip().lstrip("#"), field="tag", label="Hashtags", max_length=HASHTAG_MAX
    )
    return checked.lower()


def _fts5_query(text: str) -> str:
    """Words as quoted FTS5 strings, so user input is never FTS5 syntax."""
    words = re.findall(r"\w+", text)
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def _shape(request: PageRequest) -> tuple[bool, bool, bool]:
    """What a page's statement text depends on: a cursor after, one before, going backward."""
    return request.after is not None, request.before is not None, request.backward


def _of_shape(shape: tuple[bool, bool, bool]) -> PageRequest:
    """A request of that shape (its values are parameters, not in the text)."""
    after, before, backward = shape
    return PageRequest("home", 1, 0 if after else None, 0 if before else None, backward)


@lru_cache(maxsize=64)
def _home_statement(shape: tuple[bool, bool, bool], wanted: frozenset[str] | None = None) -> str:
    """The home timeline page (parameters :viewer, :big and the page's) for requests of this
    `_shape`: entries fanned out to the viewer, merged with the posts of followed accounts too
    big to fan out; HOME_FIELDS, or those of them in `wanted`. Built once per shape."""
    request = _of_shape(shape)
    entries_condition, entries_order = request.keyset("e.entry_id")
    big_condition, big_order = request.keyset("p.id")
    outer_condition, outer_order = request.keyset("h.sort_key")
    return f"""
        SELECT {select_list(HOME_FIELDS, wanted)}
        FROM (
          SELECT * FROM (
            SELECT e.entry_id AS sort_key, e.post_id, e.reposter_id
            FROM home_entries e JOIN posts p ON p.id = e.post_id
            WHERE e.owner_id = :viewer AND {entries_condition} AND {VISIBLE} AND {NOT_MUTED}
              AND {_REPOSTER_NOT_MUTED}
            ORDER BY {entries_order} LIMIT :limit
          ) fanned_out
          UNION
          SELECT * FROM (
            SELECT p.id AS sort_key, p.id AS post_id, CAST(NULL AS BIGINT) AS reposter_id
            FROM posts p
            WHERE {_MERGED} AND {big_condition} AND {VISIBLE} AND {NOT_MUTED}
            ORDER BY {big_order} LIMIT :limit
          ) merged
        ) h
        JOIN posts p ON p.id = h.post_id
        JOIN users u ON u.id = p.author_id
        LEFT JOIN users rb ON rb.id = h.reposter_id
        {RELATED_JOINS}
        WHERE {outer_condition}
        ORDER BY {outer_order} LIMIT :limit
        """


@lru_cache(maxsize=64)
def _home_of_session_statement(
    shape: tuple[bool, bool, bool], wanted: frozenset[str] | None, viewer_columns: str
) -> str:
    """TimelineService._home_of_session's statement for pages of this `_shape`, built once."""
    return f"""
        WITH me AS (SELECT u.* FROM {OPEN_SESSION_USER})
        SELECT {viewer_columns}, pg.*
        FROM me LEFT JOIN ({_home_statement(shape, wanted)}) pg ON TRUE
        ORDER BY {_of_shape(shape).keyset("pg.sort_key")[1]}
        """


# The viewer's users row beside the page (`me_<column>`), for home_of_session.
_USER_FIELDS = tuple(sorted(User._meta.db_fields))
_VIEWER_COLUMNS = ", ".join(f"me.{name} AS me_{name}" for name in _USER_FIELDS)


class TimelineService:
    """The timelines a viewer reads. It holds the home rule's threshold (the setting
    `timelines.fanout_max_followers`: above it an account's posts are merged into its
    followers' home timelines as they are read), so that no caller passes it in."""

    def __init__(self, settings: Settings) -> None:
        self._big_account = settings.timelines.fanout_max_followers

    async def home(self, viewer_id: int, request: PageRequest) -> Page[PostView]:
        """The viewer's home timeline: entries fanned out to it, merged with the posts of
        followed accounts too big to fan out (the rule of `home`)."""
        rows = await sql.fetch(
            _home_statement(_shape(request)),
            {**request.params(), "viewer": viewer_id, "big": self._big_account},
        )
        posts = [home_post_from_row(row) for row in rows]
        return make_page(request, posts, [p.sort_key for p in posts])

    async def home_of_session(
        self, claims: AccessClaims, request: PageRequest
    ) -> tuple[Viewer, Page[PostView]] | None:
        """`home` for the user of verified token claims, checking in the same statement that
        their session is open (accounts.OPEN_SESSION_USER): the viewer and the page, or None
        when the session is not open. One statement where a checked viewer and a page are two.
        """
        rows = await self._home_of_session(claims, request, None, _VIEWER_COLUMNS)
        if not rows:
            return None
        first = rows[0]
        viewer = viewer_from_row({name: first["me_" + name] for name in _USER_FIELDS}, claims)
        # An empty page is one row of the viewer with no post.
        posts = [home_post_from_row(row) for row in rows if row["id"] is not None]
        return viewer, make_page(request, posts, [p.sort_key for p in posts])

    async def home_rows_of_session(
        self, claims: AccessClaims, request: PageRequest, wanted: frozenset[str]
    ) -> Page[Row] | None:
        """`home_of_session`'s page as rows with only the HOME_FIELDS named in `wanted` (and
        HOME_KEYS), for a caller that builds its answer straight from them; None when the
        session is not open."""
        rows = await self._home_of_session(claims, request, wanted | HOME_KEYS, "me.id AS me_id")
        if not rows:
            return None
        entries = [row for row in rows if row["id"] is not None]
        return make_page(request, entries, [row["sort_key"] for row in entries])

    async def _home_of_session(
        self,
        claims: AccessClaims,
        request: PageRequest,
        wanted: frozenset[str] | None,
        viewer_columns: str,
    ) -> list[Row]:
        """The home page's rows beside the viewer's `viewer_columns` (of `me`, their users
        row): none when the session is not open, one with no post for an empty page."""
        statement = _home_of_session_statement(_shape(request), wanted, viewer_columns)
        return await sql.fetch(
            statement,
            {
                **request.params(),
                "viewer": claims.user_id,
                "user": claims.user_id,
                "session": claims.session_id,
                "big": self._big_account,
            },
        )

    async def public(self, viewer_id: int | None, request: PageRequest) -> Page[PostView]:
        return await _posts_page(
            viewer_id,
            request,
            source="posts p",
            where="p.visibility = 'public'",
            sort_column="p.id",
            params={},
        )

    async def user_posts(
        self, viewer_id: int | None, author_id: int, request: PageRequest, *, with_replies: bool
    ) -> Page[PostView]:
        where = "p.author_id = :author" + ("" if with_replies else " AND p.reply_to_id IS NULL")
        return await _posts_page(
            viewer_id,
            request,
            source="posts p",
            where=where,
            sort_column="p.id",
            params={"author": author_id},
            mute_filter=False,  # looking at one account's page is asking to see it
        )

    async def hashtag(
        self, viewer_id: int | None, tag: str, request: PageRequest
    ) -> Page[PostView]:
        return await _posts_page(
            viewer_id,
            request,
            source="post_tags t JOIN posts p ON p.id = t.post_id",
            where="t.tag = :tag",
            sort_column="t.post_id",
            params={"tag": hashtag_key(tag)},
        )

    async def bookmarks(self, viewer_id: int, request: PageRequest) -> Page[PostView]:
        return await _posts_page(
            viewer_id,
            request,
            source="bookmarks b JOIN posts p ON p.id = b.post_id",
            where="b.user_id = :viewer",
            sort_column="b.id",
            params={},
            mute_filter=False,
        )

    async def likes(self, viewer_id: int, request: PageRequest) -> Page[PostView]:
        return await _posts_page(
            viewer_id,
            request,
            source="likes l JOIN posts p ON p.id = l.post_id",
            where="l.user_id = :viewer",
            sort_column="l.id",
            params={},
            mute_filter=False,
        )

    async def replies(
        self, viewer_id: int | None, post_id: int, request: PageRequest
    ) -> Page[PostView]:
        """Replies to a post, oldest first, as a conversation reads."""
        return await _posts_page(
            viewer_id,
            request,
            source="posts p",
            where="p.reply_to_id = :post",
            sort_column="p.id",
            params={"post": post_id},
            ascending=True,
            mute_filter=False,
        )

    async def search_posts(
        self, viewer_id: int | None, text: str, request: PageRequest
    ) -> Page[PostView]:
        text = search_text(text)
        if sql.dialect() == "postgres":
            where = "to_tsvector('simple', p.text) @@ plainto_tsquery('simple', :q)"
            query = text
        else:
            where = "p.id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH :q)"
            query = _fts5_query(text)
        if not query.strip():
            return make_page(request, [], [])
        return await _posts_page(
            viewer_id,
            request,
            source="posts p",
            where=where,
            sort_column="p.id",
            params={"q": query},
        )

    async def ancestors(
        self, viewer_id: int | None, post_id: int, max_depth: int = ANCESTORS_MAX
    ) -> list[PostView]:
        """The posts a post replies to, root first; deleted ones as tombstones, invisible ones
        left out."""
        from app.services.views import AUDIENCE

        rows = await sql.fetch(
            f"""
            WITH RECURSIVE chain(id, depth) AS (
              SELECT reply_to_id, 1 FROM posts WHERE id = :post AND reply_to_id IS NOT NULL
              UNION ALL
              SELECT p.reply_to_id, c.depth + 1 FROM posts p JOIN chain c ON p.id = c.id
              WHERE p.reply_to_id IS NOT NULL AND c.depth < :max_depth
            )
            SELECT {POST_COLUMNS} FROM chain c
            JOIN posts p ON p.id = c.id JOIN users u ON u.id = p.author_id
            WHERE {AUDIENCE}
            ORDER BY c.depth DESC
            """,
            {"post": post_id, "viewer": viewer_id, "max_depth": max_depth},
        )
        return await hydrate(viewer_id, [post_from_row(row) for row in rows])
