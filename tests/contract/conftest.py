"""Servers the provider contract suites run against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import MotoServer, start_moto_server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


# -- BTCPay: the contract-checking fake (tests/btcpay_fake.py) ------------------------------

from tests.btcpay_fake import RunningFake, run_fake_btcpay  # noqa: E402


@pytest.fixture(scope="session")
def btcpay_server() -> Iterator[RunningFake]:
    """The fake BTCPay Server on a local port, for the whole session."""
    with run_fake_btcpay() as server:
        yield server
