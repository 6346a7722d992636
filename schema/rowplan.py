"""Page plans: a cached query over a page of posts answered straight from its database rows.

A query whose one root field is a connection that declares `metadata={ROW_PAGE: RowPage(...)}`
(the home timeline) and whose selection reads only what a page row carries (the posts'
fields, their authors, the replied-to and quoted posts, the reposter, the cursors and the
page info) is compiled once per operation of a prepared document into one function from the
rows to the answer's `data`: no intermediate PostView objects, no per-field completion, and a
statement that selects only the columns the selection reads.

It answers exactly what graphql-core's executor would, or not at all:
- what a field is comes from the fast executor's own field plans (`schema.executor`): only
  fields graphql-core would resolve by reading an attribute are compiled, leaves are checked
  and coerced as that executor checks them (`_leaf` and `schema.compiled`), and which column
  gives which attribute is `app.services.views`' one reading of a row (`ACCOUNT_READS`,
  `POST_READS`, `PAGE_OBJECTS`), the one `post_from_row` uses;
- a document with any directive, a fragment with variables, a field with arguments below the
  root, or a field it does not know gets no plan (None): the ordinary path runs it;
- at run time anything uncertain (variables or arguments that do not coerce, arguments the
  page refuses, no open session, a value a leaf's coercion refuses, an `Int` outside 32 bits,
  a null where the schema says non-null) answers None before or instead of an answer, and the
  runner takes the ordinary path, which reports it as graphql-core does. Nothing the plan did
  has an effect by then but one read.

The differential harness (tests/differential.py) runs every query the suite sends under
graphql-core's stock executor too, and tests/integration/test_executor_differential.py
generates selections; both reach these plans.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationDefinitionNode,
    OperationType,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Undefined
from strawberry.relay.utils import to_base64

from app.services.paging import Page
from app.services.views import Read
from app.sql import Row
from schema.compiled import BAIL, _leaf_checks
from schema.executor import LEAF, OBJECT, PREFETCHED_LEAF, PREFETCHED_OBJECT, _Plan, _plans_for
from schema.paging import page_info

if TYPE_CHECKING:
    from graphql import DocumentNode, GraphQLSchema

    from schema.context import Context

log = logging.getLogger("holdfast.graphql.rowplan")

ROW_PAGE = "holdfast.row_page"

Rows = Page[Row]


@dataclass(frozen=True, slots=True)
class RowView:
    """How a GraphQL object type is read from a page row: each attribute's column
    (`reads`), the related objects' row prefixes (`objects`: attribute -> (type name, prefix
    added to the object's own)), and the prefetch flags (`schema.executor.PREFETCHED`) that
    such rows answer: `flags` maps a flag to the column that is not NULL when it holds
    (None: it always holds), for the page's own post (prefix "") only."""

    reads: Mapping[str, Read]
    objects: Mapping[str, tuple[str, str]]
    flags: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class RowPage:
    """A root connection field answered from rows: `fetch(context, arguments, columns)` loads
    its page (arguments by their GraphQL names; only the row columns named in `columns`, and
    the page's keys), None when it cannot (the ordinary path runs the field then); `views`
    reads the types of its nodes, by GraphQL type name; `node` is the node type's name and
    `edge` says where each other object field of an edge is in a row (attribute -> (type
    name, prefix)). The field also folds the session check (schema.runner SESSION_FOLDED):
    the runner tries a plan only when the check is left to it, and `fetch` makes it."""

    fetch: Callable[[Context, dict[str, Any], frozenset[str]], Awaitable[Rows | None]]
    views: Mapping[str, RowView]
    node: str
    edge: Mapping[str, tuple[str, str]]


class _NoPlan(Exception):
    """The selection reads something a row plan does not answer."""


_NO_VARIABLES = VariableValues({}, {})


