"""Where the fast executor's shortcuts could answer differently from graphql-core's ordinary
path, it takes the ordinary path: each case here runs under both executors on a small schema
and must give the same `data` and `errors`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import strawberry
from strawberry import relay
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from schema.executor import PREFETCHED, FastExecutionContext, execution_context_class


class Row:
    """Prefetched data, as services hand it to types: attributes, no resolvers."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


@strawberry.type
class Item(relay.Node):
    id: relay.NodeID[int]
    name: str
    count: int
    maybe: int | None

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class Renamed(relay.Node):
    """A Node that resolves its own id: the shortcut must not guess the attribute."""

    code: relay.NodeID[str]

    @classmethod
    def resolve_id(cls, root: Any, *, info: Info) -> str:
        return f"custom-{root.code}"

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class Picky:
    """An is_type_of that needs the resolve info (the shortcut asks without one)."""

    name: str

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return info.field_name == "picky" and isinstance(obj, Row)


@strawberry.type
class Holder:
    item: Item
    picky: Picky

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return self.rows  # type: ignore[attr-defined,no-any-return]

    @strawberry.field
    def renamed(self) -> Renamed:
        return Row(code="x7", id=99)  # type: ignore[return-value]

    @strawberry.field
    def holder(self) -> Holder:
        return Row(item=Row(id=1, name="one", count=1, maybe=None), picky=Row(name="p"))  # type: ignore[return-value]


def _rows(*rows: Row) -> Any:
    return Row(rows=list(rows))


def _schema(fast: bool, extensions: list[Any] | None = None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        extensions=extensions or [],
        execution_context_class=execution_context_class(
            "fast" if fast else "stock", production=False
        ),
    )


def _both(query: str, root: Any = None, extensions: list[Any] | None = None) -> list[Any]:
    answers = []
    for fast in (True, False):
        schema = _schema(fast, extensions)
        result = schema.execute_sync(query, root_value=root)
        answers.append(
            (result.data, [error.formatted for error in result.errors or []]),
        )
    assert answers[0] == answers[1], answers
    return answers[0]  # type: ignore[no-any-return]


def test_the_setting_picks_the_executor() -> None:
    assert execution_context_class("fast", production=False) is FastExecutionContext
    assert (
        execution_context_class("stock", production=False) is StrawberryGraphQLCoreExecutionContext
    )


def test_an_int_outside_32_bits_is_an_error_as_graphql_requires() -> None:
    root = _rows(Row(id=1, name="a", count=2**31, maybe=-(2**31) - 1))
    data, errors = _both("{ items { name count } }", root)
    assert data is None  # count is non-null: the error reaches the list's parent
    assert "Int cannot represent non 32-bit signed integer value" in errors[0]["message"]
    data, errors = _both("{ items { maybe } }", root)
    assert data == {"items": [{"maybe": None}]}
    assert errors[0]["path"] == ["items", 0, "maybe"]
    data, errors = _both(
        "{ items { count } }", _rows(Row(id=1, name="a", count=2**31 - 1, maybe=0))
    )
    assert data == {"items": [{"count": 2**31 - 1}]}
    assert errors == []


def test_a_missing_attribute_is_the_same_error() -> None:
    data, errors = _both("{ items { name maybe } }", _rows(Row(id=1, name="a", count=1)))
    assert data == {"items": [{"name": "a", "maybe": None}]}
    assert errors[0]["path"] == ["items", 0, "maybe"]
    assert "maybe" in errors[0]["message"]


def test_a_value_of_the_wrong_type_is_the_same_error() -> None:
    data, errors = _both("{ items { count } }", _rows(Row(id=1, name="a", count="many", maybe=1)))
    assert data is None
    assert errors[0]["path"] == ["items", 0, "count"]


def test_relay_ids_come_from_resolve_id() -> None:
    data, errors = _both(
        "{ renamed { id } items { id } }", _rows(Row(id=5, name="a", count=1, maybe=1))
    )
    assert errors == []
    assert data["items"][0]["id"] == relay.to_base64("Item", 5)
    assert data["renamed"]["id"] == relay.to_base64("Renamed", "custom-x7")


def test_an_is_type_of_that_needs_the_info_still_gets_it() -> None:
    data, errors = _both("{ holder { picky { name } item { name count maybe } } }")
    assert errors == []
    assert data == {
        "holder": {"picky": {"name": "p"}, "item": {"name": "one", "count": 1, "maybe": None}}
    }


class Counting(SchemaExtension):
    """A tracing-like extension: its `resolve` hook sees every field."""

    seen: list[str]

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        Counting.seen.append(".".join(str(key) for key in info.path.as_list()))
        return _next(root, info, *args, **kwargs)


@pytest.fixture
def counting() -> type[Counting]:
    Counting.seen = []
    return Counting


