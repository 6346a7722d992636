"""strawberry's two WebSocket protocol handlers, held to what HTTP requests are held to.

- Messages are checked before strawberry reads them: one that is not what the protocol
  allows (not an object, an id or query that is not a string, ...) closes the socket with
  4400 instead of failing inside the handler.
- Each operation started on a connection spends one request of its viewer's budget
  (RATE_LIMITED when spent) and counts towards `live.max_subscriptions` running at once
  (TOO_MANY_SUBSCRIPTIONS); both refusals are the operation's coded error, and the
  connection stays open.
- Each operation's document comes from the app's `DocumentSource` (`schema.persisted`), as an
  HTTP request's does: an APQ hash or `documentId` is resolved, and in trusted-documents mode
  an unregistered document is refused (the operation's coded error) before anything runs.
- The connection's `LiveSocket` starts with the handler and finishes with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError, OperationType, get_operation_ast
from strawberry.subscriptions.protocols.graphql_transport_ws import types as transport_ws
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws import types as legacy_ws
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from schema.context import Context
from schema.document import Code, public_error
from schema.operations import DocumentSource, GraphQLRequest, RequestError, names_a_document
from schema.socket import CloseCode, LiveSocket

if TYPE_CHECKING:
    from schema import HoldfastSchema
    from schema.view import GraphQLView

OPERATION_ID_MAX = 128  # characters; clients use counters or UUIDs

TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
RATE_LIMITED = "RATE_LIMITED"


def _optional(payload: dict[str, Any], key: str, kind: type) -> bool:
    return payload.get(key) is None or isinstance(payload[key], kind)


def operation_problem(message: dict[str, Any]) -> str | None:
    """What is wrong with a message that starts an operation (None: nothing)."""
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not 0 < len(operation_id) <= OPERATION_ID_MAX:
        return f"The operation id must be a string of 1 to {OPERATION_ID_MAX} characters."
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "The payload must be an object."
    if not (
        _optional(payload, "variables", dict)
        and _optional(payload, "extensions", dict)
        and _optional(payload, "operationName", str)
        and _optional(payload, "documentId", str)
    ):
        return "variables and extensions must be objects, operationName and documentId strings."
    if not isinstance(payload.get("query"), str) and not (
        payload.get("query") is None
        and names_a_document(None, payload.get("documentId"), payload.get("extensions"))
    ):
        return (
            "The payload's query must be a string (or absent, with a documentId or a "
            "persistedQuery extension)."
        )
    return None


def message_problem(message: object, starts: str, stops: str) -> str | None:
    """What is wrong with a message of either protocol (`starts` and `stops` name the types
    that start and stop an operation)."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "A message must be an object with a string type."
    kind = message["type"]
    if kind == "connection_init" and not _optional(message, "payload", dict):
        return "The connection_init payload must be an object."
    if kind == starts:
        return operation_problem(message)
    if kind == stops and not isinstance(message.get("id"), str):
        return "The operation id must be a string."
    return None


def _error(code: str, message: str, **extensions: object) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, **extensions}}


async def refusal(context: Context, running: int) -> dict[str, Any] | None:
    """Why a new operation may not start on this connection (a formatted error), if so."""
    cap = context.settings.live.max_subscriptions
    if running >= cap:
        return _error(
            TOO_MANY_SUBSCRIPTIONS,
            f"At most {cap} operations may run at once on one connection; complete one first.",
        )
    limiter = context.services.limiter
    budget = await limiter.spend_request(context.viewer_id, context.client_ip)
    if budget is not None and not budget.allowed:
        return _error(
            RATE_LIMITED, "Too many requests; try again later.", retryAfter=budget.reset_after
        )
    return None


