"""Mutation plumbing: the `input` argument, global IDs in inputs, and the result types
`<Verb>Success | <Verb>Error`, made from a payload type and the error codes the verb can
return, so that each mutation has its own types and code enum without repeating their shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError

from app.errors import DomainError, ErrorCode
from app.ids import parse_id
from schema.errors import MutationError, code, error_result

INPUT = strawberry.argument(description="The mutation's input.")


def parse_global_id(value: str) -> relay.GlobalID | None:
    """A global ID as clients send it (an `ID`), or None when it is not one. Inputs take
    `ID`s rather than strawberry's GlobalID, whose own parsing fails the whole operation."""
    try:
        return relay.GlobalID.from_id(value)
    except GlobalIDValueError:
        return None


def decode_id(value: str, type_name: str, field: str) -> int:
    """The database id in a global ID of the given type; NOT_FOUND for anything else."""
    global_id = parse_global_id(value)
    matches = global_id is not None and global_id.type_name == type_name
    value_id = parse_id(global_id.node_id) if global_id is not None and matches else None
    if value_id is None:
        raise DomainError(ErrorCode.NOT_FOUND, f"No such {type_name.lower()}.", field)
    return value_id


class MutationTypes:
    """The types of one mutation, and `run` to turn a service call into its result."""

    def __init__(
        self,
        verb: str,
        payload: type,
        codes: list[ErrorCode],
        *,
        success: str,
        failure: str,
    ) -> None:
        name = verb[0].upper() + verb[1:]
        self.success: type = strawberry.type(
            type(f"{name}Success", (payload,), {}), name=f"{name}Success", description=success
        )
        members = {c.name: code(c) for c in codes}
        codes_enum: Any = Enum(f"{name}ErrorCode", members)  # type: ignore[misc]
        self.codes: type[Enum] = strawberry.enum(codes_enum, description=f"Why {verb} failed.")
        error_cls = type(
            f"{name}Error",
            (MutationError,),
            {
                "__annotations__": {"code": self.codes},
                "code": strawberry.field(description="What went wrong."),
            },
        )
        self.error: type = strawberry.type(error_cls, name=f"{name}Error", description=failure)
        self.result: Any = Annotated[
            self.success | self.error,
            strawberry.union(f"{name}Result", description=f"{verb}'s result."),
        ]

    async def run(self, action: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
        try:
            fields = await action()
        except DomainError as exc:
            return error_result(self.error, self.codes, exc)
        return self.success(**fields)
