"""Mutation plumbing: the `input` argument, global IDs in inputs, and the result of a
mutation, `<Verb>Success | <Verb>Error`.

Each mutation declares its result types as classes in its domain's module, so that mypy sees
what a resolver returns: `<Verb>Success` (a payload type), `<Verb>ErrorCode` (the codes the
verb can return, `error_codes`), `<Verb>Error` (a `MutationError` whose `code` is of that
enum) and the union `<Verb>Result` (`result_union`). `ResultTypes` turns a service call into
one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Generic, TypeVar

import strawberry
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError
from strawberry.types.union import StrawberryUnion

from app.errors import DomainError, ErrorCode
from app.ids import parse_id
from schema.errors import ErrorType, MutationError, error_result

INPUT = strawberry.argument(description="The mutation's input.")

S = TypeVar("S")
C = TypeVar("C", bound=Enum)
E = TypeVar("E", bound=MutationError)


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


def result_union(verb: str) -> StrawberryUnion:
    """The union `<Verb>Result` of a mutation's success and error types (in `Annotated`)."""
    name = verb[0].upper() + verb[1:]
    return strawberry.union(f"{name}Result", description=f"{verb}'s result.")


class ResultTypes(Generic[S, C, E]):
    """A mutation's success type, error type and error codes, and `run` to turn a service
    call into its result: what the call returns, or its DomainError as the error type."""

    def __init__(self, success: type[S], error: ErrorType[C, E], codes: type[C]) -> None:
        self.success = success
        self.error = error
        self.codes = codes

    async def run(self, action: Callable[[], Awaitable[S]]) -> S | E:
        try:
            return await action()
        except DomainError as exc:
            return error_result(self.error, self.codes, exc)
