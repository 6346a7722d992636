"""The baseline: the same home-timeline page as the GraphQL API, from a plain Starlette
endpoint with an asyncpg pool, one SQL statement per page and orjson.

It serves exactly one document (`bench.timeline.QUERY`) at POST /graphql, so wrk can drive it
and the GraphQL API with the same request. It checks the bearer token as the app does (the
signed access token with `app.auth.read_access_token`, then the session row: live, and of
that user) and applies the visibility rules of `app.services.views` through its own SQL
fragments: the viewer sees a post when it is public, their own, followers-only from an
account they follow, for subscribers while they have premium access, or direct and
mentioning them; never across a block; not from muted accounts (nor brought by a muted
reposter) in the timeline; deleted posts are left out of the page, and referred posts show
as tombstones. Accounts above `fanout_max_followers` are merged in at read time, as there.

Run: HOLDFAST_DATABASE_URL=postgres://... HOLDFAST_SECRET_KEY=... \
     python -m bench.timeline.raw --port 8001
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app import sql
from app.auth import read_access_token
from app.services.views import audience, not_muted, visible
from app.settings import load_settings
from bench.timeline import PAGE_SIZE, QUERY

# One row per entry; with a live session and an empty timeline, one row of NULLs; with no
# live session, no row. Who may see what is `app.services.views`' SQL itself (the audience,
# visible and mute fragments, premium access for SUBSCRIBERS posts included), so the two
# servers answer by one rule; the statement is compiled once, below, to positional
# parameters. :session and :viewer come from the verified token, :big is the fan-out
# threshold, :limit the page size + 1, :now the request's time (as app/sql.py binds it).
PAGE_TEMPLATE = f"""
WITH viewer AS (
  SELECT s.user_id AS id FROM sessions s
  WHERE s.id = :session AND s.user_id = :viewer AND s.revoked_at IS NULL
),
entries AS (
  SELECT h.sort_key, h.post_id, h.reposter_id FROM (
    SELECT * FROM (
      SELECT e.entry_id AS sort_key, e.post_id, e.reposter_id
      FROM home_entries e JOIN posts p ON p.id = e.post_id
      WHERE e.owner_id = (SELECT id FROM viewer)
        AND {visible("p")} AND {not_muted("p")}
      ORDER BY e.entry_id DESC LIMIT :limit
    ) fanned_out
    UNION
    SELECT * FROM (
      SELECT p.id AS sort_key, p.id AS post_id, CAST(NULL AS BIGINT) AS reposter_id
      FROM posts p
      WHERE p.author_id IN (
          SELECT f.followee_id FROM follows f JOIN users big ON big.id = f.followee_id
          WHERE f.follower_id = (SELECT id FROM viewer) AND big.follower_count > :big)
        AND (p.reply_to_id IS NULL OR EXISTS (
          SELECT 1 FROM posts hp WHERE hp.id = p.reply_to_id AND (
            hp.author_id = p.author_id OR hp.author_id = :viewer OR EXISTS (
              SELECT 1 FROM follows hfp
              WHERE hfp.follower_id = :viewer AND hfp.followee_id = hp.author_id))))
        AND {visible("p")} AND {not_muted("p")}
      ORDER BY p.id DESC LIMIT :limit
    ) merged
  ) h
  WHERE h.reposter_id IS NULL OR NOT EXISTS (
    SELECT 1 FROM mutes rm WHERE rm.muter_id = :viewer AND rm.muted_id = h.reposter_id)
  ORDER BY h.sort_key DESC LIMIT :limit
)
SELECT x.* FROM viewer LEFT JOIN LATERAL (
  SELECT en.sort_key, p.id, p.text, p.content_warning, p.visibility, p.like_count,
         p.repost_count, p.reply_count, p.quote_count, p.created_at,
         u.id AS a_id, u.username AS a_username, u.display_name AS a_display_name,
         r.username AS r_username,
         EXISTS (SELECT 1 FROM likes l WHERE l.user_id = :viewer AND l.post_id = p.id) AS liked,
         EXISTS (SELECT 1 FROM reposts rp WHERE rp.user_id = :viewer AND rp.post_id = p.id)
           AS reposted,
         EXISTS (SELECT 1 FROM bookmarks b WHERE b.user_id = :viewer AND b.post_id = p.id)
           AS bookmarked,
         rt.id AS rt_id, rt.text AS rt_text, rt.author_id AS rt_a_id,
         rt.username AS rt_a_username, rt.display_name AS rt_a_display_name,
         qt.id AS qt_id, qt.text AS qt_text, qt.author_id AS qt_a_id,
         qt.username AS qt_a_username, qt.display_name AS qt_a_display_name
  FROM entries en
  JOIN posts p ON p.id = en.post_id
  JOIN users u ON u.id = p.author_id
  LEFT JOIN users r ON r.id = en.reposter_id
  LEFT JOIN LATERAL (
    SELECT rp.id, CASE WHEN rp.deleted_at IS NULL THEN rp.text ELSE '' END AS text,
           rp.author_id, ru.username, ru.display_name
    FROM posts rp JOIN users ru ON ru.id = rp.author_id
    WHERE rp.id = p.reply_to_id AND {audience("rp")}
  ) rt ON TRUE
  LEFT JOIN LATERAL (
    SELECT qp.id, CASE WHEN qp.deleted_at IS NULL THEN qp.text ELSE '' END AS text,
           qp.author_id, qu.username, qu.display_name
    FROM posts qp JOIN users qu ON qu.id = qp.author_id
    WHERE qp.id = p.quote_of_id AND {audience("qp")}
  ) qt ON TRUE
) x ON TRUE
ORDER BY x.sort_key DESC
"""
_PARAMETERS = ("session", "viewer", "big", "limit", "now")
# Compiled with each parameter's name as its value: the values come back in positional order.
PAGE_SQL, _ORDER = sql.prepare_for(True, PAGE_TEMPLATE, {name: name for name in _PARAMETERS})


def page_values(session_id: int, user_id: int, big_account: int) -> list[Any]:
    """The page statement's positional values for this request."""
    given = {
        "session": session_id,
        "viewer": user_id,
        "big": big_account,
        "limit": PAGE_SIZE + 1,
        "now": datetime.now(UTC),
    }
    return [given[name] for name in _ORDER]


