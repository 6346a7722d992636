"""Persisted operations (schema/persisted.py) where a request's document is found: automatic
persisted queries as Apollo's and urql's links speak them, the GraphQL-over-HTTP
`documentId`, trusted documents; the registered operations' table and service; both
WebSocket protocols held to the same rules.

No Python client library speaks APQ (gql 4.4 sends the full query, always): the requests
here are what Apollo Client's and urql's links send. The same round trips over HTTP are in
tests/integration/test_persisted_http.py.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app import live
from app.errors import DomainError
from app.main import create_app
from app.services import operations as operations_module
from app.services.operations import NewOperation, OperationService, document_hash
from schema.document import DocumentPipeline
from schema.operations import GraphQLRequest, PreparedDocument, RequestError
from schema.persisted import PersistedDocuments
from tests.conftest import make_settings
from tests.live import (
    LEGACY_WS,
    TRANSPORT_WS,
    LiveClient,
    eventually,
    live_client,
    served_in_loop,
)
from tests.social import CREATE_POST, post
from tests.support import SIGN_UP, GraphQLClient

VIEWER = "query Viewer { viewer { id } }"
TIMELINE = "query Timeline { publicTimeline(first: 2) { edges { node { id } } } }"
INVALID = "query Invalid { viewer { nope } }"
PUBLIC = "subscription Public { publicTimeline { node { id } } }"
UNCACHED = {"Cache-Control": "private, no-cache, must-revalidate"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingOperations(OperationService):
    """The real service, counting reads of the registered hashes."""

    def __init__(self) -> None:
        self.reads = 0

    async def registered_hashes(self) -> frozenset[str]:
        self.reads += 1
        return await super().registered_hashes()


Documents = Callable[..., PersistedDocuments]


@pytest.fixture
def pipeline(app: Starlette) -> DocumentPipeline:
    pipeline: DocumentPipeline = app.state.graphql.schema.pipeline
    return pipeline


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def operations() -> CountingOperations:
    return CountingOperations()


@pytest.fixture
def documents(
    app: Starlette, pipeline: DocumentPipeline, operations: CountingOperations, clock: Clock
) -> Documents:
    """PersistedDocuments on the test database with graphql settings overridden."""

    def make(**graphql: Any) -> PersistedDocuments:
        settings = app.state.settings.graphql.model_copy(update=graphql)
        return PersistedDocuments(pipeline, operations, settings, clock)

    return make


def apq(sha256: str, query: str | None = None, **persisted: Any) -> GraphQLRequest:
    """A request as Apollo's and urql's links send it: the hash, and the query on a retry."""
    extension = {"version": 1, "sha256Hash": sha256, **persisted}
    return GraphQLRequest(query=query, extensions={"persistedQuery": extension})


async def refused(documents: PersistedDocuments, request: GraphQLRequest) -> RequestError:
    with pytest.raises(RequestError) as caught:
        await documents.resolve(request)
    return caught.value


def answer(error: RequestError) -> tuple[list[tuple[str, str]], int, dict[str, str]]:
    """The refusal as a client sees it: (message, code) of each error, status, headers."""
    errors = [(e.message, (e.extensions or {})["code"]) for e in error.errors]
    return errors, error.status, dict(error.headers)


async def register(*texts: str) -> None:
    await OperationService().register([NewOperation(t, ()) for t in texts])


def runs(prepared: PreparedDocument, text: str) -> bool:
    return prepared.query == text and prepared.document is not None and not prepared.errors


# --- automatic persisted queries -----------------------------------------------------------


async def test_a_hash_not_seen_is_not_found_until_the_client_sends_its_query(
    documents: Documents,
) -> None:
    apqs = documents()
    sha256 = document_hash(VIEWER)

    missed = await refused(apqs, apq(sha256))
    registered = await apqs.resolve(apq(sha256, VIEWER))
    found = await apqs.resolve(apq(sha256))

    # Apollo Server's message and code (urql matches the message, Apollo either); 404 for
    # application/graphql-response+json (a 400 would turn an old Apollo Client's persisted
    # queries off), never cached.
    assert answer(missed) == (
        [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")],
        404,
        UNCACHED,
    )
    assert runs(registered, VIEWER)
    assert found is registered  # prepared once


async def test_urqls_retry_marked_as_a_miss_registers_too(documents: Documents) -> None:
    apqs = documents()
    sha256 = document_hash(TIMELINE)

    registered = await apqs.resolve(apq(sha256, TIMELINE, miss=True))

    assert runs(registered, TIMELINE)
    assert await apqs.resolve(apq(sha256)) is registered


async def test_a_hash_that_is_not_the_querys_is_refused_and_stores_nothing(
    documents: Documents,
) -> None:
    apqs = documents()
    wrong = document_hash(TIMELINE)

    mismatch = await refused(apqs, apq(wrong, VIEWER))
    later = await refused(apqs, apq(wrong))

    assert answer(mismatch) == (
        [("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")],
        400,
        {},
    )
    assert answer(later)[0] == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
    assert len(apqs.stored) == 0


@pytest.mark.parametrize(
    ("extension", "code"),
    [
        (
            {"version": 2, "sha256Hash": document_hash(VIEWER)},
            "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
        ),
        (
            {"version": "1", "sha256Hash": document_hash(VIEWER)},
            "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
        ),
        (
            {"version": True, "sha256Hash": document_hash(VIEWER)},
            "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
        ),
        ({"sha256Hash": document_hash(VIEWER)}, "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"),
        ({"version": 1}, "BAD_REQUEST"),
        ({"version": 1, "sha256Hash": document_hash(VIEWER).upper()}, "BAD_REQUEST"),
        ({"version": 1, "sha256Hash": "abc"}, "BAD_REQUEST"),
        ("yes", "BAD_REQUEST"),
    ],
)
async def test_unsupported_versions_and_malformed_extensions_are_refused(
    documents: Documents, extension: object, code: str
) -> None:
    apqs = documents()
    request = GraphQLRequest(query=VIEWER, extensions={"persistedQuery": extension})

    refusal = await refused(apqs, request)

    assert answer(refusal)[0][0][1] == code
    assert refusal.status == 400
    assert len(apqs.stored) == 0


async def test_with_apq_off_a_hash_is_not_supported_and_the_full_query_runs(
    documents: Documents,
) -> None:
    apqs = documents(persisted_queries=False)
    sha256 = document_hash(VIEWER)

    with_hash = await refused(apqs, apq(sha256))
    with_hash_and_query = await refused(apqs, apq(sha256, VIEWER))
    plain = await apqs.resolve(GraphQLRequest(query=VIEWER))

    # Apollo's link turns persisted queries off on it and resends the full query.
    expected = ([("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")], 400, UNCACHED)
    assert answer(with_hash) == expected
    assert answer(with_hash_and_query) == expected
    assert runs(plain, VIEWER)


async def test_an_invalid_document_is_answered_but_never_stored(documents: Documents) -> None:
    apqs = documents()
    sha256 = document_hash(INVALID)

    sent = await apqs.resolve(apq(sha256, INVALID))
    again = await refused(apqs, apq(sha256))

    assert [e.extensions["code"] for e in sent.errors if e.extensions] == [
        "GRAPHQL_VALIDATION_FAILED"
    ]
    assert answer(again)[0] == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]


async def test_the_apq_store_keeps_the_most_recently_used(documents: Documents) -> None:
    apqs = documents(cache_size=2)
    texts = [f"query Q{n} {{ viewer {{ id }} }}" for n in range(3)]
    for text in texts[:2]:
        await apqs.resolve(apq(document_hash(text), text))
    await apqs.resolve(apq(document_hash(texts[0])))  # Q0 used again: Q1 is now the oldest

    await apqs.resolve(apq(document_hash(texts[2]), texts[2]))

    assert len(apqs.stored) == 2
    assert runs(await apqs.resolve(apq(document_hash(texts[0]))), texts[0])
    assert runs(await apqs.resolve(apq(document_hash(texts[2]))), texts[2])
    assert answer(await refused(apqs, apq(document_hash(texts[1]))))[1] == 404


async def test_a_document_id_names_a_stored_or_registered_document(
    documents: Documents,
) -> None:
    apqs = documents()
    await register(TIMELINE)
    await apqs.resolve(apq(document_hash(VIEWER), VIEWER))

    stored = await apqs.resolve(GraphQLRequest(None, document_id=f"sha256:{document_hash(VIEWER)}"))
    registered = await apqs.resolve(GraphQLRequest(None, document_id=document_hash(TIMELINE)))
    unknown = await refused(apqs, GraphQLRequest(None, document_id=f"sha256:{'0' * 64}"))
    with_query = await refused(
        apqs, GraphQLRequest(VIEWER, document_id=f"sha256:{document_hash(VIEWER)}")
    )
    md5 = await refused(
        apqs, GraphQLRequest(None, document_id="md5:0cc175b9c0f1b6a831c399e269772661")
    )

    assert runs(stored, VIEWER)
    assert runs(registered, TIMELINE)
    assert answer(unknown) == (
        [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")],
        404,
        UNCACHED,
    )
    assert answer(with_query)[0][0][1] == "BAD_REQUEST"
    assert answer(md5)[0][0][1] == "BAD_REQUEST"


async def test_a_request_without_a_document_is_refused(documents: Documents) -> None:
    refusal = await refused(documents(), GraphQLRequest(query=None))

    assert answer(refusal) == (
        [("No GraphQL query found in the request.", "BAD_REQUEST")],
        400,
        {},
    )


# --- trusted documents ---------------------------------------------------------------------


async def test_trusted_documents_run_registered_operations_only(documents: Documents) -> None:
    await register(VIEWER)
    trusted = documents(trusted_documents=True)
    sha256 = document_hash(VIEWER)

    by_hash = await trusted.resolve(apq(sha256))
    by_id = await trusted.resolve(GraphQLRequest(None, document_id=f"sha256:{sha256}"))
    by_text = await trusted.resolve(GraphQLRequest(VIEWER))
    by_hash_and_text = await trusted.resolve(apq(sha256, VIEWER))
    refusals = [
        await refused(trusted, request)
        for request in (
            GraphQLRequest(TIMELINE),
            apq(document_hash(TIMELINE)),
            # APQ registration: refused, and nothing is stored.
            apq(document_hash(TIMELINE), TIMELINE),
            GraphQLRequest(None, document_id=f"sha256:{document_hash(TIMELINE)}"),
            # Longer than any registered document may be: refused before it is hashed.
            GraphQLRequest("{ viewer { id } }" + " " * 40_000),
        )
    ]

    assert runs(by_hash, VIEWER)
    assert by_id is by_hash
    assert by_text is by_hash
    assert by_hash_and_text is by_hash
    # No client retries on it (a PersistedQueryNotFound would make it resend the query, to be
    # refused again); 403: the client may not make this request.
    for refusal in refusals:
        assert answer(refusal) == (
            [
                (
                    "This server runs only registered operations, and this document is not "
                    "one of them.",
                    "PERSISTED_QUERY_NOT_ALLOWED",
                )
            ],
            403,
            UNCACHED,
        )
    assert len(trusted.stored) == 0


async def test_trusted_documents_answer_hashes_whatever_apq_says(documents: Documents) -> None:
    await register(VIEWER)
    trusted = documents(trusted_documents=True, persisted_queries=False)

    assert runs(await trusted.resolve(apq(document_hash(VIEWER))), VIEWER)
    assert answer(await refused(trusted, apq(document_hash(TIMELINE))))[1] == 403


async def test_a_mismatched_hash_is_refused_as_such_in_trusted_mode(documents: Documents) -> None:
    await register(VIEWER)
    trusted = documents(trusted_documents=True)

    refusal = await refused(trusted, apq(document_hash(VIEWER), TIMELINE))

    assert answer(refusal)[0] == [
        ("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
    ]


async def test_registrations_and_removals_take_effect_within_the_refresh_interval(
    documents: Documents, operations: CountingOperations, clock: Clock
) -> None:
    trusted = documents(trusted_documents=True, registered_refresh_seconds=2)
    sha256 = document_hash(VIEWER)

    before = await refused(trusted, apq(sha256))
    await register(VIEWER)
    clock.now += 1.9
    still_before = await refused(trusted, apq(sha256))
    clock.now += 0.2
    after = await trusted.resolve(apq(sha256))
    await OperationService().remove([sha256])
    clock.now += 1.9
    until_read = await trusted.resolve(apq(sha256))
    clock.now += 0.2
    removed = await refused(trusted, apq(sha256))

    assert answer(before)[1] == 403
    assert answer(still_before)[1] == 403
    assert runs(after, VIEWER)
    assert until_read is after
    assert answer(removed)[1] == 403
    assert operations.reads == 3


async def test_unknown_hashes_cost_one_read_per_interval_and_no_memory(
    documents: Documents, operations: CountingOperations, clock: Clock
) -> None:
    trusted = documents(trusted_documents=True, registered_refresh_seconds=2)
    unknown = [document_hash(f"query Q{n} {{ viewer {{ id }} }}") for n in range(200)]

    # At once: the requests share one read.
    at_once = await asyncio.gather(
        *(trusted.resolve(apq(sha256)) for sha256 in unknown[:100]), return_exceptions=True
    )
    one_by_one = [await refused(trusted, apq(sha256)) for sha256 in unknown[100:]]

    assert all(isinstance(result, RequestError) and result.status == 403 for result in at_once)
    assert all(refusal.status == 403 for refusal in one_by_one)
    assert operations.reads == 1
    assert trusted.registered.held == 0


async def test_a_registered_hash_is_held_once_prepared_or_not(documents: Documents) -> None:
    await register(VIEWER, TIMELINE)
    trusted = documents(trusted_documents=True)

    await trusted.resolve(apq(document_hash(VIEWER)))  # read, and VIEWER prepared

    assert trusted.registered.held == 2


async def test_a_failed_read_that_no_request_waits_for_any_more_is_not_left_unretrieved(
    documents: Documents, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def failing(self: OperationService) -> frozenset[str]:
        started.set()
        await release.wait()
        raise RuntimeError("the database went away")

    monkeypatch.setattr(CountingOperations, "registered_hashes", failing)
    trusted = documents(trusted_documents=True)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        waiter = asyncio.create_task(trusted.resolve(apq(document_hash(VIEWER))))
        await started.wait()
        reading = trusted.registered._reading
        assert reading is not None
        waiter.cancel()  # the only request waiting for the read goes away
        with suppress(asyncio.CancelledError):
            await waiter
        release.set()
        await asyncio.wait([reading])  # done, its exception not looked at here
        del reading
        gc.collect()  # asyncio reports an exception never retrieved when the task goes
    finally:
        loop.set_exception_handler(previous)

    assert reported == []
    assert trusted.registered._reading is None  # the next request reads again


# --- the registered operations' service ----------------------------------------------------


async def test_registering_again_changes_nothing_and_removal_is_all_or_nothing(
    app: Starlette,
) -> None:
    service = OperationService()
    viewer = NewOperation(VIEWER, ("Viewer",))
    timeline = NewOperation(TIMELINE, ("Timeline",))

    first = await service.register([viewer, timeline])
    again = await service.register([viewer, viewer, timeline])
    with pytest.raises(DomainError) as missing:
        await service.remove([viewer.sha256, "0" * 64])
    kept = await service.registered()
    removed = await service.remove([viewer.sha256])

    assert (first, again) == (2, 0)
    assert missing.value.message == f"Not registered: {'0' * 64}."
    assert {(o.sha256, o.operation_names) for o in kept} == {
        (viewer.sha256, ("Viewer",)),
        (timeline.sha256, ("Timeline",)),
    }
    assert removed == 1
    assert await service.registered_hashes() == {timeline.sha256}
    assert await service.document(timeline.sha256) == TIMELINE


async def test_a_registration_racing_another_counts_only_what_it_wrote(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = OperationService()
    viewer = NewOperation(VIEWER, ("Viewer",))
    timeline = NewOperation(TIMELINE, ("Timeline",))
    await service.register([viewer])
    real = operations_module._hashes
    reads = 0

    async def stale_once(operations: Any) -> list[str]:
        # As if another registration committed VIEWER just after this one read.
        nonlocal reads
        reads += 1
        return [] if reads == 1 else await real(operations)

    monkeypatch.setattr(operations_module, "_hashes", stale_once)
    registered = await service.register([viewer, timeline])

    assert registered == 1  # TIMELINE; VIEWER was another's
    assert await service.registered_hashes() == {viewer.sha256, timeline.sha256}


# --- over a WebSocket ----------------------------------------------------------------------

Served = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
def served_with(app: Starlette, data_dir: Path, database_url: str) -> Served:
    """Another app on the test database with other graphql settings, served in this loop."""

    @asynccontextmanager
    async def make(**graphql: Any) -> AsyncIterator[str]:
        application = create_app(make_settings(data_dir, database_url, graphql=graphql))
        async with served_in_loop(application) as base:
            yield base

    return make


async def start(client: LiveClient, operation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Start an operation with this payload; the first message it answers with (the completion
    of an operation before it is skipped)."""
    await client.send({"id": operation_id, "type": kind(client, "start"), "payload": payload})
    while True:
        message = await client.receive()
        if message["type"] != "complete":
            return message


