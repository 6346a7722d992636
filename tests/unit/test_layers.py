"""The API layer's boundaries (DESIGN.md), held by reading schema/'s imports: no SQL and no ORM
there, and services reached only through the `Services` container of the request's context
(what schema/ imports from app.services are pure functions, constants and types: no module,
no coroutine, no service instance)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

SCHEMA = Path(__file__).resolve().parents[2] / "schema"


def _imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every `from module import name` in schema/, and (file, module,
    "") of every `import module`."""
    found = []
    for path in sorted(SCHEMA.rglob("*.py")):
        where = str(path.relative_to(SCHEMA.parent))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found += [(where, node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(where, alias.name, "") for alias in node.names]
    return found


def test_schema_runs_no_sql_of_its_own() -> None:
    sql = [
        (where, module, name)
        for where, module, name in _imports()
        if module.split(".")[0] in ("tortoise", "asyncpg", "pypika")
        or (module == "app" and name == "sql")
        or (module == "app.sql" and name != "Row")  # the type of a row, for page plans
    ]
    assert sql == []


def test_schema_reaches_services_through_the_container() -> None:
    wrong = []
    for where, module, name in _imports():
        if not module.startswith("app.services"):
            continue
        value = getattr(importlib.import_module(module), name) if name else None
        if (
            value is None
            or inspect.ismodule(value)
            or inspect.iscoroutinefunction(value)
            or inspect.isasyncgenfunction(value)
            # (Service classes are fine as types; an instance here would be a second one.)
            or type(value).__name__.endswith("Service")
        ):
            wrong.append((where, module, name))
    assert wrong == []


def test_the_checks_see_imports() -> None:
    # (Guards the two tests above against reading nothing.)
    modules = {module for _, module, _ in _imports()}
    assert "app.services.views" in modules
    assert "strawberry" in modules


def test_an_error_code_enum_must_carry_the_codes_it_is_named_after() -> None:
    from enum import Enum

    from app.errors import ErrorCode
    from schema.errors import code, error_codes

    class Good(Enum):
        NOT_FOUND = code(ErrorCode.NOT_FOUND)

    assert error_codes("good")(Good) is Good

    class Misnamed(Enum):
        NOT_FOUND = code(ErrorCode.INVALID_INPUT)

    with pytest.raises(TypeError, match=r"Misnamed\.NOT_FOUND is not code\(ErrorCode\.NOT_FOUND\)"):
        error_codes("misnamed")(Misnamed)
