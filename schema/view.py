"""strawberry's view of the GraphQL endpoint: WebSockets (graphql-transport-ws and the legacy
graphql-ws), authenticated in connection_init and running their operations under the same
limits as HTTP (schema/protocols.py, schema/socket.py); and the GraphiQL page, which
`schema.http.GraphQLHTTP` (every GraphQL request over HTTP) asks it to render."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from app.services import Services
from schema.context import Context
from schema.http import bearer_token
from schema.operations import DocumentSource
from schema.protocols import LegacyWSHandler, TransportWSHandler
from schema.socket import SCOPE_KEY, LiveSocket, SocketAdapter, socket_of

if TYPE_CHECKING:
    from schema import HoldfastSchema

_NO_ACK_PAYLOAD: UnsetType = UNSET  # connection_ack without a payload


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
        self, schema: HoldfastSchema, services: Services, documents: DocumentSource
    ) -> None:
        settings = services.settings
        super().__init__(
            schema,
            graphql_ide=None if settings.is_production else "graphiql",
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
        # the app's, shared with the HTTP endpoint (one APQ store, one trusted-documents rule).
        self.documents = documents
        self.sockets: set[LiveSocket] = set()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if not isinstance(request, WebSocket):
            raise TypeError("HTTP requests are schema.http.GraphQLHTTP's")
        # Signed in (or not) by connection_init: see on_ws_connect.
        return Context(
            request=request, services=self._services, viewer=None, socket=socket_of(request)
        )

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise TypeError("HTTP requests are schema.http.GraphQLHTTP's")
        await super().__call__(scope, receive, send)
