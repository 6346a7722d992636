"""The payments ledger: what a paid, failed or cancelled charge does to a subscription, and the
jobs that keep subscriptions moving (renewals, the end of a period, webhook events, stopping a
vendor that is being left).

Access comes from one column, `Subscription.access_until` (the rule is `views.premium`):
- a period paid sets it to the period's end plus the grace period, so a renewal that fails,
  or a processor that is down or gone when the period ends, costs the subscriber nothing for
  `grace_days`, and no job has to run for that to hold;
- a subscription that will not renew (cancelled at period end, moved to another processor)
  keeps it at the end of the period already paid (a move keeps the grace too: the subscriber
  did nothing wrong);
- cancelling at once sets it to now.
`status` is kept for people (admins, the subscriber); `effective_status` adds what the clock
says since the last job ran.

Charges and events, whatever their order:
- a payment row exists, PENDING, before its charge is started: its id is the `reference` the
  processor echoes, so every event finds its payment without asking the vendor;
- SUCCEEDED is final and wins over anything (money taken is always credited: a success that
  arrives after a failure or a cancellation of the same charge still pays the period);
  FAILED and CANCELED only ever replace PENDING;
- a first payment's period starts when it is paid (or when the subscriber's access from an
  earlier subscription ends: a switch of processor loses no paid day); a renewal's period
  follows the one before it.
Every vendor event is recorded once (`payment_events` is unique per configuration and event
id) in the transaction that enqueues its application, and applied in the transaction that
marks it processed, so a delivery repeated, concurrent or replayed by reconciliation changes
nothing twice.
"""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, datetime, timedelta

from app import sql
from app.changes import Change, Changes
from app.models import (
    ActionRequired,
    Payment,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
    User,
)
from app.payments import Payments
from app.settings import Settings
from providers.errors import Declined
from providers.payments.base import (
    ActionKind,
    Charge,
    ChargeRequest,
    ChargeStatus,
    Customer,
    Interval,
    PlanPrice,
)

log = logging.getLogger("holdfast.payments")

APPLY_EVENT = "payments.apply"
RENEW = "payments.renew"
PERIOD_END = "payments.period_end"
STOP_VENDOR = "payments.stop_vendor"
CANCEL_CHARGES = "payments.cancel_charges"

# How long a charge may take at the vendor before its payment is taken for abandoned.
IN_FLIGHT = timedelta(minutes=2)

# Events recorded per reconciliation page and per webhook delivery at most.
EVENT_PAGE = 100

_ACTIONS = {
    ActionKind.CONFIRM_CARD: ActionRequired.CONFIRM_PAYMENT,
    ActionKind.PAY_AT_URL: ActionRequired.PAY,
    ActionKind.AWAIT_MANUAL_PAYMENT: ActionRequired.PAY,
}


class Superseded(Exception):
    """The payment was cancelled in the ledger before its charge started: nothing was
    charged."""


def now() -> datetime:
    return datetime.now(UTC)


def add_interval(at: datetime, interval: str) -> datetime:
    """`at` plus one month or year, on the same day (the month's last day when it has no such
    day: Jan 31 + 1 month is Feb 28 or 29)."""
    months = 12 if interval == Interval.YEAR else 1
    month_index = at.month - 1 + months
    year, month = at.year + month_index // 12, month_index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def effective_status(sub: Subscription, at: datetime | None = None) -> SubscriptionStatus:
    """The status the clock says, even before the job at the period's end has run."""
    at = at or now()
    status = sub.status
    if status is SubscriptionStatus.EXPIRED or sub.complimentary:
        ended = sub.access_until is None or sub.access_until <= at
        return SubscriptionStatus.EXPIRED if ended else status
    if status is SubscriptionStatus.INCOMPLETE:
        return status
    if sub.access_until is None or sub.access_until <= at:
        return SubscriptionStatus.EXPIRED
    ended = sub.current_period_end is not None and sub.current_period_end <= at
    if status is SubscriptionStatus.ACTIVE and ended:
        return SubscriptionStatus.PAST_DUE
    return status


