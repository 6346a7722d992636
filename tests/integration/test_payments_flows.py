"""Premium subscriptions end to end against the processors' local servers: BTCPay Server's
contract-checking fake (every request and response checked against its OpenAPI description)
and localstripe. Webhooks go through the real route, `POST /webhooks/payments/{name}`, and are
applied by the jobs it records: each event once, however delivered; badly signed or stale
deliveries refused without a trace; missed ones caught up by reconciliation; and a switch of
processor that loses no subscriber's paid time, with the old vendor answering or gone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette

from app.errors import DomainError, ErrorCode
from app.main import create_app
from app.models import (
    Job,
    JobState,
    Payment,
    PaymentEventRecord,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from app.services import Services
from app.services.accounts import Viewer
from app.services.billing_ledger import STOP_VENDOR, add_interval
from providers.payments.base import ActionKind
from tests.billing import admin, subscriber
from tests.btcpay_fake import RunningFake, run_fake_btcpay
from tests.conftest import make_settings
from tests.contract.payments_btcpay import API_KEY, STORE_ID, WEBHOOK_SECRET
from tests.contract.payments_stripe import DECLINED_CARD, GOOD_CARD
from tests.servers import LocalStripe, start_localstripe

STRIPE_KEY = "sk_test_holdfast_flows"
STRIPE_WEBHOOK_SECRET = "whsec_holdfast_flows"


@pytest.fixture(scope="module")
def btcpay() -> Iterator[RunningFake]:
    with run_fake_btcpay() as server:
        yield server


def payments_settings(btcpay_url: str) -> dict[str, Any]:
    return {
        "providers": {
            "btcpay": {
                "provider": "btcpay",
                "options": {
                    "url": btcpay_url,
                    "api_key": API_KEY,
                    "store_id": STORE_ID,
                    "webhook_secret": WEBHOOK_SECRET,
                    "timeout": 5.0,
                },
            },
            "bank": {"provider": "manual", "options": {"instructions": "IBAN XX00 0000"}},
        },
        "plans": {"supporter": {"name": "Supporter", "prices": {"eur": 500}}},
    }


@pytest.fixture
async def paying_app(
    app: Starlette, data_dir: Path, database_url: str, btcpay: RunningFake
) -> AsyncIterator[Starlette]:
    """An app with payments configured, on the shared app's database."""
    btcpay.fake.reset()
    settings = make_settings(data_dir, database_url, payments=payments_settings(btcpay.url))
    built = create_app(settings)
    await built.state.services.billing.ensure_plans()
    yield built
    assert btcpay.fake.violations == [], "a request or response broke the BTCPay contract"
    await built.state.services.close()


