"""The payments ledger's rules, on the test run's database, whatever the processor: events are
applied once however often and in whatever order they arrive, money taken always pays its
period, a period paid keeps access through the grace period without any job running, a switch
of processor loses no paid day, and a timer of a period since replaced does nothing.

Vendor flows (localstripe, the BTCPay fake) are in test_payments_flows.py; these feed the
ledger normalised events directly, as every provider's `verify_webhook` and `events_since`
produce them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from app.errors import DomainError, ErrorCode
from app.models import (
    Job,
    JobState,
    Payment,
    PaymentEventRecord,
    PaymentStatus,
    Plan,
    Post,
    Subscription,
    SubscriptionStatus,
    Visibility,
)
from app.services import Services
from app.services.accounts import Viewer
from app.services.billing_ledger import (
    APPLY_EVENT,
    CANCEL_CHARGES,
    PERIOD_END,
    RENEW,
    Superseded,
    add_interval,
    effective_status,
)
from app.services.views import posts_by_ids
from providers.payments.base import (
    ActionKind,
    Charge,
    ChargeStatus,
    EventKind,
    NextAction,
    PaymentEvent,
)
from tests.billing import admin, subscriber
from tests.conftest import make_settings

PAYMENTS = {
    "providers": {
        "bank": {"provider": "manual", "options": {"instructions": "IBAN XX00 0000"}},
        "cash": {"provider": "manual", "options": {"instructions": "Pay at the desk."}},
    },
    "plans": {"supporter": {"name": "Supporter", "prices": {"eur": 500, "usd": 600}}},
    "grace_days": 7,
    "renewal_lead_days": 3,
}


@pytest.fixture
async def services(app: Starlette, data_dir: Path, database_url: str) -> AsyncIterator[Services]:
    """Services with two manual configurations, on the shared app's database."""
    built = Services.from_settings(make_settings(data_dir, database_url, payments=PAYMENTS))
    await built.billing.ensure_plans()
    yield built
    await built.close()


async def run_jobs(services: Services, *, all_due: bool = False) -> int:
    """Run the jobs due now (`all_due`: every pending job, as if its time had come)."""
    if all_due:
        await Job.filter(state=JobState.PENDING).update(run_after=datetime.now(UTC))
    return await services.jobs.run_due(services.changes)


async def pending_payment(services: Services, viewer: Viewer, provider: str = "bank") -> Payment:
    plan = await Plan.get(code="supporter")
    view = await services.billing.subscribe(viewer, plan.id, provider, "eur")
    payment = await Payment.get(subscription_id=view.subscription.id, status="pending")
    return payment


def event(
    payment: Payment, kind: EventKind, *, event_id: str | None = None, at: datetime | None = None
) -> PaymentEvent:
    return PaymentEvent(
        id=event_id or f"evt-{payment.id}-{kind.value}",
        kind=kind,
        occurred_at=at or datetime.now(UTC),
        charge_id=payment.charge_id,
        reference=str(payment.id),
        failure="Your card was declined." if kind is EventKind.CHARGE_FAILED else None,
    )


async def deliver(services: Services, provider: str, *events: PaymentEvent) -> int:
    async with services.changes.begin() as change:
        return await services.billing.ledger.ingest(change, provider, events)


def test_intervals_keep_the_day_or_take_the_months_last() -> None:
    jan31 = datetime(2027, 1, 31, 12, tzinfo=UTC)
    assert add_interval(jan31, "month") == datetime(2027, 2, 28, 12, tzinfo=UTC)
    assert add_interval(datetime(2028, 1, 31, tzinfo=UTC), "month").day == 29
    assert add_interval(datetime(2027, 12, 15, tzinfo=UTC), "month") == datetime(
        2028, 1, 15, tzinfo=UTC
    )
    assert add_interval(datetime(2028, 2, 29, tzinfo=UTC), "year") == datetime(
        2029, 2, 28, tzinfo=UTC
    )


