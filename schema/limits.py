"""Request limits measured over a document before the specification's validation rules run:
depth, aliases, cost, and fields repeated under one response name.

Execution merges the fields of a selection set that share a response name, and a fragment
spread twice into one selection set is collected once. So the walk here follows the *merged*
selection tree, as execution sees it: each merged selection set (a parent type and the set of
AST selection sets that make it) is measured once and remembered, and a fragment counts once
per merged selection set. The cost is linear in the document whatever its fragments do: the
20-level "each fragment spreads the next twice" document that took strawberry's depth and
alias limiters seconds (they re-walk every spread) is measured in one pass here.

Cost is the number of fields the server may have to produce: each field costs 1, and the fields
under a paginated field are multiplied by its page size (`first`/`last`, or `limit` on plain
list searches; a variable counts as the largest page, since the measure is cached with the
document), under any other list by `LIST_ESTIMATE`. Introspection fields (`__*`) are left to
graphql-core's own `MaxIntrospectionDepthRule`.

Repeated fields and fragments: graphql-core's OverlappingFieldsCanBeMerged compares every
pair of fields with the same response name, and every pair of fragments reachable by spreads
from one selection set (wrappers that only spread others included), so 300 copies of
`viewer { id }` cost it a second and 185 fragments a tenth. Capping both per merged
selection set keeps that rule linear too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_composite_type,
)

from app.services.paging import DEFAULT_PAGE, MAX_PAGE

PAGE_ARGUMENTS = ("first", "last", "limit")
# A list field that can hold more than LIST_ESTIMATE items declares its most in its metadata
# (`strawberry.field(metadata={LIST_SIZE: n})`), or, when a setting bounds it, names that
# setting (`{LIST_SIZE: SettingSize("media.max_attachments", 4)}`: DocumentLimits.list_sizes
# gives its value).
LIST_SIZE = "holdfast.list_size"
LIST_ESTIMATE = 10


@dataclass(frozen=True, slots=True)
class SettingSize:
    """The most items of a list, as an operator setting (`name`) has it; `default` when the
    limits do not give it."""

    name: str
    default: int


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    max_depth: int
    max_aliases: int
    max_cost: int
    max_repeated_fields: int
    max_fragments: int
    # The values of the settings that bound lists (SettingSize.name -> most items).
    list_sizes: Mapping[str, int] = field(default_factory=dict)


class LimitCode:
    DEPTH = "DEPTH_LIMIT_EXCEEDED"
    ALIASES = "ALIAS_LIMIT_EXCEEDED"
    COST = "COST_LIMIT_EXCEEDED"
    REPEATED = "REPEATED_FIELD_LIMIT_EXCEEDED"
    FRAGMENTS = "FRAGMENT_LIMIT_EXCEEDED"


class _LimitExceeded(Exception):
    def __init__(self, error: GraphQLError) -> None:
        self.error = error


@dataclass(frozen=True, slots=True)
class Measure:
    height: int  # levels of fields below (a leaf field has height 0, as graphql-depth-limit)
    aliases: int
    cost: int


_EMPTY = Measure(height=-1, aliases=0, cost=0)


def measure_document(
    schema: GraphQLSchema, document: DocumentNode, limits: DocumentLimits
) -> list[GraphQLError]:
    """The limit errors of each operation of `document` (at most one per operation)."""
    walker = Walker(schema, document, limits)
    errors: list[GraphQLError] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            try:
                walker.operation(definition)
            except _LimitExceeded as exceeded:
                errors.append(exceeded.error)
    return errors


def _operation_name(operation: OperationDefinitionNode) -> str:
    return operation.name.value if operation.name else "anonymous"


class Walker:
    """Measures the operations of one document, remembering merged selection sets."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, limits: DocumentLimits
    ) -> None:
        self._schema = schema
        self._limits = limits
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._memo: dict[tuple[str, tuple[int, ...]], Measure] = {}
        self._active: set[tuple[str, tuple[int, ...]]] = set()
        self._operation: OperationDefinitionNode | None = None
        self.selection_sets_read = 0  # the work done, for tests that it stays linear

    def operation(self, operation: OperationDefinitionNode) -> Measure:
        self._operation = operation
        root = self._schema.get_root_type(operation.operation)
        measure = self._selection(root, (operation.selection_set,), depth=0)
        if measure.aliases > self._limits.max_aliases:
            self._fail(
                LimitCode.ALIASES,
                f"{measure.aliases} aliases found; at most {self._limits.max_aliases} are "
                "allowed in an operation.",
                operation,
            )
        return measure

    def _fail(self, code: str, message: str, node: Any) -> None:
        raise _LimitExceeded(GraphQLError(message, node, extensions={"code": code}))

    def _selection(
        self, parent_type: Any, selection_sets: tuple[SelectionSetNode, ...], depth: int
    ) -> Measure:
        """The measure of one merged selection set; `depth` is that of its fields."""
        key = (getattr(parent_type, "name", ""), tuple(sorted(id(s) for s in selection_sets)))
        known = self._memo.get(key)
        if known is not None:
            self._check_depth(depth + known.height, selection_sets[0])
            return known
        if key in self._active:
            # A fragment that contains itself: NoFragmentCycles reports it; stop here.
            return _EMPTY
        self._active.add(key)
        try:
            measure = self._measure(parent_type, self._collect(parent_type, selection_sets), depth)
        finally:
            self._active.discard(key)
        self._memo[key] = measure
        return measure

    def _collect(
        self, parent_type: Any, selection_sets: tuple[SelectionSetNode, ...]
    ) -> dict[str, list[tuple[Any, FieldNode]]]:
        """Fields by response name, through inline fragments and spreads (each fragment once),
        without recursion, so long spread chains cannot exhaust the stack."""
        groups: dict[str, list[tuple[Any, FieldNode]]] = {}
        seen: set[str] = set()
        stack: list[tuple[Any, SelectionSetNode]] = [(parent_type, s) for s in selection_sets]
        while stack:
            type_, selection_set = stack.pop()
            self.selection_sets_read += 1
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    name = selection.alias.value if selection.alias else selection.name.value
                    groups.setdefault(name, []).append((type_, selection))
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    inner = self._schema.get_type(condition.name.value) if condition else type_
                    stack.append((inner, selection.selection_set))
                elif isinstance(selection, FragmentSpreadNode):
                    fragment_name = selection.name.value
                    fragment = self._fragments.get(fragment_name)
                    if fragment is None or fragment_name in seen:
                        continue
                    seen.add(fragment_name)
                    if len(seen) > self._limits.max_fragments:
                        self._fail(
                            LimitCode.FRAGMENTS,
                            f"More than {self._limits.max_fragments} fragments are spread into "
                            "one selection.",
                            selection,
                        )
                    inner = self._schema.get_type(fragment.type_condition.name.value)
                    stack.append((inner, fragment.selection_set))
        return groups

    def _measure(
        self, parent_type: Any, groups: dict[str, list[tuple[Any, FieldNode]]], depth: int
    ) -> Measure:
        limits = self._limits
        height, aliases, cost = -1, 0, 0
        for response_name, fields in groups.items():
            if len(fields) > limits.max_repeated_fields:
                self._fail(
                    LimitCode.REPEATED,
                    f"The field '{response_name}' is selected {len(fields)} times in one "
                    f"selection; at most {limits.max_repeated_fields} are allowed.",
                    fields[0][1],
                )
            first_type, first = fields[0]
            aliases += sum(1 for _, f in fields if f.alias is not None)
            if first.name.value.startswith("__"):
                continue
            height = max(height, 0)
            self._check_depth(depth, first)
            definition = _field_definition(first_type, first.name.value)
            field_type = definition.type if definition is not None else None
            sub_sets = tuple(f.selection_set for _, f in fields if f.selection_set is not None)
            below = _EMPTY
            if sub_sets:
                named = get_named_type(field_type) if field_type is not None else None
                sub_parent = named if named is not None and is_composite_type(named) else None
                below = self._selection(sub_parent, sub_sets, depth + 1)
            multiplier = max(
                _multiplier(first_type, definition, f, limits.list_sizes) for _, f in fields
            )
            cost += 1 + multiplier * below.cost
            aliases += below.aliases
            height = max(height, below.height + 1)
            if cost > limits.max_cost:
                self._fail(
                    LimitCode.COST,
                    f"The operation may cost more than {limits.max_cost} (fields multiplied by "
                    "page sizes); ask for smaller pages or fewer nested lists.",
                    first,
                )
        return Measure(height=height, aliases=aliases, cost=cost)

    def _check_depth(self, depth: int, node: Any) -> None:
        if depth > self._limits.max_depth:
            assert self._operation is not None
            self._fail(
                LimitCode.DEPTH,
                f"'{_operation_name(self._operation)}' exceeds maximum operation depth of "
                f"{self._limits.max_depth}",
                node,
            )


