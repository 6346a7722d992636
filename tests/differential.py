"""The differential harness: every operation the shared test app executes runs under the fast
executor (`schema/executor.py`, what the client gets) and again under graphql-core's stock one,
and the two must give the same `data` and `errors`, compared as the JSON a client would read
(the fast path may leave values for orjson to format, so objects are not compared).

- A query runs twice: the second time with a fresh copy of the request's context (fresh
  loaders, so nothing the first run cached is reused), as the context stands after the fast
  run.
- A mutation must not run twice. While the fast run executes, what each root mutation field's
  resolver returned (or raised) is recorded; the stock run completes those same values: its
  root mutation fields "resolve" to the record, everything below them runs for real. (Both
  executors run a root mutation field through graphql-core's own `execute_field`, serially, so
  the resolver call is the same code; what differs, and is compared, is the completion.) The
  hook is a wrapper around the root field's resolver, put in through the executor's
  middleware manager for that one field (`_RootMutations`).
- The stock run logs no SQL statements (tests that count a request's statements see the fast
  run's only) and no unexpected errors (`HoldfastSchema.process_errors`): a test observes one
  run. A test that observes the second run some other way is marked `no_differential`.
- A query whose two answers differ runs both ways once more before it counts as a mismatch:
  values read from the clock (a signed media URL's expiry minute) may change between two runs
  of the same document; an executor that answers differently does so every time.

Mismatches are collected on the `Differential` and turned into a failure of the test that sent
the document (tests/conftest.py), with both answers in the message.

Where it hooks in (`installed`): at the HTTP endpoint's `runner` (`app.state.graphql_http`,
schema/http/: a `schema.runner.Runner`, wrapped in a `DifferentialRunner`). Operations over
WebSockets (strawberry's view) are not compared. The fast run records through the schema's
`execution_context_class`, looked up per request: a runner that kept its own reference to the
class from before would record nothing, and every mutation would then fail as unrecorded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from graphql import DocumentNode, GraphQLError, OperationType, get_operation_ast
from graphql.pyutils import Path
from starlette.applications import Starlette
from strawberry.types import ExecutionResult

from app.settings import Settings
from schema import HoldfastSchema, build_schema
from schema.context import Context
from schema.operations import GraphQLRequest, PreparedDocument, RequestError
from schema.runner import Runner

# What the app logs for each SQL statement (as tests/integration/test_query_counts.py counts).
STATEMENT_LOGGERS = ("tortoise.db_client", "holdfast.sql")

T = TypeVar("T")


@dataclass(slots=True)
class _Returned:
    value: Any


@dataclass(slots=True)
class _Raised:
    error: BaseException


_Outcome = _Returned | _Raised


@dataclass(slots=True)
class _Pass:
    """One run of a pair: the fast one records its root mutation fields' outcomes, the stock
    one replays them."""

    replay: bool
    quiet: bool = False  # logs no SQL statements
    outcomes: dict[str, _Outcome] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)  # replayed fields the fast run lacked


_PASS: ContextVar[_Pass | None] = ContextVar("holdfast_differential_pass", default=None)


class _Resolvers:
    """Stands in for an executor's middleware manager while one root mutation field starts:
    graphql-core asks it for the field's resolver first thing, which it hands back (as the
    real manager wraps it) wrapped once more, and puts the real manager back at once, before
    the value is completed (below the root, nothing is wrapped)."""

    def __init__(
        self, executor: Any, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
    ) -> None:
        self._executor = executor
        self._inner = executor.middleware_manager
        self._wrap = wrap

    def get_field_resolver(self, resolve: Callable[..., Any]) -> Callable[..., Any]:
        self._executor.middleware_manager = self._inner
        if self._inner:
            resolve = self._inner.get_field_resolver(resolve)
        return self._wrap(resolve)


class _RootMutations:
    """Mixed into both schemas' execution contexts: outside a differential pair (or below the
    root, or for queries) it changes nothing."""

    def execute_field(
        self,
        parent_type: Any,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        current = _PASS.get()
        if current is None or path.prev is not None or parent_type is not self.schema.mutation_type:  # type: ignore[attr-defined]
            return super().execute_field(  # type: ignore[misc]
                parent_type, source, field_details_list, path, position_context
            )
        key = str(path.key)
        wrap = (
            (lambda _resolve: _replaying(current, key))
            if current.replay
            else (lambda resolve: _recording(current, key, resolve, self.is_awaitable))  # type: ignore[attr-defined]
        )
        manager = self.middleware_manager  # type: ignore[has-type]
        self.middleware_manager = _Resolvers(self, wrap)
        try:
            return super().execute_field(  # type: ignore[misc]
                parent_type, source, field_details_list, path, position_context
            )
        finally:
            self.middleware_manager = manager


def _recording(
    current: _Pass, key: str, resolve: Callable[..., Any], is_awaitable: Callable[[Any], bool]
) -> Callable[..., Any]:
    def resolver(source: Any, info: Any, **args: Any) -> Any:
        try:
            result = resolve(source, info, **args)
        except Exception as error:
            current.outcomes[key] = _Raised(error)
            raise
        if not is_awaitable(result):
            current.outcomes[key] = _Returned(result)
            return result

        async def awaited() -> Any:
            try:
                value = await result
            except Exception as error:
                current.outcomes[key] = _Raised(error)
                raise
            current.outcomes[key] = _Returned(value)
            return value

        return awaited()

    return resolver


def _replaying(current: _Pass, key: str) -> Callable[..., Any]:
    def resolver(source: Any, info: Any, **args: Any) -> Any:
        outcome = current.outcomes.get(key)
        if outcome is None:
            current.unrecorded.append(key)
            raise RuntimeError(f"the fast run did not resolve the mutation field {key!r}")
        if isinstance(outcome, _Raised):
            raise outcome.error
        return outcome.value

    return resolver


def with_root_mutations(execution_context_class: type[Any]) -> type[Any]:
    """`execution_context_class` with the record/replay hook on root mutation fields."""
    return type(
        f"Differential{execution_context_class.__name__}",
        (_RootMutations, execution_context_class),
        {},
    )


class _NotInStockPass(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _PASS.get()
        return current is None or not current.quiet


@dataclass(frozen=True, slots=True)
class Sent:
    """What a client sent: the document, its variables and the operation's name."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None