async def test_an_event_delivered_twice_is_recorded_and_applied_once(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    paid = event(payment, EventKind.CHARGE_SUCCEEDED)
    assert await deliver(services, "bank", paid) == 1
    assert await deliver(services, "bank", paid) == 0
    await run_jobs(services)
    assert await PaymentEventRecord.filter(event_id=paid.id).count() == 1
    assert await Job.filter(name=APPLY_EVENT).count() == 1
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.current_period_end is not None
    assert sub.access_until is not None
    # One period paid, access through its grace.
    assert sub.access_until - sub.current_period_end == timedelta(days=7)
    assert await services.billing.is_premium(viewer.user.id)
    # The same event again from reconciliation, after it was applied: nothing changes.
    before = (sub.current_period_end, sub.access_until)
    assert await deliver(services, "bank", paid) == 0
    await run_jobs(services)
    sub = await Subscription.get(id=sub.id)
    assert (sub.current_period_end, sub.access_until) == before


async def test_concurrent_deliveries_of_one_event_insert_it_once(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    paid = event(payment, EventKind.CHARGE_SUCCEEDED)
    counts = await asyncio.gather(*(deliver(services, "bank", paid) for _ in range(4)))
    assert sorted(counts) == [0, 0, 0, 1]
    await run_jobs(services)
    assert await Payment.filter(id=payment.id, status=PaymentStatus.SUCCEEDED).count() == 1


async def test_the_same_event_id_at_two_configurations_is_two_events(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    paid = event(payment, EventKind.CHARGE_SUCCEEDED, event_id="evt_1")
    assert await deliver(services, "bank", paid) == 1
    assert await deliver(services, "cash", paid) == 1
    await run_jobs(services)
    # The one at `cash` names a payment that is not cash's: applied to nothing.
    assert await Payment.filter(id=payment.id, status=PaymentStatus.SUCCEEDED).count() == 1
    assert await PaymentEventRecord.filter(processed_at__isnull=True).count() == 0


async def test_a_failure_arriving_after_the_success_changes_nothing(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_FAILED, at=earlier))
    await run_jobs(services)
    payment = await Payment.get(id=payment.id)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.failure is None
    sub = await Subscription.get(id=payment.subscription_id)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.action_required is None
    assert await services.billing.is_premium(viewer.user.id)


async def test_a_success_after_a_failure_or_cancellation_still_pays(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_FAILED))
    await run_jobs(services)
    failed = await Payment.get(id=payment.id)
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure == "Your card was declined."
    assert not await services.billing.is_premium(viewer.user.id)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    assert (await Payment.get(id=payment.id)).status is PaymentStatus.SUCCEEDED
    assert await services.billing.is_premium(viewer.user.id)


async def test_an_event_for_no_payment_of_ours_is_marked_and_ignored(services: Services) -> None:
    stray = PaymentEvent(
        id="evt_stray",
        kind=EventKind.CHARGE_SUCCEEDED,
        occurred_at=datetime.now(UTC),
        charge_id="ch_unknown",
        reference="999",
    )
    assert await deliver(services, "bank", stray) == 1
    await run_jobs(services)
    record = await PaymentEventRecord.get(event_id="evt_stray")
    assert record.processed_at is not None
    assert await Payment.all().count() == 0


async def test_access_holds_through_the_grace_period_without_any_job(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=payment.subscription_id)
    # The period ended two days ago; no job ran since.
    ended = datetime.now(UTC) - timedelta(days=2)
    await Subscription.filter(id=sub.id).update(
        current_period_end=ended, access_until=ended + timedelta(days=7)
    )
    sub = await Subscription.get(id=sub.id)
    assert effective_status(sub) is SubscriptionStatus.PAST_DUE
    assert await services.billing.is_premium(viewer.user.id)
    # And after the grace period, without a job either: no access.
    await Subscription.filter(id=sub.id).update(access_until=ended - timedelta(seconds=1))
    sub = await Subscription.get(id=sub.id)
    assert effective_status(sub) is SubscriptionStatus.EXPIRED
    assert not await services.billing.is_premium(viewer.user.id)


async def test_a_renewal_is_issued_before_the_period_ends_and_lapses_unpaid(
    services: Services,
) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=payment.subscription_id)
    period_end = sub.current_period_end
    assert period_end is not None
    renewals = await Job.filter(name=RENEW, state=JobState.PENDING)
    assert len(renewals) == 1
    # Due three days before the period ends.
    assert abs((renewals[0].run_after - (period_end - timedelta(days=3))).total_seconds()) < 5

    await Job.filter(name=RENEW).update(run_after=datetime.now(UTC))
    await run_jobs(services)
    renewal = await Payment.get(subscription_id=sub.id, renewal=True)
    assert renewal.status is PaymentStatus.PENDING
    assert renewal.period_start == period_end
    assert renewal.period_end == add_interval(period_end, "month")
    assert renewal.instructions is not None
    assert str(renewal.id) in renewal.instructions
    sub = await Subscription.get(id=sub.id)
    assert sub.action_required is not None
    assert sub.action_required.value == "pay"
    # Running the renewal again (a retried job) issues nothing more.
    await Job.filter(name=RENEW).update(state=JobState.PENDING, run_after=datetime.now(UTC))
    await run_jobs(services)
    assert await Payment.filter(subscription_id=sub.id, renewal=True).count() == 1

    # The period ends unpaid: past due, still premium through the grace period.
    await Job.filter(name=PERIOD_END).update(run_after=datetime.now(UTC))
    await run_jobs(services)
    sub = await Subscription.get(id=sub.id)
    assert sub.status is SubscriptionStatus.PAST_DUE
    assert sub.grace_until == sub.access_until
    assert await services.billing.is_premium(viewer.user.id)

    # The renewal is paid late: the next period follows the one before, access extends.
    await deliver(services, "bank", event(renewal, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=sub.id)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.current_period_start == period_end
    assert sub.current_period_end == add_interval(period_end, "month")
    assert sub.access_until == sub.current_period_end + timedelta(days=7)


async def test_a_timer_of_a_replaced_period_does_nothing(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer)
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=payment.subscription_id)
    async with services.changes.begin() as change:
        await services.billing.ledger.period_end(
            change, {"subscription": sub.id, "period_end": "2020-01-01T00:00:00+00:00"}
        )
    commit = await services.billing.ledger.renew(
        {"subscription": sub.id, "period_end": "2020-01-01T00:00:00+00:00"}
    )
    async with services.changes.begin() as change:
        await commit(change)
    after = await Subscription.get(id=sub.id)
    assert after.status is SubscriptionStatus.ACTIVE
    assert after.updated_at == sub.updated_at
    assert await Payment.filter(subscription_id=sub.id).count() == 1


