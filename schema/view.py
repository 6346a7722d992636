"""The GraphQL endpoint. Over HTTP: builds the per-request context, spends the viewer's
request budget, and answers every refusal as a coded GraphQL error. Over WebSocket
(graphql-transport-ws and the legacy graphql-ws): authenticates the connection in
connection_init and runs its operations under the same limits (schema/protocols.py,
schema/socket.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types.unset import UNSET, UnsetType

from app.http import error_response
from app.ratelimit import Budget
from app.services import Services
from app.services.accounts import Viewer
from schema.context import Context
from schema.operations import DocumentSource
from schema.persisted import PersistedDocuments
from schema.protocols import LegacyWSHandler, TransportWSHandler
from schema.socket import SCOPE_KEY, LiveSocket, SocketAdapter, socket_of


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# Headers a browser sends only after a CORS preflight, so a form on another origin cannot
# (the Apollo convention for multipart uploads).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")

_NO_ACK_PAYLOAD: UnsetType = UNSET  # connection_ack without a payload
_BUDGET = "holdfast.budget"  # the scope key of the request's spent Budget


class _BudgetSpent(Exception):
    """The viewer's request budget is spent: the operation never runs."""

    def __init__(self, budget: Budget) -> None:
        super().__init__("request budget spent")
        self.budget = budget


def _rejected(message: str) -> ConnectionRejectionError:
    # The legacy protocol sends this payload as connection_error; graphql-transport-ws only
    # closes with 4403.
    return ConnectionRejectionError({"message": message, "extensions": {"code": "FORBIDDEN"}})


