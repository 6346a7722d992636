"""What one GraphQL request asks for, and the document it runs, prepared once.

The HTTP endpoint (`schema.http`) and both WebSocket protocols turn a request into a
`GraphQLRequest`; `schema.persisted` finds its document (the text sent, an automatic persisted
query's hash, or a registered trusted document) as a `PreparedDocument`: parsed, measured
against the limits and validated once, then shared by every request that sends it; the runner
(`schema.runner`) executes it. A request that cannot run (the document is missing, unknown,
over a limit, invalid; the variables do not coerce) is a `RequestError`: over HTTP it is
answered with no `data` entry and, for `application/graphql-response+json`, a 4xx status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import DocumentNode, GraphQLError


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """The GraphQL-over-HTTP request parameters (or a WebSocket `subscribe` payload's)."""

    query: str | None
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    extensions: dict[str, Any] | None = None
    # "GET" or "POST" over HTTP (a GET may only run queries); None over a WebSocket.
    http_method: str | None = None
    # The GraphQL-over-HTTP persisted-documents parameter (`"sha256:<hex>"`), sent instead of
    # `query`.
    document_id: str | None = None


def names_a_document(query: object, document_id: object, extensions: object) -> bool:
    """Whether request parameters name a document to run (spec "Request Parameters", null
    being the same as absent): a `query` (any string, the empty one too: a document that does
    not parse), a `documentId` (the persisted documents appendix), or an APQ hash
    (`extensions.persistedQuery`). The one rule of HTTP requests and WebSocket payloads."""
    return (
        query is not None
        or document_id is not None
        or (isinstance(extensions, Mapping) and extensions.get("persistedQuery") is not None)
    )


NO_DOCUMENT_MESSAGE = "No GraphQL query found in the request."


@dataclass(slots=True, eq=False)
class PreparedDocument:
    """A document parsed, measured and validated once. `errors` empty: it may run.
    `plans` is the executor's per-document memory (what it planned or compiled for each
    operation in it), filled on first use."""

    query: str
    sha256: str
    document: DocumentNode | None  # None when it did not parse
    errors: list[GraphQLError]
    plans: dict[Any, Any] = field(default_factory=dict)


class RequestError(Exception):
    """A request that cannot run. `errors` are the GraphQL errors to answer with (each with an
    `extensions.code`); `status` is the HTTP status for `application/graphql-response+json`
    (400 unless a more specific one applies); `headers` go on the answer whatever its media
    type (e.g. `Cache-Control` on a persisted query not found, which must not be cached)."""

    def __init__(
        self,
        errors: list[GraphQLError],
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(errors[0].message if errors else "request error")
        self.errors = errors
        self.status = status
        self.headers: Mapping[str, str] = headers or {}


class DocumentSource(Protocol):
    """Where a request's document comes from: its `query` text, a persisted query's hash or a
    trusted document (`schema.persisted.PersistedDocuments`)."""

    async def resolve(self, request: GraphQLRequest) -> PreparedDocument:
        """The request's document, prepared; RequestError when there is none to run."""
        ...