@dataclass(slots=True)
class Mismatch:
    sent: Sent
    fast: str
    stock: str
    note: str = ""

    def __str__(self) -> str:
        return (
            f"The executors answered differently{self.note}.\n"
            f"document: {self.sent.query}\n"
            f"variables: {self.sent.variables!r}  operation: {self.sent.operation_name!r}\n"
            f"fast:  {self.fast}\nstock: {self.stock}"
        )


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as error:
        return f"<not JSON: {error}: {value!r}>"


def _errors(errors: list[GraphQLError] | None) -> list[str]:
    # In no particular order: the specification leaves it open, and the order of fields that
    # fail while others are awaited is the order they happen to finish in.
    return sorted(_json(error.formatted) for error in errors or ())


def answer(outcome: _Outcome) -> str:
    """An outcome as the client would read it: `data` and `errors` of a result, or what was
    raised (a RequestError's status and errors)."""
    if isinstance(outcome, _Raised):
        error = outcome.error
        if isinstance(error, RequestError):
            return _json({"raised": "RequestError", "status": error.status}) + str(
                _errors(error.errors)
            )
        return _json({"raised": type(error).__name__, "message": str(error)})
    result = outcome.value
    if not isinstance(result, ExecutionResult):
        return _json({"returned": type(result).__name__})
    return _json({"data": result.data}) + str(_errors(result.errors))


def _unwrap(outcome: _Outcome) -> Any:
    if isinstance(outcome, _Raised):
        raise outcome.error
    return outcome.value


def is_mutation(document: DocumentNode | None, operation_name: str | None) -> bool:
    if document is None:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.MUTATION


