"""An execution context that completes trivial fields inline.

graphql-core spends several microseconds on every field it resolves: a path entry, a resolve
info, the resolver call and value completion. Most fields of a timeline page are plain
attributes of prefetched data with a scalar or enum type, so for those (no arguments, no
resolver of their own, no field extensions) we read the attribute and serialize it directly.
Anything else, and any value that would be an error, takes graphql-core's ordinary path.
(../shared/PERFORMANCE.md measured this at roughly 3x on a timeline page.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.relay.utils import to_base64
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# What to do for one field of one type: read `attribute` and serialize it with `serialize`;
# `global_id` marks a Relay `id`, made from the type name and the attribute.
_Plan = tuple[str, Callable[[Any], Any], bool, bool]  # attribute, serialize, non_null, global_id

# A field whose resolver only fetches what a page may already have prefetched declares
# `metadata={PREFETCHED: (flag, attribute)}`: when the source's `flag` is true, the value is
# its `attribute`, completed without calling the resolver.
PREFETCHED = "holdfast.prefetched"

_NOT_TRIVIAL = None
_plans: dict[tuple[int, str], _Plan | None] = {}


def _plan_for(schema: Any, parent_type: GraphQLObjectType, field_name: str) -> _Plan | None:
    key = (id(parent_type), field_name)
    try:
        return _plans[key]
    except KeyError:
        pass
    plan = _make_plan(schema, parent_type, field_name)
    _plans[key] = plan
    return plan


def _make_plan(schema: Any, parent_type: GraphQLObjectType, field_name: str) -> _Plan | None:
    field_def = schema.get_field(parent_type, field_name)
    if field_def is None or field_def.args:
        return _NOT_TRIVIAL
    definition = field_def.extensions.get("strawberry-definition")
    if definition is None or definition.extensions:
        return _NOT_TRIVIAL
    return_type = field_def.type
    non_null = isinstance(return_type, GraphQLNonNull)
    leaf = return_type.of_type if non_null else return_type
    if not isinstance(leaf, (GraphQLScalarType, GraphQLEnumType)):
        return _NOT_TRIVIAL
    if definition.python_name == "_id" and field_name == "id":
        # strawberry.relay.Node's `id`: base64 of "<TypeName>:<id>".
        return ("id", leaf.serialize, non_null, True)
    if not definition.is_basic_field:
        return _NOT_TRIVIAL
    return (definition.python_name, leaf.serialize, non_null, False)


_prefetched: dict[tuple[int, str], tuple[str, str] | None] = {}


def _prefetched_for(
    schema: Any, parent_type: GraphQLObjectType, field_name: str
) -> tuple[str, str] | None:
    key = (id(parent_type), field_name)
    try:
        return _prefetched[key]
    except KeyError:
        pass
    field_def = schema.get_field(parent_type, field_name)
    definition = field_def.extensions.get("strawberry-definition") if field_def else None
    found = definition.metadata.get(PREFETCHED) if definition is not None else None
    _prefetched[key] = found if field_def is not None and not field_def.args else None
    return _prefetched[key]


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
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
        schema = self.schema
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            plan = None if node.arguments else _plan_for(schema, parent_type, node.name.value)
            if plan is None:
                prefetched = _prefetched_for(schema, parent_type, node.name.value)
                if prefetched is not None and getattr(source_value, prefetched[0], False):
                    field_path = Path(path, response_name, parent_type.name)
                    result = self._complete_prefetched(
                        parent_type,
                        getattr(source_value, prefetched[1]),
                        field_details_list,
                        field_path,
                        position_context,
                    )
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
                    continue
            if plan is not None:
                attribute, serialize, non_null, global_id = plan
                value = getattr(source_value, attribute, None)
                if value is not None:
                    try:
                        if global_id:
                            value = to_base64(parent_type.name, value)
                        results[response_name] = serialize(value)
                        continue
                    except Exception:  # noqa: S110  (the ordinary path reports it properly)
                        pass
                elif not non_null:
                    results[response_name] = None
                    continue
            field_path = Path(path, response_name, parent_type.name)
            result = self.execute_field(
                parent_type, source_value, field_details_list, field_path, position_context
            )
            if result is not Undefined:
                results[response_name] = result
                if is_awaitable(result):
                    awaitable_fields.append(response_name)

    def _complete_prefetched(
        self,
        parent_type: GraphQLObjectType,
        value: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        assert field_def is not None
        info = self.build_resolve_info(
            field_def, [d.node for d in field_details_list], parent_type, path
        )
        try:
            completed = self.complete_value(
                field_def.type, field_details_list, info, path, value, position_context
            )
        except Exception as error:
            self.handle_field_error(error, field_def.type, field_details_list, path)
            return None
        return completed

    async def _gather(self, results: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        if len(fields) == 1:
            results[fields[0]] = await results[fields[0]]
            return results
        awaited = await gather_with_cancel(*(results[f] for f in fields))
        results.update(zip(fields, awaited, strict=True))
        return results
