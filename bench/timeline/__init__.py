"""The home-timeline benchmark: the GraphQL API against a plain Starlette + asyncpg handler
serving the same JSON from the same PostgreSQL data. Run `python -m bench.timeline --help`."""

from __future__ import annotations

PAGE_SIZE = 20

# The document both servers answer (the raw one answers only this).
QUERY = (
    "query Home { homeTimeline(first: 20) { edges { cursor repostedBy { username } "
    "node { id text contentWarning visibility likeCount repostCount replyCount quoteCount "
    "createdAt isDeleted viewerHasLiked viewerHasReposted viewerHasBookmarked "
    "author { id username displayName } "
    "replyTo { id text author { id username displayName } } "
    "quoteOf { id text author { id username displayName } } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
