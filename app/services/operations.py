"""Registered operations (trusted documents): the documents a client release may send, by the
SHA-256 of their text. `holdfast operations register` writes them, after every one has been
checked against the schema and the limits; serving processes read them (`schema.persisted`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from app.errors import DomainError, ErrorCode
from app.models import PersistedOperation

# An operation's id: the SHA-256 of its text in lower-case hex (what Apollo's and urql's links
# send, and GraphQL over HTTP's `sha256:` document ids carry).
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SHA256_PREFIX = "sha256:"


def document_hash(text: str) -> str:
    """The SHA-256 of a document's text (UTF-8) in lower-case hex: its id for automatic
    persisted queries and registered operations, whoever computes it (the command line, a
    serving process)."""
    return hashlib.sha256(text.encode()).hexdigest()


def hash_of_id(value: str) -> str | None:
    """The hash an operation id names, as clients and manifests write one: `sha256:<hex>`
    (GraphQL over HTTP's SHA256 hex document identifier) or the bare hex (Apollo's manifests,
    the maps of Relay and GraphQL Code Generator, whose client preset and Hive also send it as
    a `documentId`). None when it is neither: another algorithm, upper-case hex, anything
    else."""
    sha256 = value.removeprefix(SHA256_PREFIX)
    return sha256 if SHA256_HEX.fullmatch(sha256) else None


@dataclass(frozen=True, slots=True)
class DocumentCheck:
    """What checking one document against the schema found: the names of its operations, and
    why it may not run (`problems` empty: it may)."""

    operation_names: tuple[str, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewOperation:
    document: str
    operation_names: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Its identity: a registered operation is always named by its document's SHA-256."""
        return document_hash(self.document)


@dataclass(frozen=True, slots=True)
class RegisteredOperation:
    sha256: str
    operation_names: tuple[str, ...]
    registered_at: datetime


async def _hashes(operations: QuerySet[PersistedOperation]) -> list[str]:
    hashes: list[str] = await operations.values_list("sha256", flat=True)  # type: ignore[assignment]
    return hashes


class OperationService:
    async def registered_hashes(self) -> frozenset[str]:
        """Every registered hash: what a process checks a request's hash against (one small
        read, however many unknown hashes clients send)."""
        return frozenset(await _hashes(PersistedOperation.all()))

    async def document(self, sha256: str) -> str | None:
        row = await PersistedOperation.get_or_none(sha256=sha256).only("sha256", "document")
        return row.document if row else None

    async def register(self, operations: Sequence[NewOperation]) -> int:
        """Register `operations` (checked against the schema and limits by the caller; each is
        named by its document's SHA-256) in one transaction; the number that
        were not registered yet. Registering a document again changes nothing: its hash is
        its identity."""
        unique = {operation.sha256: operation for operation in operations}
        while True:
            try:
                async with in_transaction():
                    known = set(await _hashes(PersistedOperation.filter(sha256__in=list(unique))))
                    new = [op for sha256, op in unique.items() if sha256 not in known]
                    await PersistedOperation.bulk_create(
                        [
                            PersistedOperation(
                                sha256=operation.sha256,
                                document=operation.document,
                                operation_names=list(operation.operation_names),
                            )
                            for operation in new
                        ]
                    )
            except IntegrityError:
                # Another registration wrote some of them since they were read: read again
                # (each round finds at least one more registered, so this ends), so that the
                # count is of the rows this one wrote.
                continue
            return len(new)

    async def registered(self) -> list[RegisteredOperation]:
        rows = await PersistedOperation.all().order_by("registered_at", "sha256")
        return [
            RegisteredOperation(row.sha256, tuple(row.operation_names), row.registered_at)
            for row in rows
        ]

    async def remove(self, hashes: Sequence[str]) -> int:
        """Remove every one of `hashes`, or none: NOT_FOUND naming those not registered."""
        wanted = set(hashes)
        async with in_transaction():
            known = set(await _hashes(PersistedOperation.filter(sha256__in=list(wanted))))
            missing = sorted(wanted - known)
            if missing:
                raise DomainError(
                    ErrorCode.NOT_FOUND, f"Not registered: {', '.join(missing)}.", "hashes"
                )
            await PersistedOperation.filter(sha256__in=list(wanted)).delete()
        return len(wanted)
