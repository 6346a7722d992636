"""Persisted operations over HTTP, as Apollo Client's persisted-query link and urql's
persisted exchange speak them, POST and GET: APQ round trips (not found -> the query sent ->
found), a hash that is not the query's, an unsupported version, APQ turned off; trusted
documents refusing an unregistered document (nothing runs) and running a registered one by
hash, by `documentId` and by its full text. Under both response media types: the status of a
refusal is its own for `application/graphql-response+json` and 200 for `application/json`
(but a malformed hash or `documentId`: BAD_REQUEST, 400 under both, as any request whose
parameters are not a GraphQL request's).

No Python client library speaks APQ (gql 4.4 always sends the full query): these are the raw
requests those links send, to the GraphQL-over-HTTP endpoint (schema/http/); the same rules are
tested on `PersistedDocuments` itself and over WebSockets in test_persisted_operations.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.main import create_app
from app.models import Media, User
from app.services.operations import NewOperation, OperationService
from app.settings import Settings
from schema.http import GraphQLHTTP
from schema.view import GraphQLView
from tests.conftest import make_settings
from tests.media import png, upload
from tests.support import SIGN_UP, GraphQLClient, graphql_endpoint, sign_up_input

GR = "application/graphql-response+json"
JSON = "application/json"
MEDIA_TYPES = pytest.mark.parametrize("media_type", [GR, JSON])
VIEWER = "query Viewer { viewer { id } }"
UNCACHED = "private, no-cache, must-revalidate"


def unseen() -> str:
    """A document no process has seen (the shared app's APQ store lives as long as the test
    session)."""
    return f"query Viewer{secrets.token_hex(8)} {{ viewer {{ id }} }}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def extension(text: str, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256(text)}}


async def post(http: httpx.AsyncClient, media_type: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post("/graphql", json=body, headers={"Accept": media_type})


async def get(http: httpx.AsyncClient, media_type: str, **params: Any) -> httpx.Response:
    """A GET as the links send one: `extensions` (and `variables`) JSON-encoded."""
    encoded = {
        key: json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value
        for key, value in params.items()
    }
    return await http.get("/graphql", params=encoded, headers={"Accept": media_type})


def errors(response: httpx.Response) -> list[tuple[str, str]]:
    body = response.json()
    assert "data" not in body, body
    return [(error["message"], error["extensions"]["code"]) for error in body["errors"]]


def status(media_type: str, own: int) -> int:
    """A refusal's status: its own under application/graphql-response+json, 200 under
    application/json (every well-formed request)."""
    return own if media_type == GR else 200


Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client(app: Starlette, data_dir: Path, database_url: str) -> Client:
    """A client of another app on the test database with these graphql settings."""

    @asynccontextmanager
    async def connect(**graphql: Any) -> AsyncIterator[httpx.AsyncClient]:
        application = create_app(make_settings(data_dir, database_url, graphql=graphql))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
        await application.state.services.limiter.close()

    return connect


@MEDIA_TYPES
async def test_apq_over_post_not_found_then_sent_then_found(
    http: httpx.AsyncClient, media_type: str
) -> None:
    text = unseen()

    missed = await post(http, media_type, {"extensions": extension(text)})
    sent = await post(http, media_type, {"query": text, "extensions": extension(text)})
    found = await post(http, media_type, {"extensions": extension(text)})

    # 404 (not 400: an Apollo Client before 3.8 turns persisted queries off for good on a 400)
    # under graphql-response+json; 200 under application/json, as Apollo Server answers it.
    assert missed.status_code == status(media_type, 404)
    assert errors(missed) == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
    assert missed.headers["cache-control"] == UNCACHED
    assert (sent.status_code, sent.json()) == (200, {"data": {"viewer": None}})
    assert (found.status_code, found.json()) == (200, {"data": {"viewer": None}})


@MEDIA_TYPES
async def test_apq_over_get_not_found_then_sent_then_found(
    http: httpx.AsyncClient, media_type: str
) -> None:
    text = unseen()

    missed = await get(http, media_type, extensions=extension(text))
    sent = await get(http, media_type, query=text, extensions=extension(text))
    found = await get(http, media_type, extensions=extension(text))

    assert missed.status_code == status(media_type, 404)
    assert errors(missed) == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
    # A CDN in front must not keep the miss: the next request fills the store.
    assert missed.headers["cache-control"] == UNCACHED
    assert (sent.status_code, sent.json()) == (200, {"data": {"viewer": None}})
    assert (found.status_code, found.json()) == (200, {"data": {"viewer": None}})


@MEDIA_TYPES
async def test_a_hash_that_is_not_the_querys_and_an_unknown_version_are_refused(
    http: httpx.AsyncClient, media_type: str
) -> None:
    mismatch = await post(http, media_type, {"query": VIEWER, "extensions": extension("{ x }")})
    version = await get(http, media_type, query=VIEWER, extensions=extension(VIEWER, 2))
    after = await post(http, media_type, {"extensions": extension("{ x }")})

    assert mismatch.status_code == status(media_type, 400)
    assert errors(mismatch) == [
        ("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
    ]
    assert version.status_code == status(media_type, 400)
    assert errors(version) == [
        ("Unsupported persisted query version", "PERSISTED_QUERY_VERSION_NOT_SUPPORTED")
    ]
    assert errors(after) == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]


@MEDIA_TYPES
@pytest.mark.parametrize(
    "body",
    [
        {"documentId": "md5:abc"},
        {"documentId": "sha256:" + "A" * 64},
        {"extensions": {"persistedQuery": "x"}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "short"}}},
        {"documentId": "sha256:" + "a" * 64, "query": VIEWER},
    ],
)
async def test_malformed_persisted_parameters_are_400_under_both_media_types(
    http: httpx.AsyncClient, media_type: str, body: dict[str, Any]
) -> None:
    # Not a GraphQL request, as a parameter of the wrong type is (schema/http/parameters.py):
    # 400 whatever the media type, not application/json's 200 for a well-formed request.
    response = await post(http, media_type, body)
    wrong_type = await post(http, media_type, {"documentId": 5})

    assert response.status_code == wrong_type.status_code == 400
    assert [code for _, code in errors(response)] == ["BAD_REQUEST"]


@MEDIA_TYPES
async def test_an_empty_document_id_in_a_url_is_absent(
    http: httpx.AsyncClient, media_type: str
) -> None:
    response = await get(http, media_type, query=VIEWER, documentId="")

    assert (response.status_code, response.json()) == (200, {"data": {"viewer": None}})


@MEDIA_TYPES
async def test_with_apq_off_hashes_are_not_supported(client: Client, media_type: str) -> None:
    async with client(persisted_queries=False) as http:
        with_hash = await post(http, media_type, {"extensions": extension(VIEWER)})
        full = await post(http, media_type, {"query": VIEWER})

    # Apollo's link and urql's exchange stop sending hashes, and resend the query.
    assert with_hash.status_code == status(media_type, 400)
    assert errors(with_hash) == [("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")]
    assert (full.status_code, full.json()) == (200, {"data": {"viewer": None}})


@MEDIA_TYPES
async def test_trusted_documents_refuse_an_unregistered_document_and_nothing_runs(
    client: Client, media_type: str
) -> None:
    async with client(trusted_documents=True) as http:
        full = await post(http, media_type, {"query": SIGN_UP, "variables": sign_up_input()})
        by_hash = await post(
            http, media_type, {"variables": sign_up_input(), "extensions": extension(SIGN_UP)}
        )
        registering = await post(
            http,
            media_type,
            {"query": SIGN_UP, "variables": sign_up_input(), "extensions": extension(SIGN_UP)},
        )
        by_id = await get(http, media_type, documentId=f"sha256:{sha256(VIEWER)}")

    for response in (full, by_hash, registering, by_id):
        # 403: the client may not make this request (GraphQL over HTTP); no client retries.
        assert response.status_code == status(media_type, 403)
        assert [code for _, code in errors(response)] == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert await User.all().count() == 0


@MEDIA_TYPES
async def test_trusted_documents_run_a_registered_operation_by_hash_id_or_text(
    client: Client, media_type: str
) -> None:
    await OperationService().register([NewOperation(VIEWER, ("Viewer",))])
    async with client(trusted_documents=True) as http:
        answers = [
            await post(http, media_type, {"extensions": extension(VIEWER)}),
            await get(http, media_type, extensions=extension(VIEWER)),
            await post(http, media_type, {"documentId": f"sha256:{sha256(VIEWER)}"}),
            await get(http, media_type, documentId=f"sha256:{sha256(VIEWER)}"),
            await post(http, media_type, {"query": VIEWER}),
            await get(http, media_type, query=VIEWER),
        ]

    for response in answers:
        assert (response.status_code, response.json()) == (200, {"data": {"viewer": None}})


@MEDIA_TYPES
async def test_a_mutation_sent_with_get_is_refused_before_the_apq_store_keeps_it(
    http: httpx.AsyncClient, media_type: str
) -> None:
    # A distinct document (the shared app's APQ store lives as long as the test session).
    mutation = SIGN_UP + f"\n# {secrets.token_hex(8)}"

    refused = await get(
        http,
        media_type,
        query=mutation,
        variables=sign_up_input(),
        extensions=extension(mutation),
    )
    by_hash = await post(http, media_type, {"variables": sign_up_input(), **_ext(mutation)})

    # spec "GET": 405 whatever the media type; and nothing changed, the APQ store included:
    # the hash alone names nothing (had it been stored, this POST would sign alice up).
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"
    assert [code for _, code in errors(refused)] == ["BAD_USER_INPUT"]
    assert errors(by_hash) == [("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")]
    assert await User.all().count() == 0


def _ext(text: str) -> dict[str, Any]:
    return {"extensions": extension(text)}


# --- trusted documents cannot be bypassed --------------------------------------------------


@MEDIA_TYPES
async def test_trusted_documents_refuse_an_unregistered_multipart_upload(
    client: Client, gql: GraphQLClient, media_type: str
) -> None:
    account = await gql.sign_up("alice")  # on the shared app: sign-up is not registered here
    async with client(trusted_documents=True) as http:
        http.headers["Accept"] = media_type
        response = await upload(http, account.access_token, png())

    assert response.status_code == status(media_type, 403)
    assert [code for _, code in errors(response)] == ["PERSISTED_QUERY_NOT_ALLOWED"]
    assert await Media.all().count() == 0


@MEDIA_TYPES
async def test_a_registered_mutation_named_by_document_id_over_get_is_405(
    client: Client, media_type: str
) -> None:
    await OperationService().register([NewOperation(SIGN_UP, ())])
    async with client(trusted_documents=True) as http:
        response = await get(
            http,
            media_type,
            documentId=f"sha256:{sha256(SIGN_UP)}",
            variables=sign_up_input(),
        )

    # The persisted documents appendix: a GET of a document that is not a query MUST be
    # refused 405 (as the query itself would be).
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert await User.all().count() == 0


async def test_the_endpoint_and_the_view_are_built_with_the_apps_documents(
    app: Starlette,
) -> None:
    schema, services = app.state.graphql.schema, app.state.services

    # No fallback of their own that would ignore trusted-documents mode.
    with pytest.raises(TypeError):
        GraphQLHTTP(schema, services)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        GraphQLView(schema, services)  # type: ignore[call-arg]
    assert app.state.graphql_http.documents is app.state.documents
    assert app.state.graphql.documents is app.state.documents


async def test_an_endpoint_built_for_trusted_documents_refuses_unregistered_ones(
    app: Starlette, settings: Settings
) -> None:
    trusted = settings.model_copy(
        update={"graphql": settings.graphql.model_copy(update={"trusted_documents": True})}
    )
    transport = httpx.ASGITransport(app=graphql_endpoint(trusted))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await post(http, GR, {"query": VIEWER})

    assert response.status_code == 403
    assert [code for _, code in errors(response)] == ["PERSISTED_QUERY_NOT_ALLOWED"]
