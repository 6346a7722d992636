"""Manual payments: what the payer is told, and the ids the provider reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers import registry
from providers.errors import ConfigurationError, NotFound
from providers.payments.base import ActionKind, ChargeRequest, ChargeStatus, Interval, PlanPrice
from providers.payments.manual import format_amount


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(1250, "eur", "12.50 EUR"), (5, "usd", "0.05 USD"), (500, "jpy", "500 JPY"),
     (1234, "kwd", "1.234 KWD"), (0, "chf", "0.00 CHF")],
)  # fmt: skip
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


async def test_charge_tells_the_payer_how_much_and_what_to_quote() -> None:
    provider = registry.load("payments", "manual", {"instructions": "IBAN DE00 1234"})
    request = ChargeRequest(
        reference="pay-7f3a-2",
        customer_id="manual-user-1",
        price=PlanPrice("supporter", "Supporter", 1250, "eur", Interval.YEAR),
        period_start=datetime(2025, 1, 1, tzinfo=UTC),
        period_end=datetime(2026, 1, 1, tzinfo=UTC),
        off_session=True,
    )
    charge = await provider.charge(request)
    assert charge.status is ChargeStatus.PENDING
    assert charge.action.kind is ActionKind.AWAIT_MANUAL_PAYMENT
    assert charge.action.instructions == (
        "IBAN DE00 1234\n\nAmount: 12.50 EUR\nReference (quote it with the payment): pay-7f3a-2"
    )
    assert await provider.fetch(charge.id) == charge
    for unknown in ("pay-7f3a-2", "manual-eur-x-pay", "manual-EUR-1-pay", "pi_123"):
        with pytest.raises(NotFound):
            await provider.fetch(unknown)


def test_instructions_are_required() -> None:
    with pytest.raises(ConfigurationError, match="instructions"):
        registry.parse_options("payments", "manual", {})
    with pytest.raises(ConfigurationError, match="instructions"):
        registry.parse_options("payments", "manual", {"instructions": ""})


@pytest.mark.parametrize("currency", ["mga", "isk", "ugx", "jpy", "eur", "kwd", "bhd", "clp"])
def test_every_provider_reads_minor_units_from_one_table(currency: str) -> None:
    """The manual provider's instructions and BTCPay's invoices name the same amount for the
    same minor units (they disagreed on MGA)."""
    from providers.payments.btcpay import to_decimal_string

    shown = format_amount(12345, currency).split()[0]
    assert shown == to_decimal_string(12345, currency)
