"""Cursor pagination over indexed keys (never OFFSET). Cursors are opaque and name the
connection they belong to, so one from another connection is refused."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.errors import DomainError, ErrorCode
from app.ids import parse_id

T = TypeVar("T")

DEFAULT_PAGE, MAX_PAGE = 20, 100
# Cursors are ~45 characters (a connection name and an id, in URL-safe base64).
CURSOR_MAX = 100
# The decoder skips characters outside the alphabet; a cursor with any is not ours.
_CURSOR_RE = re.compile(r"[A-Za-z0-9_-]+")


def encode_cursor(connection: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{connection}:{key}".encode()).decode().rstrip("=")


def decode_cursor(connection: str, cursor: str, field: str) -> int:
    if len(cursor) > CURSOR_MAX or not _CURSOR_RE.fullmatch(cursor):
        raise DomainError(ErrorCode.INVALID_CURSOR, "This is not a cursor.", field)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        name, _, key = raw.rpartition(":")
        value = parse_id(key)
        if name != connection or value is None:
            raise ValueError(name)
        return value
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise DomainError(
            ErrorCode.INVALID_CURSOR, "This cursor does not belong to this list.", field
        ) from None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`limit` items after the key `after` (in the list's order), or before `before`."""

    connection: str
    limit: int
    after: int | None = None
    before: int | None = None
    backward: bool = False

    @classmethod
    def parse(
        cls,
        connection: str,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> PageRequest:
        if first is not None and last is not None:
            raise DomainError(ErrorCode.INVALID_INPUT, "Give first or last, not both.", "last")
        size = last if last is not None else first if first is not None else DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"Pages hold 1 to {MAX_PAGE} items.",
                "last" if last is not None else "first",
            )
        return cls(
            connection=connection,
            limit=size,
            after=decode_cursor(connection, after, "after") if after else None,
            before=decode_cursor(connection, before, "before") if before else None,
            backward=last is not None,
        )

    def keyset(self, column: str, ascending: bool = False) -> tuple[str, str]:
        """The WHERE condition and ORDER BY for this page over `column` (parameters :after,
        :before, :limit; call `params`)."""
        newer, older = (">", "<") if ascending else ("<", ">")
        conditions = []
        if self.after is not None:
            conditions.append(f"{column} {newer} :after")
        if self.before is not None:
            conditions.append(f"{column} {older} :before")
        reverse = self.backward
        direction = (
            ("ASC" if ascending else "DESC") if not reverse else ("DESC" if ascending else "ASC")
        )
        return " AND ".join(conditions) or "1 = 1", f"{column} {direction}"

    def params(self) -> dict[str, int]:
        values = {"limit": self.limit + 1}
        if self.after is not None:
            values["after"] = self.after
        if self.before is not None:
            values["before"] = self.before
        return values


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    keys: list[int]
    has_next: bool
    has_previous: bool
    connection: str

    def cursor(self, index: int) -> str:
        return encode_cursor(self.connection, self.keys[index])


def make_page(request: PageRequest, items: list[T], keys: list[int]) -> Page[T]:
    """Trim the one extra row fetched to learn whether more exist; put a backward page back
    into the list's order."""
    more = len(items) > request.limit
    items, keys = items[: request.limit], keys[: request.limit]
    if request.backward:
        items.reverse()
        keys.reverse()
        return Page(items, keys, request.before is not None, more, request.connection)
    return Page(items, keys, more, request.after is not None, request.connection)
