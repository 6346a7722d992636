"""What the Stripe provider leaves at the vendor and how it reports the vendor's failures,
against localstripe: the cases the shared contract cannot see from outside the interface."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from providers import registry
from providers.errors import ConfigurationError, Declined, NotFound, Unavailable
from providers.payments.base import ChargeRequest, ChargeStatus, Customer, Interval, PlanPrice
from tests.contract.payments_stripe import API_KEY, WEBHOOK_SECRET, StripeHarness

MONTHLY = PlanPrice("supporter", "Supporter", 500, "eur", Interval.MONTH)


def stripe_options(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "api_key": API_KEY,
        "webhook_secret": WEBHOOK_SECRET,
        "api_base": url,
        "max_network_retries": 0,
        "timeout": 5,
        **overrides,
    }


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_unreachable_api_is_unavailable(closed_port_url: str) -> None:
    provider = registry.load("payments", "stripe", stripe_options(closed_port_url))
    try:
        with pytest.raises(Unavailable) as failed:
            await provider.fetch("pi_123")
        assert API_KEY not in str(failed.value)
    finally:
        await provider.close()


async def test_a_refused_key_is_a_configuration_error(
    payments_harness_stripe: StripeHarness,
) -> None:
    # localstripe refuses a key that is not `sk_...` with 401, as Stripe refuses a bad one.
    bad_key = "rk_test_refused_key_value"
    provider = registry.load(
        "payments",
        "stripe",
        stripe_options(payments_harness_stripe.server.url, api_key=bad_key),
    )
    try:
        with pytest.raises(ConfigurationError) as refused:
            await provider.fetch("pi_123")
        assert bad_key not in str(refused.value)
        assert "api_key" in str(refused.value)
    finally:
        await provider.close()


def test_options_refuse_unknown_keys_and_hide_secrets() -> None:
    with pytest.raises(ConfigurationError, match="api_bsae"):
        registry.parse_options("payments", "stripe", {**stripe_options(""), "api_bsae": "x"})
    options = registry.parse_options("payments", "stripe", stripe_options("http://x"))
    assert API_KEY not in repr(options)
    assert WEBHOOK_SECRET not in repr(options)


async def test_sync_plans_leaves_one_product_and_active_plans_at_the_vendor(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    ids = await harness.provider.sync_plans([MONTHLY])
    assert ids == {MONTHLY.key: "holdfast-supporter-eur-month-500"}
    product = await harness.api("GET", "/v1/products/holdfast-supporter", {})
    assert product["name"] == "Supporter"
    await harness.provider.sync_plans(
        [PlanPrice("supporter", "Patron", 700, "eur", MONTHLY.interval)]
    )
    product = await harness.api("GET", "/v1/products/holdfast-supporter", {})
    assert product["name"] == "Patron"
    plans = await harness.api("GET", "/v1/plans", {"product": "holdfast-supporter"})
    # localstripe keeps an updated `active` as the form's string.
    active = {plan["id"]: plan["active"] in (True, "true") for plan in plans["data"]}
    assert active == {
        "holdfast-supporter-eur-month-500": False,
        "holdfast-supporter-eur-month-700": True,
    }
    # Back to the old amount: the old plan again, active.
    ids = await harness.provider.sync_plans([MONTHLY])
    assert ids == {MONTHLY.key: "holdfast-supporter-eur-month-500"}
    plans = await harness.api("GET", "/v1/plans", {"product": "holdfast-supporter"})
    assert {
        (plan["id"], plan["amount"], plan["active"] in (True, "true")) for plan in plans["data"]
    } == {
        ("holdfast-supporter-eur-month-500", 500, True),
        ("holdfast-supporter-eur-month-700", 700, False),
    }


async def test_a_charge_carries_the_reference_and_saves_the_card_for_renewals(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    customer_id = await harness.provider.create_customer(Customer("user-9", "u9@example.org", "U"))
    customer = await harness.api("GET", f"/v1/customers/{customer_id}", {})
    assert customer["metadata"] == {"holdfast_reference": "user-9"}
    method = harness.payment_method()
    charge = await harness.provider.charge(
        ChargeRequest(
            reference="ledger-1",
            customer_id=customer_id,
            price=MONTHLY,
            period_start=datetime(2025, 1, 1, tzinfo=UTC),
            period_end=datetime(2025, 2, 1, tzinfo=UTC),
            payment_method=method,
        )
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    intent = await harness.api("GET", f"/v1/payment_intents/{charge.id}", {})
    assert intent["metadata"]["holdfast_reference"] == "ledger-1"
    assert intent["metadata"]["holdfast_period_end"] == "2025-02-01T00:00:00+00:00"
    assert intent["setup_future_usage"] == "off_session"
    customer = await harness.api("GET", f"/v1/customers/{customer_id}", {})
    assert customer["invoice_settings"]["default_payment_method"] == method

    await harness.provider.stop_renewals(customer_id)
    customer = await harness.api("GET", f"/v1/customers/{customer_id}", {})
    assert customer["invoice_settings"]["default_payment_method"] is None
    saved = await harness.api(
        "GET", "/v1/payment_methods", {"customer": customer_id, "type": "card"}
    )
    assert saved["data"] == []


async def test_a_declined_charge_is_cancelled_at_the_vendor(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    customer_id = await harness.provider.create_customer(Customer("user-8", "u8@example.org", "U"))
    request = ChargeRequest(
        reference="ledger-2",
        customer_id=customer_id,
        price=MONTHLY,
        period_start=datetime(2025, 1, 1, tzinfo=UTC),
        period_end=datetime(2025, 2, 1, tzinfo=UTC),
        payment_method=harness.payment_method(declined=True),
    )
    with pytest.raises(Declined, match="declined"):
        await harness.provider.charge(request)
    intents = await harness.api("GET", "/v1/payment_intents", {"customer": customer_id})
    [intent] = intents["data"]
    assert intent["status"] == "canceled"
    fetched = await harness.provider.fetch(intent["id"])
    assert (fetched.status, fetched.reference, fetched.failure) == (
        ChargeStatus.FAILED,
        "ledger-2",
        "Your card was declined.",
    )
    with pytest.raises(NotFound):
        await harness.provider.charge(
            ChargeRequest(
                reference="ledger-3",
                customer_id="cus_NoSuchCustomer0",
                price=MONTHLY,
                period_start=request.period_start,
                period_end=request.period_end,
            )
        )