_NOT_SIGNED_IN = orjson.dumps(
    {
        "data": None,
        "errors": [
            {
                "message": "Sign in first.",
                "locations": [{"line": 3, "column": 3}],
                "path": ["homeTimeline"],
            }
        ],
    }
)


def _global_id(type_name: str, node_id: int) -> str:
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


def _cursor(key: int) -> str:
    # app.services.paging.encode_cursor("home", key)
    return base64.urlsafe_b64encode(f"home:{key}".encode()).decode().rstrip("=")


def _author(author_id: int, username: str, display_name: str) -> dict[str, Any]:
    return {"id": _global_id("User", author_id), "username": username, "displayName": display_name}


def page_json(rows: list[asyncpg.Record]) -> bytes:
    """The response for the page rows (PAGE_SIZE + 1 of them at most)."""
    entries = [row for row in rows if row["id"] is not None]
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    edges = []
    for row in entries:
        reply = None
        if row["rt_id"] is not None:
            reply = {
                "id": _global_id("Post", row["rt_id"]),
                "text": row["rt_text"],
                "author": _author(row["rt_a_id"], row["rt_a_username"], row["rt_a_display_name"]),
            }
        quote = None
        if row["qt_id"] is not None:
            quote = {
                "id": _global_id("Post", row["qt_id"]),
                "text": row["qt_text"],
                "author": _author(row["qt_a_id"], row["qt_a_username"], row["qt_a_display_name"]),
            }
        reposter = row["r_username"]
        edges.append(
            {
                "cursor": _cursor(row["sort_key"]),
                "repostedBy": {"username": reposter} if reposter is not None else None,
                "node": {
                    "id": _global_id("Post", row["id"]),
                    "text": row["text"],
                    "contentWarning": row["content_warning"],
                    "visibility": row["visibility"].upper(),
                    "likeCount": row["like_count"],
                    "repostCount": row["repost_count"],
                    "replyCount": row["reply_count"],
                    "quoteCount": row["quote_count"],
                    "createdAt": row["created_at"],  # orjson writes isoformat()
                    "isDeleted": False,  # deleted posts are not on the page
                    "viewerHasLiked": row["liked"],
                    "viewerHasReposted": row["reposted"],
                    "viewerHasBookmarked": row["bookmarked"],
                    "author": _author(row["a_id"], row["a_username"], row["a_display_name"]),
                    "replyTo": reply,
                    "quoteOf": quote,
                },
            }
        )
    page_info = {
        "hasNextPage": more,
        "endCursor": _cursor(entries[-1]["sort_key"]) if entries else None,
    }
    return orjson.dumps({"data": {"homeTimeline": {"edges": edges, "pageInfo": page_info}}})


def create_app(
    database_url: str,
    signing_key: str,
    big_account: int,
    plan_cache_mode: str = "force_generic_plan",
) -> Starlette:
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Like Tortoise's pool: up to 5 connections, asyncpg's statement cache; plus one
        # generic plan for the page statement instead of planning it on every call (PostgreSQL
        # plans this statement in ~2 ms and runs it in ~0.6: see PERFORMANCE.md), and no JIT:
        # the generic plan's cost estimate passes jit_above_cost, and compiling it takes
        # ~75 ms on every call.
        state["pool"] = await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=5,
            server_settings={"plan_cache_mode": plan_cache_mode, "jit": "off"},
        )
        try:
            yield
        finally:
            await state["pool"].close()

    async def home(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if body.get("query") != QUERY or body.get("variables"):
            return Response(
                b'{"errors":[{"message":"unknown document"}]}',
                status_code=400,
                media_type="application/json",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = (
            read_access_token(signing_key, token.strip()) if scheme.lower() == "bearer" else None
        )
        rows: list[asyncpg.Record] = []
        if claims is not None:
            rows = await state["pool"].fetch(
                PAGE_SQL, *page_values(claims.session_id, claims.user_id, big_account)
            )
        if not rows:  # no token, a bad one, or no live session
            return Response(_NOT_SIGNED_IN, media_type="application/json")
        return Response(page_json(rows), media_type="application/json")

    return Starlette(routes=[Route("/graphql", home, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--plan-cache-mode",
        default="force_generic_plan",
        choices=["auto", "force_generic_plan", "force_custom_plan"],
        help="PostgreSQL plan_cache_mode for the pool",
    )
    args = parser.parse_args()
    settings = load_settings()
    if not settings.effective_database_url.startswith("postgres"):
        parser.error("HOLDFAST_DATABASE_URL must be a PostgreSQL URL")
    app = create_app(
        settings.effective_database_url,
        settings.signing_key(),
        settings.timelines.fanout_max_followers,
        args.plan_cache_mode,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
