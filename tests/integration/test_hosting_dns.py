"""Pointing the service's names at the web nodes (`point_records`), and `holdfast dns
export`, against a real PowerDNS server: what the records say is checked with `dig`."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import dns.rdatatype
import dns.zone
import httpx
import pytest

from app.hosting.dns import open_dns, point_records
from app.settings import Settings
from providers.dns.base import DNSProvider, Record, RecordType
from providers.errors import ConfigurationError, InvalidRecord
from tests.conftest import make_settings
from tests.servers import PowerDNS
from tests.support import HOLDFAST, holdfast_env


def pdns_options(server: PowerDNS) -> dict[str, Any]:
    return {
        "driver": "powerdns",
        "key": server.api_key,
        "host": "127.0.0.1",
        "port": server.api_port,
        "secure": False,
        "extra": {"api_version": "v1"},
        "nameservers": ["ns1.example.net", "ns2.example.net"],
    }


def dns_settings(tmp_path: Path, server: PowerDNS, zone: str) -> Settings:
    return make_settings(
        tmp_path,
        f"sqlite://{tmp_path / 'unused.sqlite3'}",
        dns={
            "providers": {"pdns": {"provider": "libcloud", "options": pdns_options(server)}},
            "active": "pdns",
            "zone": zone,
            "records": ["@", "www"],
            "ttl": 60,
        },
    )


@pytest.fixture
def zone() -> str:
    return f"h{secrets.token_hex(4)}.example.org"


@pytest.fixture
async def provider(tmp_path: Path, powerdns: PowerDNS, zone: str) -> AsyncIterator[DNSProvider]:
    opened = open_dns(dns_settings(tmp_path, powerdns, zone), "pdns")
    await opened.create_zone(zone)
    try:
        yield opened
    finally:
        await opened.delete_zone(zone)
        await opened.close()


async def answers(server: PowerDNS, name: str, rdtype: str) -> list[str]:
    return await anyio.to_thread.run_sync(server.dig, name, rdtype)


async def test_point_records_switches_every_name(
    tmp_path: Path, powerdns: PowerDNS, zone: str, provider: DNSProvider
) -> None:
    settings = dns_settings(tmp_path, powerdns, zone)
    old = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
    written = await point_records(settings, provider, old)
    assert sorted((r.name, r.type.value, r.values, r.ttl) for r in written) == [
        ("@", "A", ("192.0.2.1", "192.0.2.2"), 60),
        ("@", "AAAA", ("2001:db8::1",), 60),
        ("www", "A", ("192.0.2.1", "192.0.2.2"), 60),
        ("www", "AAAA", ("2001:db8::1",), 60),
    ]
    for name in (zone, f"www.{zone}"):
        assert await answers(powerdns, name, "A") == ["192.0.2.1", "192.0.2.2"]
        assert await answers(powerdns, name, "AAAA") == ["2001:db8::1"]

    # The evacuation: a new fleet without IPv6; the AAAA records must not keep pointing at
    # the old one.
    moved = await point_records(settings, provider, ["198.51.100.9"])
    assert {(r.name, r.type, r.values) for r in moved} == {
        ("@", RecordType.A, ("198.51.100.9",)),
        ("www", RecordType.A, ("198.51.100.9",)),
    }
    for name in (zone, f"www.{zone}"):
        assert await answers(powerdns, name, "A") == ["198.51.100.9"]
        assert await answers(powerdns, name, "AAAA") == []

    # Again: nothing changes.
    assert await point_records(settings, provider, ["198.51.100.9"]) == moved
    assert await answers(powerdns, f"www.{zone}", "A") == ["198.51.100.9"]


@pytest.mark.parametrize("ips", [[], ["192.0.2.7", "not-an-ip"], ["192.0.2.300"]])
async def test_point_records_refuses_bad_addresses_and_changes_nothing(
    tmp_path: Path, powerdns: PowerDNS, zone: str, provider: DNSProvider, ips: list[str]
) -> None:
    settings = dns_settings(tmp_path, powerdns, zone)
    await point_records(settings, provider, ["192.0.2.1"])
    with pytest.raises(InvalidRecord):
        await point_records(settings, provider, ips)
    assert await answers(powerdns, f"www.{zone}", "A") == ["192.0.2.1"]
    assert await answers(powerdns, zone, "A") == ["192.0.2.1"]


def test_open_dns_names_the_bad_configuration(tmp_path: Path, powerdns: PowerDNS) -> None:
    settings = dns_settings(tmp_path, powerdns, "example.org")
    with pytest.raises(ConfigurationError, match=r"no DNS configuration 'other'.*pdns"):
        open_dns(settings, "other")
    bad = settings.model_copy(
        update={
            "dns": settings.dns.model_copy(
                update={
                    "providers": {
                        "pdns": settings.dns.providers["pdns"].model_copy(
                            update={"options": {**pdns_options(powerdns), "colour": "red"}}
                        )
                    }
                }
            )
        }
    )
    with pytest.raises(ConfigurationError, match=r"dns\.providers\.pdns\.options\.colour"):
        open_dns(bad, "pdns")


def _config_file(tmp_path: Path, server: PowerDNS, zone: str) -> Path:
    path = tmp_path / "holdfast.toml"
    path.write_text(
        f"""
