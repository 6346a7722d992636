"""The GraphQL HTTP endpoint: builds the per-request context, spends the viewer's request
budget, and answers every refusal as a coded GraphQL error. (No WebSocket route is mounted
until there are subscriptions; see app/main.py.)"""

from __future__ import annotations

from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.types.unset import UNSET

from app.http import error_response
from app.ratelimit import Budget
from app.services import Services
from app.services.accounts import Viewer
from schema.context import Context


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


_BUDGET = "holdfast.budget"  # the scope key of the request's spent Budget


class _BudgetSpent(Exception):
    """The viewer's request budget is spent: the operation never runs."""

    def __init__(self, budget: Budget) -> None:
        super().__init__("request budget spent")
        self.budget = budget


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
        context = Context(request=request, services=self._services, viewer=viewer)
        if isinstance(request, Request):
            await self._spend_budget(context, request)
        return context

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
