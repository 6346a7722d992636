"""Real local servers shared by test modules (and bench/storage): moto's S3/EC2 server.

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

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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
def start_moto_server() -> Iterator[MotoServer]:
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"moto server did not start (exit code {process.poll()})")
        yield MotoServer(int(line))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