@pytest.fixture
async def client(paying_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=paying_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def services_of(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


async def run_jobs(app: Starlette) -> int:
    services = services_of(app)
    return await services.jobs.run_due(services.changes)


async def subscribe_btcpay(app: Starlette, viewer: Viewer) -> tuple[Payment, str]:
    """Subscribe through BTCPay: the payment and its invoice's id."""
    plan = await Plan.get(code="supporter")
    view = await services_of(app).billing.subscribe(viewer, plan.id, "btcpay", "eur")
    assert view.status is SubscriptionStatus.INCOMPLETE
    assert view.pending is not None
    assert view.pending.kind is ActionKind.PAY_AT_URL
    assert view.pending.url is not None
    payment = await Payment.get(subscription_id=view.subscription.id, status="pending")
    assert payment.charge_id is not None
    return payment, payment.charge_id


def settled_delivery(
    btcpay: RunningFake, invoice_id: str, *, at: datetime | None = None, event: str = "Settled"
) -> tuple[bytes, dict[str, str]]:
    body = btcpay.fake.webhook_body(
        f"Invoice{event}", invoice_id, at=at or datetime.now(UTC), delivery_id=f"d-{invoice_id}"
    )
    return body, btcpay.fake.sign(body)


async def post_webhook(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], name: str = "btcpay"
) -> httpx.Response:
    return await client.post(f"/webhooks/payments/{name}", content=body, headers=headers)


async def test_a_btcpay_invoice_paid_and_announced_makes_a_subscriber(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    invoice = btcpay.fake.invoices[invoice_id]
    assert invoice["amount"] == "5.00"
    assert invoice["currency"] == "EUR"
    assert invoice["metadata"]["orderId"] == f"holdfast:{payment.id}"
    billing = services_of(paying_app).billing
    assert not await billing.is_premium(viewer.user.id)

    btcpay.fake.settle(invoice_id)
    body, headers = settled_delivery(btcpay, invoice_id)
    response = await post_webhook(client, body, headers)
    assert response.status_code == 200
    assert response.json() == {"received": True, "new": 1}
    # Acknowledged before it is applied: a job applies it.
    assert not await billing.is_premium(viewer.user.id)
    await run_jobs(paying_app)
    assert await billing.is_premium(viewer.user.id)
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.SUCCEEDED


async def test_a_delivery_repeated_or_concurrent_is_applied_once(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.settle(invoice_id)
    body, headers = settled_delivery(btcpay, invoice_id)
    responses = await asyncio.gather(*(post_webhook(client, body, headers) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["new"] for r in responses) == [0, 0, 0, 0, 1]
    # And once more after it was applied.
    await run_jobs(paying_app)
    again = await post_webhook(client, body, headers)
    assert again.json()["new"] == 0
    await run_jobs(paying_app)
    assert await PaymentEventRecord.filter(provider="btcpay").count() == 1
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.current_period_start is not None
    assert sub.current_period_end is not None
    # One period, not five.
    assert sub.current_period_end - sub.current_period_start <= timedelta(days=31)


async def test_events_out_of_order_leave_the_paid_period_paid(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.settle(invoice_id)
    now = datetime.now(UTC)
    settled = settled_delivery(btcpay, invoice_id, at=now)
    # Sent before the settlement but delivered after it: a payment seen, unconfirmed.
    body = btcpay.fake.webhook_body(
        "InvoiceProcessing", invoice_id, at=now - timedelta(seconds=30), delivery_id="early"
    )
    processing = (body, btcpay.fake.sign(body))
    assert (await post_webhook(client, *settled)).status_code == 200
    await run_jobs(paying_app)
    assert (await post_webhook(client, *processing)).status_code == 200
    await run_jobs(paying_app)
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.SUCCEEDED
    assert await services_of(paying_app).billing.is_premium(viewer.user.id)
    assert await PaymentEventRecord.filter(processed_at__isnull=True).count() == 0


async def test_badly_signed_or_stale_deliveries_are_refused_and_leave_no_trace(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    _, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.settle(invoice_id)
    body, _ = settled_delivery(btcpay, invoice_id)
    forged = await post_webhook(client, body, btcpay.fake.sign(body, secret="not-the-secret"))
    assert forged.status_code == 400
    assert forged.json()["errors"][0]["extensions"]["code"] == "INVALID_WEBHOOK"
    unsigned = await post_webhook(client, body, {"content-type": "application/json"})
    assert unsigned.status_code == 400
    stale = settled_delivery(btcpay, invoice_id, at=datetime.now(UTC) - timedelta(minutes=10))
    assert (await post_webhook(client, *stale)).status_code == 400
    tampered = body.replace(b'"InvoiceSettled"', b'"InvoiceExpired"')
    assert (await post_webhook(client, tampered, btcpay.fake.sign(body))).status_code == 400
    unknown = await post_webhook(client, body, btcpay.fake.sign(body), name="nope")
    assert unknown.status_code == 404
    assert await PaymentEventRecord.all().count() == 0
    assert await Job.filter(name="payments.apply").count() == 0
    assert not await services_of(paying_app).billing.is_premium(viewer.user.id)


async def test_reconciliation_catches_up_a_missed_webhook_once(
    paying_app: Starlette, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.settle(invoice_id)
    ledger = services_of(paying_app).billing.ledger
    assert await ledger.reconcile("btcpay") == 1
    await run_jobs(paying_app)
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.SUCCEEDED
    assert await services_of(paying_app).billing.is_premium(viewer.user.id)
    # A second run finds nothing new.
    assert await ledger.reconcile("btcpay") == 0


async def test_an_expired_invoice_fails_the_payment_and_gives_no_access(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.expire(invoice_id)
    body = btcpay.fake.webhook_body("InvoiceExpired", invoice_id, at=datetime.now(UTC))
    assert (await post_webhook(client, body, btcpay.fake.sign(body))).status_code == 200
    await run_jobs(paying_app)
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.FAILED
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.status is SubscriptionStatus.INCOMPLETE
    assert not await services_of(paying_app).billing.is_premium(viewer.user.id)


@pytest.mark.parametrize("vendor_answers", [True, False], ids=["vendor-answers", "vendor-gone"])
async def test_leaving_btcpay_keeps_every_paid_period(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake, vendor_answers: bool
) -> None:
    services = services_of(paying_app)
    paid_viewer, waiting_viewer = await subscriber("paid"), await subscriber("waiting")
    first, first_invoice = await subscribe_btcpay(paying_app, paid_viewer)
    btcpay.fake.settle(first_invoice)
    await post_webhook(client, *settled_delivery(btcpay, first_invoice))
    # A second subscriber whose invoice is still open when the processor is left.
    _, open_invoice = await subscribe_btcpay(paying_app, waiting_viewer)
    await run_jobs(paying_app)
    old = await Subscription.get(id=first.subscription_id)
    assert old.current_period_end is not None
    if not vendor_answers:
        btcpay.fake.unavailable = True

    report = await services.billing.switch.run("btcpay", "bank")
    assert report.marked == 2
    assert [user for user, _, _ in report.waiting] == [paid_viewer.user.id]
    await run_jobs(paying_app)
    stops = await Job.filter(name=STOP_VENDOR)
    if vendor_answers:
        # The open invoice can no longer be paid at the vendor.
        assert btcpay.fake.invoices[open_invoice]["status"] == "Invalid"
        assert all(job.state is JobState.DONE for job in stops)
    else:
        # The vendor's part waits to be retried; nothing in the ledger waits for it.
        assert any(job.state is JobState.PENDING and job.attempts >= 1 for job in stops)
        assert btcpay.fake.invoices[open_invoice]["status"] == "New"
    old = await Subscription.get(id=old.id)
    assert old.switch_to == "bank"
    assert old.status is SubscriptionStatus.CANCELED
    view = await services.billing.viewer_subscription(paid_viewer)
    assert view is not None
    assert view.subscription.action_required is not None
    assert view.subscription.action_required.value == "switch_provider"
    assert await services.billing.is_premium(paid_viewer.user.id)

    # The subscriber goes on through the bank; an admin confirms the transfer.
    plan = await Plan.get(code="supporter")
    moved = await services.billing.subscribe(paid_viewer, plan.id, "bank", "eur")
    assert moved.pending is not None
    admin_viewer = await admin()
    await services.billing.confirm_manual_payment(admin_viewer, moved.pending.payment_id)
    new = await Subscription.get(id=moved.subscription.id)
    assert new.current_period_start == old.current_period_end
    report = await services.billing.switch.report("btcpay", "bank")
    assert report.moved == [(paid_viewer.user.id, new.id)]
    assert report.waiting == []
    assert await services.billing.is_premium(paid_viewer.user.id)
    btcpay.fake.unavailable = False


# -- Stripe, against localstripe --------------------------------------------------------------


class Inbox:
    """An HTTP endpoint that keeps what localstripe delivers to it (its real, signed webhook
    deliveries), for the test to hand to the app's route."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                inbox.deliveries.append((body, headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    async def wait_for(self, event_type: str) -> tuple[bytes, dict[str, str]]:
        """The first delivery of an event of `event_type` (localstripe sends ~1 s late)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for body, headers in self.deliveries:
                if json.loads(body)["type"] == event_type:
                    return body, headers
            await asyncio.sleep(0.05)
        raise AssertionError(f"localstripe delivered no {event_type}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def localstripe() -> Iterator[tuple[LocalStripe, Inbox]]:
    inbox = Inbox()
    with start_localstripe() as server:
        httpx.post(
            f"{server.url}/_config/webhooks/holdfast",
            data={"url": inbox.url, "secret": STRIPE_WEBHOOK_SECRET},
        ).raise_for_status()
        yield server, inbox
    inbox.close()


def stripe_options(url: str) -> dict[str, Any]:
    return {
        "api_key": STRIPE_KEY,
        "webhook_secret": STRIPE_WEBHOOK_SECRET,
        "api_base": url,
        "max_network_retries": 0,
        "timeout": 10,
    }


@pytest.fixture
async def stripe_app(
    app: Starlette,
    data_dir: Path,
    database_url: str,
    btcpay: RunningFake,
    localstripe: tuple[LocalStripe, Inbox],
) -> AsyncIterator[Starlette]:
    server, inbox = localstripe
    server.reset()
    inbox.deliveries.clear()
    btcpay.fake.reset()
    payments = payments_settings(btcpay.url)
    payments["providers"]["stripe"] = {"provider": "stripe", "options": stripe_options(server.url)}
    built = create_app(make_settings(data_dir, database_url, payments=payments))
    await built.state.services.billing.ensure_plans()
    yield built
    await built.state.services.close()


@pytest.fixture
async def stripe_client(stripe_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stripe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def card(server: LocalStripe, number: str = GOOD_CARD) -> str:
    """A card PaymentMethod, as Stripe.js makes it in the client."""
    response = httpx.post(
        f"{server.url}/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
    )
    response.raise_for_status()
    return str(response.json()["id"])


def replace_saved_card(server: LocalStripe, customer_id: str, number: str) -> None:
    """The customer's saved cards replaced by a new default card `number`."""
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    for method in saved_cards(server, customer_id):
        httpx.post(
            f"{server.url}/v1/payment_methods/{method}/detach", headers=headers
        ).raise_for_status()
    new = card(server, number)
    httpx.post(
        f"{server.url}/v1/payment_methods/{new}/attach",
        data={"customer": customer_id},
        headers=headers,
    ).raise_for_status()
    httpx.post(
        f"{server.url}/v1/customers/{customer_id}",
        data={"invoice_settings[default_payment_method]": new},
        headers=headers,
    ).raise_for_status()


def saved_cards(server: LocalStripe, customer_id: str) -> list[str]:
    response = httpx.get(
        f"{server.url}/v1/payment_methods",
        params={"customer": customer_id, "type": "card"},
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
    )
    response.raise_for_status()
    return [method["id"] for method in response.json()["data"]]


async def subscribe_stripe(app: Starlette, viewer: Viewer, server: LocalStripe) -> Subscription:
    plan = await Plan.get(code="supporter")
    view = await services_of(app).billing.subscribe(
        viewer, plan.id, "stripe", "eur", payment_method=card(server)
    )
    return view.subscription


def stripe_event(
    intent_id: str, reference: str, *, succeeded: bool, at: datetime, event_id: str
) -> bytes:
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": 500,
        "currency": "eur",
        "status": "succeeded" if succeeded else "requires_payment_method",
        "metadata": {"holdfast_reference": reference},
        "last_payment_error": None
        if succeeded
        else {"code": "card_declined", "message": "Your card was declined."},
    }
    event = {
        "id": event_id,
        "object": "event",
        "created": int(at.timestamp()),
        "livemode": False,
        "type": "payment_intent.succeeded" if succeeded else "payment_intent.payment_failed",
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


def stripe_signature(body: bytes, at: datetime, secret: str = STRIPE_WEBHOOK_SECRET) -> str:
    timestamp = int(at.timestamp())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def test_stripe_a_good_card_pays_at_once_and_its_webhook_changes_nothing_more(
    stripe_app: Starlette, stripe_client: httpx.AsyncClient, localstripe: tuple[LocalStripe, Inbox]
) -> None:
    server, inbox = localstripe
    viewer = await subscriber()
    sub = await subscribe_stripe(stripe_app, viewer, server)
    sub = await Subscription.get(id=sub.id)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.customer_id is not None
    assert await services_of(stripe_app).billing.is_premium(viewer.user.id)
    payment = await Payment.get(subscription_id=sub.id)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.charge_id is not None
    assert payment.charge_id.startswith("pi_")
    # localstripe's own signed delivery, through the route: recorded, applied, no second period.
    body, headers = await inbox.wait_for("payment_intent.succeeded")
    response = await post_webhook(stripe_client, body, headers, name="stripe")
    assert response.status_code == 200
    assert response.json()["new"] == 1
    again = await post_webhook(stripe_client, body, headers, name="stripe")
    assert again.json()["new"] == 0
    await run_jobs(stripe_app)
    record = await PaymentEventRecord.get(provider="stripe")
    assert record.processed_at is not None
    assert record.reference == str(payment.id)
    after = await Subscription.get(id=sub.id)
    assert after.current_period_end == sub.current_period_end


async def test_stripe_a_declined_card_is_refused_and_gives_nothing(
    stripe_app: Starlette, localstripe: tuple[LocalStripe, Inbox]
) -> None:
    server, _ = localstripe
    viewer = await subscriber()
    plan = await Plan.get(code="supporter")
    with pytest.raises(DomainError) as refused:
        await services_of(stripe_app).billing.subscribe(
            viewer, plan.id, "stripe", "eur", payment_method=card(server, DECLINED_CARD)
        )
    assert refused.value.code is ErrorCode.PAYMENT_DECLINED
    assert "declined" in refused.value.message.lower()
    payment = await Payment.get(provider="stripe")
    assert payment.status is PaymentStatus.FAILED
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.status is SubscriptionStatus.INCOMPLETE
    assert sub.access_until is None
    assert not await services_of(stripe_app).billing.is_premium(viewer.user.id)


async def test_stripe_cancel_then_resume_then_renew_off_session(
    stripe_app: Starlette, localstripe: tuple[LocalStripe, Inbox]
) -> None:
    server, _ = localstripe
    billing = services_of(stripe_app).billing
    viewer = await subscriber()
    sub = await subscribe_stripe(stripe_app, viewer, server)
    paid = await Subscription.get(id=sub.id)
    assert paid.current_period_end is not None
    assert paid.customer_id is not None

    cancelled = await billing.cancel(viewer, at_period_end=True)
    assert cancelled.status is SubscriptionStatus.CANCELED
    assert cancelled.subscription.access_until == paid.current_period_end
    assert await billing.is_premium(viewer.user.id)
    await run_jobs(stripe_app)
    # Cancelled at period end: the card stays saved until the period is over.
    assert saved_cards(server, paid.customer_id) != []

    resumed = await billing.resume(viewer)
    assert resumed.status is SubscriptionStatus.ACTIVE
    assert resumed.subscription.access_until == paid.current_period_end + timedelta(days=7)

    # The renewal falls due: charged off-session on the saved card, the next period paid.
    await Job.filter(name="payments.renew", state=JobState.PENDING).update(
        run_after=datetime.now(UTC)
    )
    await run_jobs(stripe_app)
    renewed = await Subscription.get(id=sub.id)
    assert renewed.current_period_start == paid.current_period_end
    assert renewed.current_period_end == add_interval(paid.current_period_end, "month")
    renewal = await Payment.get(subscription_id=sub.id, renewal=True)
    assert renewal.status is PaymentStatus.SUCCEEDED
    assert renewal.charge_id is not None


async def test_stripe_a_declined_renewal_asks_for_another_card_and_keeps_access(
    stripe_app: Starlette, localstripe: tuple[LocalStripe, Inbox]
) -> None:
    server, _ = localstripe
    billing = services_of(stripe_app).billing
    viewer = await subscriber()
    sub = await subscribe_stripe(stripe_app, viewer, server)
    paid = await Subscription.get(id=sub.id)
    assert paid.customer_id is not None
    # The saved card stops working (replaced by one that attaches but is declined).
    await anyio.to_thread.run_sync(replace_saved_card, server, paid.customer_id, DECLINED_CARD)

    await Job.filter(name="payments.renew", state=JobState.PENDING).update(
        run_after=datetime.now(UTC)
    )
    await run_jobs(stripe_app)
    renewal = await Payment.get(subscription_id=sub.id, renewal=True)
    assert renewal.status is PaymentStatus.FAILED
    after = await Subscription.get(id=sub.id)
    assert after.action_required is not None
    assert after.action_required.value == "update_payment_method"
    assert after.current_period_end == paid.current_period_end
    assert await billing.is_premium(viewer.user.id)
    # Retried later, while the grace period lasts.
    retry = await Job.filter(name="payments.renew", state=JobState.PENDING).first()
    assert retry is not None
    assert retry.run_after > datetime.now(UTC) + timedelta(hours=23)

    # The subscriber pays the renewal now with another card: the next period follows the one
    # paid, and nothing asks them for anything any more.
    plan = await Plan.get(code="supporter")
    view = await billing.subscribe(viewer, plan.id, "stripe", "eur", payment_method=card(server))
    assert view.subscription.id == sub.id
    assert paid.current_period_end is not None
    renewed = await Subscription.get(id=sub.id)
    assert renewed.current_period_start == paid.current_period_end
    assert renewed.current_period_end == add_interval(paid.current_period_end, "month")
    assert renewed.action_required is None
    # Paid up now: a second attempt is refused.
    with pytest.raises(DomainError) as again:
        await billing.subscribe(viewer, plan.id, "stripe", "eur", payment_method=card(server))
    assert again.value.code is ErrorCode.ALREADY_SUBSCRIBED


async def test_stripe_webhooks_out_of_order_forged_or_stale(
    stripe_app: Starlette, stripe_client: httpx.AsyncClient, localstripe: tuple[LocalStripe, Inbox]
) -> None:
    server, _ = localstripe
    viewer = await subscriber()
    sub = await subscribe_stripe(stripe_app, viewer, server)
    payment = await Payment.get(subscription_id=sub.id)
    assert payment.charge_id is not None
    now = datetime.now(UTC)

    async def deliver(body: bytes, signature: str) -> httpx.Response:
        headers = {"stripe-signature": signature, "content-type": "application/json"}
        return await post_webhook(stripe_client, body, headers, name="stripe")

    # A failure sent before the success but delivered after it: the period stays paid.
    failure = stripe_event(
        payment.charge_id, str(payment.id), succeeded=False, at=now, event_id="evt_late_fail"
    )
    assert (await deliver(failure, stripe_signature(failure, now))).status_code == 200
    await run_jobs(stripe_app)
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.SUCCEEDED
    assert await services_of(stripe_app).billing.is_premium(viewer.user.id)

    success = stripe_event(
        payment.charge_id, str(payment.id), succeeded=True, at=now, event_id="evt_forged"
    )
    forged = await deliver(success, stripe_signature(success, now, secret="whsec_wrong"))
    assert forged.status_code == 400
    old = now - timedelta(minutes=6)
    stale = await deliver(success, stripe_signature(success, old))
    assert stale.status_code == 400
    tampered = success.replace(b"evt_forged", b"evt_other")
    assert (await deliver(tampered, stripe_signature(success, now))).status_code == 400
    assert await PaymentEventRecord.filter(event_id__in=["evt_forged", "evt_other"]).count() == 0


@pytest.mark.parametrize("stripe_answers", [True, False], ids=["stripe-answers", "stripe-gone"])
async def test_leaving_stripe_for_btcpay_keeps_every_paid_period(
    app: Starlette,
    data_dir: Path,
    database_url: str,
    btcpay: RunningFake,
    stripe_answers: bool,
) -> None:
    """`holdfast payments migrate --from stripe --to btcpay`, with Stripe answering or gone
    (its own localstripe, stopped before the move)."""
    btcpay.fake.reset()
    stack = contextlib.ExitStack()
    server = stack.enter_context(start_localstripe())
    payments = payments_settings(btcpay.url)
    payments["providers"]["stripe"] = {"provider": "stripe", "options": stripe_options(server.url)}
    leaving = create_app(make_settings(data_dir, database_url, payments=payments))
    services = services_of(leaving)
    try:
        await services.billing.ensure_plans()
        viewer = await subscriber()
        sub = await subscribe_stripe(leaving, viewer, server)
        old = await Subscription.get(id=sub.id)
        assert old.customer_id is not None
        assert saved_cards(server, old.customer_id) != []
        if not stripe_answers:
            stack.close()  # Stripe is gone.

        report = await services.billing.switch.run("stripe", "btcpay")
        await run_jobs(leaving)
        stop = await Job.get(name=STOP_VENDOR)
        if stripe_answers:
            # Nothing at Stripe can charge the subscriber again.
            assert saved_cards(server, old.customer_id) == []
            assert stop.state is JobState.DONE
        else:
            # Retried later; nothing in the ledger waits for it.
            assert stop.state is JobState.PENDING
            assert stop.attempts == 1
        assert report.marked == 1
        assert [user for user, _, _ in report.waiting] == [viewer.user.id]
        old = await Subscription.get(id=old.id)
        assert old.switch_to == "btcpay"
        assert old.status is SubscriptionStatus.CANCELED
        view = await services.billing.viewer_subscription(viewer)
        assert view is not None
        assert view.subscription.action_required is not None
        assert view.subscription.action_required.value == "switch_provider"
        assert view.subscription.switch_to == "btcpay"
        assert await services.billing.is_premium(viewer.user.id)

        # The subscriber goes on through BTCPay; the new period starts where Stripe's ends.
        payment, invoice_id = await subscribe_btcpay(leaving, viewer)
        btcpay.fake.settle(invoice_id)
        assert await services.billing.ledger.reconcile("btcpay") == 1
        await run_jobs(leaving)
        new = await Subscription.get(id=payment.subscription_id)
        assert new.status is SubscriptionStatus.ACTIVE
        assert new.current_period_start == old.current_period_end
        report = await services.billing.switch.report("stripe", "btcpay")
        assert report.moved == [(viewer.user.id, new.id)]
        assert report.waiting == []
        assert btcpay.fake.violations == []
    finally:
        stack.close()
        await services.close()


async def test_a_renewal_the_vendor_cannot_take_is_tried_again_hourly_and_keeps_access(
    paying_app: Starlette, client: httpx.AsyncClient, btcpay: RunningFake
) -> None:
    """No vendor outage changes who has access: BTCPay down when the renewal falls due costs
    the subscriber nothing, and the renewal is tried again, however long the outage."""
    viewer = await subscriber()
    payment, invoice_id = await subscribe_btcpay(paying_app, viewer)
    btcpay.fake.settle(invoice_id)
    await post_webhook(client, *settled_delivery(btcpay, invoice_id))
    await run_jobs(paying_app)
    sub = await Subscription.get(id=payment.subscription_id)
    btcpay.fake.unavailable = True
    try:
        await Job.filter(name="payments.renew", state=JobState.PENDING).update(
            run_after=datetime.now(UTC)
        )
        await run_jobs(paying_app)
        jobs = await Job.filter(name="payments.renew").order_by("id")
        assert [job.state for job in jobs] == [JobState.DONE, JobState.PENDING]
        assert jobs[1].run_after > datetime.now(UTC) + timedelta(minutes=55)
        renewal = await Payment.get(subscription_id=sub.id, renewal=True)
        assert renewal.status is PaymentStatus.PENDING
        assert renewal.charge_id is None
        assert await services_of(paying_app).billing.is_premium(viewer.user.id)
    finally:
        btcpay.fake.unavailable = False
    # Back: the retry issues the invoice, under the same payment (no second one).
    await Job.filter(name="payments.renew", state=JobState.PENDING).update(
        run_after=datetime.now(UTC)
    )
    await run_jobs(paying_app)
    renewal = await Payment.get(subscription_id=sub.id, renewal=True)
    assert renewal.charge_id is not None
    assert renewal.charge_id in btcpay.fake.invoices
