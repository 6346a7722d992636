"""Cursor connections, shared by every domain: the `first/after/last/before` arguments, the
service's page request they make, and the PageInfo of a page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry import relay

from app.services.paging import Page, PageRequest

T = TypeVar("T")
E = TypeVar("E")

First = Annotated[int | None, strawberry.argument(description="Page size going forward (1-100).")]
After = Annotated[str | None, strawberry.argument(description="Cursor to continue after.")]
Last = Annotated[int | None, strawberry.argument(description="Page size going back (1-100).")]
Before = Annotated[str | None, strawberry.argument(description="Cursor to continue before.")]


def page_request(
    connection: str, first: int | None, after: str | None, last: int | None, before: str | None
) -> PageRequest:
    return PageRequest.parse(connection, first=first, after=after, last=last, before=before)


def page_request_of(connection: str, arguments: Mapping[str, Any]) -> PageRequest:
    """`page_request` from a connection field's arguments by their GraphQL names (as
    graphql-core's `get_argument_values` gives them)."""
    return page_request(
        connection,
        arguments.get("first"),
        arguments.get("after"),
        arguments.get("last"),
        arguments.get("before"),
    )


def edges_of(page: Page[T], edge: Callable[[str, T], E]) -> list[E]:
    """A page's edges, in order: `edge(cursor, item)` for each of its items."""
    return [edge(page.cursor(i), item) for i, item in enumerate(page.items)]


def page_info(page: Page[T]) -> relay.PageInfo:
    return relay.PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=page.cursor(0) if page.items else None,
        end_cursor=page.cursor(len(page.items) - 1) if page.items else None,
    )
