"""An execution context that completes cheap fields inline.

graphql-core spends several microseconds on every field it resolves: a path entry, a resolve
info, the resolver call (through strawberry's wrappers) and value completion. Most fields of a
timeline page are plain attributes of prefetched data, so for each field of each type we plan
once how to produce it:

- LEAF: a scalar or enum attribute with no arguments and no resolver: read and serialize it
  (a `str`, `int` or `bool` that is already of its output type is used as is); a Relay `id`
  is made from the type name and the attribute;
- OBJECT: an object (or list of objects) attribute with no resolver: read it and complete it,
  without calling a resolver;
- PREFETCHED: a field whose resolver only loads what a page may already carry declares
  `metadata={PREFETCHED: (flag, attribute)}`; when the source's `flag` is true, its
  `attribute` is used as above (leaf or object), else the resolver runs;
- anything else takes graphql-core's ordinary path, and so does any value that would be an
  error, so errors are reported exactly as before.

(../shared/PERFORMANCE.md measured this kind of executor at roughly 3x on a timeline page.)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.compiled import BAIL, Compiled, compile_selection

PREFETCHED = "holdfast.prefetched"

LEAF, OBJECT, PREFETCHED_OBJECT, PREFETCHED_LEAF, ORDINARY = range(5)

# Values already of these types are their own output (graphql-core's coerce_output_value
# returns them unchanged); an `Int` is used as is only inside GraphQL's 32-bit range.
_PASSTHROUGH: dict[str, type] = {"String": str, "ID": str, "Int": int, "Boolean": bool}


class _Plan(NamedTuple):
    kind: int
    attribute: str = ""
    coerce: Callable[[Any], Any] | None = None
    passthrough: type | None = None
    non_null: bool = False
    global_id: bool = False
    flag: str = ""
    is_int: bool = False


_ORDINARY = _Plan(ORDINARY)
# By object type, weakly: the types of schemas no longer used (tests build many) go.
_plans: weakref.WeakKeyDictionary[GraphQLObjectType, dict[str, _Plan]] = weakref.WeakKeyDictionary()


def _reads_attribute(field_def: Any, definition: Any) -> bool:
    """Whether graphql-core would resolve the field exactly by `getattr(source, python_name)`:
    strawberry's resolver for a field without a resolver, extensions or exception handlers,
    under the default `getattr` resolver."""
    resolve = field_def.resolve
    return (
        definition.is_basic_field
        and definition.default_resolver is getattr
        and getattr(resolve, "__name__", "") == "_get_basic_result"
    )


def _global_id_attribute(parent_type: GraphQLObjectType, definition: Any) -> str | None:
    """For strawberry.relay.Node's `id` field: the attribute its `resolve_id` reads, when the
    type keeps Node's own `resolve_id` and `resolve_typename` (then the id is base64 of
    "<TypeName>:<str(attribute)>"); None when either is overridden."""
    origin = parent_type.extensions.get("strawberry-definition")
    cls = getattr(origin, "origin", None)
    if not (isinstance(cls, type) and issubclass(cls, relay.Node)):
        return None
    if getattr(definition, "python_name", None) != "_id":
        return None
    if (
        cls.resolve_id.__func__ is not relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
        or cls.resolve_typename.__func__ is not relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
    ):
        return None
    return cls.resolve_id_attr()


def _make_plan(schema: Any, parent_type: GraphQLObjectType, field_name: str) -> _Plan:
    field_def = schema.get_field(parent_type, field_name)
    if field_def is None or field_def.args:
        return _ORDINARY
    definition = field_def.extensions.get("strawberry-definition")
    if definition is None or definition.extensions:
        return _ORDINARY
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    named: Any = get_named_type(return_type)
    is_leaf = isinstance(named, (GraphQLScalarType, GraphQLEnumType))
    if is_leaf and named is not (return_type.of_type if non_null else return_type):
        return _ORDINARY  # a list of leaves
    passthrough = _PASSTHROUGH.get(named.name) if isinstance(named, GraphQLScalarType) else None
    is_int = named.name == "Int" and isinstance(named, GraphQLScalarType)
    prefetched = definition.metadata.get(PREFETCHED)
    if prefetched is not None and is_leaf:
        return _Plan(
            PREFETCHED_LEAF,
            prefetched[1],
            named.coerce_output_value,
            passthrough,
            non_null,
            flag=prefetched[0],
            is_int=is_int,
        )
    if prefetched is not None:
        if not isinstance(named, GraphQLObjectType):
            return _ORDINARY
        return _Plan(PREFETCHED_OBJECT, attribute=prefetched[1], flag=prefetched[0])
    if is_leaf:
        if field_name == "id":
            attribute = _global_id_attribute(parent_type, definition)
            if attribute is not None:
                return _Plan(LEAF, attribute, named.coerce_output_value, str, non_null, True)
        if not _reads_attribute(field_def, definition):
            return _ORDINARY
        return _Plan(
            LEAF,
            definition.python_name,
            named.coerce_output_value,
            passthrough,
            non_null,
            is_int=is_int,
        )
    if isinstance(named, GraphQLObjectType) and _reads_attribute(field_def, definition):
        return _Plan(OBJECT, definition.python_name, non_null=non_null)
    return _ORDINARY


def _plans_for(schema: Any, parent_type: GraphQLObjectType) -> dict[str, _Plan]:
    plans = _plans.get(parent_type)
    if plans is None:
        plans = _plans[parent_type] = {
            name: _make_plan(schema, parent_type, name) for name in parent_type.fields
        }
    return plans


class _OperationCache:
    """What is worked out once per operation of a cached document instead of per request:
    whether its @skip/@include read variables (then its selections are collected per request
    as usual), its sub-selections collected (by type and field nodes), and what they compiled
    to (schema.compiled). Kept while the operation's AST lives (the document caches decide
    that), so no cache of its own can grow past theirs."""

    __slots__ = ("collected", "compiled", "selections", "static")

    def __init__(self, static: bool) -> None:
        self.static = static
        self.collected: dict[tuple[int, tuple[int, ...]], Any] = {}
        # Collected selections (grouped field sets) by id; the values keep them alive.
        self.selections: dict[int, Any] = {}
        self.compiled: dict[tuple[int, int], Compiled] = {}


# By id(operation): an entry goes when its operation is freed (weakref.finalize), before its
# id can be reused.
_operations: dict[int, _OperationCache] = {}


def _operation_cache(operation: Any, fragments: Any) -> _OperationCache:
    cache = _operations.get(id(operation))
    if cache is None:
        cache = _operations[id(operation)] = _OperationCache(_is_static(operation, fragments))
        weakref.finalize(operation, _operations.pop, id(operation), None)
    return cache


def _is_static(operation: Any, fragments: Any) -> bool:
    """Whether no @skip or @include in the operation or its fragments reads a variable."""
    for root in (operation, *(details.definition for details in fragments.values())):
        for node in _walk(root):
            if (
                getattr(node, "kind", "") == "directive"
                and node.name.value in ("skip", "include")
                and any(arg.value.kind == "variable" for arg in node.arguments)
            ):
                return False
    return True


def _walk(node: Any) -> Any:
    from graphql.language import Node

    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for key in current.keys:
            value = getattr(current, key, None)
            if isinstance(value, Node):
                stack.append(value)
            elif isinstance(value, tuple | list):
                stack.extend(item for item in value if isinstance(item, Node))


_UNSURE: Any = object()  # a leaf the shortcut does not complete: take the ordinary path


def _leaf(plan: _Plan, source: Any, type_name: str) -> Any:
    """The completed value of a LEAF field of `source`, or _UNSURE wherever graphql-core could
    answer otherwise (a missing attribute, a value its coercion refuses or turns into null,
    an `Int` outside 32 bits, a relay.Node instance that may resolve its own id)."""
    try:
        value = getattr(source, plan.attribute)
    except Exception:
        return _UNSURE
    if value is None:
        return _UNSURE if plan.non_null else None
    if isinstance(value, Exception):  # graphql-core raises it as the field's error
        return _UNSURE
    if plan.global_id:
        if isinstance(source, relay.Node):
            return _UNSURE
        value = to_base64(type_name, value)
    if type(value) is plan.passthrough and (
        not plan.is_int or GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT  # type: ignore[operator]
    ):
        return value
    try:
        coerced = plan.coerce(value)  # type: ignore[misc]
    except Exception:
        return _UNSURE
    if coerced is None or coerced is Undefined:
        return _UNSURE
    return coerced


def _is_type_of(object_type: GraphQLObjectType, value: Any) -> bool:
    """Whether `value` is surely of `object_type`. Asked without a resolve info (building one
    is the per-field cost this module saves): a check that needs it, fails or answers
    anything but True sends the value the ordinary way, which asks again with an info."""
    is_type_of = object_type.is_type_of
    if is_type_of is None:
        return True
    try:
        return is_type_of(value, None) is True  # type: ignore[arg-type]
    except Exception:
        return False


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def _cache(self) -> _OperationCache:
        cache: _OperationCache | None = self.__dict__.get("_holdfast_cache")
        if cache is None:
            cache = self.__dict__["_holdfast_cache"] = _operation_cache(
                self.operation, self.fragments
            )
        return cache

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> Any:
        cache = self._cache()
        if not cache.static or self.fragment_variable_values_in_use(field_details_list):
            return super().collect_subfields(return_type, field_details_list)
        key = (id(return_type), tuple(id(details.node) for details in field_details_list))
        cached = cache.collected.get(key)
        if cached is not None:
            return cached[1]
        collected = super().collect_subfields(return_type, field_details_list)
        # The field lists and type stay alive with the entry, so the ids in its key do too.
        cache.collected[key] = ((return_type, field_details_list), collected)
        cache.selections[id(collected[0])] = collected[0]
        return collected

    @staticmethod
    def fragment_variable_values_in_use(field_details_list: Any) -> bool:
        return any(d.fragment_variable_values is not None for d in field_details_list)

    def _inlines(self) -> bool:
        """Whether fields may be completed inline: not when graphql-core middleware wraps the
        resolvers (a strawberry schema extension with a `resolve` hook, e.g. tracing or
        metrics), which must see every field."""
        inlines: bool | None = self.__dict__.get("_holdfast_inlines")
        if inlines is None:
            manager = self.middleware_manager
            inlines = manager is None or not manager.middlewares
            self.__dict__["_holdfast_inlines"] = inlines
        return inlines

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if not self._inlines():
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        cache = self._cache()
        if id(grouped_field_set) in cache.selections:
            key = (id(parent_type), id(grouped_field_set))
            run = cache.compiled.get(key)
            if run is None:
                run = cache.compiled[key] = compile_selection(
                    self,
                    parent_type,
                    grouped_field_set,
                    _plans_for(self.schema, parent_type),
                    (LEAF, OBJECT, PREFETCHED_OBJECT, PREFETCHED_LEAF, ORDINARY),
                )
            completed = run(self, source_value, path, position_context)
            if completed is not BAIL:
                return completed
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            self._execute_into(
                results,
                awaitable_fields,
                parent_type,
                source_value,
                path,
                grouped_field_set,
                position_context,
            )
        except Exception:
            if awaitable_fields:
                # Let the fields already started settle: they may fail too.
                self.settle_in_background([results[f] for f in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return self._gather(results, awaitable_fields)

    def _execute_into(
        self,
        results: dict[str, Any],
        awaitable_fields: list[str],
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> None:
        is_awaitable = self.is_awaitable
        plans = _plans_for(self.schema, parent_type)
        type_name = parent_type.name
        for response_name, field_details_list in grouped_field_set.items():
            plan = plans.get(field_details_list[0].node.name.value, _ORDINARY)
            kind = plan.kind
            if kind == PREFETCHED_LEAF:
                kind = LEAF if getattr(source_value, plan.flag, False) is True else ORDINARY
            elif kind == PREFETCHED_OBJECT:
                kind = OBJECT if getattr(source_value, plan.flag, False) is True else ORDINARY
            if kind == LEAF:
                value = _leaf(plan, source_value, type_name)
                if value is not _UNSURE:
                    results[response_name] = value
                    continue
            elif kind == OBJECT:
                try:
                    value = getattr(source_value, plan.attribute)
                except Exception:  # the ordinary path reports it
                    value = _UNSURE
                if isinstance(value, Exception):  # graphql-core raises it as the field's error
                    value = _UNSURE
                if value is not _UNSURE and (value is not None or not plan.non_null):
                    result = self._complete_inline(
                        parent_type,
                        value,
                        field_details_list,
                        Path(path, response_name, type_name),
                        position_context,
                    )
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
                    continue
            # Anything else, and anything that would be an error, the ordinary way: errors
            # are reported exactly as graphql-core reports them.
            result = self.execute_field(
                parent_type,
                source_value,
                field_details_list,
                Path(path, response_name, type_name),
                position_context,
            )
            if result is not Undefined:
                results[response_name] = result
                if is_awaitable(result):
                    awaitable_fields.append(response_name)

    def _complete_inline(
        self,
        parent_type: GraphQLObjectType,
        value: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        if value is None:
            return None
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        assert field_def is not None
        object_type = field_def.type
        if isinstance(object_type, GraphQLNonNull):
            object_type = object_type.of_type
        if isinstance(object_type, GraphQLObjectType) and _is_type_of(object_type, value):
            # One object: straight to its fields.
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(
                object_type, field_details_list
            )
            if not new_defer_usages:
                return self._execute_guarded(
                    field_def.type,
                    field_details_list,
                    path,
                    lambda: self.execute_fields(
                        object_type, value, path, grouped_field_set, position_context
                    ),
                )
        info = self.build_resolve_info(
            field_def, [d.node for d in field_details_list], parent_type, path
        )
        return self._execute_guarded(
            field_def.type,
            field_details_list,
            path,
            lambda: self.complete_value(
                field_def.type, field_details_list, info, path, value, position_context
            ),
        )

    def _execute_guarded(
        self, return_type: Any, field_details_list: Any, path: Path, run: Callable[[], Any]
    ) -> Any:
        """Run `run` as graphql-core runs a field: an error nulls this field (or, for a
        non-null one, propagates to the parent), now or when an awaited result fails."""
        try:
            result = run()
        except Exception as error:
            self.handle_field_error(error, return_type, field_details_list, path)
            return None
        if not self.is_awaitable(result):
            return result
        return self._guard_awaitable(result, return_type, field_details_list, path)

    def _inline_list(self, items: Any, object_type: GraphQLObjectType, non_null: bool) -> bool:
        """Whether a list of objects can be completed by _complete_object_list: a list (not
        another iterable), no awaitable item, no null where the items are non-null, every
        item surely of the type. Asked before anything starts."""
        if type(items) is not list:
            return False
        is_awaitable = self.is_awaitable
        for item in items:
            if item is None:
                if non_null:
                    return False
            elif is_awaitable(item) or not _is_type_of(object_type, item):
                return False
        return True

    def _complete_object_list(
        self,
        items: list[Any],
        object_type: GraphQLObjectType,
        item_type: Any,
        grouped_field_set: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        """graphql-core's completion of a list of objects (complete_iterable_value and
        complete_list_item_value) without resolve infos or per-item dispatch: each item's
        selection goes to execute_fields, its errors handled as an item's."""
        is_awaitable = self.is_awaitable
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                if item is None:
                    completed.append(None)
                    continue
                item_path = Path(path, index, None)
                try:
                    value = self.execute_fields(
                        object_type, item, item_path, grouped_field_set, position_context
                    )
                except Exception as error:
                    self.handle_field_error(error, item_type, field_details_list, item_path)
                    value = None
                else:
                    if is_awaitable(value):
                        value = self._guard_awaitable(
                            value, item_type, field_details_list, item_path
                        )
                        awaitable_indices.append(index)
                completed.append(value)
        except Exception:
            if awaitable_indices:
                self.settle_in_background([completed[i] for i in awaitable_indices])
            raise
        if not awaitable_indices:
            return completed
        return self._gather_list(completed, awaitable_indices)

    async def _gather_list(self, completed: list[Any], indices: list[int]) -> list[Any]:
        if len(indices) == 1:
            completed[indices[0]] = await completed[indices[0]]
            return completed
        awaited = await gather_with_cancel(*(completed[i] for i in indices))
        for index, value in zip(indices, awaited, strict=True):
            completed[index] = value
        return completed

    def _guard_awaitable(
        self, result: Any, return_type: Any, field_details_list: Any, path: Path
    ) -> Any:
        """`result` awaited as graphql-core awaits a field: an error nulls the field (or, for
        a non-null one, propagates to the parent)."""

        async def await_result() -> Any:
            try:
                return await result
            except Exception as error:
                self.handle_field_error(error, return_type, field_details_list, path)
                return None

        return await_result()

    async def _gather(self, results: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        if len(fields) == 1:
            results[fields[0]] = await results[fields[0]]
            return results
        awaited = await gather_with_cancel(*(results[f] for f in fields))
        results.update(zip(fields, awaited, strict=True))
        return results


class _Quiet:
    """In production: no "Did you mean ...?" in errors about variables and fields, so that
    error messages do not spell out the schema when introspection is off."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)  # type: ignore[misc]


class QuietExecutionContext(_Quiet, FastExecutionContext):
    pass


class QuietStockExecutionContext(_Quiet, StrawberryGraphQLCoreExecutionContext):
    pass


def execution_context_class(executor: str, *, production: bool) -> type[Any]:
    """The execution context of the `graphql.executor` setting: "fast" (this module) or
    "stock" (graphql-core's, through strawberry)."""
    if executor == "stock":
        return QuietStockExecutionContext if production else StrawberryGraphQLCoreExecutionContext
    return QuietExecutionContext if production else FastExecutionContext