def test_schema_extensions_resolve_hooks_see_every_field(counting: type[Counting]) -> None:
    root = _rows(Row(id=1, name="a", count=1, maybe=2), Row(id=2, name="b", count=3, maybe=None))
    seen = []
    for fast in (True, False):
        counting.seen = []
        result = _schema(fast, [counting]).execute_sync(
            "{ items { id name count } }", root_value=root
        )
        assert result.errors is None
        seen.append(sorted(counting.seen))
    assert seen[0] == seen[1]
    assert "items.1.count" in seen[0]
    assert len(seen[0]) == 7  # items, and three fields of each of two items


class Oops(Exception):
    """Not a builtin: graphql-core's String coercion would print one."""


@strawberry.type
class Thing:
    @strawberry.field
    async def bad(self) -> str:
        raise Oops("bad thing")

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class Inner:
    name: str

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row, Oops))


@strawberry.type
class Box:
    name: str
    label: str | None
    things: list[Thing] | None
    inner: Inner | None
    picky: Picky | None

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class BoxQuery:
    @strawberry.field
    def box(self) -> Box:
        return self.box_value  # type: ignore[attr-defined,no-any-return]


def _boxes(query: str, box: Row) -> tuple[Any, list[Any]]:
    answers = []
    for fast in (True, False):
        schema = strawberry.Schema(
            query=BoxQuery,
            execution_context_class=execution_context_class(
                "fast" if fast else "stock", production=False
            ),
        )
        result = asyncio.run(schema.execute(query, root_value=Row(box_value=box)))
        answers.append((result.data, sorted(str(e.path) + e.message for e in result.errors or [])))
    assert answers[0] == answers[1], answers
    return answers[0]


def _box(**values: Any) -> Row:
    defaults: dict[str, Any] = {
        "name": "b",
        "label": "l",
        "things": [],
        "inner": None,
        "picky": None,
    }
    return Row(**{**defaults, **values})


def test_an_error_awaited_in_a_nullable_list_nulls_the_list_only() -> None:
    data, errors = _boxes("{ box { name things { bad } } }", _box(things=[Row(), Row()]))
    assert data == {"box": {"name": "b", "things": None}}
    assert len(errors) == 1  # the first nulls the list; the other is not reported
    assert errors[0].startswith("['box', 'things', ")


def test_an_error_awaited_below_a_field_completed_the_ordinary_way_stays_there() -> None:
    # Picky's is_type_of needs the info: the ordinary way; its field's error stays in it.
    data, errors = _boxes(
        "{ box { name picky { name } things @include(if: true) { bad } } }",
        _box(picky=Row(name=None), things=[Row()]),
    )
    assert data == {"box": {"name": "b", "picky": None, "things": None}}
    assert len(errors) == 2


def test_a_value_that_is_an_exception_is_the_fields_error() -> None:
    data, errors = _boxes(
        "{ box { name label inner { name } } }",
        _box(label=Oops("label failed"), inner=Oops("inner failed")),
    )
    assert data == {"box": {"name": "b", "label": None, "inner": None}}
    assert errors == ["['box', 'inner']inner failed", "['box', 'label']label failed"]


def test_a_leaf_that_is_an_exception_is_its_fields_error() -> None:
    # (Alone: with an object field failing beside it, the compiled selection would give up
    # for that one first, and the leaf's own check would go untried.)
    data, errors = _boxes("{ box { name label } }", _box(label=Oops("label failed")))
    assert data == {"box": {"name": "b", "label": None}}
    assert errors == ["['box', 'label']label failed"]


class Denied(BasePermission):
    message = "not yours"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Guarded:
    name: str

    @strawberry.field(
        permission_classes=[Denied],
        metadata={PREFETCHED: ("loaded", "secret")},
    )
    def secret(self) -> str | None:
        return "loaded on its own"

    @classmethod
    def is_type_of(cls, obj: object, info: Info) -> bool:
        return isinstance(obj, (cls, Row))


@strawberry.type
class GuardedQuery:
    @strawberry.field
    def guarded(self) -> Guarded:
        return Row(name="g", loaded=True, secret="TOP SECRET")  # type: ignore[return-value]


def test_a_prefetched_field_keeps_its_permission_check() -> None:
    answers = []
    for fast in (True, False):
        schema = strawberry.Schema(
            query=GuardedQuery,
            execution_context_class=execution_context_class(
                "fast" if fast else "stock", production=False
            ),
        )
        result = schema.execute_sync("{ guarded { name secret } }")
        answers.append((result.data, [e.message for e in result.errors or []]))
    assert answers[0] == answers[1] == ({"guarded": {"name": "g", "secret": None}}, ["not yours"])


class SpecialItem(Item):
    """A Node instance whose class resolves its own id: the shortcut must ask it."""

    @classmethod
    def resolve_id(cls, root: Any, *, info: Info) -> str:
        return "special"


def test_a_node_instance_resolves_its_own_id() -> None:
    special = SpecialItem(id=1, name="s", count=1, maybe=None)
    data, errors = _both("{ items { id name } }", _rows(special))  # type: ignore[arg-type]
    assert errors == []
    assert data["items"][0] == {"id": relay.to_base64("Item", "special"), "name": "s"}
