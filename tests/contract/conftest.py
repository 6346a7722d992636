"""Servers and harnesses the provider contract suites run against."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.btcpay_fake import RunningFake, run_fake_btcpay
from tests.contract.payments_btcpay import BTCPayHarness
from tests.contract.payments_harness import PaymentsHarness
from tests.contract.payments_manual import ManualHarness
from tests.contract.payments_stripe import StripeHarness
from tests.servers import (
    LocalStripe,
    MotoServer,
    start_localstripe,
    start_moto_server,
)

PAYMENT_HARNESSES = [
    "stripe",
    "manual",
    "btcpay",
]
"""Every payments provider the contract suite runs against: each name has a fixture
`payments_harness_<name>` giving its harness (and resetting its server afterwards)."""


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    with start_localstripe() as server:
        yield server


@pytest.fixture
async def payments_harness_stripe(localstripe: LocalStripe) -> AsyncIterator[StripeHarness]:
    harness = StripeHarness(localstripe)
    try:
        yield harness
    finally:
        await harness.provider.close()
        await harness.reset()


@pytest.fixture
async def payments_harness_manual() -> AsyncIterator[ManualHarness]:
    harness = ManualHarness()
    yield harness
    await harness.provider.close()


@pytest.fixture(params=PAYMENT_HARNESSES)
def payments_harness(request: pytest.FixtureRequest) -> PaymentsHarness:
    harness: PaymentsHarness = request.getfixturevalue(f"payments_harness_{request.param}")
    return harness


@pytest.fixture(scope="session")
def btcpay_server() -> Iterator[RunningFake]:
    """The fake BTCPay Server on a local port, for the whole session."""
    with run_fake_btcpay() as server:
        yield server


@pytest.fixture
async def payments_harness_btcpay(btcpay_server: RunningFake) -> AsyncIterator[BTCPayHarness]:
    harness = BTCPayHarness(btcpay_server)
    await harness.reset()
    try:
        yield harness
    finally:
        await harness.provider.close()
        await harness.reset()
