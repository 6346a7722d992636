"""Result types for mutations: `<Verb>Success | <Verb>Error`, made from a payload type and
the error codes the verb can return, so that each mutation has its own types and code enum
without repeating their shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any

import strawberry

from app.errors import DomainError, ErrorCode
from schema.errors import MutationError, code, error_result


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