class Differential:
    """Runs pairs and keeps their mismatches. `enabled` off: the fast run only."""

    def __init__(self) -> None:
        self.enabled = True
        self.mismatches: list[Mismatch] = []
        self.pairs = 0  # how many operations ran both ways (the tests check it moves)
        # What the second runs cost, with the stock pipeline's parsing and validation (the
        # session's summary says).
        self.stock_seconds = 0.0

    async def run(
        self,
        fast: Callable[[Any], Awaitable[T]],
        stock: Callable[[Context], Awaitable[T]],
        context: Any,
        sent: Sent,
        *,
        mutation: bool,
    ) -> T:
        """`fast(context)`'s outcome (returned or raised), after comparing it with
        `stock(copy)`'s."""
        if not self.enabled or not isinstance(context, Context):
            return await fast(context)
        record = _Pass(replay=False)
        first = await _in_pass(record, fast, context)
        fast_answer = answer(first)
        started = time.perf_counter()
        stock_answer = answer(await self._stock(stock, context, record))
        self.pairs += 1
        if fast_answer != stock_answer and not mutation:
            again = answer(await _in_pass(_Pass(replay=False, quiet=True), fast, _copy(context)))
            if again == answer(await self._stock(stock, context, record)):
                fast_answer = stock_answer
        self.stock_seconds += time.perf_counter() - started
        if fast_answer != stock_answer:
            note = ""
            if record.unrecorded:
                note = f" (the stock run reached mutation fields {record.unrecorded} unrecorded)"
            self.mismatches.append(Mismatch(sent, fast_answer, stock_answer, note))
        return _unwrap(first)  # type: ignore[no-any-return]

    async def _stock(
        self, stock: Callable[[Context], Awaitable[T]], context: Context, record: _Pass
    ) -> _Outcome:
        replay = _Pass(
            replay=True, quiet=True, outcomes=record.outcomes, unrecorded=record.unrecorded
        )
        return await _in_pass(replay, stock, _copy(context))


def _copy(context: Context) -> Context:
    """The context as the fast run left it (a mutation may have signed a viewer in), with
    nothing it loaded: its init=False fields (the loaders) start afresh."""
    return dataclasses.replace(context)


async def _in_pass(
    current: _Pass, call: Callable[[Context], Awaitable[T]], context: Context
) -> _Outcome:
    token = _PASS.set(current)
    try:
        return _Returned(await call(context))
    except Exception as error:
        return _Raised(error)
    finally:
        _PASS.reset(token)


class DifferentialRunner:
    """The HTTP endpoint's seam (`schema.http`, `runner` attribute): `run` as `Runner.run`,
    under both runners."""

    def __init__(self, fast: Runner, stock: Runner, differential: Differential) -> None:
        self.fast = fast
        self.stock = stock
        self.differential = differential

    async def run(
        self,
        prepared: PreparedDocument,
        request: GraphQLRequest,
        context: Context,
        root_value: Any = None,
    ) -> ExecutionResult:
        # The stock runner gets the document without the fast runner's per-document plans.
        plain = dataclasses.replace(prepared, plans={})
        return await self.differential.run(
            lambda context: self.fast.run(prepared, request, context, root_value),
            lambda copy: self.stock.run(plain, request, copy, root_value),
            context,
            Sent(prepared.query, request.variables, request.operation_name),
            mutation=is_mutation(prepared.document, request.operation_name),
        )


def stock_schema(settings: Settings) -> HoldfastSchema:
    """A schema built as the app's is, on graphql-core's stock executor, quiet: its runs log
    no unexpected errors (the fast run has)."""
    graphql = settings.graphql.model_copy(update={"executor": "stock"})
    schema = build_schema(settings.model_copy(update={"graphql": graphql}))
    schema.execution_context_class = with_root_mutations(schema.execution_context_class)
    schema.process_errors = lambda errors, execution_context=None: None  # type: ignore[method-assign]
    return schema


@contextmanager
def installed(app: Starlette, settings: Settings) -> Iterator[Differential]:
    """Run every operation `app` executes over HTTP under both executors, while inside: at the
    HTTP endpoint's runner."""
    differential = Differential()
    stock = stock_schema(settings)
    endpoint = app.state.graphql_http
    fast_runner: Runner = endpoint.runner
    schema: HoldfastSchema = fast_runner.schema
    context_class = schema.execution_context_class
    schema.execution_context_class = with_root_mutations(context_class)
    endpoint.runner = DifferentialRunner(fast_runner, Runner(stock), differential)
    quiet = _NotInStockPass()
    for name in STATEMENT_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        yield differential
    finally:
        for name in STATEMENT_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
        endpoint.runner = fast_runner
        schema.execution_context_class = context_class
