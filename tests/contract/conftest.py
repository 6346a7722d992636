"""Servers the provider contract suites run against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import MotoServer, start_moto_server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server