@dataclass(frozen=True, slots=True)
class RowPlan:
    page: RowPage
    field_def: GraphQLField
    field_node: FieldNode
    operation: OperationDefinitionNode
    columns: frozenset[str]
    build: Callable[[Rows], Any]
    # The root field's arguments when the operation declares no variables (they are its
    # literals then: coerced once, here); None: coerced per request.
    arguments: dict[str, Any] | None

    async def run(
        self, schema: GraphQLSchema, context: Context, variables: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The operation's `data`, or None: the ordinary path must run it (see the module)."""
        arguments = self.arguments
        if arguments is None:
            coerced = get_variable_values(
                schema, self.operation.variable_definitions or (), variables or {}
            )
            if isinstance(coerced, list):
                return None
            try:
                arguments = get_argument_values(self.field_def, self.field_node, coerced)
            except GraphQLError:
                return None
        try:
            rows = await self.page.fetch(context, arguments, self.columns)
        except Exception:
            # The ordinary path reads again, and reports a failure as graphql-core does (the
            # field's error, with its path); this one is logged, so that a plan's statement
            # that keeps failing cannot hide behind a second read that succeeds.
            log.warning("a page plan's read failed; the ordinary path reads again", exc_info=True)
            return None
        if rows is None:
            return None
        data = self.build(rows)
        return None if data is BAIL else data


def row_plan(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
) -> RowPlan | None:
    """The row plan of an operation (see the module), or None."""
    if operation.operation is not OperationType.QUERY or schema.query_type is None:
        return None
    fragments: dict[str, FragmentDetails] = {}
    for node in document.definitions:
        if isinstance(node, FragmentDefinitionNode):
            if node.variable_definitions:
                return None
            fragments[node.name.value] = FragmentDetails(node)
    if _has_directive(operation) or any(_has_directive(f.definition) for f in fragments.values()):
        return None
    query_type = schema.query_type
    root = collect_fields(schema, fragments, _NO_VARIABLES, query_type, operation)
    if root.new_defer_usages:
        return None
    page: RowPage | None = None
    page_key = ""
    for key, details in root.grouped_field_set.items():
        name = details[0].node.name.value
        if name == "__typename":
            continue
        field_def = query_type.fields.get(name)
        definition = field_def.extensions.get("strawberry-definition") if field_def else None
        spec = definition.metadata.get(ROW_PAGE) if definition is not None else None
        if not isinstance(spec, RowPage) or page is not None:
            return None
        page, page_key = spec, key
    if page is None:
        return None
    try:
        compiler = _Compiler(schema, fragments, operation, page)
        source = compiler.root(query_type, root.grouped_field_set, page_key)
    except _NoPlan:
        return None
    names = compiler.names
    exec(compile(source, f"<row plan {page_key}>", "exec"), names)  # noqa: S102
    field_node = root.grouped_field_set[page_key][0].node
    field_def = query_type.fields[field_node.name.value]
    arguments = None
    if not operation.variable_definitions:
        try:
            arguments = get_argument_values(field_def, field_node, _NO_VARIABLES)
        except GraphQLError:
            return None
    return RowPlan(
        page,
        field_def,
        field_node,
        operation,
        frozenset(compiler.columns),
        names["build"],
        arguments,
    )


def _has_directive(node: Any) -> bool:
    from schema.executor import _walk

    return any(isinstance(child, DirectiveNode) for child in _walk(node))


def _object_type(type_: Any) -> tuple[GraphQLObjectType, bool, bool]:
    """The object type of a field's type, whether the field is non-null and whether it is a
    list (of non-null objects: anything else is not compiled)."""
    non_null = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if non_null else type_
    if isinstance(inner, GraphQLList):
        item = inner.of_type
        if not (isinstance(item, GraphQLNonNull) and isinstance(item.of_type, GraphQLObjectType)):
            raise _NoPlan
        return item.of_type, non_null, True
    if not isinstance(inner, GraphQLObjectType):
        raise _NoPlan
    return inner, non_null, False


class _Compiler:
    """Writes `build(page)`: Python over the rows of one page, no dispatch per field."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        operation: OperationDefinitionNode,
        page: RowPage,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.operation = operation
        self.page = page
        self.columns: set[str] = set()
        self.names: dict[str, Any] = {
            "BAIL": BAIL,
            "Undefined": Undefined,
            "to_base64": to_base64,
            "page_info": page_info,
        }
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def constant(self, prefix: str, value: Any) -> str:
        name = self.name(prefix)
        self.names[name] = value
        return name

    def subfields(self, object_type: GraphQLObjectType, details: list[FieldDetails]) -> Any:
        collected = collect_subfields(
            self.schema, self.fragments, _NO_VARIABLES, self.operation, object_type, details
        )
        if collected.new_defer_usages:
            raise _NoPlan
        return collected.grouped_field_set

    def selected(
        self, object_type: GraphQLObjectType, grouped: Any, items: list[tuple[str, str]]
    ) -> Iterator[tuple[str, str, list[FieldDetails], _Plan | None]]:
        """The fields of a selection on `object_type` in order, with their response key,
        field details and the fast executor's plan; a `__typename` goes into `items`."""
        plans = _plans_for(self.schema, object_type)
        for key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                items.append((key, repr(object_type.name)))
            else:
                yield key, name, details, plans.get(name)

    def root(self, query_type: GraphQLObjectType, grouped: Any, page_key: str) -> str:
        lines: list[str] = []
        items: list[tuple[str, str]] = []
        for key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                items.append((key, repr(query_type.name)))
                continue
            field_def = query_type.fields[name]
            connection, non_null, is_list = _object_type(field_def.type)
            if is_list or not non_null:
                raise _NoPlan
            out = self.name("o")
            lines += self.connection(connection, self.subfields(connection, details), out)
            items.append((key, out))
        body = ["def build(page):", "    try:"]
        body += ["        " + line for line in lines]
        body.append("        return " + _dict(items))
        body += ["    except Exception:", "        return BAIL"]
        return "\n".join(body)

    def connection(self, connection: GraphQLObjectType, grouped: Any, out: str) -> list[str]:
        lines: list[str] = []
        items: list[tuple[str, str]] = []
        for key, name, details, _ in self.selected(connection, grouped, items):
            if name == "edges":
                edge_type, _, is_list = _object_type(connection.fields[name].type)
                if not is_list:
                    raise _NoPlan
                edges = self.name("edges")
                lines += self.edges(edge_type, self.subfields(edge_type, details), edges)
                items.append((key, edges))
            elif name == "pageInfo":
                info_type, non_null, is_list = _object_type(connection.fields[name].type)
                if is_list or not non_null:
                    raise _NoPlan
                info = self.name("info")
                lines.append(f"{info} = page_info(page)")
                result = self.name("o")
                grouped_info = self.subfields(info_type, details)
                lines += self.attributes(info_type, grouped_info, info, result)
                items.append((key, result))
            else:
                raise _NoPlan
        lines.append(f"{out} = {_dict(items)}")
        return lines

    def edges(self, edge_type: GraphQLObjectType, grouped: Any, out: str) -> list[str]:
        body: list[str] = []
        items: list[tuple[str, str]] = []
        for key, name, details, plan in self.selected(edge_type, grouped, items):
            if plan is None or plan.kind not in (LEAF, OBJECT):
                raise _NoPlan
            v = self.name("v")
            if plan.kind == LEAF:
                if plan.attribute != "cursor":
                    raise _NoPlan
                body.append(f"{v} = page.cursor(i)")
                body += self.leaf(v, plan, edge_type.name)
            else:
                object_type, non_null, is_list = _object_type(edge_type.fields[name].type)
                if is_list:
                    raise _NoPlan
                where = (
                    (self.page.node, "")
                    if plan.attribute == "node"
                    else self.page.edge.get(plan.attribute)
                )
                if where is None:
                    raise _NoPlan
                type_name, prefix = where
                if object_type.name != type_name:
                    raise _NoPlan
                body += self.row_object(
                    object_type, self.subfields(object_type, details), prefix, non_null, v
                )
            items.append((key, v))
        return [
            f"{out} = []",
            "for i, row in enumerate(page.items):",
            *("    " + line for line in body),
            f"    {out}.append({_dict(items)})",
        ]

    def row_object(
        self, object_type: GraphQLObjectType, grouped: Any, prefix: str, non_null: bool, out: str
    ) -> list[str]:
        """Lines leaving in `out` the object of `object_type` at `prefix` of `row` (None when
        its id column is NULL; BAIL for a non-null one)."""
        view = self.page.views.get(object_type.name)
        if view is None:
            raise _NoPlan
        present = prefix + "id"
        self.columns.add(present)
        body: list[str] = []
        items: list[tuple[str, str]] = []
        for key, name, details, plan in self.selected(object_type, grouped, items):
            if plan is None:
                raise _NoPlan
            kind = plan.kind
            if kind in (PREFETCHED_LEAF, PREFETCHED_OBJECT):
                # Prefetched on the page's own post only, as page rows load them.
                if prefix != "" or plan.flag not in view.flags:
                    raise _NoPlan
                flag_column = view.flags[plan.flag]
                if flag_column is not None:
                    self.columns.add(flag_column)
                    body.append(f"if row[{flag_column!r}] is None: return BAIL")
                kind = LEAF if kind == PREFETCHED_LEAF else OBJECT
            v = self.name("v")
            if kind == LEAF:
                read = view.reads.get(plan.attribute)
                if read is None:
                    raise _NoPlan
                column = prefix + read.column
                self.columns.add(column)
                if read.convert is None:
                    body.append(f"{v} = row[{column!r}]")
                else:
                    convert = self.constant("convert", read.convert)
                    body.append(f"{v} = {convert}(row[{column!r}])")
                body += self.leaf(v, plan, object_type.name)
            elif kind == OBJECT:
                related = view.objects.get(plan.attribute)
                if related is None:
                    raise _NoPlan
                type_name, added = related
                child_type, child_non_null, is_list = _object_type(object_type.fields[name].type)
                if is_list or child_type.name != type_name:
                    raise _NoPlan
                body += self.row_object(
                    child_type,
                    self.subfields(child_type, details),
                    prefix + added,
                    child_non_null,
                    v,
                )
            else:
                raise _NoPlan
            items.append((key, v))
        lines = [f"if row[{present!r}] is None:"]
        lines.append("    return BAIL" if non_null else f"    {out} = None")
        lines.append("else:")
        lines += ["    " + line for line in body]
        lines.append(f"    {out} = {_dict(items)}")
        return lines

    def attributes(
        self, object_type: GraphQLObjectType, grouped: Any, source: str, out: str
    ) -> list[str]:
        """Lines leaving in `out` an object whose fields are plain attributes of `source`."""
        lines: list[str] = []
        items: list[tuple[str, str]] = []
        for key, _, _, plan in self.selected(object_type, grouped, items):
            if plan is None or plan.kind != LEAF or plan.global_id:
                raise _NoPlan
            v = self.name("v")
            lines.append(f"{v} = {source}.{plan.attribute}")
            lines += self.leaf(v, plan, object_type.name)
            items.append((key, v))
        lines.append(f"{out} = {_dict(items)}")
        return lines

    def leaf(self, v: str, plan: _Plan, type_name: str) -> list[str]:
        """Lines completing leaf `v`, a column's value, as graphql-core would, or returning
        BAIL where it might answer otherwise (`schema.compiled._leaf_checks`)."""
        return _leaf_checks(v, plan, self.constant, type_name=repr(type_name), from_rows=True)


def _dict(items: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{key!r}: {value}" for key, value in items) + "}"