def _multiplier(
    parent_type: Any, definition: Any, field: FieldNode, list_sizes: Mapping[str, int]
) -> int:
    """How many times the field's sub-selection may be produced."""
    if definition is None:
        return 1
    strawberry_field = definition.extensions.get("strawberry-definition")
    declared = strawberry_field.metadata.get(LIST_SIZE) if strawberry_field else None
    if isinstance(declared, SettingSize):
        return max(1, list_sizes.get(declared.name, declared.default))
    if declared is not None:
        return int(declared)
    given = {a.name.value: a.value for a in field.arguments or ()}
    sizes: list[int] = []
    for name in PAGE_ARGUMENTS:
        if name not in definition.args:
            continue
        value = given.get(name)
        if isinstance(value, IntValueNode):
            sizes.append(int(value.value))
        elif value is not None:
            sizes.append(MAX_PAGE)  # a variable (or a value validation will refuse)
        elif isinstance(definition.args[name].default_value, int):
            sizes.append(definition.args[name].default_value)
    if sizes:
        return max(1, min(max(sizes), MAX_PAGE))
    if _is_connection(definition.type):
        return DEFAULT_PAGE
    if _is_list(definition.type) and not _is_page_list(parent_type, field):
        return LIST_ESTIMATE
    return 1


def _field_definition(parent_type: Any, field_name: str) -> Any:
    fields = getattr(parent_type, "fields", None)
    return fields.get(field_name) if fields is not None else None


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _is_connection(type_: Any) -> bool:
    named = get_named_type(type_) if type_ is not None else None
    return named is not None and named.name.endswith("Connection")


def _is_page_list(parent_type: Any, field: FieldNode) -> bool:
    # A connection's `edges` (or `nodes`) list is the page its field was already multiplied by.
    return _is_connection(parent_type) and field.name.value in ("edges", "nodes")
