"""A request's document when it may name one by hash: automatic persisted queries (APQ), the
GraphQL-over-HTTP `documentId`, and trusted documents (only registered operations run).

APQ, as Apollo Client's persisted-query link and urql's persisted exchange speak it: the
request carries `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`. With the
hash alone it runs the document this process stored under it, or is answered
`PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`), on which the client sends the
hash again with the full `query`: checked against the hash, prepared and, if it may run,
stored (a bounded in-process LRU; a process that never saw a hash answers not found, and the
client resends: that is the protocol). Clients recognise the refusals by their message
(urql) or message or code (Apollo), so both are Apollo Server's.

Status codes (the `status` of a RequestError, which applies to
`application/graphql-response+json`; under `application/json` every GraphQL request is
answered 200, as Apollo Server answers these two refusals whatever the media type):
- `PersistedQueryNotFound`: 404. Not 400: Apollo Client before 3.8 (and the links ported from
  it) turns persisted queries off for good on a 400 or 500 reply, and then still retries with
  the full query; on a 404 it reads the error from the body and only retries. Apollo Client
  3.8+ and 4 and urql read the errors of any status. Never cached (`Cache-Control`), since the
  next request fills the store.
- `PersistedQueryNotSupported` (APQ turned off): 400, uncached; the clients stop sending
  hashes, which is what it asks.
- a hash that is not the query's SHA-256, an unsupported version, a malformed extension: 400.
- trusted documents' refusal, `PERSISTED_QUERY_NOT_ALLOWED`: 403, as GraphQL over HTTP asks
  for a request the client may not make (Apollo Router's safelist answers 403 too); no client
  retries on it, so an unregistered document costs one round trip, not two.

Trusted documents (`graphql.trusted_documents`): a request runs only a registered operation,
named by its hash (the APQ extension or `documentId`) or sent in full (its SHA-256 is looked
up); anything else, APQ registration included, is refused and nothing runs. A process reads
the list of registered hashes at most once per `graphql.registered_refresh_seconds` (one
small read, however many unknown hashes clients send, and nothing kept per unknown hash),
prepares a registered document once and keeps it until it is removed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, get_operation_ast

from app.services.operations import (
    SHA256_HEX,
    DocumentCheck,
    OperationService,
    document_hash,
    hash_of_id,
)
from app.settings import GraphQLSettings
from schema.document import Code, DocumentPipeline
from schema.operations import (
    NO_DOCUMENT_MESSAGE,
    GraphQLRequest,
    PreparedDocument,
    RequestError,
    names_a_document,
)
from schema.runner import refused_over_get


class PersistedCode:
    """The `extensions.code` of persisted-operation refusals (Apollo Server's where it has
    one)."""

    NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
    HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
    VERSION_NOT_SUPPORTED = "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"
    NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"
    BAD_REQUEST = Code.BAD_REQUEST


# Apollo Server's, on the refusals that the next request may turn around.
UNCACHED = {"Cache-Control": "private, no-cache, must-revalidate"}


def _refusal(
    message: str, code: str, status: int, headers: Mapping[str, str] | None = None
) -> RequestError:
    return RequestError([GraphQLError(message, extensions={"code": code})], status, headers)


def _bad_request(message: str) -> RequestError:
    return _refusal(message, PersistedCode.BAD_REQUEST, 400)


def not_found() -> RequestError:
    # The message is the protocol: urql matches it, and nothing else.
    return _refusal("PersistedQueryNotFound", PersistedCode.NOT_FOUND, 404, UNCACHED)


def not_supported() -> RequestError:
    return _refusal("PersistedQueryNotSupported", PersistedCode.NOT_SUPPORTED, 400, UNCACHED)


def not_allowed() -> RequestError:
    return _refusal(
        "This server runs only registered operations, and this document is not one of them.",
        PersistedCode.NOT_ALLOWED,
        403,
        UNCACHED,
    )


def hash_mismatch() -> RequestError:
    # Apollo Server's message.
    return _refusal("provided sha does not match query", PersistedCode.HASH_MISMATCH, 400)


def _persisted_query(extensions: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    value = extensions.get("persistedQuery") if extensions else None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad_request("extensions.persistedQuery must be an object.")
    return value


def _persisted_hash(persisted: Mapping[str, Any]) -> str:
    """The hash an APQ extension names. Other keys are the client's (urql adds `miss`)."""
    version = persisted.get("version")
    if isinstance(version, bool) or version != 1:
        raise _refusal(
            "Unsupported persisted query version", PersistedCode.VERSION_NOT_SUPPORTED, 400
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        raise _bad_request(
            "extensions.persistedQuery.sha256Hash must be the SHA-256 of the document in 64 "
            "lower-case hexadecimal digits."
        )
    return sha256


def _document_id_hash(document_id: str) -> str:
    """The hash a `documentId` names (`app.services.operations.hash_of_id`: `sha256:<hex>`,
    or the bare hex as GraphQL Code Generator's client preset and Hive send it)."""
    sha256 = hash_of_id(document_id)
    if sha256 is None:
        raise _bad_request(
            'documentId must be "sha256:" followed by the SHA-256 of the document in 64 '
            "lower-case hexadecimal digits."
        )
    return sha256


def _get_of_a_non_query(prepared: PreparedDocument, request: GraphQLRequest) -> RequestError | None:
    """The refusal of a GET whose chosen operation is not a query (spec "GET": 405), as the
    runner answers it; None when the request is not such a GET (or names no operation of the
    document: the runner answers that)."""
    if request.http_method != "GET" or prepared.document is None:
        return None
    operation = get_operation_ast(prepared.document, request.operation_name)
    return refused_over_get(operation, request) if operation is not None else None


def _retrieve(task: asyncio.Task[frozenset[str]]) -> None:
    """Mark a read's failure as seen: when every request waiting for it has gone, no one
    else would (asyncio would log "Task exception was never retrieved"); the next request
    reads again."""
    if not task.cancelled():
        task.exception()


class RecentDocuments:
    """A bounded store of prepared documents by hash that forgets the least recently used
    first: the APQ store."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, PreparedDocument] = OrderedDict()

    def get(self, sha256: str) -> PreparedDocument | None:
        prepared = self._entries.get(sha256)
        if prepared is not None:
            self._entries.move_to_end(sha256)
        return prepared

    def put(self, prepared: PreparedDocument) -> None:
        self._entries[prepared.sha256] = prepared
        self._entries.move_to_end(prepared.sha256)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RegisteredDocuments:
    """The registered operations as this process knows them: the set of registered hashes,
    read again once it is older than `refresh_seconds` (one read shared by the requests
    waiting for it), and each registered document prepared on first use and kept until a
    read finds it removed."""

    def __init__(
        self,
        operations: OperationService,
        pipeline: DocumentPipeline,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._operations = operations
        self._pipeline = pipeline
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._hashes: frozenset[str] | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[frozenset[str]] | None = None
        self._prepared: dict[str, PreparedDocument] = {}

    async def get(self, sha256: str) -> PreparedDocument | None:
        """The registered document with this hash, prepared; None when there is none."""
        if sha256 not in await self._current():
            return None
        prepared = self._prepared.get(sha256)
        if prepared is None:
            text = await self._operations.document(sha256)
            if text is None or document_hash(text) != sha256:
                return None  # removed since the read (or a row that is not what it says)
            prepared = self._prepared[sha256] = self._pipeline.prepare(text)
        return prepared

    @property
    def held(self) -> int:
        """How many hashes this process holds: the registered ones (each once, prepared or
        not), never an unknown one."""
        return len((self._hashes or frozenset()) | self._prepared.keys())

    async def _current(self) -> frozenset[str]:
        if self._hashes is not None and self._clock() - self._read_at < self._refresh_seconds:
            return self._hashes
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
            self._reading.add_done_callback(_retrieve)
        # Shielded: a request that goes away does not cancel the read the others wait for.
        return await asyncio.shield(self._reading)

    async def _read(self) -> frozenset[str]:
        try:
            started = self._clock()
            hashes = await self._operations.registered_hashes()
            self._hashes, self._read_at = hashes, started
            for removed in self._prepared.keys() - hashes:
                del self._prepared[removed]
            return hashes
        finally:
            self._reading = None


class PersistedDocuments:
    """The `DocumentSource` of every request (HTTP and both WebSocket protocols): the query
    text, an APQ hash or a `documentId`, held to trusted-documents mode when it is on."""

    def __init__(
        self,
        pipeline: DocumentPipeline,
        operations: OperationService,
        settings: GraphQLSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pipeline = pipeline
        self._trusted = settings.trusted_documents
        # In trusted-documents mode hashes name registered operations only: nothing is
        # registered by clients, whatever `persisted_queries` says.
        self._apq = settings.persisted_queries and not settings.trusted_documents
        self.stored = RecentDocuments(settings.cache_size)  # by APQ
        self.registered = RegisteredDocuments(
            operations, pipeline, settings.registered_refresh_seconds, clock
        )

    async def resolve(self, request: GraphQLRequest) -> PreparedDocument:
        # `query` is the text sent, the empty one too (a document that does not parse);
        # None: absent.
        query = request.query
        if not names_a_document(query, request.document_id, request.extensions):
            # HTTP and WebSocket requests naming no document are refused before this.
            raise _bad_request(NO_DOCUMENT_MESSAGE)
        persisted = _persisted_query(request.extensions)
        if request.document_id is not None:
            if query is not None or persisted is not None:
                raise _bad_request(
                    "Send a documentId alone: not with a query or a persistedQuery extension."
                )
            return await self._by_hash(_document_id_hash(request.document_id), request)
        if persisted is not None:
            if not (self._apq or self._trusted):
                raise not_supported()
            return await self._by_hash(_persisted_hash(persisted), request)
        assert query is not None  # it names a document, and neither by hash
        if not self._trusted:
            return self._pipeline.prepare(query)
        # No registered document is larger than the limit: a longer text is refused unhashed.
        if len(query) > self._pipeline.rules.max_bytes:
            raise not_allowed()
        prepared = await self.registered.get(document_hash(query))
        if prepared is None:
            raise not_allowed()
        return prepared

    async def _by_hash(self, sha256: str, request: GraphQLRequest) -> PreparedDocument:
        query = request.query
        if query is not None and document_hash(query) != sha256:
            raise hash_mismatch()
        if self._apq:
            prepared = self.stored.get(sha256)
            if prepared is not None:
                return prepared
        prepared = await self.registered.get(sha256)
        if prepared is not None:
            return prepared
        if self._trusted:
            raise not_allowed()
        if query is None:
            raise not_found()
        prepared = self._pipeline.prepare(query)
        # Only a document that may run is stored; an invalid one is answered (by the runner)
        # and forgotten. So is a request the runner refuses: a mutation sent with GET, which
        # must change nothing (the store included).
        if not prepared.errors:
            refusal = _get_of_a_non_query(prepared, request)
            if refusal is not None:
                raise refusal
            self.stored.put(prepared)
        return prepared


def check_document(pipeline: DocumentPipeline, text: str) -> DocumentCheck:
    """What registering `text` would meet: its operations' names, and every reason it could
    not run (parse, limits, validation), as `message (CODE)`."""
    prepared = pipeline.prepare(text)
    names: tuple[str, ...] = ()
    if prepared.document is not None:
        names = tuple(
            definition.name.value
            for definition in prepared.document.definitions
            if isinstance(definition, OperationDefinitionNode) and definition.name
        )
    problems = tuple(
        f"{error.message} ({(error.extensions or {}).get('code', Code.VALIDATION_FAILED)})"
        for error in prepared.errors
    )
    return DocumentCheck(names, problems)
