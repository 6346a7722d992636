"""The committed SDL is the frontends' contract: it must match the code, and describe itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
)

from app.settings import Settings
from schema import build_schema
from schema.export import schema_sdl

pytestmark = pytest.mark.no_database

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql is out of date: run `make schema` and commit it"
    )


def test_every_type_field_argument_and_enum_value_is_described(tmp_path: Path) -> None:
    schema = build_schema(Settings(data_dir=tmp_path))._schema
    missing: list[str] = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Boolean", "Int", "Float", "ID"}:
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in type_.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                missing.extend(
                    f"{name}.{field_name}({arg})"
                    for arg, a in field.args.items()
                    if not a.description
                )
        elif isinstance(type_, GraphQLInputObjectType):
            missing.extend(
                f"{name}.{f}" for f, field in type_.fields.items() if not field.description
            )
        elif isinstance(type_, GraphQLEnumType):
            missing.extend(
                f"{name}.{v}" for v, value in type_.values.items() if not value.description
            )
    assert missing == []
