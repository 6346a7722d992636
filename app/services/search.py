"""Search: accounts by username or display-name prefix, hashtags by prefix. Post search is a
timeline (`timelines.search_posts`)."""

from __future__ import annotations

from dataclasses import dataclass

from app import sql
from app.errors import DomainError, ErrorCode
from app.services.graph import NOT_BLOCKED_USER
from app.services.paging import MAX_PAGE
from app.services.views import USER_COLUMNS, AccountCard, account_from_row
from app.text import SEARCH_QUERY_MAX, check_argument


@dataclass(frozen=True, slots=True)
class HashtagCount:
    tag: str
    public_posts: int


def _prefix_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.casefold() + "%"


def search_text(text: str) -> str:
    """The search text of a `query` argument, stripped; INVALID_INPUT when too long or with
    control characters."""
    return check_argument(text, field="query", label="Search queries", max_length=SEARCH_QUERY_MAX)


def _limit(value: int) -> int:
    """A `limit` argument, 1 to the largest page; INVALID_INPUT otherwise."""
    if not 1 <= value <= MAX_PAGE:
        raise DomainError(ErrorCode.INVALID_INPUT, f"Limits are 1 to {MAX_PAGE}.", "limit")
    return value


class SearchService:
    """Prefix search over accounts and hashtags; each is one statement."""

    async def accounts(self, viewer_id: int | None, text: str, limit: int) -> list[AccountCard]:
        limit = _limit(limit)
        prefix = search_text(text).lstrip("@")
        if not prefix:
            return []
        rows = await sql.fetch(
            f"""
            SELECT {USER_COLUMNS} FROM users u
            WHERE (u.username_key LIKE :pattern ESCAPE '\\'
                   OR u.display_name_key LIKE :pattern ESCAPE '\\')
              AND {NOT_BLOCKED_USER}
            ORDER BY u.follower_count DESC, u.id LIMIT :limit
            """,
            {"pattern": _prefix_pattern(prefix), "viewer": viewer_id, "limit": limit},
        )
        return [account_from_row(row) for row in rows]

    async def hashtags(self, text: str, limit: int) -> list[HashtagCount]:
        limit = _limit(limit)
        prefix = search_text(text).lstrip("#")
        if not prefix:
            return []
        rows = await sql.fetch(
            """
            SELECT t.tag, COUNT(*) AS uses FROM post_tags t JOIN posts p ON p.id = t.post_id
            WHERE t.tag LIKE :pattern ESCAPE '\\' AND p.visibility = 'public'
              AND p.deleted_at IS NULL
            GROUP BY t.tag ORDER BY uses DESC, t.tag LIMIT :limit
            """,
            {"pattern": _prefix_pattern(prefix), "limit": limit},
        )
        return [HashtagCount(row["tag"], int(row["uses"])) for row in rows]
