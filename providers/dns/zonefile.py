"""DNS names, record values and zone files in the DNS interface's forms, for any provider.

The interface's forms (providers/dns/base.py): zones absolute without the trailing dot, record
names relative with `@` for the apex, values as an operator writes them. Vendors mostly speak
the zone-file (RFC 1035 presentation) form: absolute host names with the dot, TXT quoted and
escaped in strings of 255 bytes at most. dnspython parses and renders both, so that a bad
value is refused here, before any vendor call, and an export is a zone file BIND loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.zone

from providers.dns.base import Record, RecordType
from providers.errors import InvalidRecord, ProviderError

_HOST_VALUES = frozenset({RecordType.CNAME, RecordType.NS})
_WRITABLE = frozenset(RecordType) - {RecordType.SOA}
_IN = dns.rdataclass.IN


@dataclass(frozen=True, slots=True)
class RRset:
    """One name and type (relative name, `@` for the apex) with its values in zone-file form
    (absolute host names with the trailing dot, TXT quoted)."""

    name: str
    type: str
    ttl: int
    values: tuple[str, ...]


def parse_zone_name(name: str) -> str:
    """`name` as a zone name of the interface (lower case, no trailing dot); InvalidRecord
    when it is not a domain name."""
    text = str(name).strip().lower().removesuffix(".")
    try:
        parsed = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise InvalidRecord(f"zone name {name!r} is not a domain name: {exc}") from None
    if len(parsed) < 3 or "@" in text or " " in text:  # two labels and the root at least
        raise InvalidRecord(f"zone name {name!r} is not a domain name")
    return text


def parse_record_name(name: str) -> str:
    """`name` as a record name of the interface: relative, lower case, `@` for the apex."""
    text = str(name).strip().lower()
    if text in ("", "@"):
        return "@"
    if text.endswith("."):
        raise InvalidRecord(f"record name {name!r} must be relative to its zone (no final dot)")
    try:
        dns.name.from_text(text, origin=None)
    except dns.exception.DNSException as exc:
        raise InvalidRecord(f"record name {name!r} is not a DNS name: {exc}") from None
    if "@" in text or " " in text or ".." in text:
        raise InvalidRecord(f"record name {name!r} is not a DNS name")
    return text


def parse_host(value: str) -> str:
    """A host name value (CNAME, NS targets, name servers): absolute, no final dot."""
    text = str(value).strip().lower().removesuffix(".")
    try:
        dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{value!r} is not a host name: {exc}") from None
    if not text or " " in text or "@" in text:
        raise ValueError(f"{value!r} is not a host name")
    return text


def absolute_name(name: str, zone_name: str) -> str:
    return f"{zone_name}." if name == "@" else f"{name}.{zone_name}."


def relative_name(name: str | None, zone_name: str) -> str:
    """A vendor's record name (absolute or relative, with or without the dot, `""`, `None`
    or `@` for the apex) as the interface's relative one."""
    text = (name or "").strip().lower().removesuffix(".")
    if text in ("", "@", zone_name):
        return "@"
    return text.removesuffix("." + zone_name)


def check_record(record: Record) -> RRset:
    """`record` checked and in zone-file form; InvalidRecord naming what is wrong."""
    try:
        rdtype = RecordType(record.type)
    except ValueError:
        raise InvalidRecord(f"record type {record.type!r} is not supported") from None
    name = parse_record_name(record.name)
    if rdtype not in _WRITABLE:
        raise InvalidRecord(f"{rdtype} records are the vendor's to write")
    if not 1 <= record.ttl <= 2_147_483_647:
        raise InvalidRecord(f"TTL {record.ttl} is out of range")
    if isinstance(record.values, str) or not record.values:
        raise InvalidRecord(f"{rdtype} record {name!r} needs one or more values (a tuple)")
    if rdtype is RecordType.CNAME and (len(record.values) != 1 or name == "@"):
        raise InvalidRecord("a CNAME has exactly one value, and never at the apex")
    values: list[str] = []
    for value in record.values:
        text = to_zone_file(rdtype, value)
        if text not in values:
            values.append(text)
    return RRset(name, rdtype.value, record.ttl, tuple(values))


