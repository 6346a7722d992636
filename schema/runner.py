"""Runs a prepared document's operation for the HTTP endpoint.

With the fast executor and no schema extensions beyond our own document guard (whose parse
and validation the prepared document already holds), the operation goes straight to
graphql-core's `execute` with the prepared document: strawberry's per-request extension
machinery has nothing to do. Otherwise (the stock executor, or an extension such as tracing
that must see the operation) it runs through strawberry's `Schema.execute`, as it always did.
Either way errors are logged and masked the same way (`HoldfastSchema.process_errors`,
`schema.document.public_error`).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
)
from strawberry.execution import optimized_is_awaitable
from strawberry.types import ExecutionResult

from schema.document import Code, public_error
from schema.executor import FastExecutionContext
from schema.operations import GraphQLRequest, PreparedDocument, RequestError
from schema.rowplan import RowPlan, row_plan

if TYPE_CHECKING:
    from schema import HoldfastSchema
    from schema.context import Context


# A query field whose resolver checks the viewer's session in its own statement declares
# `metadata={SESSION_FOLDED: True}`: with the token's verified claims in the context and no
# viewer yet, it runs one statement that yields nothing unless the session is open (and
# answers NOT_AUTHENTICATED then, as an unchecked viewer would get), and sets the viewer.
# An operation whose one root field does so skips the separate session check.
SESSION_FOLDED = "holdfast.session_folded"


def _request_error(
    message: str, status: int = 400, code: str = Code.BAD_USER_INPUT
) -> RequestError:
    return RequestError([GraphQLError(message, extensions={"code": code})], status)


def refused_over_get(
    operation: OperationDefinitionNode, request: GraphQLRequest
) -> RequestError | None:
    """spec "GET": a GET may run a query only; anything else is refused with 405."""
    if request.http_method == "GET" and operation.operation is not OperationType.QUERY:
        return _request_error("Only queries may be sent with GET; use POST.", 405)
    return None


class Runner:
    def __init__(self, schema: HoldfastSchema) -> None:
        self.schema = schema

    @property
    def lean(self) -> bool:
        """Straight through graphql-core (see the module) only with the fast executor and when
        the schema's extensions are our document guard alone; asked per request, so that an
        extension added after this runner was made still sees every operation."""
        schema = self.schema
        return issubclass(schema.execution_context_class, FastExecutionContext) and (
            tuple(schema.extensions) == (schema.guard,)
        )

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
        refused = refused_over_get(operation, request)
        if refused is not None:
            raise refused
        if operation.operation is OperationType.SUBSCRIPTION and request.http_method is not None:
            raise _request_error("Subscriptions run over a WebSocket (graphql-transport-ws).")
        folded = self._folds_session(prepared, operation)
        if context.claims is not None and not folded:
            await context.sign_in()
        if self.lean:
            # A page plan reads its page with the session check folded in (schema.rowplan).
            plan = self._row_plan(prepared, operation) if folded else None
            if plan is not None:
                data = await plan.run(self.schema._schema, context, request.variables)
                if data is not None:
                    return ExecutionResult(data=data, errors=None)
            return await self._execute(prepared, request, context, root_value)
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

    async def _execute(
        self,
        prepared: PreparedDocument,
        request: GraphQLRequest,
        context: Context,
        root_value: Any,
    ) -> ExecutionResult:
        assert prepared.document is not None
        outcome: Any = execute(
            self.schema._schema,
            prepared.document,
            root_value=root_value,
            context_value=context,
            variable_values=request.variables,
            operation_name=request.operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            executor_class=self.schema.execution_context_class,
        )
        if inspect.isawaitable(outcome):
            outcome = await outcome
        errors = outcome.errors
        if errors:
            if outcome.data is None and all(error.path is None for error in errors):
                # Nothing ran: the variables did not coerce (errors about fields have a path).
                raise RequestError([public_error(error) for error in errors])
            self.schema.process_errors(errors)
            errors = [public_error(error) for error in errors]
        return ExecutionResult(data=outcome.data, errors=errors)

    def _row_plan(
        self, prepared: PreparedDocument, operation: OperationDefinitionNode
    ) -> RowPlan | None:
        """The operation's page plan (schema.rowplan), compiled once per operation of a
        prepared document; None when it has none."""
        key = ("row plan", id(operation))
        if key not in prepared.plans:
            assert prepared.document is not None
            prepared.plans[key] = row_plan(self.schema._schema, prepared.document, operation)
        plan: RowPlan | None = prepared.plans[key]
        return plan

    def _folds_session(
        self, prepared: PreparedDocument, operation: OperationDefinitionNode
    ) -> bool:
        """Whether every root field of the operation checks the session itself (see
        SESSION_FOLDED); decided once per operation of a prepared document."""
        key = ("folds session", id(operation))
        folds: bool | None = prepared.plans.get(key)
        if folds is None:
            folds = prepared.plans[key] = self._all_fold(operation)
        return folds

    def _all_fold(self, operation: OperationDefinitionNode) -> bool:
        """One plain root field that folds the check (and `__typename`s): two root fields run
        concurrently, and only one statement may sign the request in."""
        query_type = self.schema._schema.query_type
        if operation.operation is not OperationType.QUERY or query_type is None:
            return False
        fields = []
        for selection in operation.selection_set.selections:
            # Plain fields only: a fragment or a directive could change what runs.
            if not isinstance(selection, FieldNode) or selection.directives:
                return False
            if selection.name.value != "__typename":
                fields.append(selection.name.value)
        if len(fields) != 1:
            return False
        field = query_type.fields.get(fields[0])
        definition = field.extensions.get("strawberry-definition") if field else None
        return definition is not None and definition.metadata.get(SESSION_FOLDED) is True