[dns]
active = "pdns"
zone = "{zone}"

[dns.providers.pdns]
provider = "libcloud"

[dns.providers.pdns.options]
driver = "powerdns"
key = "{server.api_key}"
host = "127.0.0.1"
port = {server.api_port}
secure = false
nameservers = ["ns1.example.net"]
extra = {{ api_version = "v1" }}
"""
    )
    return path


async def test_cli_exports_the_zone(
    tmp_path: Path, powerdns: PowerDNS, zone: str, provider: DNSProvider
) -> None:
    await provider.set_record(zone, Record("www", RecordType.A, ("192.0.2.5", "192.0.2.6")))
    await provider.set_record(zone, Record("@", RecordType.TXT, ('hello "world"',), 600))
    env = holdfast_env(tmp_path, HOLDFAST_CONFIG_FILE=str(_config_file(tmp_path, powerdns, zone)))

    def holdfast(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HOLDFAST, "dns", "export", *args], env=env, capture_output=True, text=True, timeout=60
        )

    # An ALIAS (PowerDNS's, which dnspython and zone files do not know): left out with a
    # `; skipped` line, counted on stderr, never failing the export.
    alias = {
        "name": f"alias.{zone}.",
        "type": "ALIAS",
        "ttl": 300,
        "changetype": "REPLACE",
        "records": [{"content": "target.example.net.", "disabled": False}],
    }
    async with httpx.AsyncClient(headers={"X-API-Key": powerdns.api_key}) as client:
        patched = await client.patch(
            f"{powerdns.api_url}/zones/{zone}.", json={"rrsets": [alias]}, timeout=10
        )
    assert patched.status_code == 204, patched.text

    exported = await anyio.to_thread.run_sync(holdfast)
    assert exported.returncode == 0, exported.stderr
    assert "; skipped alias ALIAS target.example.net." in exported.stdout
    assert "1 record values could not be read" in exported.stderr
    parsed = dns.zone.from_text(exported.stdout, origin=zone + ".", relativize=False)
    www = parsed.find_rdataset(f"www.{zone}.", dns.rdatatype.A)
    assert sorted(rdata.to_text() for rdata in www) == ["192.0.2.5", "192.0.2.6"]
    txt = parsed.find_rdataset(f"{zone}.", dns.rdatatype.TXT)
    assert (txt.ttl, [rdata.to_text() for rdata in txt]) == (600, ['"hello \\"world\\""'])

    missing = await anyio.to_thread.run_sync(holdfast, "--zone", "absent.example.org")
    assert missing.returncode == 1
    assert "no zone absent.example.org" in missing.stderr
    unknown = await anyio.to_thread.run_sync(holdfast, "--dns", "other")
    assert unknown.returncode == 2
    assert "no DNS configuration 'other'" in unknown.stderr
    for result in (exported, missing, unknown):
        assert powerdns.api_key not in result.stdout + result.stderr
