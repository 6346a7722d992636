"""Premium subscriptions end to end against the processors' local servers: BTCPay Server's
contract-checking fake (every request and response checked against its OpenAPI description)
and localstripe. Webhooks go through the real route, `POST /webhooks/payments/{name}`, and are
applied by the jobs it records: each event once, however delivered; badly signed or stale
deliveries refused without a trace; missed ones caught up by reconciliation; and a switch of
processor that loses no subscriber's paid time, with the old vendor answering or gone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

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
    User,
)
from app.services import Services
from app.services.accounts import Viewer
from app.services.billing_ledger import STOP_VENDOR
from providers.payments.base import ActionKind
from tests.btcpay_fake import RunningFake, run_fake_btcpay
from tests.conftest import make_settings
from tests.contract.payments_btcpay import API_KEY, STORE_ID, WEBHOOK_SECRET


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


async def subscriber(name: str = "payer") -> Viewer:
    user = await User.create(
        username=name,
        username_key=name,
        email=f"{name}@example.com",
        password_hash="x",
        display_name=name.title(),
    )
    return Viewer(user, session_id=0)


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
    assert invoice["metadata"]["orderId"] == str(payment.id)
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

    report = await services.billing.switch_provider("btcpay", "bank")
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
    admin = await subscriber("admin")
    admin.user.role = admin.user.role.ADMIN
    await admin.user.save()
    await services.billing.confirm_manual_payment(admin, moved.pending.payment_id)
    new = await Subscription.get(id=moved.subscription.id)
    assert new.current_period_start == old.current_period_end
    report = await services.billing.switch_report("btcpay", "bank")
    assert report.moved == [(paid_viewer.user.id, new.id)]
    assert report.waiting == []
    assert await services.billing.is_premium(paid_viewer.user.id)
    btcpay.fake.unavailable = False
