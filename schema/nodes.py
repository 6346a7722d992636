"""Relay's `resolve_nodes` for the types whose nodes a per-request DataLoader loads by id."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, Self, cast, overload

from strawberry.dataloader import DataLoader
from strawberry.types import Info

from schema.context import Context
from schema.loaders import load_nodes


class LoadedNode:
    """Mixed in before `relay.Node`: `resolve_nodes` through `node_loader`, with Node's own
    typed overloads (a required lookup finds every node, or raises NOT_FOUND)."""

    @classmethod
    def node_loader(cls, info: Info[Context, None]) -> DataLoader[int, Any]:
        """The request's loader of this type's nodes by database id."""
        raise NotImplementedError

    @overload
    @classmethod
    async def resolve_nodes(
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: Literal[True]
    ) -> list[Self]: ...

    @overload
    @classmethod
    async def resolve_nodes(
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: Literal[False] = ...
    ) -> list[Self | None]: ...

    @overload
    @classmethod
    async def resolve_nodes(
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool
    ) -> list[Self] | list[Self | None]: ...

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Self] | list[Self | None]:
        nodes = await load_nodes(cls.node_loader(info), node_ids, required=required)
        return cast("list[Self | None]", nodes)
