"""Selections compiled to straight-line Python.

A selection of a cached operation (its fields on one object type, collected once: see
`schema.executor`) is compiled on first use into a function that completes an object of that
type field by field with no per-field dispatch: attributes read into locals, leaves checked
and coerced, objects handed to their own compiled selections, every other field given to
graphql-core's `execute_field` in its place. The function works in two phases:

1. it reads every attribute and checks every leaf and flag; nothing has started yet, so when
   anything is not certain (a missing attribute, a value the leaf's coercion refuses or turns
   into null, an `Int` outside 32 bits, a null for a non-null field) it answers BAIL and the
   executor completes the object its ordinary way, which reports errors exactly as
   graphql-core does;
2. it builds the result in the selection's order; child objects and the other fields are
   guarded as graphql-core guards a field (an error nulls the field, or reaches the parent
   for a non-null one), awaitables gathered at the end.

(../shared/PERFORMANCE.md measured this step at ~1.4x over completing fields in a loop.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphql import (
    GRAPHQL_MAX_INT,
    GRAPHQL_MIN_INT,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
)
from graphql.pyutils import Path, Undefined
from strawberry import relay
from strawberry.relay.utils import to_base64
from strawberry.schema.types.base_scalars import isoformat

if TYPE_CHECKING:
    from schema.executor import FastExecutionContext

BAIL: Any = object()

Compiled = Callable[["FastExecutionContext", Any, "Path | None", Any], Any]


def compile_selection(
    context: FastExecutionContext,
    parent_type: GraphQLObjectType,
    grouped_field_set: Any,
    plans: dict[str, Any],
    kinds: Any,
) -> Compiled:
    """The compiled completion of `grouped_field_set` on `parent_type` (see the module)."""
    from schema.executor import _is_type_of

    leaf, obj, prefetched_object, prefetched_leaf, _ordinary = kinds
    names: dict[str, Any] = {
        "Path": Path,
        "BAIL": BAIL,
        "Undefined": Undefined,
        "Node": relay.Node,
        "to_base64": to_base64,
        "is_type_of": _is_type_of,
        "parent_type": parent_type,
        "type_name": parent_type.name,
    }
    reads: list[str] = []  # phase 1
    builds: list[str] = []  # phase 2
    any_awaitable = False

    def constant(prefix: str, value: Any) -> str:
        name = f"{prefix}{len(names)}"
        names[name] = value
        return name

    for index, (response_name, field_details_list) in enumerate(grouped_field_set.items()):
        field_name = field_details_list[0].node.name.value
        plan: Any = plans.get(field_name)
        kind = plan.kind if plan is not None else _ordinary
        key = repr(response_name)
        v = f"v{index}"
        fdl = constant("fdl", field_details_list)
        ordinary = [
            f"p = Path(path, {key}, type_name)",
            f"x = context.execute_field(parent_type, source, {fdl}, p, pc)",
            "if x is not Undefined:",
            f"    result[{key}] = x",
            "    if is_awaitable(x):",
            f"        awaitable.append({key})",
        ]
        if kind in (leaf, prefetched_leaf):
            reads.append(f"{v} = source.{plan.attribute}")
            if kind == prefetched_leaf:
                reads.append(f"f{index} = source.{plan.flag} is True")
            checks = _leaf_checks(v, plan, constant)
            if kind == prefetched_leaf:
                reads.append(f"if f{index}:")
                reads.extend("    " + line for line in checks)
                builds.append(f"if f{index}:")
                builds.append(f"    result[{key}] = {v}")
                builds.append("else:")
                builds.extend("    " + line for line in ordinary)
                any_awaitable = True
            else:
                reads.extend(checks)
                builds.append(f"result[{key}] = {v}")
            continue
        if kind in (obj, prefetched_object):
            field_def = context.schema.get_field(parent_type, field_name)
            assert field_def is not None
            return_type: Any = field_def.type
            non_null = isinstance(return_type, GraphQLNonNull)
            object_type = return_type.of_type if non_null else return_type
            reads.append(f"{v} = source.{plan.attribute}")
            # graphql-core raises a value that is an exception as the field's error.
            reads.append(f"if isinstance({v}, Exception): return BAIL")
            flag_check = kind == prefetched_object
            if flag_check:
                reads.append(f"f{index} = source.{plan.flag} is True")
            if non_null:
                if kind == prefetched_object:
                    reads.append(f"if f{index} and {v} is None: return BAIL")
                else:
                    reads.append(f"if {v} is None: return BAIL")
            item_type = object_type.of_type if isinstance(object_type, GraphQLList) else None
            item_object = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
            if isinstance(item_object, GraphQLObjectType) and not any(
                details.node.directives for details in field_details_list
            ):
                # A list of objects (no @stream): completed by _complete_object_list.
                child, new_defer_usages, *_ = context.collect_subfields(
                    item_object, field_details_list
                )
                if new_defer_usages:
                    return _nothing_compiled
                ot = constant("ot", item_object)
                it = constant("it", item_type)
                rt = constant("rt", return_type)
                gfs = constant("gfs", child)
                nn = isinstance(item_type, GraphQLNonNull)
                complete = _guarded(
                    key,
                    v,
                    fdl,
                    rt,
                    f"context._inline_list({v}, {ot}, {nn})",
                    f"context._complete_object_list({v}, {ot}, {it}, {gfs}, {fdl}, p, pc)",
                )
            elif isinstance(object_type, GraphQLList) or not isinstance(
                object_type, GraphQLObjectType
            ):
                # Other lists go the way the loop takes them (graphql-core completes the list
                # and hands each item's selection back to the executor).
                complete = [
                    f"p = Path(path, {key}, type_name)",
                    f"x = context._complete_inline(parent_type, {v}, {fdl}, p, pc)",
                    f"result[{key}] = x",
                    "if is_awaitable(x):",
                    f"    awaitable.append({key})",
                ]
            else:
                child, new_defer_usages, *_ = context.collect_subfields(
                    object_type, field_details_list
                )
                if new_defer_usages:
                    return _nothing_compiled
                ot = constant("ot", object_type)
                rt = constant("rt", return_type)
                gfs = constant("gfs", child)
                complete = _guarded(
                    key,
                    v,
                    fdl,
                    rt,
                    f"is_type_of({ot}, {v})",
                    f"context.execute_fields({ot}, {v}, p, {gfs}, pc)",
                )
            if flag_check:
                builds.append(f"if f{index}:")
                builds.extend("    " + line for line in _none_or(key, v, complete))
                builds.append("else:")
                builds.extend("    " + line for line in ordinary)
            else:
                builds.extend(_none_or(key, v, complete))
            any_awaitable = True
            continue
        builds.extend(ordinary)
        any_awaitable = True

    body = ["def run(context, source, path, pc):", "    try:"]
    body.extend("        " + line for line in reads or ["pass"])
    body.append("    except Exception:")
    body.append("        return BAIL")
    body.append("    result = {}")
    if any_awaitable:
        body.append("    awaitable = []")
        body.append("    is_awaitable = context.is_awaitable")
    if any_awaitable:
        # As the loop does: when a non-null field's error reaches this object, the fields
        # already started settle in the background (they may fail too).
        body.append("    try:")
        body.extend("        " + line for line in builds)
        body.append("    except Exception:")
        body.append("        if awaitable:")
        body.append("            context.settle_in_background([result[k] for k in awaitable])")
        body.append("        raise")
    else:
        body.extend("    " + line for line in builds)
    if any_awaitable:
        body.append("    if awaitable:")
        body.append("        return context._gather(result, awaitable)")
    body.append("    return result")
    source = "\n".join(body)
    exec(compile(source, f"<selection {parent_type.name}>", "exec"), names)  # noqa: S102
    run: Compiled = names["run"]
    return run


def _guarded(key: str, v: str, fdl: str, rt: str, condition: str, call: str) -> list[str]:
    """Phase-2 lines completing an object (or list of objects) field by `call` when
    `condition` holds, guarded as graphql-core guards a field (an error nulls it, or reaches
    the parent for a non-null one, now or when awaited); else the ordinary way."""
    return [
        f"p = Path(path, {key}, type_name)",
        f"if {condition}:",
        "    try:",
        f"        x = {call}",
        "    except Exception as error:",
        f"        context.handle_field_error(error, {rt}, {fdl}, p)",
        "        x = None",
        "    else:",
        "        if is_awaitable(x):",
        f"            x = context._guard_awaitable(x, {rt}, {fdl}, p)",
        "else:",
        f"    x = context._complete_inline(parent_type, {v}, {fdl}, p, pc)",
        f"result[{key}] = x",
        "if is_awaitable(x):",
        f"    awaitable.append({key})",
    ]


def _none_or(key: str, v: str, complete: list[str]) -> list[str]:
    return [
        f"if {v} is None:",
        f"    result[{key}] = None",
        "else:",
        *("    " + line for line in complete),
    ]


def _nothing_compiled(
    context: FastExecutionContext, source: Any, path: Path | None, position_context: Any
) -> Any:
    return BAIL


def _leaf_checks(
    v: str,
    plan: Any,
    constant: Callable[[str, Any], str],
    *,
    type_name: str = "type_name",
    from_rows: bool = False,
) -> list[str]:
    """Phase-1 lines that leave in `v` the completed value of a leaf, or return BAIL (the rule
    of `schema.executor._leaf`, as code). `type_name`: the expression naming the parent type.
    `from_rows`: `v` is a database column's value (schema.rowplan's page plans), never an
    exception nor a relay.Node's, and a UTC datetime is left for orjson, which writes exactly
    its isoformat() (tests/unit/test_row_plans.py holds orjson to that)."""
    inner = []
    if not from_rows:
        # graphql-core raises a value that is an exception as the field's error.
        inner.append(f"if isinstance({v}, Exception): return BAIL")
    if plan.global_id:
        if not from_rows:
            inner.append("if isinstance(source, Node): return BAIL")
        inner.append(f"{v} = to_base64({type_name}, {v})")
    coerce = constant("coerce", plan.coerce)
    passthrough = constant("passthrough", plan.passthrough)
    if from_rows and isoformats(plan):
        moment, utc = constant("datetime", datetime), constant("utc", UTC)
        inner.append(f"if type({v}) is not {moment} or {v}.tzinfo is not {utc}:")
    elif plan.is_int:
        inner.append(
            f"if type({v}) is not {passthrough} "
            f"or not {GRAPHQL_MIN_INT} <= {v} <= {GRAPHQL_MAX_INT}:"
        )
    else:
        inner.append(f"if type({v}) is not {passthrough}:")
    inner.append(f"    {v} = {coerce}({v})")
    inner.append(f"    if {v} is None or {v} is Undefined: return BAIL")
    if plan.non_null:
        return [f"if {v} is None: return BAIL", *inner]
    return [f"if {v} is not None:", *("    " + line for line in inner)]


def isoformats(plan: Any) -> bool:
    """Whether a leaf's scalar serializes a value by its `isoformat()` (strawberry's
    DateTime, Date and Time)."""
    return plan.coerce is isoformat
