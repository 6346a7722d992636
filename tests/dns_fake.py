"""A libcloud DNS driver with the per-value model of Cloudflare's, DigitalOcean's and most
vendors' APIs, in memory, for the part of `LibcloudDNS` no local server exercises (PowerDNS
writes whole RRsets). No vendor of that kind runs locally, so this fake stands in for one,
keeping only what the provider relies on:
- every value is a record of its own with an id; `create_record` adds one and never
  replaces the others of its name and type; an exact duplicate is refused, as Cloudflare
  refuses it;
- names are relative, `""` for the apex; MX priority lives in `extra["priority"]`; TXT data
  is the text itself;
- `update_record` and `delete_record` act on one record by id.

State is per API key and shared by every instance (the provider makes one driver per
worker thread, as it must for a real vendor, whose state is on the server). Every change is
logged with the values the name and type have after it, so a test can check that a name
never resolved to nothing during a replace.

Registered with libcloud as driver `holdfast-per-value` (`register()`).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from libcloud.dns.base import DNSDriver, Record, Zone
from libcloud.dns.providers import DRIVERS, set_driver
from libcloud.dns.types import (
    RecordAlreadyExistsError,
    RecordDoesNotExistError,
    ZoneAlreadyExistsError,
    ZoneDoesNotExistError,
)

NAME = "holdfast-per-value"


class _Account:
    def __init__(self) -> None:
        self.zones: dict[str, Zone] = {}
        self.records: dict[str, dict[str, Record]] = {}
        self.log: list[tuple[str, str, str, tuple[str, ...]]] = []
        """(operation, name, type, the values of that name and type after it)."""
        self.refuse_deletes = False
        """Answer deletes with False and keep the record, as libcloud's drivers report a
        vendor's refusal."""


_ACCOUNTS: dict[str, _Account] = {}
_LOCK = threading.Lock()
_IDS = itertools.count(1)


class PerValueDNSDriver(DNSDriver):  # type: ignore[misc]
    name = "Holdfast per-value fake"
    website = "https://example.invalid"

    def __init__(self, key: str, secret: str | None = None, **kwargs: Any) -> None:
        # No connection: the state is in this process.
        self.key = key
        with _LOCK:
            self._account = _ACCOUNTS.setdefault(key, _Account())

    @staticmethod
    def account(key: str) -> _Account:
        with _LOCK:
            return _ACCOUNTS.setdefault(key, _Account())

    def list_zones(self) -> list[Zone]:
        with _LOCK:
            return list(self._account.zones.values())

    def get_zone(self, zone_id: str) -> Zone:
        with _LOCK:
            zone = self._account.zones.get(zone_id)
        if zone is None:
            raise ZoneDoesNotExistError(value="", driver=self, zone_id=zone_id)
        return zone

    def create_zone(
        self, domain: str, type: str = "master", ttl: int | None = None, extra: Any = None
    ) -> Zone:
        with _LOCK:
            if any(zone.domain == domain for zone in self._account.zones.values()):
                raise ZoneAlreadyExistsError(value="", driver=self, zone_id=domain)
            zone = Zone(str(next(_IDS)), domain, type, ttl, self, extra={})
            self._account.zones[zone.id] = zone
            self._account.records[zone.id] = {}
        return zone

    def delete_zone(self, zone: Zone) -> bool:
        with _LOCK:
            if self._account.zones.pop(zone.id, None) is None:
                raise ZoneDoesNotExistError(value="", driver=self, zone_id=zone.id)
            del self._account.records[zone.id]
        return True

    def list_records(self, zone: Zone) -> list[Record]:
        with _LOCK:
            if zone.id not in self._account.records:
                raise ZoneDoesNotExistError(value="", driver=self, zone_id=zone.id)
            return list(self._account.records[zone.id].values())

    def create_record(
        self, name: str, zone: Zone, type: str, data: str, extra: Any = None
    ) -> Record:
        with _LOCK:
            records = self._zone_records(zone)
            for record in records.values():
                if (record.name, record.type, record.data) == (name, type, data):
                    raise RecordAlreadyExistsError(value="", driver=self, record_id=record.id)
            record = self._record(str(next(_IDS)), name, zone, type, data, extra)
            records[record.id] = record
            self._log("create", zone, name, type)
        return record

    def update_record(
        self, record: Record, name: str, type: str, data: str, extra: Any = None
    ) -> Record:
        with _LOCK:
            records = self._zone_records(record.zone)
            if record.id not in records:
                raise RecordDoesNotExistError(value="", driver=self, record_id=record.id)
            updated = self._record(record.id, name, record.zone, type, data, extra)
            records[record.id] = updated
            self._log("update", record.zone, name, type)
        return updated

    def delete_record(self, record: Record) -> bool:
        with _LOCK:
            records = self._zone_records(record.zone)
            if self._account.refuse_deletes and record.id in records:
                return False
            if records.pop(record.id, None) is None:
                raise RecordDoesNotExistError(value="", driver=self, record_id=record.id)
            self._log("delete", record.zone, record.name, record.type)
        return True

    def _zone_records(self, zone: Zone) -> dict[str, Record]:
        records = self._account.records.get(zone.id)
        if records is None:
            raise ZoneDoesNotExistError(value="", driver=self, zone_id=zone.id)
        return records

    def _record(self, id: str, name: str, zone: Zone, type: str, data: str, extra: Any) -> Record:
        extra = dict(extra or {})
        ttl = extra.pop("ttl", None)
        return Record(id, name, type, data, zone, self, ttl=ttl, extra=extra)

    def _log(self, operation: str, zone: Zone, name: str, type: str) -> None:
        values = tuple(
            sorted(
                record.data
                for record in self._account.records[zone.id].values()
                if (record.name, record.type) == (name, type)
            )
        )
        self._account.log.append((operation, name, type, values))


def register() -> None:
    """Make `holdfast-per-value` a libcloud DNS driver name (once per process)."""
    if NAME not in DRIVERS:
        set_driver(NAME, __name__, PerValueDNSDriver.__name__)