async def with_document(documents: DocumentSource, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with the text of the document it names (its query, a persisted query's hash,
    a documentId) for strawberry to run; RequestError when there is none it may run, or it is
    over the byte limit or does not parse (answered as over HTTP: strawberry would refuse an
    empty query with a message and code of its own)."""
    prepared = await documents.resolve(
        GraphQLRequest(
            query=payload.get("query"),
            variables=payload.get("variables"),
            operation_name=payload.get("operationName"),
            extensions=payload.get("extensions"),
            document_id=payload.get("documentId"),
        )
    )
    if prepared.document is None:
        raise RequestError(prepared.errors)
    return {**payload, "query": prepared.query}


async def _resolved(
    handler: TransportWSHandler | LegacyWSHandler, payload: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The payload to run, or the errors that refuse it (a fault of ours logged and masked)."""
    view = cast("GraphQLView", handler.view)  # the view serves its handlers itself
    try:
        return await with_document(view.documents, payload), []
    except RequestError as refused:
        errors = refused.errors
    except Exception as exc:
        errors = [GraphQLError(str(exc), original_error=exc)]
        handler.schema.process_errors(errors)
    return None, [dict(public_error(error).formatted) for error in errors]


def _not_a_subscription(handler: LegacyWSHandler, payload: dict[str, Any] | None) -> Any:
    """The legacy protocol runs subscriptions only (strawberry's handler answers anything else
    with an uncoded error): a coded refusal for a query or mutation, None otherwise."""
    if payload is None:
        return None
    prepared = cast("HoldfastSchema", handler.schema).pipeline.prepare(payload["query"])
    operation = (
        get_operation_ast(prepared.document, payload.get("operationName"))
        if prepared.document is not None
        else None
    )
    if operation is None or operation.operation is OperationType.SUBSCRIPTION:
        return None  # strawberry reports a missing or unknown operation itself
    return {
        "message": "graphql-ws runs subscriptions only: send queries and mutations over HTTP "
        "or graphql-transport-ws.",
        "extensions": {"code": Code.BAD_USER_INPUT},
    }


def _socket(context: Context) -> LiveSocket:
    assert context.socket is not None  # the view makes one for every WebSocket
    return context.socket


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (the graphql-ws library's protocol)."""

    async def handle(self) -> None:
        socket = _socket(self.context)
        socket.start(self._stop_operations)
        try:
            await super().handle()
        finally:
            await socket.finish()

    async def _stop_operations(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)

    async def handle_message(self, message: Any) -> None:
        socket = _socket(self.context)
        if socket.closing:
            return
        problem = message_problem(message, "subscribe", "complete")
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        if message["type"] == "connection_init" and message.get("payload") is None:
            message = {**message, "payload": {}}
        await super().handle_message(message)
        if message["type"] == "connection_init":
            socket.initialised = True

    async def handle_subscribe(self, message: Any) -> None:
        # Before the ack, and for an id in use, strawberry closes the socket (4401, 4409).
        if self.connection_acknowledged and message["id"] not in self.operations:
            error = await refusal(self.context, len(self.operations))
            errors = [error] if error is not None else []
            if not errors:
                payload, errors = await _resolved(self, message["payload"])
                message = {**message, "payload": payload}
            if errors:
                answer = {"id": message["id"], "type": "error", "payload": errors}
                await self.send_message(cast("transport_ws.ErrorMessage", answer))
                return
        await super().handle_subscribe(message)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """graphql-ws, the legacy subscriptions-transport-ws protocol."""

    async def handle(self) -> None:
        socket = _socket(self.context)
        socket.start(self._stop_operations)
        # strawberry has no initialisation timeout for this protocol.
        socket.init_deadline(self.context.settings.live.init_timeout)
        try:
            await super().handle()
        finally:
            await socket.finish()

    async def _stop_operations(self) -> None:
        await self.cleanup()

    async def handle_message(self, message: Any) -> None:
        socket = _socket(self.context)
        if socket.closing:
            return
        problem = message_problem(message, "start", "stop")
        if problem is not None:
            await self.websocket.close(CloseCode.BAD_MESSAGE, problem)
            return
        await super().handle_message(message)
        if message["type"] == "connection_init":
            socket.initialised = True

    async def handle_start(self, message: Any) -> None:
        operation_id = message["id"]
        if self.connection_acknowledged:
            # strawberry replaces an operation whose id is reused: it does not count.
            running = len(self.tasks) - (operation_id in self.tasks)
            error = await refusal(self.context, running)
            if error is None:
                payload, errors = await _resolved(self, message["payload"])
                message = {**message, "payload": payload}
                # The legacy protocol's error message carries one error.
                error = errors[0] if errors else _not_a_subscription(self, payload)
            if error is not None:
                answer = {"type": "error", "id": operation_id, "payload": error}
                await self.send_message(cast("legacy_ws.ErrorMessage", answer))
                return
        await super().handle_start(message)
