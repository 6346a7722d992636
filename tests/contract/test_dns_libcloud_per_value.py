"""`LibcloudDNS` on a per-value vendor (one libcloud record per value: Cloudflare,
DigitalOcean, ...), through the in-memory driver of tests/dns_fake.py: no such vendor runs
locally. The PowerDNS suite (test_dns_contract.py) covers the RRset path against a real
server; this one checks what differs here: replacing an RRset value by value without the
name ever resolving to nothing, TTL changes, MX priorities and TXT text in libcloud's
per-value form, and the export."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import dns.rdatatype
import dns.zone
import pytest

from providers import registry
from providers.dns.base import DNSProvider, Record, RecordType
from providers.errors import ConfigurationError, InvalidRecord, NotFound, ProviderError
from tests.dns_fake import NAME, PerValueDNSDriver, register

ZONE = "example.org"


@pytest.fixture
async def provider() -> AsyncIterator[tuple[DNSProvider, str]]:
    register()
    key = secrets.token_hex(8)
    opened = registry.load("dns", "libcloud", {"driver": NAME, "key": key})
    await opened.create_zone(ZONE)
    try:
        yield opened, key
    finally:
        await opened.close()


async def test_replace_goes_value_by_value_and_never_empties_the_name(
    provider: tuple[DNSProvider, str],
) -> None:
    dns_provider, key = provider
    account = PerValueDNSDriver.account(key)
    first = await dns_provider.set_record(
        ZONE, Record("@", RecordType.A, ("192.0.2.1", "192.0.2.2"), 300)
    )
    assert first == Record("@", RecordType.A, ("192.0.2.1", "192.0.2.2"), 300)
    # libcloud's per-value form: the apex is "".
    assert {(r.name, r.data) for r in account.records[next(iter(account.zones))].values()} == {
        ("", "192.0.2.1"),
        ("", "192.0.2.2"),
    }

    account.log.clear()
    moved = await dns_provider.set_record(
        ZONE, Record("@", RecordType.A, ("192.0.2.2", "198.51.100.1", "198.51.100.2"), 60)
    )
    assert moved == Record("@", RecordType.A, ("192.0.2.2", "198.51.100.1", "198.51.100.2"), 60)
    assert account.log, "nothing was written"
    assert all(values for _, _, _, values in account.log), account.log

    account.log.clear()
    shrunk = await dns_provider.set_record(ZONE, Record("@", RecordType.A, ("203.0.113.5",), 60))
    assert shrunk.values == ("203.0.113.5",)
    assert all(values for _, _, _, values in account.log), account.log
    assert await dns_provider.get_record(ZONE, "@", RecordType.A) == shrunk

    # The same record again writes nothing.
    account.log.clear()
    assert await dns_provider.set_record(ZONE, shrunk) == shrunk
    assert account.log == []


async def test_mx_txt_cname_in_per_value_form(provider: tuple[DNSProvider, str]) -> None:
    dns_provider, key = provider
    account = PerValueDNSDriver.account(key)
    await dns_provider.set_record(
        ZONE, Record("@", RecordType.MX, ("10 mx1.example.net", "20 mx2.example.net"), 600)
    )
    await dns_provider.set_record(ZONE, Record("@", RecordType.TXT, ('a "quoted" text',)))
    await dns_provider.set_record(ZONE, Record("blog", RecordType.CNAME, ("www.example.org.",)))
    stored = {
        (r.name, r.type, r.data, r.extra.get("priority"))
        for r in account.records[next(iter(account.zones))].values()
    }
    assert stored == {
        ("", "MX", "mx1.example.net", 10),
        ("", "MX", "mx2.example.net", 20),
        ("", "TXT", 'a "quoted" text', None),
        ("blog", "CNAME", "www.example.org", None),
    }
    assert (await dns_provider.get_record(ZONE, "@", RecordType.MX)).values == (
        "10 mx1.example.net",
        "20 mx2.example.net",
    )
    # A priority change is a value change.
    mx = await dns_provider.set_record(
        ZONE, Record("@", RecordType.MX, ("5 mx1.example.net",), 600)
    )
    assert mx.values == ("5 mx1.example.net",)
    assert (await dns_provider.get_record(ZONE, "@", RecordType.TXT)).values == ('a "quoted" text',)

    exported = await dns_provider.export_zone(ZONE)
    parsed = dns.zone.from_text(exported, origin=ZONE + ".", relativize=False, check_origin=False)
    mx_set = parsed.find_rdataset(f"{ZONE}.", dns.rdatatype.MX)
    assert (mx_set.ttl, [r.to_text() for r in mx_set]) == (600, ["5 mx1.example.net."])
    txt = parsed.find_rdataset(f"{ZONE}.", dns.rdatatype.TXT)
    assert [r.to_text() for r in txt] == ['"a \\"quoted\\" text"']


async def test_delete_and_not_found(provider: tuple[DNSProvider, str]) -> None:
    dns_provider, _ = provider
    await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("192.0.2.1", "192.0.2.2")))
    await dns_provider.delete_record(ZONE, "www", RecordType.A)
    await dns_provider.delete_record(ZONE, "www", RecordType.A)
    with pytest.raises(NotFound):
        await dns_provider.get_record(ZONE, "www", RecordType.A)
    with pytest.raises(NotFound):
        await dns_provider.list_records("absent.example.org")
    with pytest.raises(InvalidRecord):
        await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("nope",)))
    await dns_provider.delete_zone(ZONE)
    await dns_provider.delete_zone(ZONE)
    with pytest.raises(NotFound):
        await dns_provider.get_zone(ZONE)


async def test_values_we_cannot_parse_are_skipped_not_fatal(
    provider: tuple[DNSProvider, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A vendor's MX without its priority, DigitalOcean's SRV (its numbers in `extra`) and an
    ALIAS: each is skipped with a warning, and every other record still reads and writes."""
    dns_provider, key = provider
    await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("192.0.2.1",), 300))
    driver = PerValueDNSDriver(key)
    (zone,) = driver.list_zones()
    driver.create_record("", zone, "MX", "mail.example.org", {})
    driver.create_record("_sip._tcp", zone, "SRV", "sip.example.org", {"port": 5060})
    driver.create_record("", zone, "ALIAS", "target.example.net", {})

    records = await dns_provider.list_records(ZONE)
    assert [(r.name, r.type) for r in records] == [("www", RecordType.A)]
    assert "skipped MX @" in caplog.text
    assert await dns_provider.get_record(ZONE, "www", RecordType.A) == Record(
        "www", RecordType.A, ("192.0.2.1",), 300
    )
    with pytest.raises(NotFound):
        await dns_provider.get_record(ZONE, "@", RecordType.MX)
    moved = await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("192.0.2.9",), 60))
    assert moved.values == ("192.0.2.9",)

    exported = await dns_provider.export_zone(ZONE)
    skipped = [line for line in exported.splitlines() if line.startswith("; skipped ")]
    assert len(skipped) == 3
    assert any("ALIAS target.example.net" in line for line in skipped)
    parsed = dns.zone.from_text(exported, origin=ZONE + ".", relativize=False, check_origin=False)
    assert parsed.find_rdataset("www." + ZONE + ".", dns.rdatatype.A).ttl == 60


async def test_a_refused_delete_is_an_error(provider: tuple[DNSProvider, str]) -> None:
    dns_provider, key = provider
    await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("192.0.2.1",), 300))
    PerValueDNSDriver.account(key).refuse_deletes = True
    with pytest.raises(ProviderError, match="not deleted"):
        await dns_provider.delete_record(ZONE, "www", RecordType.A)
    PerValueDNSDriver.account(key).refuse_deletes = False
    await dns_provider.set_record(
        ZONE, Record("www", RecordType.A, ("192.0.2.1", "192.0.2.2"), 300)
    )
    PerValueDNSDriver.account(key).refuse_deletes = True
    # Two values to one: one record is updated in place, the other must go.
    with pytest.raises(ProviderError, match="not deleted"):
        await dns_provider.set_record(ZONE, Record("www", RecordType.A, ("192.0.2.3",), 300))


@pytest.mark.parametrize("driver", ["route53", "gandi_live"])
def test_set_per_name_drivers_are_refused(driver: str) -> None:
    with pytest.raises(ConfigurationError, match="one set"):
        registry.load("dns", "libcloud", {"driver": driver, "key": "k", "secret": "s"})
