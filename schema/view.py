"""The GraphQL HTTP/WebSocket endpoint: builds the per-request context."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.services import Services
from app.services.accounts import Viewer
from schema.context import Context


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: Any, services: Services) -> None:
        super().__init__(
            schema,
            graphql_ide=None if services.settings.is_production else "graphiql",
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
        )
        self._services = services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        viewer: Viewer | None = None
        token = bearer_token(request.headers.get("authorization"))
        if token:
            viewer = await self._services.accounts.resolve_viewer(token)
        return Context(request=request, services=self._services, viewer=viewer)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)