def persisted(sha256: str, **payload: Any) -> dict[str, Any]:
    return {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}}, **payload}


def persisted_payload(text: str) -> dict[str, Any]:
    return {"payload": persisted(document_hash(text))}


def kind(client: LiveClient, verb: str) -> str:
    """The message type that starts an operation in the client's protocol."""
    return verb if client.protocol == LEGACY_WS else "subscribe"


def error_codes(message: dict[str, Any]) -> list[str]:
    assert message["type"] == "error", message
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else [payload]
    return [error["extensions"]["code"] for error in errors]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_trusted_documents_cannot_be_bypassed_over_a_websocket(
    served_with: Served, protocol: str
) -> None:
    await register(VIEWER, PUBLIC)
    async with (
        served_with(trusted_documents=True) as base,
        live_client(base, protocol) as client,
    ):
        await client.init()
        refusals = [
            await start(client, "1", {"query": "subscription { publicTimeline { node { id } } }"}),
            await start(client, "2", persisted(document_hash(TIMELINE))),
            await start(client, "3", {"documentId": f"sha256:{document_hash(TIMELINE)}"}),
        ]
        # A registered subscription starts: refused, its error would come before the answer
        # to the operation after it.
        await client.send({"id": "4", "type": kind(client, "start"), **persisted_payload(PUBLIC)})
        after = await start(client, "5", persisted(document_hash(TIMELINE)))

    for refusal in refusals:
        assert error_codes(refusal) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert after["id"] == "5"
    assert error_codes(after) == ["PERSISTED_QUERY_NOT_ALLOWED"]