def price_of(plan: Plan, currency: str) -> PlanPrice:
    return PlanPrice(
        plan=plan.code,
        name=plan.name,
        amount=plan.prices[currency],
        currency=currency,
        interval=Interval(plan.interval),
    )


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class LedgerCore:
    """Charges and what their outcomes do to subscriptions (the jobs are in
    app/services/billing_jobs.py, vendor events in app/services/billing_events.py)."""

    def __init__(self, settings: Settings, changes: Changes, payments: Payments) -> None:
        self.settings = settings
        self.changes = changes
        self.payments = payments
        self.grace = timedelta(days=settings.payments.grace_days)
        self.lead = timedelta(days=settings.payments.renewal_lead_days)
        self.retry = timedelta(hours=settings.payments.retry_hours)

    # --- charges ---------------------------------------------------------------------------

    async def customer_id(self, sub: Subscription) -> str:
        """The vendor's customer for the subscriber (made on first use, kept on the row)."""
        if sub.customer_id is not None:
            return sub.customer_id
        user = await User.get(id=sub.user_id)
        customer_id = await self.payments.get(sub.provider).create_customer(
            Customer(reference=str(user.id), email=user.email, name=user.display_name)
        )
        async with self.changes.begin() as change:
            await (
                Subscription.filter(id=sub.id).using_db(change.conn).update(customer_id=customer_id)
            )
        sub.customer_id = customer_id
        return customer_id

    async def start_charge(
        self,
        sub: Subscription,
        payment: Payment,
        *,
        off_session: bool,
        payment_method: str | None = None,
    ) -> Charge:
        """Start `payment`'s charge at its processor and record what came back (outside any
        transaction while the vendor answers). `Declined` is recorded as a failed payment and
        raised; any other ProviderError leaves the payment PENDING and is raised (a retry with
        the same reference takes no money twice)."""
        provider = self.payments.get(sub.provider)
        plan = await Plan.get(id=sub.plan_id)
        price = PlanPrice(
            plan=plan.code,
            name=plan.name,
            amount=payment.amount,
            currency=payment.currency,
            interval=Interval(sub.interval),
        )
        start = payment.period_start or now()
        request = ChargeRequest(
            reference=str(payment.id),
            customer_id=await self.customer_id(sub),
            price=price,
            period_start=start,
            period_end=payment.period_end or add_interval(start, sub.interval),
            off_session=off_session,
            payment_method=payment_method,
            return_url=self.settings.payments.return_url,
        )
        # Marked as at the vendor, under the subscription's lock, unless it was cancelled
        # since it was written (the subscriber cancelled, a newer attempt superseded it):
        # then nothing is charged. Whoever looks at the subscription meanwhile sees a charge
        # in flight (`charging`) and starts no other.
        async with self.changes.begin() as change:
            await self._lock(change, sub.id)
            started = await (
                Payment.filter(id=payment.id, status=PaymentStatus.PENDING)
                .using_db(change.conn)
                .update(started_at=now())
            )
        if not started:
            raise Superseded(payment.id)
        try:
            charge = await provider.charge(request)
        except Declined as exc:
            async with self.changes.begin() as change:
                await self.failed(change, payment.id, str(exc) or "The payment was declined.")
            raise
        async with self.changes.begin() as change:
            await self.record_charge(change, payment.id, charge)
        return charge

    async def record_charge(self, change: Change, payment_id: int, charge: Charge) -> None:
        """Record a charge as the vendor returned it: its id, what the payer must do, and its
        outcome when it already has one. A charge still open for a payment cancelled while
        it was being made is cancelled at the vendor (money it takes anyway still pays)."""
        found = await Payment.filter(id=payment_id).using_db(change.conn).get()
        sub = await self._lock(change, found.subscription_id)
        await (
            Payment.filter(id=payment_id, charge_id=None)
            .using_db(change.conn)
            .update(charge_id=charge.id)
        )
        pending = await (
            Payment.filter(id=payment_id, status=PaymentStatus.PENDING)
            .using_db(change.conn)
            .update(
                action_kind=charge.action.kind.value,
                action_url=charge.action.url,
                instructions=charge.action.instructions,
            )
        )
        if charge.status is ChargeStatus.SUCCEEDED:
            await self.paid(change, payment_id, now())
        elif charge.status is ChargeStatus.FAILED:
            await self.failed(change, payment_id, charge.failure or "The payment failed.")
        elif charge.status is ChargeStatus.CANCELED:
            await self.failed(change, payment_id, None, status=PaymentStatus.CANCELED)
        elif not pending:
            if sub.provider in self.payments.providers:
                await change.enqueue(
                    CANCEL_CHARGES, {"provider": sub.provider, "charges": [charge.id]}
                )
        else:
            action = _ACTIONS.get(charge.action.kind)
            if action is not None and sub.switch_to is None:
                sub.action_required = action
                await sub.save(
                    using_db=change.conn, update_fields=["action_required", "updated_at"]
                )

    async def charging(
        self, change: Change, sub: Subscription, *, besides: Payment | None = None
    ) -> bool:
        """Whether a charge of the subscription (other than `besides`'s) may be at the vendor
        right now (one started moments ago has not come back): starting another, under
        another reference, could take the money twice."""
        query = Payment.filter(
            subscription_id=sub.id,
            status=PaymentStatus.PENDING,
            charge_id=None,
            started_at__gt=now() - IN_FLIGHT,
        )
        if besides is not None:
            query = query.exclude(id=besides.id)
        return await query.using_db(change.conn).exists()

    async def _lock(self, change: Change, subscription_id: int) -> Subscription:
        """Lock a subscription's row. Every change locks the subscription before its
        payments, so two changes never wait on each other (no deadlock)."""
        return await (
            Subscription.filter(id=subscription_id).select_for_update().using_db(change.conn).get()
        )

    async def paid(self, change: Change, payment_id: int, at: datetime) -> None:
        """Credit a payment: its period is paid. Applying it again changes nothing.

        Money taken always pays a period, once:
        - a first payment's period starts when the ledger learns of it, or where the period
          the subscriber has paid through any subscription ends (a switch loses no day);
        - a renewal's follows the period before it, unless another payment paid that period
          already or the access it would have continued has ended: then it is placed like a
          first payment;
        - one paid on a subscription the subscriber has since left (replaced, ended, moved
          away from) pays one more period of the subscription they have now, so no period is
          paid twice and no left subscription starts renewing again."""
        found = await Payment.filter(id=payment_id).using_db(change.conn).first()
        if found is None:
            return
        sub = await self._lock(change, found.subscription_id)
        payment = (
            await Payment.filter(id=payment_id).select_for_update().using_db(change.conn).get()
        )
        if payment.status is PaymentStatus.SUCCEEDED:
            return
        # Periods are placed from when the ledger learns of a payment, not from a vendor's
        # time for it (reconciliation may bring an old one).
        heard = now()
        successor = await self._successor(change, sub)
        if successor is not None:
            target = await self._lock(change, successor.id)
            assert target.current_period_end is not None
            start = target.current_period_end
            await self._mark_paid(change, payment, at, start, add_interval(start, target.interval))
            await self._credit(change, target, payment)
            return
        covered = (
            payment.period_start is not None
            and sub.current_period_end is not None
            and payment.period_start < sub.current_period_end
        )
        lapsed = sub.access_until is not None and sub.access_until <= heard
        if payment.period_start is None or covered or lapsed:
            earlier = await self._paid_until(change, sub.user_id)
            start = max(heard, earlier) if earlier is not None else heard
            await self._mark_paid(change, payment, at, start, add_interval(start, sub.interval))
        else:
            assert payment.period_start is not None
            assert payment.period_end is not None
            await self._mark_paid(change, payment, at, payment.period_start, payment.period_end)
        first = sub.current_period_end is None
        if sub.replaced_by_id is not None:
            sub.cancel_at_period_end = True  # its successor has ended: credited, not renewed
        await self._credit(change, sub, payment)
        if first and sub.replaced_by_id is None:
            await self._replace_earlier(change, sub)

    async def _mark_paid(
        self, change: Change, payment: Payment, at: datetime, start: datetime, end: datetime
    ) -> None:
        payment.status = PaymentStatus.SUCCEEDED
        payment.paid_at = at
        payment.failure = None
        payment.period_start = start
        payment.period_end = end
        await payment.save(using_db=change.conn)

    async def _credit(self, change: Change, sub: Subscription, payment: Payment) -> None:
        """The subscription is paid through the payment's period."""
        assert payment.period_start is not None
        assert payment.period_end is not None
        if sub.current_period_end is None or payment.period_end > sub.current_period_end:
            sub.current_period_start = payment.period_start
            sub.current_period_end = payment.period_end
        assert sub.current_period_end is not None
        if sub.switch_to is not None:
            until = sub.current_period_end + self.grace  # a move keeps the grace period
        elif sub.cancel_at_period_end:
            until = sub.current_period_end
        else:
            until = sub.current_period_end + self.grace
        if sub.access_until is None or until > sub.access_until:
            sub.access_until = until
        sub.grace_until = None
        sub.renewal_failures = 0
        if sub.switch_to is None:
            sub.action_required = None
        ends = sub.cancel_at_period_end or sub.switch_to is not None
        sub.status = SubscriptionStatus.CANCELED if ends else SubscriptionStatus.ACTIVE
        sub.ended_at = None
        await sub.save(using_db=change.conn)
        await self.schedule(change, sub)

    async def _successor(self, change: Change, sub: Subscription) -> Subscription | None:
        """The subscription the subscriber has now, if they left `sub` for it: a newer one,
        not replaced, paid and giving access."""
        return await (
            Subscription.filter(
                user_id=sub.user_id,
                id__gt=sub.id,
                replaced_by_id=None,
                current_period_end__not_isnull=True,
                access_until__gt=now(),
            )
            .order_by("-id")
            .using_db(change.conn)
            .first()
        )

    async def failed(
        self,
        change: Change,
        payment_id: int,
        failure: str | None,
        *,
        status: PaymentStatus = PaymentStatus.FAILED,
    ) -> None:
        """A charge failed or was cancelled: only a PENDING payment changes (a payment already
        paid stays paid). A failed renewal asks the subscriber for another method and is
        retried while the grace period lasts."""
        payment = await Payment.filter(id=payment_id).using_db(change.conn).first()
        if payment is None:
            return
        sub = await self._lock(change, payment.subscription_id)
        changed = (
            await Payment.filter(id=payment_id, status=PaymentStatus.PENDING)
            .using_db(change.conn)
            .update(status=status, failure=failure[:500] if failure else None)
        )
        if not changed or status is not PaymentStatus.FAILED:
            return
        if sub.switch_to is None:
            sub.action_required = ActionRequired.UPDATE_PAYMENT_METHOD
        sub.renewal_failures += 1
        await sub.save(using_db=change.conn)
        if payment.renewal and sub.current_period_end is not None and not sub.complimentary:
            retry_at = now() + self.retry
            if retry_at < sub.current_period_end + self.grace and not sub.cancel_at_period_end:
                await change.enqueue(
                    RENEW,
                    {"subscription": sub.id, "period_end": iso(sub.current_period_end)},
                    delay=self.retry.total_seconds(),
                )

    async def _paid_until(self, change: Change, user_id: int) -> datetime | None:
        """The end of the latest period the subscriber has paid (or was granted) that has not
        ended yet, across their subscriptions (grace periods are not paid time)."""
        rows = await sql.fetch(
            "SELECT MAX(current_period_end) AS until FROM subscriptions "
            "WHERE user_id = :user AND current_period_end > :now AND access_until > :now",
            {"user": user_id},
            change.conn,
        )
        value = rows[0]["until"] if rows else None
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    async def _replace_earlier(self, change: Change, sub: Subscription) -> None:
        """A subscription's first payment ends the subscriber's other live subscriptions:
        they renew no more (their paid access stays until it ends)."""
        earlier = (
            await Subscription.filter(
                user_id=sub.user_id,
                id__lt=sub.id,
                replaced_by_id=None,
                status__in=(
                    SubscriptionStatus.ACTIVE,
                    SubscriptionStatus.PAST_DUE,
                    SubscriptionStatus.CANCELED,
                    SubscriptionStatus.INCOMPLETE,
                ),
            )
            .exclude(id=sub.id)
            .using_db(change.conn)
        )
        for old in earlier:
            old.replaced_by_id = sub.id
            old.action_required = None
            if old.status is SubscriptionStatus.INCOMPLETE:
                old.status = SubscriptionStatus.EXPIRED
                old.ended_at = now()
            else:
                old.cancel_at_period_end = True
                old.status = SubscriptionStatus.CANCELED
            await old.save(using_db=change.conn)
            await (
                Payment.filter(subscription_id=old.id, status=PaymentStatus.PENDING)
                .using_db(change.conn)
                .update(status=PaymentStatus.CANCELED)
            )
            await self.stop_at_vendor(change, old)

    async def stop_at_vendor(self, change: Change, sub: Subscription) -> None:
        """Record the job that makes sure the subscription's processor charges it no more
        (retried while the vendor does not answer; the ledger needs none of it)."""
        if sub.provider not in self.payments.providers or sub.vendor_stopped_at is not None:
            return
        charges = (
            await Payment.filter(
                subscription_id=sub.id, status=PaymentStatus.CANCELED, charge_id__not_isnull=True
            )
            .order_by("id")
            .using_db(change.conn)
            .values_list("charge_id", flat=True)
        )
        await change.enqueue(
            STOP_VENDOR,
            {"subscription": sub.id, "charges": list(charges)[-20:]},
        )

    async def supersede_pending(self, change: Change, sub: Subscription) -> None:
        """Cancel the subscription's payments still waiting for the payer, in the ledger now
        and at the vendor by a job (an open invoice paid anyway is still credited: money
        taken always pays a period)."""
        pending = await Payment.filter(
            subscription_id=sub.id, status=PaymentStatus.PENDING
        ).using_db(change.conn)
        if not pending:
            return
        await (
            Payment.filter(id__in=[p.id for p in pending])
            .using_db(change.conn)
            .update(status=PaymentStatus.CANCELED)
        )
        charges = [p.charge_id for p in pending if p.charge_id is not None]
        if charges and sub.provider in self.payments.providers:
            await change.enqueue(CANCEL_CHARGES, {"provider": sub.provider, "charges": charges})

    async def schedule(self, change: Change, sub: Subscription) -> None:
        """The timers of the current period: its renewal (unless it will not renew) and its
        end. Each carries the period's end, so a timer of a period since replaced does
        nothing."""
        if sub.current_period_end is None:
            return
        at = now()
        end = sub.current_period_end
        marker = {"subscription": sub.id, "period_end": iso(end)}
        if not (sub.cancel_at_period_end or sub.complimentary or sub.switch_to):
            # Never before the period began (a lead longer than a period would charge the
            # periods after it back to back).
            renew_at = max(end - self.lead, sub.current_period_start or end)
            await change.enqueue(RENEW, marker, delay=max(0.0, (renew_at - at).total_seconds()))
        await change.enqueue(PERIOD_END, marker, delay=max(0.0, (end - at).total_seconds()))
