"""Runs a prepared document's operation for the HTTP endpoint.

(First version: through strawberry's `Schema.execute`; the fast path for prepared operations
replaces its inside, not its contract.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationType, get_operation_ast
from strawberry.types import ExecutionResult

from schema.document import Code, public_error
from schema.operations import GraphQLRequest, PreparedDocument, RequestError

if TYPE_CHECKING:
    from schema import HoldfastSchema
    from schema.context import Context


def _request_error(
    message: str, status: int = 400, code: str = Code.BAD_USER_INPUT
) -> RequestError:
    return RequestError([GraphQLError(message, extensions={"code": code})], status)


class Runner:
    def __init__(self, schema: HoldfastSchema) -> None:
        self.schema = schema

    async def run(
        self,
        prepared: PreparedDocument,
        request: GraphQLRequest,
        context: Context,
        root_value: Any = None,
    ) -> ExecutionResult:
        """The result of the request's operation. Raises RequestError when it cannot run: the
        document is invalid, names no such operation, the variables do not coerce, or a GET
        asks for anything but a query (status 405)."""
        if prepared.errors or prepared.document is None:
            raise RequestError([public_error(error) for error in prepared.errors])
        operation = get_operation_ast(prepared.document, request.operation_name)
        if operation is None:
            if request.operation_name:
                raise _request_error(f"Unknown operation named '{request.operation_name}'.")
            raise _request_error(
                "Must provide operation name if query contains multiple operations."
            )
        if request.http_method == "GET" and operation.operation is not OperationType.QUERY:
            raise _request_error("Only queries may be sent with GET; use POST.", 405)
        if operation.operation is OperationType.SUBSCRIPTION and request.http_method is not None:
            raise _request_error("Subscriptions run over a WebSocket (graphql-transport-ws).")
        result = await self.schema.execute(
            prepared.query,
            variable_values=request.variables,
            context_value=context,
            root_value=root_value,
            operation_name=request.operation_name,
        )
        if result.data is None and result.errors and all(e.path is None for e in result.errors):
            # Nothing ran: the variables did not coerce (errors about fields have a path).
            raise RequestError(result.errors)
        return result