def to_zone_file(rdtype: RecordType, value: str) -> str:
    """An interface value as its canonical zone-file text (absolute names)."""
    if not isinstance(value, str):
        raise InvalidRecord(f"{rdtype} value {value!r} is not a string")
    if rdtype is RecordType.TXT:
        data = value.encode()
        chunks = [data[start : start + 255] for start in range(0, len(data), 255)] or [b""]
        return str(dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, chunks).to_text())
    text = value.strip()
    if rdtype in _HOST_VALUES or rdtype in (RecordType.MX, RecordType.SRV):
        # Host names are absolute: the last field gets its dot.
        head, _, host = text.rpartition(" ")
        text = f"{head} {host.removesuffix('.')}.".strip()
    try:
        rdata = dns.rdata.from_text(_IN, rdtype.value, text, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError) as exc:
        raise InvalidRecord(f"{rdtype} value {value!r} is not valid: {exc}") from None
    return str(rdata.to_text())


def readable(rdtype: str, text: str) -> bool:
    """Whether a vendor's zone-file value parses as its type (a type dnspython does not
    know, like ALIAS, does not): what does not is skipped when reading, rather than failing
    every read of the zone."""
    try:
        dns.rdata.from_text(_IN, rdtype, text, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError, TypeError, AttributeError):
        return False
    return True


def to_interface_value(rdtype: RecordType, text: str) -> str:
    """A zone-file value as the interface's (no final dots, TXT unquoted); InvalidRecord
    when it does not parse (only `providers.errors` leave this module)."""
    try:
        rdata = dns.rdata.from_text(_IN, rdtype.value, text, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError, TypeError, AttributeError) as exc:
        raise InvalidRecord(f"{rdtype} value {text!r} is not valid: {exc}") from None
    if rdtype is RecordType.TXT:
        strings: Sequence[bytes] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode(errors="replace")
    if rdtype is RecordType.SOA:
        return str(rdata.to_text())
    rendered = str(rdata.to_text())
    if rdtype in _HOST_VALUES or rdtype in (RecordType.MX, RecordType.SRV):
        return rendered.removesuffix(".")
    return rendered


def to_record(rrset: RRset) -> Record:
    rdtype = RecordType(rrset.type)
    values = sorted({to_interface_value(rdtype, value) for value in rrset.values})
    return Record(name=rrset.name, type=rdtype, values=tuple(values), ttl=rrset.ttl)


def render_bind(zone_name: str, rrsets: Iterable[RRset], skipped: Sequence[str] = ()) -> str:
    """The RRsets as an RFC 1035 master file with `$ORIGIN`, names relative to the zone;
    `skipped` (values read but not parsed) follow as `; skipped` comment lines, so that the
    file says what it lacks."""
    origin = dns.name.from_text(zone_name)
    zone = dns.zone.Zone(origin, relativize=True)
    for rrset in rrsets:
        name = dns.name.empty if rrset.name == "@" else dns.name.from_text(rrset.name, None)
        try:
            rdtype = dns.rdatatype.from_text(rrset.type)
            rdataset = zone.find_rdataset(name, rdtype, create=True)
            for value in rrset.values:
                rdataset.add(
                    dns.rdata.from_text(
                        _IN, rdtype, value, origin=dns.name.root, relativize_to=origin
                    )
                )
        except (dns.exception.DNSException, ValueError) as exc:
            raise ProviderError(
                f"export_zone: {rrset.type} {rrset.name!r} cannot be written: {exc}"
            ) from None
        rdataset.ttl = rrset.ttl
    body = str(zone.to_text(sorted=True, relativize=True, want_origin=True))
    for line in skipped:
        body += f"; skipped {' '.join(line.split())}\n"
    return body
