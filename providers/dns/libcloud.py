"""Any apache-libcloud DNS driver (PowerDNS, Cloudflare, DigitalOcean, Gandi, Route 53, ...).

The only module that imports libcloud's DNS drivers. They are synchronous and not
thread-safe: every call runs in a worker thread, and each worker thread has its own driver.

libcloud models a record as one value, and its drivers disagree on what a name or a value
looks like; this provider turns them into the interface's shape at the edge:
- Names: zones are absolute without the trailing dot, records relative with `@` for the apex.
  The PowerDNS driver wants absolute names with the dot (`www.example.org.`), the others the
  relative name with `""` for the apex.
- Values are what an operator writes: an address, a host name without the trailing dot
  (CNAME, NS), `10 mail.example.org` (MX), the text itself (TXT, unquoted: it is quoted,
  escaped and split into 255-byte strings here), CAA in its zone-file form. The vendor's
  form is the zone-file one for PowerDNS; libcloud's per-value form (MX priority in `extra`)
  for the others.
- One RRset, several values: PowerDNS's driver replaces the whole RRset with one value on
  each `create_record`, so two A values for two web nodes would leave one; this provider
  writes PowerDNS RRsets itself, all values in one `REPLACE` through the driver's own
  connection. For per-value vendors it creates, updates and deletes single values, adding the
  new ones before removing the old, so the name never resolves to nothing meanwhile; a delete
  the vendor refuses is an error. Route 53's and Gandi LiveDNS's drivers also keep a name's
  values as one set, which the per-value path would break (Gandi's delete removes the whole
  set, Route 53's create fails on an existing name): they are refused with the options until
  a whole-set writer for them is tested.
- Reading: a vendor value that does not parse as its type (an MX without its priority,
  DigitalOcean's SRV, an ALIAS) is skipped with a warning (and a `; skipped` line in an
  export), never failing the whole zone's reads.

`export_zone` renders the zone with dnspython (`providers/dns/zonefile.py`) rather than libcloud's
`export_zone_to_bind_format`, which refuses zones whose type is not `master` (PowerDNS's
have none), writes `$TTL None`, doubles the zone onto PowerDNS's absolute names and quotes
TXT contents that are quoted already.

The PowerDNS path is tested against a real PowerDNS server (tests/contract/
test_dns_contract.py); the per-value path against an in-memory libcloud driver of that model
(tests/dns_fake.py), as no such vendor runs locally.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import InvalidCredsError
from libcloud.dns.base import DNSDriver
from libcloud.dns.base import Record as LibcloudRecord
from libcloud.dns.base import Zone as LibcloudZone
from libcloud.dns.providers import get_driver
from libcloud.dns.types import (
    Provider,
    RecordDoesNotExistError,
    ZoneAlreadyExistsError,
    ZoneDoesNotExistError,
)
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.dns.base import Record, RecordType, Zone
from providers.dns.zonefile import (
    RRset,
    absolute_name,
    check_record,
    parse_host,
    parse_record_name,
    parse_zone_name,
    readable,
    relative_name,
    render_bind,
    to_interface_value,
    to_record,
    to_zone_file,
)
from providers.errors import (
    ConfigurationError,
    InvalidRecord,
    NotFound,
    ProviderError,
)
from providers.libcloud_errors import close_session, map_error

T = TypeVar("T")

log = logging.getLogger("holdfast.dns")


@dataclass(frozen=True)
class _Read:
    """A zone as read: its RRsets, and the values skipped as unreadable."""

    zone: LibcloudZone
    rrsets: list[RRset]
    skipped: list[str]


DRIVERS = frozenset(
    value for name, value in vars(Provider).items() if not name.startswith("_") and value
)
"""libcloud's DNS driver names (`powerdns`, `cloudflare`, `route53`, ...)."""

_RRSET_DRIVERS = frozenset({"powerdns"})
"""Drivers written RRset by RRset, with absolute names and zone-file values."""

_SET_PER_NAME_DRIVERS = {
    "route53": "its create_record fails for a name and type that already have a value",
    "gandi_live": "its delete_record deletes every value of the name and type",
}
"""Drivers that, like PowerDNS, keep all values of a name and type as one set, but whose
sets this provider cannot yet write whole: the value-by-value path would break them, so
they are refused with the settings rather than corrupting the records during a switch."""


