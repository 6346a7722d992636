"""Real local servers shared by test modules (and bench/storage): moto (S3, EC2), localstripe,
PowerDNS.

moto's `ThreadedMotoServer` runs in a child process rather than in the test process: the
tests measure their own memory (a moto in-process would hold every object it stores in the
same heap) and its request handling would compete for the test loop's GIL. The child exits
when its stdin closes, so it never outlives the test run.

Use from a conftest:

    @pytest.fixture(scope="session")
    def moto_server() -> Iterator[MotoServer]:
        with start_moto_server() as server:
            yield server
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

_CHILD = """
import logging
import sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@dataclass(frozen=True)
class MotoServer:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, timeout: float = 30) -> None:
        """Forget every bucket, object and instance (`POST /moto-api/reset`)."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=timeout).raise_for_status()


@contextmanager
def _child_server(code: str, name: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run `code` in a child Python process that prints the port it listens on, then runs
    until its stdin closes (so it dies with the test process too); yields it and its port."""
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{name} did not start (exit code {process.poll()})")
        yield process, int(line)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()


def _stop(process: subprocess.Popen[str]) -> None:
    """Terminate a child server, killing it when it does not exit within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def start_moto_server() -> Iterator[MotoServer]:
    with _child_server(_CHILD, "moto server") as (_, port):
        yield MotoServer(port)


# localstripe (GPL-3.0, test-only) in a child process, for the same reasons as moto. Its store
# pickles itself after every write to the fixed path `/tmp/localstripe.pickle` (hard-coded in
# `localstripe/resources.py`: TMPDIR does not move it), which the two parallel passes of
# `make test` and any other run would share: the child turns that persistence off, so each
# server's state lives in its own memory only. Two more patches make it answer like Stripe
# where the payments provider relies on documented Stripe behaviour localstripe lacks:
# - `GET /v1/payment_intents` takes the `customer` filter, and it and `GET /v1/events` list
#   newest first (localstripe lists in insertion order and rejects the filter);
# - `GET /v1/events` takes `ending_before` and `types`, with Stripe's documented semantics
#   (see `_EndingBefore`): localstripe rejects both;
# - `POST /v1/payment_intents` takes `setup_future_usage` (kept on the intent),
#   `automatic_payment_methods` and `return_url` (ignored: cards never redirect there), which
#   localstripe rejects.
_LOCALSTRIPE_CHILD = """
import os
import socket
import sys
import threading

from aiohttp import web
from localstripe import resources
from localstripe.server import app

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None

_list_all = resources.StripeObject._api_list_all.__func__


def _newest_first(cls, url, limit=None, starting_after=None, customer=None, **kwargs):
    found = [value for key, value in resources.store.items()
             if key.startswith(cls.object + ':')]
    if customer is not None:
        found = [item for item in found if getattr(item, 'customer', None) == customer]
    found.reverse()
    li = resources.List(url, limit=limit, starting_after=starting_after)
    li._list = found
    return li


def _list_payment_intents(cls, url, customer=None, limit=None, starting_after=None, **kwargs):
    if kwargs:
        raise resources.UserError(400, 'Unexpected ' + ', '.join(kwargs))
    return _newest_first(cls, url, limit, starting_after, customer)


resources.PaymentIntent._api_list_all = classmethod(_list_payment_intents)

_events = resources.Event._api_list_all.__func__


class _EndingBefore(resources.List):
    # Stripe's documented `ending_before`: the list stays newest first; the page is the
    # `limit` objects immediately newer than the cursor object (the previous page of the
    # list), still newest first, and `has_more` says whether newer ones remain beyond it.
    # A cursor naming no object is refused (Stripe: 400 resource_missing, "No such event").
    def __init__(self, url, limit, ending_before):
        super().__init__(url, limit=limit)
        self._ending_before = ending_before

    def _window(self):
        for i, item in enumerate(self._list):
            if getattr(item, 'id', None) == self._ending_before:
                return max(0, i - self._limit), i
        raise resources.UserError(400, 'No such event: ' + repr(self._ending_before),
                                  {'code': 'resource_missing', 'param': 'ending_before'})

    @property
    def data(self):
        start, end = self._window()
        return [item._export() for item in self._list[start:end]]

    @property
    def has_more(self):
        return self._window()[0] > 0


def _list_events(cls, url, ending_before=None, types=None, limit=None, starting_after=None,
                 **kwargs):
    if ending_before is not None and starting_after is not None:
        raise resources.UserError(400, 'Pass either starting_after or ending_before')
    if types is not None and (kwargs.get('type') is not None or not isinstance(types, list)
                              or not 1 <= len(types) <= 20):
        raise resources.UserError(400, 'Bad request')
    li = _events(cls, url, limit=limit, starting_after=starting_after, **kwargs)
    li._list.reverse()
    if types is not None:
        li._list = [event for event in li._list if event.type in types]
    if ending_before is not None:
        found = _EndingBefore(url, limit, ending_before)
        found._list = li._list
        found._window()  # refuse an unknown cursor now, not while exporting
        return found
    return li


resources.Event._api_list_all = classmethod(_list_events)

_intent_init = resources.PaymentIntent.__init__