async def test_registered_operations_run_over_a_websocket_by_hash_or_text(
    served_with: Served,
) -> None:
    await register(VIEWER)
    async with (
        served_with(trusted_documents=True) as base,
        live_client(base) as client,
    ):
        await client.init()
        by_hash = await start(client, "1", persisted(document_hash(VIEWER)))
        by_id = await start(client, "2", {"documentId": f"sha256:{document_hash(VIEWER)}"})
        by_text = await start(client, "3", {"query": VIEWER})

    for message, operation_id in ((by_hash, "1"), (by_id, "2"), (by_text, "3")):
        assert message == {
            "id": operation_id,
            "type": "next",
            "payload": {"data": {"viewer": None}},
        }


async def test_the_legacy_protocol_runs_registered_subscriptions_and_refuses_others(
    app: Starlette, data_dir: Path, database_url: str
) -> None:
    # graphql-ws (subscriptions-transport-ws) runs subscriptions only (strawberry's handler).
    await register(PUBLIC, SIGN_UP, CREATE_POST)
    application = create_app(
        make_settings(data_dir, database_url, graphql={"trusted_documents": True})
    )
    hub = application.state.services.pubsub.hub
    transport = httpx.ASGITransport(app=application)
    async with (
        served_in_loop(application) as base,
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
        live_client(base, LEGACY_WS) as client,
    ):
        gql = GraphQLClient.settling(http, application)
        author = await gql.sign_up("author")
        await client.init()
        for operation_id, payload in (
            ("1", persisted(document_hash(PUBLIC))),
            ("2", {"documentId": f"sha256:{document_hash(PUBLIC)}"}),
            ("3", {"query": PUBLIC}),
        ):
            await client.send({"id": operation_id, "type": "start", "payload": payload})
        refused = await start(client, "4", {"query": "subscription { publicTimeline { cursor } }"})

        async def all_listening() -> bool:
            return len(hub._by_channel.get(live.PUBLIC, ())) == 3

        await eventually(all_listening)
        await post(gql, author, "to every registered subscription")
        delivered = [await client.receive() for _ in range(3)]

    assert refused["id"] == "4"
    assert error_codes(refused) == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert sorted(message["id"] for message in delivered) == ["1", "2", "3"]
    assert all(message["type"] == "data" for message in delivered)
    assert all(message["payload"]["data"]["publicTimeline"]["node"]["id"] for message in delivered)


async def test_automatic_persisted_queries_over_a_websocket(served_with: Served) -> None:
    sha256 = document_hash(VIEWER)
    async with served_with() as base, live_client(base) as client:
        await client.init()
        missed = await start(client, "1", persisted(sha256))
        sent = await start(client, "2", persisted(sha256, query=VIEWER))
        found = await start(client, "3", persisted(sha256))

    assert error_codes(missed) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert missed["payload"][0]["message"] == "PersistedQueryNotFound"
    assert sent["payload"] == found["payload"] == {"data": {"viewer": None}}


async def test_a_fault_finding_the_document_is_masked_and_the_socket_stays_open(
    served_with: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: OperationService) -> frozenset[str]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(OperationService, "registered_hashes", broken)
    async with served_with() as base, live_client(base) as client:
        await client.init()
        # A hash not stored: the registered operations are asked, and fail.
        failed = await start(client, "1", persisted(document_hash(VIEWER)))
        after = await start(client, "2", {"query": VIEWER})

    assert failed == {
        "id": "1",
        "type": "error",
        "payload": [
            {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ],
    }
    assert after == {"id": "2", "type": "next", "payload": {"data": {"viewer": None}}}
