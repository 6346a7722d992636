"""Print the schema's SDL: `python -m schema.export > schema.graphql`."""

from __future__ import annotations

from app.settings import Settings
from schema import build_schema


def schema_sdl() -> str:
    return build_schema(Settings()).as_str() + "\n"


if __name__ == "__main__":
    print(schema_sdl(), end="")
