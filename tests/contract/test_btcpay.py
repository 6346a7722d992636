"""BTCPay-specific tests of the provider (providers/payments/btcpay.py), its harness and the
contract-checking fake it runs against (tests/btcpay_fake.py). The shared payments suite
(test_payments_contract.py) runs the same harness; these tests pin what is BTCPay's own:
the invoice sent, the status mapping, webhook signatures, reconciliation from invoices, and
that the fake really refuses what the contract does not allow."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from providers import registry
from providers.errors import (
    ConfigurationError,
    InvalidWebhook,
    NotFound,
    ProviderError,
    Unavailable,
)
from providers.payments.base import (
    WEBHOOK_TOLERANCE_SECONDS,
    ActionKind,
    ChargeRequest,
    ChargeStatus,
    Customer,
    EventKind,
    Interval,
    PaymentProvider,
    PlanPrice,
)
from providers.payments.btcpay import BTCPayPayments, to_decimal_string, to_minor_units
from tests.btcpay_fake import API_KEY, STORE_ID, WEBHOOK_SECRET, RunningFake
from tests.contract.payments_btcpay import BTCPayHarness, btcpay_options

PRICE = PlanPrice(
    plan="supporter", name="Supporter", amount=1250, currency="eur", interval=Interval.MONTH
)
START = datetime(2026, 1, 1, tzinfo=UTC)


def request(reference: str, **overrides: object) -> ChargeRequest:
    values: dict[str, object] = {
        "reference": reference,
        "customer_id": "btcpay-payer:user-1",
        "price": PRICE,
        "period_start": START,
        "period_end": START + timedelta(days=31),
        "return_url": "https://holdfast.example/billing/return",
    }
    values.update(overrides)
    return ChargeRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
async def btcpay(btcpay_server: RunningFake) -> AsyncIterator[BTCPayHarness]:
    """A harness on a freshly reset fake; the test fails if the contract was broken."""
    btcpay_server.fake.reset()
    harness = BTCPayHarness(btcpay_server)
    yield harness
    await harness.close()
    violations = list(btcpay_server.fake.violations)
    btcpay_server.fake.reset()
    assert not violations, violations


# -- charges --------------------------------------------------------------------------------


async def test_the_harness_is_a_payment_provider(btcpay: BTCPayHarness) -> None:
    assert isinstance(btcpay.provider, PaymentProvider)
    assert registry.provider_class("payments", "btcpay") is BTCPayPayments


async def test_charge_creates_an_invoice_with_amount_currency_and_order_id(
    btcpay: BTCPayHarness,
) -> None:
    charge = await btcpay.provider.charge(request("pay-1"))

    invoice = btcpay.fake.invoices[charge.id]
    assert invoice["amount"] == "12.50"
    assert invoice["currency"] == "EUR"
    assert invoice["metadata"]["orderId"] == "holdfast:pay-1"
    assert invoice["metadata"]["holdfastCustomer"] == "btcpay-payer:user-1"
    assert invoice["metadata"]["holdfastPeriodEnd"] == "2026-02-01T00:00:00+00:00"
    assert invoice["checkout"]["redirectURL"] == "https://holdfast.example/billing/return"
    assert (charge.reference, charge.amount, charge.currency) == ("pay-1", 1250, "eur")
    assert charge.status is ChargeStatus.PENDING
    assert charge.action.kind is ActionKind.PAY_AT_URL
    assert charge.action.url == invoice["checkoutLink"]


async def test_charge_is_idempotent_on_the_reference(btcpay: BTCPayHarness) -> None:
    first = await btcpay.provider.charge(request("pay-2"))
    again = await btcpay.provider.charge(request("pay-2"))

    assert again.id == first.id
    assert len(btcpay.fake.invoices) == 1
    assert (
        "GET",
        f"/api/v1/stores/{STORE_ID}/invoices?orderId=holdfast%3Apay-2",
    ) in btcpay.fake.requests


async def test_an_off_session_charge_is_an_invoice_to_pay(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-3", off_session=True, return_url=None))

    assert charge.status is ChargeStatus.PENDING
    assert charge.action.kind is ActionKind.PAY_AT_URL
    assert "checkout" not in btcpay.fake.invoices[charge.id] or not btcpay.fake.invoices[charge.id][
        "checkout"
    ].get("redirectURL")


async def test_a_settled_invoice_is_succeeded_and_reconciled_once(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-4"))
    await btcpay.pay(charge)

    fetched = await btcpay.provider.fetch(charge.id)
    assert fetched.status is ChargeStatus.SUCCEEDED
    assert fetched.action.kind is ActionKind.NONE

    page = await btcpay.provider.events_since(None)
    assert [(e.kind, e.charge_id, e.reference, e.amount) for e in page.events] == [
        (EventKind.CHARGE_SUCCEEDED, charge.id, "pay-4", 1250)
    ]
    assert page.events[0].id == f"{charge.id}:InvoiceSettled"
    assert page.more is False

    again = await btcpay.provider.events_since(page.cursor)
    assert again.events == ()
    assert again.cursor == page.cursor


async def test_an_expired_invoice_failed(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-5"))
    await btcpay.expire(charge)

    fetched = await btcpay.provider.fetch(charge.id)
    assert fetched.status is ChargeStatus.FAILED
    assert fetched.failure == "The invoice expired before it was paid."
    page = await btcpay.provider.events_since(None)
    assert [(e.kind, e.reference) for e in page.events] == [(EventKind.CHARGE_FAILED, "pay-5")]
    assert (
        page.events[0].occurred_at.timestamp() == btcpay.fake.invoices[charge.id]["expirationTime"]
    )


async def test_a_processing_invoice_is_pending_with_nothing_to_do(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-6"))
    btcpay.fake.process(charge.id)

    fetched = await btcpay.provider.fetch(charge.id)
    assert fetched.status is ChargeStatus.PENDING
    assert fetched.action.kind is ActionKind.NONE


async def test_cancel_marks_an_open_invoice_invalid(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-7"))

    canceled = await btcpay.provider.cancel(charge.id)

    assert canceled.status is ChargeStatus.CANCELED
    invoice = btcpay.fake.invoices[charge.id]
    assert (invoice["status"], invoice["additionalStatus"]) == ("Invalid", "Marked")
    page = await btcpay.provider.events_since(None)
    assert [e.kind for e in page.events] == [EventKind.CHARGE_CANCELED]


async def test_cancel_returns_a_final_charge_as_it_is(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-8"))
    await btcpay.pay(charge)

    canceled = await btcpay.provider.cancel(charge.id)

    assert canceled.status is ChargeStatus.SUCCEEDED
    assert btcpay.fake.invoices[charge.id]["status"] == "Settled"
    assert not any(path.endswith("/status") for _, path in btcpay.fake.requests)


async def test_cancel_leaves_an_invoice_paid_in_part_to_expire(btcpay: BTCPayHarness) -> None:
    """Marking it Invalid would strand the coins paid; it stays PENDING and expires."""
    charge = await btcpay.provider.charge(request("pay-8b"))
    btcpay.fake.pay_partly(charge.id)

    canceled = await btcpay.provider.cancel(charge.id)

    assert canceled.status is ChargeStatus.PENDING
    assert btcpay.fake.invoices[charge.id]["status"] == "New"
    assert not any(path.endswith("/status") for _, path in btcpay.fake.requests)


async def test_fetch_and_cancel_of_an_unknown_invoice_are_not_found(
    btcpay: BTCPayHarness,
) -> None:
    with pytest.raises(NotFound):
        await btcpay.provider.fetch("NoSuchInvoice1")
    with pytest.raises(NotFound):
        await btcpay.provider.cancel("NoSuchInvoice1")


async def test_no_vendor_objects_for_plans_customers_or_renewals(btcpay: BTCPayHarness) -> None:
    provider = btcpay.provider
    assert await provider.sync_plans([PRICE]) == {}
    customer = Customer(reference="user-1", email="a@example.org", name="A")
    assert await provider.create_customer(customer) == "btcpay-payer:user-1"
    assert await provider.create_customer(customer) == "btcpay-payer:user-1"
    assert await provider.stop_renewals("btcpay-payer:user-1") is None
    assert btcpay.fake.requests == []


# -- reconciliation -------------------------------------------------------------------------


async def test_reconciliation_moves_past_a_pending_invoice_and_catches_it_up(
    btcpay: BTCPayHarness,
) -> None:
    btcpay.fake.clock = 1_800_000_000
    older = await btcpay.provider.charge(request("pay-a"))
    btcpay.fake.clock = 1_800_000_001
    newer = await btcpay.provider.charge(request("pay-b"))
    await btcpay.pay(newer)
    btcpay.fake.process(older.id)  # a payment seen: Processing can last a day

    first = await btcpay.provider.events_since(None)
    assert [e.reference for e in first.events] == ["pay-b"]
    assert first.cursor is not None
    assert older.id in first.cursor  # carried, not waited on

    # More final invoices than a page behind the pending one are caught up now, not later.
    btcpay.fake.clock = 1_800_000_002
    later = [await btcpay.provider.charge(request(f"pay-c{i}")) for i in range(3)]
    for charge in later:
        await btcpay.pay(charge)
    second = await btcpay.provider.events_since(first.cursor, limit=2)
    assert len(second.events) == 2
    assert second.more is True
    third = await btcpay.provider.events_since(second.cursor, limit=2)
    assert len(third.events) == 1
    assert sorted(e.reference for e in second.events + third.events) == [
        "pay-c0",
        "pay-c1",
        "pay-c2",
    ]

    btcpay.fake.settle(older.id)
    fourth = await btcpay.provider.events_since(third.cursor)
    assert [(e.reference, e.kind) for e in fourth.events] == [("pay-a", EventKind.CHARGE_SUCCEEDED)]
    assert older.id not in str(fourth.cursor)
    assert (await btcpay.provider.events_since(fourth.cursor)).events == ()


async def test_reconciliation_waits_behind_pending_invoices_beyond_the_cursors_room(
    btcpay: BTCPayHarness,
) -> None:
    provider = btcpay.provider
    assert isinstance(provider, BTCPayPayments)
    provider.max_pending = 1
    btcpay.fake.clock = 1_800_000_000
    first_pending = await provider.charge(request("pay-p1"))
    btcpay.fake.clock = 1_800_000_001
    second_pending = await provider.charge(request("pay-p2"))
    btcpay.fake.clock = 1_800_000_002
    paid = await provider.charge(request("pay-p3"))
    await btcpay.pay(paid)

    page = await provider.events_since(None)
    assert [e.reference for e in page.events] == ["pay-p3"]
    assert first_pending.id in str(page.cursor)
    assert second_pending.id not in str(page.cursor)
    await btcpay.expire(second_pending)
    await btcpay.expire(first_pending)
    again = await provider.events_since(page.cursor)
    assert [e.reference for e in again.events] == ["pay-p1", "pay-p2", "pay-p3"]
    assert (await provider.events_since(again.cursor)).events == ()


async def test_reconciliation_reads_every_page_and_dedupes_repeated_invoices(
    btcpay: BTCPayHarness,
) -> None:
    provider = btcpay.provider
    assert isinstance(provider, BTCPayPayments)
    provider.page_size = 2
    btcpay.fake.clock = 1_800_000_000
    charges = [await provider.charge(request(f"pay-g{i}")) for i in range(5)]
    for charge in charges:
        await btcpay.pay(charge)

    page = await provider.events_since(None)

    assert sorted(e.reference for e in page.events) == [f"pay-g{i}" for i in range(5)]
    lists = [path for method, path in btcpay.fake.requests if "skip=" in path]
    assert len(lists) == 3  # 2 + 2 + 1

    # An invoice created between two pages shifts the newest-first list: the next page
    # repeats one. Each invoice is yielded once all the same.
    original = provider._list_since

    async def listing_with_a_repeat(start: int | None) -> list[dict[str, object]]:
        found = await original(start)
        return found + found[:1]

    provider._list_since = listing_with_a_repeat  # type: ignore[method-assign]
    fresh = await provider.events_since(None)
    assert sorted(e.id for e in fresh.events) == sorted(e.id for e in page.events)


async def test_reconciliation_pages_and_keeps_invoices_of_the_same_second(
    btcpay: BTCPayHarness,
) -> None:
    btcpay.fake.clock = 1_800_000_100
    charges = [await btcpay.provider.charge(request(f"pay-s{i}")) for i in range(3)]
    for charge in charges[:2]:
        await btcpay.pay(charge)
    # charges[2] is pending at the same second: it blocks the cursor, so settle it too.
    await btcpay.pay(charges[2])

    page = await btcpay.provider.events_since(None, limit=2)
    assert len(page.events) == 2
    assert page.more is True
    rest = await btcpay.provider.events_since(page.cursor, limit=2)
    assert len(rest.events) == 1
    assert rest.more is False
    seen = {e.reference for e in page.events + rest.events}
    assert seen == {"pay-s0", "pay-s1", "pay-s2"}

    later = await btcpay.provider.charge(request("pay-s3"))  # the same second again
    await btcpay.pay(later)
    last = await btcpay.provider.events_since(rest.cursor)
    assert [e.reference for e in last.events] == ["pay-s3"]


# -- webhooks -------------------------------------------------------------------------------


async def test_a_signed_settled_delivery_is_accepted(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-w1"))
    now = datetime.now(UTC)
    body, headers = btcpay.webhook("dlv-1", charge, succeeded=True, at=now)

    [event] = btcpay.provider.verify_webhook(body, headers, now=now)

    assert event.id == "dlv-1"
    assert event.kind is EventKind.CHARGE_SUCCEEDED
    assert (event.charge_id, event.reference) == (charge.id, "pay-w1")
    assert event.occurred_at == datetime.fromtimestamp(int(now.timestamp()), UTC)


async def test_a_redelivery_has_the_first_deliverys_id(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-w2"))
    now = datetime.now(UTC)
    body = btcpay.fake.webhook_body(
        "InvoiceSettled",
        charge.id,
        at=now,
        delivery_id="dlv-new",
        original_delivery_id="dlv-first",
        redelivery=True,
    )

    [event] = btcpay.provider.verify_webhook(body, btcpay.fake.sign(body), now=now)

    assert event.id == "dlv-first"
    assert event.extra["isRedelivery"] is True


@pytest.mark.parametrize(
    ("event_type", "fields", "kind"),
    [
        ("InvoiceExpired", {"partiallyPaid": False}, EventKind.CHARGE_FAILED),
        ("InvoiceInvalid", {"manuallyMarked": True}, EventKind.CHARGE_CANCELED),
        ("InvoiceInvalid", {"manuallyMarked": False}, EventKind.CHARGE_FAILED),
        ("InvoiceProcessing", {"overPaid": False}, EventKind.CHARGE_PENDING),
        ("InvoiceReceivedPayment", {"afterExpiration": False}, EventKind.CHARGE_PENDING),
        ("InvoiceCreated", {}, EventKind.IGNORED),
    ],
)
async def test_webhook_types_map_to_event_kinds(
    btcpay: BTCPayHarness, event_type: str, fields: dict[str, object], kind: EventKind
) -> None:
    charge = await btcpay.provider.charge(request("pay-w3"))
    now = datetime.now(UTC)
    body = btcpay.fake.webhook_body(event_type, charge.id, at=now, **fields)

    [event] = btcpay.provider.verify_webhook(body, btcpay.fake.sign(body), now=now)

    assert event.kind is kind
    assert event.reference == "pay-w3"


async def test_a_delivery_sent_over_http_verifies(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-w4"))
    await btcpay.pay(charge)
    now = datetime.now(UTC)
    body = btcpay.fake.webhook_body("InvoiceSettled", charge.id, at=now)

    status = btcpay.fake.send_webhook(f"{btcpay.server.url}/_fake/inbox", body)

    assert status == 200
    [delivery] = btcpay.fake.inbox
    [event] = btcpay.provider.verify_webhook(delivery.body, delivery.headers, now=now)
    assert (event.kind, event.reference) == (EventKind.CHARGE_SUCCEEDED, "pay-w4")


async def test_refused_deliveries(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-w5"))
    now = datetime.now(UTC)
    body, headers = btcpay.webhook("dlv-5", charge, succeeded=True, at=now)
    verify = btcpay.provider.verify_webhook
    stale_at = now - timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS + 1)
    stale, stale_headers = btcpay.webhook("dlv-6", charge, succeeded=True, at=stale_at)
    future_at = now + timedelta(seconds=WEBHOOK_TOLERANCE_SECONDS + 1)
    future, future_headers = btcpay.webhook("dlv-7", charge, succeeded=True, at=future_at)

    refused: list[tuple[bytes, dict[str, str]]] = [
        (body, dict(btcpay.sign(body, at=now, secret="not-the-secret"))),
        (body, {}),
        (body, {"btcpay-sig": headers["btcpay-sig"].replace("sha256=", "sha1=")}),
        (body.replace(b"dlv-5", b"dlv-X"), dict(headers)),
        (stale, dict(stale_headers)),
        (future, dict(future_headers)),
    ]
    for malformed in (b"not json", b"[1, 2]", json.dumps({"type": "InvoiceSettled"}).encode()):
        refused.append((malformed, dict(btcpay.sign(malformed, at=now))))
    no_invoice = json.dumps(
        {"deliveryId": "d", "type": "InvoiceSettled", "timestamp": int(now.timestamp())}
    ).encode()
    refused.append((no_invoice, dict(btcpay.sign(no_invoice, at=now))))

    for refused_body, refused_headers in refused:
        with pytest.raises(InvalidWebhook) as caught:
            verify(refused_body, refused_headers, now=now)
        assert WEBHOOK_SECRET not in str(caught.value)
    assert verify(body, headers, now=now)[0].id == "dlv-5"


# -- failures -------------------------------------------------------------------------------


async def test_an_unavailable_server_is_unavailable(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-u1"))
    btcpay.fake.unavailable = True

    with pytest.raises(Unavailable):
        await btcpay.provider.fetch(charge.id)
    with pytest.raises(Unavailable):
        await btcpay.provider.charge(request("pay-u2"))
    assert len(btcpay.fake.invoices) == 1


async def test_a_server_refusing_connections_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = BTCPayPayments(btcpay_options(f"http://127.0.0.1:{port}", timeout=2.0))
    try:
        with pytest.raises(Unavailable) as caught:
            await provider.fetch("SomeInvoice")
        assert API_KEY not in str(caught.value)
    finally:
        await provider.close()


async def test_a_wrong_api_key_is_a_configuration_error_naming_no_secret(
    btcpay_server: RunningFake, btcpay: BTCPayHarness
) -> None:
    wrong_key = "wrong-key-0000-secret"
    provider = BTCPayPayments(btcpay_options(btcpay_server.url, api_key=wrong_key))
    try:
        with pytest.raises(ConfigurationError) as caught:
            await provider.charge(request("pay-k1"))
        assert "api_key" in str(caught.value)
        assert wrong_key not in str(caught.value)
        assert API_KEY not in str(caught.value)
    finally:
        await provider.close()
    assert btcpay.fake.invoices == {}


async def test_a_refused_request_carries_the_servers_message(btcpay: BTCPayHarness) -> None:
    charge = await btcpay.provider.charge(request("pay-r1"))
    await btcpay.pay(charge)
    btcpay.fake.invoices[charge.id]["availableStatusesForManualMarking"] = []
    btcpay.fake.invoices[charge.id]["status"] = "New"  # cancel will try to mark it

    with pytest.raises(ProviderError) as caught:
        await btcpay.provider.cancel(charge.id)

    assert "cannot mark a New invoice Invalid" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_options_forbid_unknown_keys_and_hide_secrets() -> None:
    with pytest.raises(ConfigurationError, match="store"):
        registry.load(
            "payments",
            "btcpay",
            {"url": "http://x", "api_key": "k", "webhook_secret": "s", "stor_id": "S"},
        )
    options = btcpay_options("http://x")
    assert API_KEY not in repr(options)
    assert WEBHOOK_SECRET not in repr(options)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [(1250, "eur", "12.50"), (500, "jpy", "500"), (1234, "kwd", "1.234"), (1, "btc", "0.00000001")],
)
def test_amounts_in_minor_units_round_trip(amount: int, currency: str, text: str) -> None:
    assert to_decimal_string(amount, currency) == text
    assert to_minor_units(text, currency) == amount


def test_an_amount_finer_than_the_minor_unit_is_refused() -> None:
    with pytest.raises(ProviderError):
        to_minor_units("12.345", "eur")


# -- the fake holds requests and responses to the contract ----------------------------------


async def test_the_fake_refuses_and_records_a_request_the_contract_does_not_allow(
    btcpay_server: RunningFake,
) -> None:
    fake = btcpay_server.fake
    fake.reset()
    async with httpx.AsyncClient(base_url=btcpay_server.url) as client:
        bad = await client.post(
            f"/api/v1/stores/{STORE_ID}/invoices",
            json={"amount": 12.5, "currency": "EUR", "notAField": True},
            headers={"Authorization": f"token {API_KEY}"},
        )
        unauthenticated = await client.get("/api/v1/invoices/abc")
    try:
        assert bad.status_code == 400
        assert len(fake.violations) == 2
        assert "notAField" in fake.violations[0] or "12.5" in fake.violations[0]
        assert unauthenticated.status_code == 400
        assert fake.invoices == {}
    finally:
        fake.reset()


async def test_the_fake_records_a_response_the_contract_does_not_allow(
    btcpay_server: RunningFake,
) -> None:
    fake = btcpay_server.fake
    fake.reset()
    harness = BTCPayHarness(btcpay_server)
    try:
        charge = await harness.provider.charge(request("pay-v1"))
        fake.invoices[charge.id]["status"] = "Paid"  # not an InvoiceStatus
        with pytest.raises(Unavailable):
            await harness.provider.fetch(charge.id)
        assert len(fake.violations) == 1
        assert "response" in fake.violations[0]
        with pytest.raises(AssertionError, match="broke the BTCPay contract"):
            await harness.reset()
    finally:
        await harness.close()
        fake.reset()


def test_the_fake_builds_only_webhooks_the_contract_allows(btcpay_server: RunningFake) -> None:
    with pytest.raises(AssertionError, match="contract refuses"):
        btcpay_server.fake.webhook_body(
            "InvoiceSettled", "inv", at=datetime.now(UTC), manuallyMarked="yes"
        )


async def test_reconciliation_skips_invoices_of_the_stores_own_apps(
    btcpay: BTCPayHarness,
) -> None:
    async with httpx.AsyncClient(base_url=btcpay.server.url) as client:
        response = await client.post(
            f"/api/v1/stores/{STORE_ID}/invoices",
            json={"amount": "3.20", "currency": "USD", "metadata": {"orderId": "pos-1"}},
            headers={"Authorization": f"token {API_KEY}"},
        )
    assert response.status_code == 200
    foreign = response.json()["id"]  # left New: it must not hold the cursor back
    charge = await btcpay.provider.charge(request("pay-f1"))
    await btcpay.pay(charge)
    btcpay.fake.settle(foreign)

    page = await btcpay.provider.events_since(None)

    assert [e.charge_id for e in page.events] == [charge.id]
    assert page.cursor is not None


async def test_the_fake_refuses_what_the_contract_or_the_fake_does_not_have(
    btcpay_server: RunningFake,
) -> None:
    """A query parameter the contract does not declare (a misspelt filter, silently ignored
    by a real server), a declared one the fake would ignore, and an operation the fake does
    not implement are each a violation, never a quiet answer."""
    fake = btcpay_server.fake
    fake.reset()
    auth = {"Authorization": f"token {API_KEY}"}
    async with httpx.AsyncClient(base_url=btcpay_server.url, headers=auth) as client:
        misspelt = await client.get(f"/api/v1/stores/{STORE_ID}/invoices?orderID=holdfast:1")
        unfiltered = await client.get(f"/api/v1/stores/{STORE_ID}/invoices?status=Settled")
        unimplemented = await client.delete("/api/v1/invoices/abc")
        fake.unavailable = True
        refused_while_down = await client.get(f"/api/v1/stores/{STORE_ID}/invoices?startdate=1")
        fake.unavailable = False
    try:
        assert misspelt.status_code == 400
        assert unfiltered.status_code == 400
        assert unimplemented.status_code == 500
        # Checked against the contract before the outage hook answers.
        assert refused_while_down.status_code == 400
        found = "\n".join(fake.violations)
        assert "'orderID' is not in the contract" in found
        assert "'status' is not implemented by the fake" in found
        assert "DELETE /api/v1/invoices/abc: not implemented by the fake" in found
        assert "'startdate' is not in the contract" in found
    finally:
        fake.reset()
