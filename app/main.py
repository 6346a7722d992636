"""The ASGI application: GraphQL at /graphql, /healthz, /media, /webhooks/payments; the
lifespan opens the database, holds this process's node id, and opens the pub/sub, (unless
`jobs.work_in_web` is off) this process's job worker and (unless `jobs.schedule_in_web` is
off) the scheduler loop: the default install, one `holdfast serve`, plays every role. The
loop holds the scheduler lease while it schedules, so of many web processes (and any
`holdfast scheduler`) only one schedules at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from tortoise.contrib.starlette import RegisterTortoise

from app import nodes
from app.db import tortoise_config
from app.http import BodySizeLimit, http_error
from app.routes.health import healthz
from app.routes.media import media
from app.routes.payments import payment_webhook
from app.services import Services
from app.services.operations import DocumentCheck
from app.settings import Settings, load_settings

log = logging.getLogger("holdfast.app")


def create_app(settings: Settings) -> Starlette:
    # Only this module imports schema/: the service layer never depends on the API layer.
    from schema import build_schema
    from schema.http import GraphQLHTTP, refusal_content_type
    from schema.persisted import PersistedDocuments
    from schema.socket import CloseCode
    from schema.view import GraphQLView

    services = Services.from_settings(settings)
    schema = build_schema(settings)
    # Every request's document (the query, an APQ hash, a registered operation), over HTTP and
    # WebSocket alike: one APQ store, one view of the registered operations.
    documents = PersistedDocuments(schema.pipeline, services.operations, settings.graphql)
    graphql = GraphQLView(schema, services, documents)  # WebSockets and the GraphiQL page
    graphql_http = GraphQLHTTP(schema, services, documents, ide=graphql)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            RegisterTortoise(app, config=tortoise_config(settings)),
            _node_id(settings),
        ):
            await services.pubsub.start()
            # The configured plans, in the ledger before anyone subscribes to one.
            await services.billing.ensure_plans()
            if settings.jobs.work_in_web:
                await services.jobs.start(services.changes)
            scheduling = (
                _scheduler(settings, services)
                if settings.jobs.schedule_in_web
                else contextlib.nullcontext()
            )
            try:
                async with scheduling:
                    yield
            finally:
                # uvicorn has already closed its sockets with 1012 on SIGTERM; this is for
                # servers that shut the application down first.
                await graphql.close_sockets(CloseCode.SERVICE_RESTART, "Server restarting")
                # Before pub/sub closes: jobs finishing in the grace period still publish.
                await services.jobs.stop()
                await services.close()

    app = Starlette(
        routes=[
            # GraphQL over HTTP (schema/http/): every method reaches it, and it alone decides
            # which it serves (405 with `Allow: GET, POST` for the others, HEAD included).
            Route("/graphql", graphql_http),
            # Subscriptions (and any operation a client sends over the socket), under the
            # same limits, budget and masking as HTTP (schema/protocols.py).
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/media/{key:path}", media, methods=["GET"]),
            Route("/webhooks/payments/{provider}", payment_webhook, methods=["POST"]),
        ],
        middleware=[
            Middleware(CorrelationIdMiddleware, header_name="X-Request-ID"),
            Middleware(
                BodySizeLimit,
                max_bytes=settings.http.max_body_bytes,
                # Uploads through the application (GraphQL multipart requests): the file
                # and, beside it, a form as large as any other request.
                multipart_max_bytes=settings.media.max_upload_bytes + settings.http.max_body_bytes,
                multipart_paths=("/graphql",),
                # A 413 there in the media type the GraphQL client asked for.
                negotiate=refusal_content_type,
            ),
        ],
        exception_handlers={404: http_error, 405: http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = services
    app.state.graphql = graphql
    app.state.graphql_http = graphql_http
    app.state.documents = documents
    return app


def check_documents(settings: Settings, documents: Sequence[str]) -> list[DocumentCheck]:
    """Check each document against the schema and the limits as a serving process with
    `settings` would (`holdfast operations register` refuses any that could not run)."""
    from schema import build_schema
    from schema.persisted import check_document

    pipeline = build_schema(settings).pipeline
    return [check_document(pipeline, document) for document in documents]


@asynccontextmanager
async def _scheduler(settings: Settings, services: Services) -> AsyncIterator[None]:
    """The scheduler loop (app/hosting/schedule.py) beside the server, stopped with it."""
    from app.hosting.schedule import run_scheduler

    stop = asyncio.Event()

    async def schedule() -> None:
        try:
            await run_scheduler(settings, services.changes, stop)
        except Exception:
            log.exception("the embedded scheduler stopped")

    task = asyncio.create_task(schedule())
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def _node_id(settings: Settings) -> AsyncIterator[None]:
    try:
        async with nodes.hold(settings, role="serve"):
            yield
    except nodes.NodeLeaseError as exc:
        # Said on its own line: uvicorn's traceback of a failed startup is cut short in the log.
        log.error("cannot start: %s", exc)
        raise


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory app.main:create_app_from_env` (several workers)."""
    from app.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
