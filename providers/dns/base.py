"""The DNS provider interface: zones and their records at a DNS vendor.

Every implementation passes the one contract suite in `tests/contract/test_dns_contract.py`
against a real PowerDNS server (resolution checked with `dig`), so the operator can switch
vendors by configuration.

Rules every implementation keeps:
- Zone names are absolute without the trailing dot (`example.org`); record names are
  relative to their zone, `@` for the apex (`www`, `@`), whatever the vendor's own form.
- A record is one (name, type) with one or more values (an RRset): updating replaces all
  values, so switching a name from one fleet to another is one call.
- Values are what an operator writes: an address (A, AAAA), a host name without the final
  dot (CNAME, NS), `10 mail.example.org` (MX), the text itself, unquoted (TXT), the
  zone-file form otherwise (CAA, SRV; SOA as the vendor shows it).
- Only `providers.errors` cross this interface: `NotFound` for a zone or record that does
  not exist; `InvalidRecord` for a name, type, TTL or value DNS cannot hold (nothing
  changed); `Unavailable` for a transient failure; `ConfigurationError` for credentials
  refused; `ProviderError` otherwise.
- Methods are coroutines; a synchronous SDK runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class RecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    MX = "MX"
    TXT = "TXT"
    NS = "NS"
    SRV = "SRV"
    CAA = "CAA"
    SOA = "SOA"
    """Read only: listed and exported where the vendor shows it, never written."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A DNS zone (domain) at the vendor."""

    id: str
    name: str
    ttl: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """One name and type in a zone, with all its values (an RRset)."""

    name: str
    type: RecordType
    values: tuple[str, ...]
    ttl: int = 300
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class DNSProvider(Protocol):
    """A DNS vendor's zones."""

    async def list_zones(self) -> list[Zone]:
        """Every zone the credentials reach."""
        ...

    async def get_zone(self, name: str) -> Zone:
        """One zone by name; NotFound when there is none."""
        ...

    async def create_zone(self, name: str, ttl: int = 3600) -> Zone:
        """Create a zone; an existing one of that name is returned as it is."""
        ...

    async def delete_zone(self, name: str) -> None:
        """Delete a zone and its records. Idempotent."""
        ...

    async def list_records(self, zone: str) -> list[Record]:
        """Every record of `zone` (SOA included where the vendor shows it); NotFound for no
        such zone."""
        ...

    async def get_record(self, zone: str, name: str, type: RecordType) -> Record:
        """One record; NotFound when the zone or the record does not exist."""
        ...

    async def set_record(self, zone: str, record: Record) -> Record:
        """Create the record, or replace all values and the TTL of the existing one of that
        name and type (idempotent)."""
        ...

    async def delete_record(self, zone: str, name: str, type: RecordType) -> None:
        """Delete a record. Idempotent."""
        ...

    async def export_zone(self, zone: str) -> str:
        """The zone in BIND zone-file format (RFC 1035 master file), with `$ORIGIN`."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
