"""The DNS contract: every `DNSProvider` passes these same cases against a real DNS server
(PowerDNS authoritative, through its HTTP API), and what the provider writes is checked where
it matters, in the answers the server gives over DNS (`dig`)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import dns.rdatatype
import dns.zone
import pytest

from providers import registry
from providers.dns.base import DNSProvider, Record, RecordType
from providers.errors import ConfigurationError, InvalidRecord, NotFound, Unavailable
from tests.conftest import REQUIRE_SERVICES
from tests.servers import PowerDNS, free_port

PROVIDERS = ["libcloud-powerdns"]
NAMESERVERS = ["ns1.example.net", "ns2.example.net"]


def powerdns_options(server: PowerDNS, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "driver": "powerdns",
        "key": server.api_key,
        "host": "127.0.0.1",
        "port": server.api_port,
        "secure": False,
        "extra": {"api_version": "v1"},
        "nameservers": NAMESERVERS,
        "timeout": 10,
    }
    options.update(overrides)
    return options


class Harness:
    """A provider and the server behind it, with a fresh zone name per test."""

    def __init__(self, provider: DNSProvider, server: PowerDNS) -> None:
        self.provider = provider
        self.server = server
        self.zone = f"t{secrets.token_hex(4)}.example.org"

    async def dig(self, name: str, rdtype: str = "A") -> list[str]:
        fqdn = self.zone if name == "@" else f"{name}.{self.zone}"
        return await anyio.to_thread.run_sync(self.server.dig, fqdn, rdtype)


@pytest.fixture(params=PROVIDERS)
async def dns_harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    assert request.param == "libcloud-powerdns"
    server: PowerDNS = request.getfixturevalue("powerdns")
    provider = registry.load("dns", "libcloud", powerdns_options(server))
    harness = Harness(provider, server)
    try:
        yield harness
    finally:
        await provider.delete_zone(harness.zone)
        await provider.close()


async def test_zone_lifecycle_is_idempotent(dns_harness: Harness) -> None:
    provider, name = dns_harness.provider, dns_harness.zone
    with pytest.raises(NotFound):
        await provider.get_zone(name)
    created = await provider.create_zone(name)
    assert created.name == name
    again = await provider.create_zone(name.upper() + ".")  # same zone, any spelling
    assert again.id == created.id
    assert (await provider.get_zone(name)).id == created.id
    assert [zone.name for zone in await provider.list_zones()].count(name) == 1
    await provider.delete_zone(name)
    await provider.delete_zone(name)
    with pytest.raises(NotFound):
        await provider.get_zone(name)
    assert name not in [zone.name for zone in await provider.list_zones()]
    # Closed, it opens new connections when used again.
    await provider.close()
    assert (await provider.create_zone(name)).name == name


async def test_set_record_creates_then_replaces_values_and_ttl(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    created = await provider.set_record(zone, Record("www", RecordType.A, ("192.0.2.10",), 300))
    assert created == Record("www", RecordType.A, ("192.0.2.10",), 300)
    assert await dns_harness.dig("www") == ["192.0.2.10"]

    replaced = await provider.set_record(zone, Record("WWW", RecordType.A, ("192.0.2.20",), 60))
    assert replaced == Record("www", RecordType.A, ("192.0.2.20",), 60)
    assert await provider.get_record(zone, "www", RecordType.A) == replaced
    assert await dns_harness.dig("www") == ["192.0.2.20"]
    a_records = [r for r in await provider.list_records(zone) if r.type is RecordType.A]
    assert a_records == [replaced]

    # Setting the same record again changes nothing.
    assert await provider.set_record(zone, replaced) == replaced
    assert await dns_harness.dig("www") == ["192.0.2.20"]


async def test_two_values_for_two_web_nodes_and_switching_them(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    both = Record("@", RecordType.A, ("192.0.2.2", "192.0.2.1"), 120)
    written = await provider.set_record(zone, both)
    assert written.values == ("192.0.2.1", "192.0.2.2")
    assert await dns_harness.dig("@") == ["192.0.2.1", "192.0.2.2"]

    # The evacuation's switch: both values replaced in one call.
    moved = await provider.set_record(zone, Record("@", RecordType.A, ("198.51.100.7",), 120))
    assert moved.values == ("198.51.100.7",)
    assert await dns_harness.dig("@") == ["198.51.100.7"]
    grown = await provider.set_record(
        zone, Record("@", RecordType.A, ("198.51.100.7", "198.51.100.8", "198.51.100.7"), 120)
    )
    assert grown.values == ("198.51.100.7", "198.51.100.8")
    assert await dns_harness.dig("@") == ["198.51.100.7", "198.51.100.8"]


async def test_aaaa_cname_and_txt_with_spaces_and_quotes(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    aaaa = await provider.set_record(
        zone, Record("www", RecordType.AAAA, ("2001:db8:0:0::1", "2001:db8::2"), 300)
    )
    assert aaaa.values == ("2001:db8::1", "2001:db8::2")
    assert await dns_harness.dig("www", "AAAA") == ["2001:db8::1", "2001:db8::2"]

    cname = await provider.set_record(
        zone, Record("blog", RecordType.CNAME, (f"www.{zone}.",), 300)
    )
    assert cname.values == (f"www.{zone}",)
    assert await dns_harness.dig("blog", "CNAME") == [f"www.{zone}."]

    text = 'v=spf1 -all "quoted" back\\slash and a long tail ' + "x" * 300
    txt = await provider.set_record(zone, Record("@", RecordType.TXT, (text, "second"), 300))
    assert sorted(txt.values) == sorted((text, "second"))
    answers = await dns_harness.dig("@", "TXT")
    assert '"second"' in answers
    # dig shows the long text as two character-strings (255 bytes at most each), escaped.
    long_answer = next(answer for answer in answers if answer != '"second"')
    assert long_answer.startswith('"v=spf1 -all \\"quoted\\" back\\\\slash')
    assert long_answer.count('" "') == 1


async def test_delete_record_is_idempotent(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    await provider.set_record(zone, Record("www", RecordType.A, ("192.0.2.1", "192.0.2.2")))
    await provider.set_record(zone, Record("www", RecordType.AAAA, ("2001:db8::1",)))
    await provider.delete_record(zone, "www", RecordType.A)
    await provider.delete_record(zone, "www", RecordType.A)
    with pytest.raises(NotFound):
        await provider.get_record(zone, "www", RecordType.A)
    assert await dns_harness.dig("www") == []
    # The other type of that name stays.
    assert (await provider.get_record(zone, "www", RecordType.AAAA)).values == ("2001:db8::1",)


async def test_unknown_zone_or_record_is_not_found(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    record = Record("www", RecordType.A, ("192.0.2.1",))
    for call in (
        provider.get_zone(zone),
        provider.list_records(zone),
        provider.get_record(zone, "www", RecordType.A),
        provider.set_record(zone, record),
        provider.delete_record(zone, "www", RecordType.A),
        provider.export_zone(zone),
    ):
        with pytest.raises(NotFound):
            await call
    await provider.create_zone(zone)
    with pytest.raises(NotFound):
        await provider.get_record(zone, "nothing", RecordType.A)
    with pytest.raises(NotFound):
        await provider.get_record(zone, "@", RecordType.A)


@pytest.mark.parametrize(
    "record",
    [
        Record("www", RecordType.A, ("192.0.2.300",)),
        Record("www", RecordType.A, ("2001:db8::1",)),
        Record("www", RecordType.AAAA, ("192.0.2.1",)),
        Record("www", RecordType.A, ()),
        Record("www", RecordType.A, ("192.0.2.1",), ttl=0),
        Record("www.", RecordType.A, ("192.0.2.1",)),
        Record("bad name", RecordType.A, ("192.0.2.1",)),
        Record("www", RecordType.CNAME, ("a.example.net", "b.example.net")),
        Record("@", RecordType.CNAME, ("a.example.net",)),
        Record("@", RecordType.SOA, ("ns. host. 1 2 3 4 5",)),
        Record("www", RecordType.MX, ("mail.example.net",)),
    ],
    ids=lambda record: f"{record.name}-{record.type}-{record.values}-{record.ttl}",
)
async def test_bad_records_are_refused_and_nothing_changes(
    dns_harness: Harness, record: Record
) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    kept = await provider.set_record(zone, Record("www", RecordType.A, ("192.0.2.1",)))
    with pytest.raises(InvalidRecord):
        await provider.set_record(zone, record)
    assert await provider.get_record(zone, "www", RecordType.A) == kept
    assert await dns_harness.dig("www") == ["192.0.2.1"]


async def test_cname_beside_other_data_is_refused_by_the_server(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    await provider.set_record(zone, Record("www", RecordType.A, ("192.0.2.1",)))
    with pytest.raises(InvalidRecord):
        await provider.set_record(zone, Record("www", RecordType.CNAME, ("a.example.net",)))
    assert await dns_harness.dig("www") == ["192.0.2.1"]


async def test_bad_zone_names_are_refused(dns_harness: Harness) -> None:
    for name in ("", "org", "a..b.org", "has space.org", "@.org"):
        with pytest.raises(InvalidRecord):
            await dns_harness.provider.create_zone(name)


async def test_concurrent_writes_each_land(dns_harness: Harness) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    async with anyio.create_task_group() as tasks:
        for n in range(8):
            record = Record(f"n{n}", RecordType.A, (f"192.0.2.{n + 1}",))
            tasks.start_soon(provider.set_record, zone, record)
    names = {r.name: r.values for r in await provider.list_records(zone) if r.type == "A"}
    assert names == {f"n{n}": (f"192.0.2.{n + 1}",) for n in range(8)}


async def test_export_is_a_zone_file_with_our_records(dns_harness: Harness, tmp_path: Path) -> None:
    provider, zone = dns_harness.provider, dns_harness.zone
    await provider.create_zone(zone)
    await provider.set_record(zone, Record("@", RecordType.A, ("192.0.2.1", "192.0.2.2"), 120))
    await provider.set_record(zone, Record("www", RecordType.AAAA, ("2001:db8::1",), 300))
    await provider.set_record(zone, Record("blog", RecordType.CNAME, (f"www.{zone}",), 600))
    await provider.set_record(zone, Record("@", RecordType.MX, ("10 mail.example.net",), 900))
    await provider.set_record(zone, Record("@", RecordType.TXT, ('say "hi" ; not a comment',)))

    exported = await provider.export_zone(zone)
    assert exported.startswith(f"$ORIGIN {zone}.\n")
    parsed = dns.zone.from_text(exported, origin=zone + ".", relativize=False, check_origin=True)

    def rdataset(name: str, rdtype: str) -> tuple[int, list[str]]:
        found = parsed.find_rdataset(name, dns.rdatatype.from_text(rdtype))
        return found.ttl, sorted(rdata.to_text() for rdata in found)

    assert rdataset(f"{zone}.", "A") == (120, ["192.0.2.1", "192.0.2.2"])
    assert rdataset(f"www.{zone}.", "AAAA") == (300, ["2001:db8::1"])
    assert rdataset(f"blog.{zone}.", "CNAME") == (600, [f"www.{zone}."])
    assert rdataset(f"{zone}.", "MX") == (900, ["10 mail.example.net."])
    assert rdataset(f"{zone}.", "TXT") == (300, ['"say \\"hi\\" ; not a comment"'])
    assert rdataset(f"{zone}.", "NS")[1] == [f"{ns}." for ns in NAMESERVERS]
    assert len(rdataset(f"{zone}.", "SOA")[1]) == 1

    checker = shutil.which("named-checkzone")
    if checker is None:
        if REQUIRE_SERVICES:
            pytest.fail("named-checkzone missing (bind9-utils) but TEST_REQUIRE_SERVICES=1")
        return
    path = tmp_path / "zone.db"
    path.write_text(exported)
    command = [checker, "-k", "fail", "-n", "fail", "-i", "full", zone, str(path)]
    result = await anyio.run_process(command, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


async def test_wrong_api_key_is_a_configuration_error(powerdns: PowerDNS) -> None:
    provider = registry.load("dns", "libcloud", powerdns_options(powerdns, key="not-the-key"))
    try:
        with pytest.raises(ConfigurationError) as raised:
            await provider.list_zones()
        assert "not-the-key" not in str(raised.value)
        with pytest.raises(ConfigurationError):
            await provider.create_zone("refused.example.org")
    finally:
        await provider.close()


async def test_closed_port_is_unavailable(powerdns: PowerDNS) -> None:
    provider = registry.load("dns", "libcloud", powerdns_options(powerdns, port=free_port()))
    try:
        with pytest.raises(Unavailable):
            await provider.list_zones()
        with pytest.raises(Unavailable):
            await provider.set_record("example.org", Record("www", RecordType.A, ("192.0.2.1",)))
    finally:
        await provider.close()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"driver": "no-such-dns", "key": "k"}, "driver"),
        ({"driver": "powerdns"}, "key"),
        ({"driver": "powerdns", "api_version": "v1"}, "api_version"),
        ({"driver": "powerdns", "extra": {"key": "x"}}, "extra"),
        ({"driver": "powerdns", "nameservers": ["not a host"]}, "nameservers"),
        ({"driver": "powerdns", "port": 0}, "port"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        registry.load("dns", "libcloud", options, where="dns.providers.main.options")
    assert f"dns.providers.main.options.{named}" in str(raised.value)


def test_secrets_are_not_in_the_options_repr() -> None:
    options = registry.parse_options(
        "dns", "libcloud", {"driver": "cloudflare", "key": "k-123456", "secret": "s-654321"}
    )
    assert "k-123456" not in repr(options)
    assert "s-654321" not in repr(options)