def connection_token(params: object) -> str | None:
    """The access token of a connection_init payload `{"authorization": "Bearer <token>"}`
    (None: signed out); a payload that names one badly is refused."""
    if not isinstance(params, dict):
        return None
    value = params.get("authorization", params.get("Authorization"))
    if value is None:
        return None
    token = bearer_token(value) if isinstance(value, str) else None
    if token is None:
        raise _rejected('authorization must be "Bearer <access token>".')
    return token


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = SocketAdapter

    def __init__(
        self, schema: Any, services: Services, documents: DocumentSource | None = None
    ) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=True,
            # Uploads through the application (uploadMedia), under the CSRF rule of
            # parse_http_body.
            multipart_uploads_enabled=True,
            # strawberry's `ka` messages are not needed: uvicorn pings at the WebSocket level.
            keep_alive=False,
            connection_init_wait_timeout=timedelta(seconds=settings.live.init_timeout),
            # Ours (schema/protocols.py) answers first, with a code; this is a backstop.
            max_subscriptions_per_connection=settings.live.max_subscriptions,
            # A connection is signed in by the token in its connection_init, never by cookies,
            # so a page on another origin gains nothing a script could not do anyway.
            allowed_origins=settings.live.allowed_origins,
        )
        self._services = services
        # Where both WebSocket protocols find each operation's document (schema/protocols.py):
        # the app's, shared with the HTTP endpoint (one APQ store), or one of the view's own.
        self.documents: DocumentSource = (
            documents
            if documents is not None
            else PersistedDocuments(schema.pipeline, services.operations, settings.graphql)
        )
        self.sockets: set[LiveSocket] = set()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if isinstance(request, WebSocket):
            # Signed in (or not) by connection_init: see on_ws_connect.
            return Context(
                request=request, services=self._services, viewer=None, socket=socket_of(request)
            )
        viewer: Viewer | None = None
        token = bearer_token(request.headers.get("authorization"))
        if token:
            viewer = await self._services.accounts.resolve_viewer(token)
        context = Context(request=request, services=self._services, viewer=viewer)
        await self._spend_budget(context, request)
        return context

    async def create_websocket_response(
        self, request: WebSocket, subprotocol: str | None
    ) -> WebSocket:
        websocket = await super().create_websocket_response(request, subprotocol)
        websocket.scope[SCOPE_KEY] = LiveSocket(websocket, self._services, self.sockets)
        return websocket

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """Sign the connection in with the access token of its connection_init payload (none:
        signed out, public streams only). A bad or expired token is refused (4403)."""
        socket = context.socket
        assert socket is not None
        if socket.initialised:
            raise _rejected("The connection is already initialised.")
        token = connection_token(context.connection_params)
        if token is None:
            return _NO_ACK_PAYLOAD
        accounts = self._services.accounts
        claims = accounts.access_claims(token)
        if claims is None:
            raise _rejected("The access token is invalid or expired.")
        # Listening before the session is checked: an end announced in between is not lost.
        await socket.watch_session(claims.session_id)
        viewer = await accounts.resolve_viewer(token)
        if viewer is None:
            raise _rejected("The session has ended.")
        context.viewer = viewer
        socket.expire_at(viewer.access_expires_at)
        return _NO_ACK_PAYLOAD

    async def close_sockets(self, code: int, reason: str) -> None:
        """Close every open connection with `code`, giving the close frames a second to go
        out."""
        sockets = list(self.sockets)
        for socket in sockets:
            socket.close_soon(code, reason)
        if not sockets:
            return
        waiters = [asyncio.ensure_future(socket.closed()) for socket in sockets]
        _, late = await asyncio.wait(waiters, timeout=1.0)
        for waiter in late:
            waiter.cancel()

    async def _spend_budget(self, context: Context, request: Request) -> None:
        """Count an HTTP request against its viewer's budget (the GraphiQL page is free), kept
        for `__call__` to put in the reply's headers; refuse it with 429 once spent."""
        if self.should_render_graphql_ide(self.request_adapter_class(request)):
            return
        budget = await self._services.limiter.spend_request(context.viewer_id, context.client_ip)
        if budget is None:
            return
        request.scope[_BUDGET] = budget
        if not budget.allowed:
            raise _BudgetSpent(budget)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return

        async def send_with_budget(message: Message) -> None:
            # On every answer to a counted request, results and transport errors (400) alike.
            budget: Budget | None = scope.get(_BUDGET)
            if message["type"] == "http.response.start" and budget is not None:
                MutableHeaders(scope=message).update(budget.headers())
            await send(message)

        await super().__call__(scope, receive, send_with_budget)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        except HTTPException as exc:
            # strawberry answers these in plain text; clients get a GraphQL error with a code.
            return error_response(exc.status_code, exc.reason)
        except _BudgetSpent as spent:  # raised by get_context, before the body is read
            return error_response(
                429, "Too many requests; try again later.", spent.budget.headers()
            )
        finally:
            if isinstance(request, Request):
                # A multipart request's files (spooled to disk past 1 MiB) go now.
                await request.close()

    def parse_json(self, data: str | bytes) -> Any:
        """A request body: an object (or a list, which batching refuses)."""
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "Expected a JSON object.")
        return parsed

    def parse_query_params(self, params: Any) -> dict[str, Any]:
        # `variables` and `extensions` in a query string may be `null`; strawberry checks
        # that they are objects once parsed.
        parsed = dict(params)
        for key in ("variables", "extensions"):
            if parsed.get(key):
                parsed[key] = super().parse_json(parsed[key])
        return parsed

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> Any:
        content_type, _ = parse_content_type(request.content_type or "")
        if content_type == "multipart/form-data" and not any(
            request.headers.get(name) for name in PREFLIGHT_HEADERS
        ):
            # A page on another origin can post a form (a CORS "simple" request) with the
            # viewer's cookies; it cannot add a custom header without a preflight.
            raise HTTPException(
                400,
                "Multipart requests need an Apollo-Require-Preflight (or "
                "X-Apollo-Operation-Name) header.",
            )
        parsed = await super().parse_http_body(request)
        if isinstance(parsed, GraphQLRequestData) and not isinstance(
            parsed.operation_name, str | None
        ):
            raise HTTPException(400, "The operation's `operationName` must be a string or null.")
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)