class LibcloudDNS:
    """A `DNSProvider` on a libcloud DNS driver."""

    kind: ClassVar[str] = "libcloud"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        driver: str
        """libcloud's driver name: powerdns, cloudflare, digitalocean, gandi, route53, ..."""
        key: SecretStr
        """The driver's first argument, which every libcloud DNS driver takes: an API key, a
        token, an access key id or a user name."""
        secret: SecretStr | None = None
        host: str | None = None
        port: int | None = Field(None, ge=1, le=65_535)
        secure: bool | None = None
        extra: dict[str, Any] = Field(default_factory=dict)
        """Further keyword arguments of the driver, e.g. `api_version = "v1"` for PowerDNS."""
        nameservers: list[str] = Field(default_factory=list)
        """The NS records of zones this provider creates, where the driver needs them
        (PowerDNS)."""
        timeout: float = Field(30, gt=0, le=600)
        """Seconds a vendor call may take."""

        @field_validator("driver")
        @classmethod
        def _known_driver(cls, value: str) -> str:
            name = value.lower()
            try:
                # libcloud's own, or one registered with `libcloud.dns.providers.set_driver`.
                get_driver(name)
            except (AttributeError, ImportError):
                known = ", ".join(sorted(DRIVERS))
                raise ValueError(
                    f"unknown libcloud DNS driver {value!r} (libcloud's: {known})"
                ) from None
            if name in _SET_PER_NAME_DRIVERS:
                raise ValueError(
                    f"libcloud DNS driver {name!r} is not supported: it keeps the values of a "
                    f"name and type as one set, and {_SET_PER_NAME_DRIVERS[name]}, so records "
                    "written value by value would be lost or refused"
                )
            return name

        @field_validator("extra")
        @classmethod
        def _no_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
            reserved = {"key", "secret", "host", "port", "secure", "timeout"} & set(value)
            if reserved:
                raise ValueError(f"set {', '.join(sorted(reserved))} as options, not in extra")
            return value

        @field_validator("nameservers")
        @classmethod
        def _host_names(cls, value: list[str]) -> list[str]:
            return [parse_host(name) for name in value]

    def __init__(self, options: LibcloudDNS.Options) -> None:
        self.options = options
        self._driver_class: type[DNSDriver] = get_driver(options.driver)
        self._local = threading.local()
        self._drivers: list[DNSDriver] = []
        self._drivers_lock = threading.Lock()
        self._generation = 0
        """Bumped by close(): worker threads then make new drivers rather than reuse closed
        ones."""
        self._rrsets = options.driver in _RRSET_DRIVERS
        self._writes = threading.Lock()
        """Writes one at a time: a per-value vendor's replace reads, then writes, and PowerDNS
        on SQLite answers concurrent zone changes with HTTP 500 (its database is locked)."""

    # -- the interface ------------------------------------------------------------------

    async def list_zones(self) -> list[Zone]:
        zones = await self._run("list_zones", lambda: self._driver().list_zones())
        return sorted((self._zone(zone) for zone in zones), key=lambda zone: zone.name)

    async def get_zone(self, name: str) -> Zone:
        zone_name = parse_zone_name(name)
        return self._zone(await self._run("get_zone", lambda: self._find_zone(zone_name)))

    async def create_zone(self, name: str, ttl: int = 3600) -> Zone:
        zone_name = parse_zone_name(name)
        if not 1 <= ttl <= 2_147_483_647:
            raise InvalidRecord(f"TTL {ttl} is out of range")

        def create() -> LibcloudZone:
            with self._writes:
                return create_unlocked()

        def create_unlocked() -> LibcloudZone:
            with contextlib.suppress(NotFound):
                return self._find_zone(zone_name)
            driver = self._driver()
            try:
                if self._rrsets:
                    nameservers = [host + "." for host in self.options.nameservers]
                    driver.create_zone(zone_name + ".", extra={"nameservers": nameservers})
                else:
                    driver.create_zone(zone_name, type="master", ttl=ttl)
            except ZoneAlreadyExistsError:
                pass  # created meanwhile by another caller: return it as it is
            except BaseHTTPError as exc:
                if exc.code != 409:
                    raise
            return self._find_zone(zone_name)

        return self._zone(await self._run("create_zone", create))

    async def delete_zone(self, name: str) -> None:
        zone_name = parse_zone_name(name)

        def delete() -> None:
            with self._writes:
                delete_unlocked()

        def delete_unlocked() -> None:
            try:
                zone = self._find_zone(zone_name)
            except NotFound:
                return
            # libcloud's PowerDNS driver answers False for any failure, gone or not.
            if not self._driver().delete_zone(zone):
                with contextlib.suppress(NotFound):
                    self._find_zone(zone_name)
                    raise ProviderError(f"zone {zone_name} could not be deleted")

        await self._run("delete_zone", delete)

    async def list_records(self, zone: str) -> list[Record]:
        zone_name = parse_zone_name(zone)
        read = await self._run("list_records", lambda: self._read(zone_name))
        return [to_record(rrset) for rrset in read.rrsets if rrset.type in RecordType.__members__]

    async def get_record(self, zone: str, name: str, type: RecordType) -> Record:
        zone_name, record_name = parse_zone_name(zone), parse_record_name(name)
        try:
            record_type = RecordType(type)
        except ValueError:
            raise InvalidRecord(f"record type {type!r} is not supported") from None
        # Only this name and type are parsed: a record elsewhere in the zone that does not
        # parse never fails this one's read.
        read = await self._run(
            "get_record", lambda: self._read(zone_name, only=(record_name, record_type.value))
        )
        for rrset in read.rrsets:
            return to_record(rrset)
        raise NotFound(f"no {record_type} record {record_name!r} in zone {zone_name}")

    async def set_record(self, zone: str, record: Record) -> Record:
        zone_name = parse_zone_name(zone)
        wanted = check_record(record)

        def write() -> None:
            with self._writes:
                write_unlocked()

        def write_unlocked() -> None:
            if self._rrsets:
                self._replace_rrset(zone_name, wanted)
            else:
                self._replace_values(zone_name, wanted)

        await self._run("set_record", write)
        return await self.get_record(zone_name, wanted.name, RecordType(wanted.type))

    async def delete_record(self, zone: str, name: str, type: RecordType) -> None:
        zone_name, record_name = parse_zone_name(zone), parse_record_name(name)
        try:
            record_type = RecordType(type)
        except ValueError:
            raise InvalidRecord(f"record type {type!r} is not supported") from None

        def delete() -> None:
            with self._writes:
                delete_unlocked()

        def delete_unlocked() -> None:
            driver = self._driver()
            found = self._find_zone(zone_name)
            if self._rrsets:
                change = {
                    "name": absolute_name(record_name, zone_name),
                    "type": record_type.value,
                    "changetype": "DELETE",
                }
                self._patch(driver, found, zone_name, [change])
                return
            for raw in self._raw_records(driver, found, zone_name, record_name, record_type):
                _delete_value(driver, raw, zone_name)

        await self._run("delete_record", delete)

    async def export_zone(self, zone: str) -> str:
        zone_name = parse_zone_name(zone)
        read = await self._run("export_zone", lambda: self._read(zone_name))
        return render_bind(zone_name, read.rrsets, read.skipped)

    async def close(self) -> None:
        with self._drivers_lock:
            drivers, self._drivers = self._drivers, []
            self._generation += 1
        for driver in drivers:
            close_session(driver)

    # -- in the worker thread -----------------------------------------------------------

    def _driver(self) -> DNSDriver:
        driver: DNSDriver | None = getattr(self._local, "driver", None)
        if getattr(self._local, "generation", None) != self._generation:
            driver = None  # made before close(): its session is closed and no longer tracked
        if driver is None:
            options = self.options
            kwargs: dict[str, Any] = dict(options.extra)
            if options.secret is not None:
                kwargs["secret"] = options.secret.get_secret_value()
            for name in ("host", "port", "secure"):
                if getattr(options, name) is not None:
                    kwargs[name] = getattr(options, name)
            try:
                driver = self._driver_class(
                    options.key.get_secret_value(), timeout=options.timeout, **kwargs
                )
            except TypeError as exc:
                raise ConfigurationError(
                    f"libcloud DNS driver {options.driver!r} does not take these options: {exc}"
                ) from None
            self._local.driver = driver
            self._local.generation = self._generation
            with self._drivers_lock:
                self._drivers.append(driver)
        return driver

    def _find_zone(self, zone_name: str) -> LibcloudZone:
        driver = self._driver()
        if self._rrsets:
            try:
                return driver.get_zone(zone_name + ".")
            except ZoneDoesNotExistError:
                raise NotFound(f"no zone {zone_name}") from None
            except BaseHTTPError as exc:
                if exc.code in (404, 422):
                    raise NotFound(f"no zone {zone_name}") from None
                raise
        for zone in driver.list_zones():
            if parse_zone_name(zone.domain) == zone_name:
                return zone
        raise NotFound(f"no zone {zone_name}")

    def _zone(self, zone: LibcloudZone) -> Zone:
        extra = {
            key: value
            for key, value in (zone.extra or {}).items()
            if isinstance(value, str | int | bool | None)
        }
        return Zone(id=str(zone.id), name=parse_zone_name(zone.domain), ttl=zone.ttl, extra=extra)

    def _read(self, zone_name: str, only: tuple[str, str] | None = None) -> _Read:
        """The zone's RRsets (or only those of `only`'s name and type), sorted by name and
        type. A value that does not parse as its type (an MX without its priority, a
        DigitalOcean SRV with its numbers in `extra`, a type like ALIAS) is skipped with a
        warning: one record we cannot read must not stop every read of the zone."""
        driver = self._driver()
        zone = self._find_zone(zone_name)
        raws = driver.list_records(zone)
        grouped: dict[tuple[str, str], tuple[int, list[str]]] = {}
        skipped: list[str] = []
        for raw in raws:
            name = relative_name(raw.name, zone_name)
            rdtype = str(raw.type).upper()
            if only is not None and (name, rdtype) != only:
                continue
            value = str(raw.data or "") if self._rrsets else _zone_file_value(raw)
            if not readable(rdtype, value):
                log.warning(
                    "dns %s: skipped %s %s %r: not a value of its type",
                    zone_name,
                    rdtype,
                    name,
                    value[:100],
                )
                skipped.append(f"{name} {rdtype} {value[:200]}")
                continue
            ttl = raw.ttl if raw.ttl is not None else (raw.extra or {}).get("ttl")
            entry = grouped.setdefault((name, rdtype), (int(ttl or zone.ttl or 3600), []))
            entry[1].append(value)
        rrsets = [
            RRset(name, rdtype, ttl, tuple(values))
            for (name, rdtype), (ttl, values) in sorted(grouped.items(), key=_order)
        ]
        return _Read(zone, rrsets, skipped)

    def _patch(
        self, driver: DNSDriver, zone: LibcloudZone, zone_name: str, changes: list[dict[str, Any]]
    ) -> None:
        """PATCH RRsets of a PowerDNS zone through the driver's connection."""
        pdns: Any = driver  # PowerDNSDriver: its API root and server are untyped attributes
        action = f"{pdns.api_root}/servers/{pdns.ex_server}/zones/{zone.id}"
        try:
            connection: Any = driver.connection  # untyped
            connection.request(action=action, data=json.dumps({"rrsets": changes}), method="PATCH")
        except BaseHTTPError as exc:
            if exc.code == 404:
                raise NotFound(f"no zone {zone_name}") from None
            if exc.code in (400, 422):
                # PowerDNS says what it refused (a CNAME beside other data, a bad value).
                raise InvalidRecord(
                    f"PowerDNS refused the change: {str(exc.message)[:300]}"
                ) from None
            raise

    def _replace_rrset(self, zone_name: str, record: RRset) -> None:
        driver = self._driver()
        zone = self._find_zone(zone_name)
        change = {
            "name": absolute_name(record.name, zone_name),
            "type": record.type,
            "ttl": record.ttl,
            "changetype": "REPLACE",
            "records": [{"content": value, "disabled": False} for value in record.values],
        }
        self._patch(driver, zone, zone_name, [change])

    def _raw_records(
        self,
        driver: DNSDriver,
        zone: LibcloudZone,
        zone_name: str,
        name: str,
        rdtype: RecordType,
    ) -> list[LibcloudRecord]:
        return [
            raw
            for raw in driver.list_records(zone)
            if relative_name(raw.name, zone_name) == name and str(raw.type).upper() == rdtype.value
        ]

    def _replace_values(self, zone_name: str, record: RRset) -> None:
        """Make a per-value vendor's values of (name, type) `record`'s: values kept stay (their
        TTL updated), the rest are updated in place, created, then deleted, in that order."""
        driver = self._driver()
        zone = self._find_zone(zone_name)
        rdtype = RecordType(record.type)
        existing = self._raw_records(driver, zone, zone_name, record.name, rdtype)
        wanted = list(record.values)
        stale: list[LibcloudRecord] = []
        for raw in existing:
            value = _zone_file_value(raw)
            if value in wanted:
                wanted.remove(value)
                if (raw.ttl or (raw.extra or {}).get("ttl")) != record.ttl:
                    self._update(driver, raw, record, value)
            else:
                stale.append(raw)
        while stale and wanted:
            self._update(driver, stale.pop(), record, wanted.pop())
        for value in wanted:
            data, extra = _driver_value(rdtype, value, record.ttl)
            libcloud_type: Any = rdtype.value  # libcloud's RecordType constants are strings
            driver.create_record(_driver_name(record.name), zone, libcloud_type, data, extra)
        for raw in stale:
            _delete_value(driver, raw, zone_name)

    def _update(self, driver: DNSDriver, raw: LibcloudRecord, record: RRset, value: str) -> None:
        data, extra = _driver_value(RecordType(record.type), value, record.ttl)
        libcloud_type: Any = record.type  # libcloud's RecordType constants are strings
        driver.update_record(raw, _driver_name(record.name), libcloud_type, data, extra)

    async def _run(self, operation: str, function: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(function)
        except (ZoneDoesNotExistError, RecordDoesNotExistError) as exc:
            raise NotFound(f"libcloud {operation}: {type(exc).__name__}") from None
        except Exception as exc:
            mapped = map_error(operation, exc)
            if mapped is None or mapped is exc:
                raise
            if isinstance(mapped, ConfigurationError) and isinstance(exc, InvalidCredsError):
                mapped = ConfigurationError(
                    f"libcloud {operation}: the {self.options.driver} credentials were refused"
                )
            raise mapped from None


def _delete_value(driver: DNSDriver, raw: LibcloudRecord, zone_name: str) -> None:
    """Delete one vendor value; gone already is done, but a refusal (libcloud's drivers
    answer False) is an error: a stale address left behind keeps sending users to a node
    being abandoned."""
    try:
        deleted = driver.delete_record(raw)
    except RecordDoesNotExistError:
        return
    if deleted is False:
        name = relative_name(raw.name, zone_name)
        raise ProviderError(f"{raw.type} value of {name!r} in zone {zone_name} was not deleted")


# -- names and values --------------------------------------------------------------------


def _driver_name(name: str) -> str:
    """The record name libcloud's per-value drivers take: relative, `""` for the apex."""
    return "" if name == "@" else name


def _order(item: tuple[tuple[str, str], Any]) -> tuple[int, str, int, str]:
    """The apex first and its SOA first of all, as zone files have them."""
    (name, rdtype), _ = item
    return (0 if name == "@" else 1, name, 0 if rdtype == "SOA" else 1, rdtype)


def _zone_file_value(raw: LibcloudRecord) -> str:
    """A per-value driver's record data (MX priority in `extra`, TXT unquoted, host names
    maybe without their dot) in zone-file form; unknown types pass as they are."""
    rdtype = str(raw.type).upper()
    data = str(raw.data or "")
    if rdtype == "MX" and (raw.extra or {}).get("priority") is not None:
        data = f"{raw.extra['priority']} {data}"
    if rdtype in RecordType.__members__ and rdtype != "SOA":
        with contextlib.suppress(InvalidRecord):
            return to_zone_file(RecordType(rdtype), data)
    return data


def _driver_value(rdtype: RecordType, value: str, ttl: int) -> tuple[str, dict[str, Any]]:
    """A zone-file value as a per-value driver's data and extra."""
    extra: dict[str, Any] = {"ttl": ttl}
    interface = to_interface_value(rdtype, value)
    if rdtype is RecordType.MX:
        priority, _, host = interface.partition(" ")
        extra["priority"] = int(priority)
        return host, extra
    return interface, extra