async def test_a_switch_of_processor_loses_no_paid_day(services: Services) -> None:
    viewer = await subscriber()
    payment = await pending_payment(services, viewer, "bank")
    await deliver(services, "bank", event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    old = await Subscription.get(id=payment.subscription_id)
    report = await services.billing.switch.run("bank", "cash")
    assert report.marked == 1
    assert [(user, sub) for user, sub, _ in report.waiting] == [(viewer.user.id, old.id)]
    assert report.moved == []
    old = await Subscription.get(id=old.id)
    assert old.switch_to == "cash"
    assert old.status is SubscriptionStatus.CANCELED
    assert old.action_required is not None
    assert old.action_required.value == "switch_provider"
    assert await services.billing.is_premium(viewer.user.id)
    # No renewal of the old one is charged any more.
    await run_jobs(services, all_due=True)
    assert await Payment.filter(subscription_id=old.id, renewal=True).count() == 0

    new_payment = await pending_payment(services, viewer, "cash")
    await deliver(services, "cash", event(new_payment, EventKind.CHARGE_SUCCEEDED))
    await Job.filter(state=JobState.PENDING, name=APPLY_EVENT).update(run_after=datetime.now(UTC))
    await services.jobs.run_due(services.changes)
    new = await Subscription.get(id=new_payment.subscription_id)
    # The new period begins where the one paid through `bank` ends.
    assert new.current_period_start == old.current_period_end
    old = await Subscription.get(id=old.id)
    assert old.replaced_by_id == new.id
    report = await services.billing.switch.report("bank", "cash")
    assert report.moved == [(viewer.user.id, new.id)]
    assert report.waiting == []
    # A second run marks nothing more.
    assert (await services.billing.switch.run("bank", "cash")).marked == 0


async def test_two_charges_paid_for_one_period_pay_two_periods(services: Services) -> None:
    """Money taken always pays a period: an invoice superseded by a second one but paid
    anyway extends the subscription instead of vanishing."""
    viewer = await subscriber()
    first = await pending_payment(services, viewer)
    second = await pending_payment(services, viewer)
    assert (await Payment.get(id=first.id)).status is PaymentStatus.CANCELED
    await deliver(services, "bank", event(second, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=second.subscription_id)
    one_period = sub.current_period_end
    assert one_period is not None
    await deliver(services, "bank", event(first, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    sub = await Subscription.get(id=sub.id)
    assert sub.current_period_start == one_period
    assert sub.current_period_end == add_interval(one_period, "month")
    assert (await Payment.get(id=first.id)).status is PaymentStatus.SUCCEEDED


async def paid_subscription(
    services: Services, viewer: Viewer, provider: str = "bank"
) -> Subscription:
    payment = await pending_payment(services, viewer, provider)
    await deliver(services, provider, event(payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    return await Subscription.get(id=payment.subscription_id)


async def renewal_payment(sub: Subscription, **fields: Any) -> Payment:
    """The next period's payment of `sub`, written as a renewal job writes it."""
    assert sub.current_period_end is not None
    return await Payment.create(
        subscription_id=sub.id,
        provider=sub.provider,
        amount=sub.amount,
        currency=sub.currency,
        renewal=True,
        period_start=sub.current_period_end,
        period_end=add_interval(sub.current_period_end, "month"),
        **fields,
    )


async def test_a_renewal_paid_after_access_ended_pays_a_period_from_then(
    services: Services,
) -> None:
    """Money taken always pays a period: an invoice paid after the grace period ended (the
    subscription expired, the payment cancelled) starts a new period when it is paid."""
    viewer = await subscriber()
    sub = await paid_subscription(services, viewer)
    await Job.filter(name=RENEW).update(run_after=datetime.now(UTC))
    await run_jobs(services)
    renewal = await Payment.get(subscription_id=sub.id, renewal=True)
    # The period and its grace went by unpaid.
    ended = datetime.now(UTC) - timedelta(days=10)
    await Subscription.filter(id=sub.id).update(
        current_period_end=ended, access_until=ended + timedelta(days=7)
    )
    await Payment.filter(id=renewal.id).update(period_start=ended)
    await Job.filter(name=PERIOD_END).update(
        run_after=datetime.now(UTC),
        payload={"subscription": sub.id, "period_end": ended.isoformat()},
    )
    await run_jobs(services)
    expired = await Subscription.get(id=sub.id)
    assert expired.status is SubscriptionStatus.EXPIRED
    assert (await Payment.get(id=renewal.id)).status is PaymentStatus.CANCELED
    assert not await services.billing.is_premium(viewer.user.id)

    admin_viewer = await admin()
    before = datetime.now(UTC)
    await services.billing.confirm_manual_payment(admin_viewer, renewal.id)
    revived = await Subscription.get(id=sub.id)
    assert revived.status is SubscriptionStatus.ACTIVE
    assert revived.current_period_start is not None
    assert revived.current_period_start >= before
    assert await services.billing.is_premium(viewer.user.id)


async def test_a_charge_cancelled_in_the_ledger_is_never_started(services: Services) -> None:
    """A cancel that commits before a renewal's charge starts wins: nothing is charged."""
    viewer = await subscriber()
    sub = await paid_subscription(services, viewer)
    assert sub.current_period_end is not None
    renewal = await renewal_payment(sub)
    await services.billing.cancel(viewer)
    with pytest.raises(Superseded):
        await services.billing.ledger.start_charge(sub, renewal, off_session=True)
    after = await Payment.get(id=renewal.id)
    assert after.status is PaymentStatus.CANCELED
    assert after.charge_id is None


async def test_a_second_subscribe_while_a_charge_is_in_flight_is_refused(
    services: Services,
) -> None:
    viewer = await subscriber()
    first = await pending_payment(services, viewer)
    # The first attempt's charge has not come back from the vendor yet.
    await Payment.filter(id=first.id).update(charge_id=None)
    plan = await Plan.get(code="supporter")
    with pytest.raises(DomainError) as refused:
        await services.billing.subscribe(viewer, plan.id, "bank", "eur")
    assert refused.value.code is ErrorCode.PAYMENT_IN_PROGRESS
    assert (await Payment.get(id=first.id)).status is PaymentStatus.PENDING
    assert await Payment.all().count() == 1


async def test_a_payment_on_a_subscription_left_behind_pays_the_one_the_subscriber_has(
    services: Services,
) -> None:
    """An invoice of a subscription the subscriber left (replaced by another) paid anyway
    pays one more period of the subscription they have now: no period paid twice, and the
    one left behind does not start renewing again."""
    viewer = await subscriber()
    old_payment = await pending_payment(services, viewer, "bank")
    new_payment = await pending_payment(services, viewer, "cash")
    await deliver(services, "cash", event(new_payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    old = await Subscription.get(id=old_payment.subscription_id)
    new = await Subscription.get(id=new_payment.subscription_id)
    assert old.replaced_by_id == new.id
    assert old.status is SubscriptionStatus.EXPIRED
    paid_through = new.current_period_end
    assert paid_through is not None
    # The old invoice is paid anyway.
    await deliver(services, "bank", event(old_payment, EventKind.CHARGE_SUCCEEDED))
    await run_jobs(services)
    old = await Subscription.get(id=old.id)
    new = await Subscription.get(id=new.id)
    assert old.status is SubscriptionStatus.EXPIRED
    assert old.current_period_end is None
    assert new.replaced_by_id is None
    assert new.status is SubscriptionStatus.ACTIVE
    assert new.current_period_end == add_interval(paid_through, "month")
    credited = await Payment.get(id=old_payment.id)
    assert credited.status is PaymentStatus.SUCCEEDED
    assert credited.period_start == paid_through
    # Only `cash` renews, from the end of the extended period.
    renewals = await Job.filter(name=RENEW, state=JobState.PENDING).values_list(
        "payload", flat=True
    )
    assert {payload["subscription"] for payload in renewals} == {new.id}  # type: ignore[index]
    with pytest.raises(DomainError):
        await services.billing.resume(viewer)


async def test_a_complimentary_grant_does_not_hide_the_paid_subscription(
    services: Services,
) -> None:
    viewer = await subscriber()
    paid = await paid_subscription(services, viewer)
    admin_viewer = await admin()
    plan = await Plan.get(code="supporter")
    await services.billing.grant_complimentary(admin_viewer, viewer.user.id, plan.id, 30)
    current = await services.billing.current(viewer.user.id)
    assert current is not None
    assert current.id == paid.id
    cancelled = await services.billing.cancel(viewer)
    assert cancelled.subscription.id == paid.id
    assert cancelled.status is SubscriptionStatus.CANCELED


async def test_plans_are_written_once_by_processes_starting_together(
    services: Services,
) -> None:
    await Plan.all().delete()
    await asyncio.gather(*(services.billing.ensure_plans() for _ in range(3)))
    assert await Plan.filter(code="supporter").count() == 1


async def test_a_subscribers_post_follows_the_ledger_through_grace_to_expiry(
    services: Services,
) -> None:
    """The read rule and the ledger together, through real transitions: paid, the period
    over and unpaid (grace: still visible), the grace over (not visible)."""
    author = await subscriber("author")
    post = await Post.create(
        author_id=author.user.id, text="for subscribers", visibility=Visibility.SUBSCRIBERS
    )
    viewer = await subscriber()
    assert await posts_by_ids(viewer.user.id, [post.id]) == {}
    sub = await paid_subscription(services, viewer)
    assert set(await posts_by_ids(viewer.user.id, [post.id])) == {post.id}

    # The period ends unpaid (its renewal waits for the payer): past due, in grace.
    ended = datetime.now(UTC) - timedelta(minutes=1)
    await Subscription.filter(id=sub.id).update(
        current_period_end=ended, access_until=ended + timedelta(days=7)
    )
    await Job.filter(name=PERIOD_END).update(
        run_after=datetime.now(UTC),
        payload={"subscription": sub.id, "period_end": ended.isoformat()},
    )
    await Job.filter(name=RENEW).delete()
    await run_jobs(services)
    in_grace = await Subscription.get(id=sub.id)
    assert in_grace.status is SubscriptionStatus.PAST_DUE
    assert set(await posts_by_ids(viewer.user.id, [post.id])) == {post.id}

    # The grace period ends: the job that looks again expires it, and the post is gone.
    await Subscription.filter(id=sub.id).update(access_until=datetime.now(UTC))
    await Job.filter(name=PERIOD_END, state=JobState.PENDING).update(run_after=datetime.now(UTC))
    await run_jobs(services)
    assert (await Subscription.get(id=sub.id)).status is SubscriptionStatus.EXPIRED
    assert await posts_by_ids(viewer.user.id, [post.id]) == {}
    assert set(await posts_by_ids(author.user.id, [post.id])) == {post.id}


async def test_a_charge_come_back_for_a_payment_cancelled_meanwhile_is_cancelled_too(
    services: Services,
) -> None:
    """The subscriber cancelled while a renewal's charge was at the vendor: the charge that
    came back open (an invoice) is cancelled at the vendor, not left payable."""
    viewer = await subscriber()
    sub = await paid_subscription(services, viewer)
    assert sub.current_period_end is not None
    renewal = await renewal_payment(sub, status=PaymentStatus.CANCELED)
    open_invoice = Charge(
        id="manual-eur-500-1",
        reference=str(renewal.id),
        status=ChargeStatus.PENDING,
        amount=500,
        currency="eur",
        action=NextAction(ActionKind.AWAIT_MANUAL_PAYMENT, instructions="pay"),
    )
    async with services.changes.begin() as change:
        await services.billing.ledger.record_charge(change, renewal.id, open_invoice)
    after = await Payment.get(id=renewal.id)
    assert after.status is PaymentStatus.CANCELED
    assert after.charge_id == "manual-eur-500-1"
    cancels = await Job.filter(name=CANCEL_CHARGES).values_list("payload", flat=True)
    assert cancels == [{"provider": "bank", "charges": ["manual-eur-500-1"]}]
    assert (await Subscription.get(id=sub.id)).action_required is None


async def test_resuming_through_a_processor_being_left_is_refused(
    app: Starlette, data_dir: Path, database_url: str
) -> None:
    leaving = {**PAYMENTS["providers"]["bank"], "accept_new": False}  # type: ignore[index]
    payments = {**PAYMENTS, "providers": {**PAYMENTS["providers"], "bank": leaving}}  # type: ignore[dict-item]
    built = Services.from_settings(make_settings(data_dir, database_url, payments=payments))
    try:
        await built.billing.ensure_plans()
        viewer = await subscriber()
        plan = await Plan.get(code="supporter")
        view = await built.billing.subscribe(viewer, plan.id, "cash", "eur")
        payment = await Payment.get(subscription_id=view.subscription.id)
        await deliver(built, "cash", event(payment, EventKind.CHARGE_SUCCEEDED))
        await run_jobs(built)
        await Subscription.filter(id=view.subscription.id).update(provider="bank")
        await built.billing.cancel(viewer)
        with pytest.raises(DomainError) as refused:
            await built.billing.resume(viewer)
        assert refused.value.code is ErrorCode.PROVIDER_NOT_ACCEPTED
        sub = await Subscription.get(id=view.subscription.id)
        assert sub.cancel_at_period_end
    finally:
        await built.close()