def _intent_init_with_setup(self, setup_future_usage=None, automatic_payment_methods=None,
                            return_url=None, **kwargs):
    if setup_future_usage not in (None, 'on_session', 'off_session'):
        raise resources.UserError(400, 'Bad request')
    _intent_init(self, **kwargs)
    self.setup_future_usage = setup_future_usage


resources.PaymentIntent.__init__ = _intent_init_with_setup

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
web.run_app(app, sock=sock, print=None, handle_signals=True)
"""


@dataclass(frozen=True)
class LocalStripe:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, timeout: float = 10) -> None:
        """Forget every object (`DELETE /_config/data`)."""
        httpx.delete(f"{self.url}/_config/data", timeout=timeout).raise_for_status()


@contextmanager
def start_localstripe() -> Iterator[LocalStripe]:
    """A localstripe on a free loopback port, in a child process that exits with the block
    (or when the test process dies: it watches its stdin)."""
    with _child_server(_LOCALSTRIPE_CHILD, "localstripe") as (process, port):
        server = LocalStripe(port)
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{server.url}/v1/balance", headers=_AUTH, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("localstripe did not answer") from None
                time.sleep(0.05)
        yield server


_AUTH = {"Authorization": "Bearer sk_test_readiness"}


# PowerDNS authoritative server (Debian `pdns-server`, `pdns-backend-sqlite3`), recipe of
# shared/LOCAL-SERVERS.md: a private config directory with a fresh SQLite database, DNS and
# its HTTP API on free loopback ports, every cache off so that `dig` sees a change at once.
POWERDNS_PACKAGES = ("pdns-server", "pdns-backend-sqlite3", "sqlite3", "dnsutils")
_PDNS_SERVER = "/usr/sbin/pdns_server"
_PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


@dataclass(frozen=True)
class PowerDNS:
    dns_port: int
    api_port: int
    api_key: str

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1/servers/localhost"

    def dig(self, name: str, rdtype: str = "A") -> list[str]:
        """The answer's values for `name` from this server, asked over real DNS (`dig`),
        sorted."""
        result = subprocess.run(
            [
                "dig",
                "+short",
                "+norecurse",
                "+time=2",
                "+tries=2",
                "@127.0.0.1",
                "-p",
                str(self.dns_port),
                name,
                rdtype,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return sorted(line for line in result.stdout.splitlines() if line)

    def delete_zone(self, name: str) -> None:
        """Delete zone `name` (without the final dot) if it exists: a test's own zone, on the
        server the session shares."""
        response = httpx.delete(
            f"{self.api_url}/zones/{name}.", headers={"X-API-Key": self.api_key}, timeout=10
        )
        if response.status_code != 404:
            response.raise_for_status()


def need_powerdns() -> None:
    """Skip the test when PowerDNS or dig is missing here, or fail it in CI
    (TEST_REQUIRE_SERVICES=1)."""
    import pytest

    from tests.conftest import REQUIRE_SERVICES

    missing = powerdns_missing()
    if missing is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(missing + " but TEST_REQUIRE_SERVICES=1")
    pytest.skip(missing)


def powerdns_missing() -> str | None:
    """What is missing to run PowerDNS here (None when nothing is)."""
    missing = [tool for tool in (_PDNS_SERVER, "sqlite3", "dig") if shutil.which(tool) is None]
    if not _PDNS_SCHEMA.exists():
        missing.append(str(_PDNS_SCHEMA))
    if not missing:
        return None
    return f"{', '.join(missing)} missing (apt-get install {' '.join(POWERDNS_PACKAGES)})"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (and, for the DNS server, its UDP twin)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@contextmanager
def start_powerdns() -> Iterator[PowerDNS]:
    """A PowerDNS authoritative server on free loopback ports, in a private directory that is
    removed with it; stopped at the end of the block."""
    with tempfile.TemporaryDirectory(prefix="holdfast-pdns-") as directory:
        home = Path(directory)
        database = home / "pdns.sqlite3"
        subprocess.run(
            ["sqlite3", str(database)],
            input=_PDNS_SCHEMA.read_text(),
            text=True,
            check=True,
            capture_output=True,
        )
        server = PowerDNS(free_port(), free_port(), secrets.token_hex(16))
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(database),
            "local-address": "127.0.0.1",
            "local-port": server.dns_port,
            "api": "yes",
            "api-key": server.api_key,
            "webserver": "yes",
            "webserver-address": "127.0.0.1",
            "webserver-port": server.api_port,
            "webserver-allow-from": "127.0.0.0/8",
            "socket-dir": str(home),
            "guardian": "no",
            "daemon": "no",
            "write-pid": "no",
            "disable-syslog": "yes",
            "loglevel": "3",
            "cache-ttl": "0",
            "query-cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "zone-cache-refresh-interval": "0",
            "consistent-backends": "yes",
        }
        (home / "pdns.conf").write_text(
            "".join(f"{key}={value}\n" for key, value in settings.items())
        )
        log = (home / "pdns.log").open("w")
        process = subprocess.Popen(
            [_PDNS_SERVER, f"--config-dir={home}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = httpx.get(
                        server.api_url, headers={"X-API-Key": server.api_key}, timeout=1
                    )
                    if response.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    log.flush()
                    output = (home / "pdns.log").read_text()[-2000:]
                    raise RuntimeError(f"PowerDNS did not start: {output}")
                time.sleep(0.05)
            yield server
        finally:
            _stop(process)
            log.close()
