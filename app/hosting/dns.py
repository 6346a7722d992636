"""The DNS records that point the service's names at its web nodes (README: Hosting: DNS).

The evacuation switches them from the old fleet to the new one with `point_records`; the
operator keeps a copy of the zone with `holdfast dns export`, to recreate it at another DNS
vendor if this one goes away.
"""

from __future__ import annotations

import ipaddress

from app.settings import Settings
from providers import registry
from providers.dns.base import DNSProvider, Record, RecordType
from providers.errors import ConfigurationError, InvalidRecord


def open_dns(settings: Settings, name: str) -> DNSProvider:
    """The DNS provider of configuration `name` (dns.providers); ConfigurationError naming
    the configuration, or the bad option, otherwise."""
    config = settings.dns.providers.get(name)
    if config is None:
        known = ", ".join(sorted(settings.dns.providers)) or "none"
        raise ConfigurationError(f"no DNS configuration {name!r} (configured: {known})")
    provider = registry.load(
        "dns", config.provider, config.options, where=f"dns.providers.{name}.options"
    )
    if not isinstance(provider, DNSProvider):  # a plug-in package's class gone wrong
        raise ConfigurationError(f"dns provider {config.provider!r} is not a DNSProvider")
    return provider


async def point_records(settings: Settings, provider: DNSProvider, ips: list[str]) -> list[Record]:
    """Point every name of settings.dns.records in settings.dns.zone at `ips`: one A record
    with the IPv4 addresses and one AAAA record with the IPv6 ones, with settings.dns.ttl.
    A type with no address among `ips` is deleted, so that no name keeps pointing at a node
    being left (a fleet without IPv6 leaves no stale AAAA behind).

    Each name's new records are written before the other type is deleted, and each record is
    replaced whole in one call: a name never resolves to nothing meanwhile. Idempotent.
    Refuses (InvalidRecord, nothing changed) an address that is not one, or no address at
    all, which would take the service off the air."""
    zone = settings.dns.zone
    if zone is None:
        raise ConfigurationError("dns.zone is not set: which zone holds the records?")
    if not ips:
        raise InvalidRecord("no addresses to point the records at")
    v4: list[str] = []
    v6: list[str] = []
    for ip in ips:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            raise InvalidRecord(f"{ip!r} is not an IP address") from None
        group = v4 if address.version == 4 else v6
        if str(address) not in group:
            group.append(str(address))
    wanted = {RecordType.A: tuple(v4), RecordType.AAAA: tuple(v6)}
    written: list[Record] = []
    for name in settings.dns.records:
        for rdtype, values in wanted.items():
            if values:
                record = Record(name, rdtype, values, settings.dns.ttl)
                written.append(await provider.set_record(zone, record))
        for rdtype, values in wanted.items():
            if not values:
                await provider.delete_record(zone, name, rdtype)
    return written
