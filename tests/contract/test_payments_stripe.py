"""What the Stripe provider leaves at the vendor and how it reports the vendor's failures,
against localstripe: the cases the shared contract cannot see from outside the interface."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from providers import registry
from providers.errors import ConfigurationError, Declined, NotFound, Unavailable
from providers.payments.base import ChargeRequest, ChargeStatus, Customer, Interval, PlanPrice
from providers.payments.stripe import DECLINED_KEY, StripePayments, _charge
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


def _request(reference: str, customer_id: str, **overrides: Any) -> ChargeRequest:
    values: dict[str, Any] = {
        "reference": reference,
        "customer_id": customer_id,
        "price": MONTHLY,
        "period_start": datetime(2025, 1, 1, tzinfo=UTC),
        "period_end": datetime(2025, 2, 1, tzinfo=UTC),
        **overrides,
    }
    return ChargeRequest(**values)


async def test_a_declined_new_card_never_replaces_a_working_default(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    provider = harness.provider
    customer_id = await provider.create_customer(Customer("user-7", "u7@example.org", "U"))
    good = harness.payment_method()
    assert (await provider.charge(_request("l-1", customer_id, payment_method=good))).status is (
        ChargeStatus.SUCCEEDED
    )
    declined = harness.payment_method(declined=True)
    with pytest.raises(Declined):
        await provider.charge(_request("l-2", customer_id, payment_method=declined))

    customer = await harness.api("GET", f"/v1/customers/{customer_id}", {})
    assert customer["invoice_settings"]["default_payment_method"] == good
    saved = await harness.api(
        "GET", "/v1/payment_methods", {"customer": customer_id, "type": "card"}
    )
    assert [method["id"] for method in saved["data"]] == [good]  # the declined one detached
    renewal = await provider.charge(_request("l-3", customer_id, off_session=True))
    assert renewal.status is ChargeStatus.SUCCEEDED


async def test_a_declined_charge_is_marked_so_and_reads_failed_without_the_error(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    customer_id = await harness.provider.create_customer(Customer("u6", "u6@example.org", "U"))
    with pytest.raises(Declined):
        await harness.provider.charge(
            _request("l-4", customer_id, payment_method=harness.payment_method(declined=True))
        )
    [intent] = (await harness.api("GET", "/v1/payment_intents", {"customer": customer_id}))["data"]
    assert intent["metadata"][DECLINED_KEY] == "1"
    # Stripe clears last_payment_error when an intent is updated: the mark alone says FAILED.
    cleared = {**intent, "last_payment_error": None}
    assert _charge(cleared).status is ChargeStatus.FAILED
    assert _charge({**cleared, "metadata": {}}).status is ChargeStatus.CANCELED


def _signed_event(
    harness: StripeHarness, event_type: str, intent: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "id": f"evt_{event_type}_{intent['status']}",
            "object": "event",
            "created": int(now.timestamp()),
            "type": event_type,
            "data": {"object": intent},
        }
    ).encode()
    return body, dict(harness.sign(body, at=now))


@pytest.mark.parametrize(
    ("event_type", "status", "metadata", "kind"),
    [
        # A failed attempt the payer can retry in Stripe.js: not over (else a second charge).
        ("payment_intent.payment_failed", "requires_payment_method", {}, "charge_pending"),
        ("payment_intent.canceled", "canceled", {DECLINED_KEY: "1"}, "charge_failed"),
        ("payment_intent.canceled", "canceled", {}, "charge_canceled"),
        ("payment_intent.succeeded", "succeeded", {}, "charge_succeeded"),
    ],
)
async def test_webhook_kinds_follow_the_intents_status_as_fetch_does(
    payments_harness_stripe: StripeHarness,
    event_type: str,
    status: str,
    metadata: dict[str, str],
    kind: str,
) -> None:
    harness = payments_harness_stripe
    error = (
        {"code": "card_declined", "message": "Your card was declined."}
        if event_type == "payment_intent.payment_failed"
        else None
    )
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 500,
        "currency": "eur",
        "status": status,
        "client_secret": "pi_1_secret_x",
        "last_payment_error": error,
        "metadata": {"holdfast_reference": "l-9", "holdfast_price": MONTHLY.key, **metadata},
    }
    [event] = harness.provider.verify_webhook(*_signed_event(harness, event_type, intent))
    assert event.kind.value == kind
    assert event.kind.value.removeprefix("charge_") == _charge(intent).status.value
    if error:
        assert event.failure == "Your card was declined."


async def test_events_since_reads_forward_from_the_last_event_page_by_page(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    provider = harness.provider
    assert isinstance(provider, StripePayments)
    customer_id = await provider.create_customer(Customer("u5", "u5@example.org", "U"))
    await provider.charge(_request("l-5", customer_id, payment_method=harness.payment_method()))
    start = await provider.events_since(None)
    assert start.cursor is not None
    assert start.cursor.startswith("evt:")
    provider.page_size = 2
    for i in range(5):
        await provider.charge(
            _request(f"l-6{i}", customer_id, payment_method=harness.payment_method())
        )
    calls: list[dict[str, Any]] = []
    original = provider._client.v1.events.list_async

    async def counting(params: Any = None, options: Any = None) -> Any:
        calls.append(dict(params or {}))
        return await original(params)

    provider._client.v1.events.list_async = counting  # type: ignore[method-assign]
    page = await provider.events_since(start.cursor)
    assert [e.reference for e in page.events if e.kind.value == "charge_succeeded"] == [
        f"l-6{i}" for i in range(5)
    ]
    assert page.more is False
    assert all("ending_before" in call and "created" not in call for call in calls)
    assert len(calls) == 3  # 2 + 2 + 1: every page, and only the new ones
    # A page cut by `limit` says more, and the rest follows.
    first = await provider.events_since(start.cursor, limit=3)
    assert (len(first.events), first.more) == (3, True)
    rest = await provider.events_since(first.cursor, limit=3)
    assert [e.id for e in first.events + rest.events] == [e.id for e in page.events]
    assert rest.more is False
    assert (await provider.events_since(rest.cursor)).events == ()
    # A cursor whose event Stripe no longer knows: read again from its time.
    _, _, created = start.cursor.rpartition(":")
    gone = await provider.events_since(f"evt:evt_expired000:{created}")
    assert {e.id for e in page.events} <= {e.id for e in gone.events}


async def test_a_retried_charge_finds_its_intent_beyond_the_first_page(
    payments_harness_stripe: StripeHarness,
) -> None:
    harness = payments_harness_stripe
    provider = harness.provider
    assert isinstance(provider, StripePayments)
    provider.page_size = 2
    customer_id = await provider.create_customer(Customer("u4", "u4@example.org", "U"))
    first = await provider.charge(_request("l-70", customer_id))
    for i in range(1, 5):
        await provider.charge(_request(f"l-7{i}", customer_id))
    again = await provider.charge(_request("l-70", customer_id))
    assert again.id == first.id
    intents = await harness.api(
        "GET", "/v1/payment_intents", {"customer": customer_id, "limit": "100"}
    )
    assert len(intents["data"]) == 5


async def test_a_conflict_on_the_idempotency_key_is_unavailable() -> None:
    provider = StripePayments(StripePayments.Options.model_validate(stripe_options("http://x")))
    try:
        conflict = stripe.IdempotencyError(
            "Keys for idempotent requests can only be used ...",
            http_status=409,
            code="idempotency_key_in_use",
        )
        assert isinstance(provider._error("charge", conflict), Unavailable)
        lock = stripe.InvalidRequestError("lock", None, code="lock_timeout", http_status=409)
        assert isinstance(provider._error("charge", lock), Unavailable)
    finally:
        await provider.close()
