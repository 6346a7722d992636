"""The ledger's jobs: renewals, the end of a period, and telling a vendor to stop or to
cancel charges. `Ledger` is the whole ledger (charges, events and these jobs)."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any

from app.changes import Change
from app.jobs.queue import Commit, JobQueue, nothing
from app.models import ActionRequired, Payment, PaymentStatus, Subscription, SubscriptionStatus
from app.services.billing_events import LedgerEvents
from app.services.billing_ledger import (
    APPLY_EVENT,
    CANCEL_CHARGES,
    PERIOD_END,
    RENEW,
    STOP_VENDOR,
    Superseded,
    add_interval,
    iso,
    now,
)
from providers.errors import Declined, NotFound, ProviderError

log = logging.getLogger("holdfast.payments")

# How soon a renewal the vendor could not take (down, failing) is tried again.
OUTAGE_RETRY = timedelta(hours=1)


class ChargeInFlight(Exception):
    """A charge of the subscription may be at the vendor right now; try again later."""


class Ledger(LedgerEvents):
    def register(self, jobs: JobQueue) -> None:
        jobs.register(APPLY_EVENT, self.apply_event)
        jobs.register_staged(RENEW, self.renew)
        jobs.register(PERIOD_END, self.period_end)
        jobs.register_staged(STOP_VENDOR, self.stop_vendor)
        jobs.register_staged(CANCEL_CHARGES, self.cancel_charges)

    def _renews(self, sub: Subscription) -> bool:
        return not (
            sub.cancel_at_period_end
            or sub.switch_to is not None
            or sub.complimentary
            or sub.replaced_by_id is not None
            or sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
            or sub.provider not in self.payments.providers
        )

    async def renew(self, payload: dict[str, Any]) -> Commit:
        """`payments.renew` {subscription, period_end}: charge the next period (a stage: the
        vendor is called outside any transaction). A declined renewal is retried every
        `retry_hours` while the grace period lasts (app/services/billing_ledger.py `failed`);
        one the vendor could not take (down, failing) is retried every hour meanwhile, so an
        outage longer than the job's own retries still costs no one their subscription."""
        sub = await Subscription.get_or_none(id=payload["subscription"])
        if sub is None or iso(sub.current_period_end) != payload["period_end"]:
            return nothing
        if not self._renews(sub):
            return nothing
        assert sub.current_period_end is not None
        start = sub.current_period_end
        async with self.changes.begin() as change:
            # Checked again under the lock: a cancel or a move that committed since is seen.
            locked = await self._lock(change, sub.id)
            if iso(locked.current_period_end) != payload["period_end"] or not self._renews(locked):
                return nothing
            existing = (
                await Payment.filter(subscription_id=sub.id, renewal=True, period_start=start)
                .exclude(status__in=(PaymentStatus.FAILED, PaymentStatus.CANCELED))
                .using_db(change.conn)
                .first()
            )
            if await self.charging(change, locked, besides=existing):
                # Another charge of it is at the vendor (the subscriber paying now): fail, to
                # be retried once it came back. (This payment's own charge may be retried at
                # once: the same reference takes no money twice.)
                raise ChargeInFlight(sub.id)
            if existing is None:
                existing = await Payment.create(
                    subscription_id=sub.id,
                    provider=sub.provider,
                    amount=locked.amount,
                    currency=locked.currency,
                    renewal=True,
                    period_start=start,
                    period_end=add_interval(start, sub.interval),
                    using_db=change.conn,
                )
        if existing.status is PaymentStatus.SUCCEEDED or existing.charge_id is not None:
            return nothing  # paid, or its charge already waits for the payer
        try:
            await self.start_charge(locked, existing, off_session=True)
        except (Declined, Superseded):
            return nothing  # recorded (and retried by `failed`), or cancelled meanwhile
        except ProviderError:
            log.warning(
                "renewal of subscription %s: the payment provider %s failed; retrying in %s",
                sub.id,
                sub.provider,
                OUTAGE_RETRY,
                exc_info=True,
            )
            return self._retry_later(locked)
        return nothing

    def _retry_later(self, sub: Subscription) -> Commit:
        async def commit(change: Change) -> None:
            assert sub.current_period_end is not None
            if now() + OUTAGE_RETRY < sub.current_period_end + self.grace:
                await change.enqueue(
                    RENEW,
                    {"subscription": sub.id, "period_end": iso(sub.current_period_end)},
                    delay=OUTAGE_RETRY.total_seconds(),
                )

        return commit

    async def period_end(self, change: Change, payload: dict[str, Any]) -> None:
        """`payments.period_end` {subscription, period_end}: a period ended. A subscription
        that does not renew expires; one whose renewal is unpaid goes PAST_DUE (its access
        already runs through the grace period) and expires when that ends."""
        sub = (
            await Subscription.filter(id=payload["subscription"])
            .select_for_update()
            .using_db(change.conn)
            .first()
        )
        if sub is None or iso(sub.current_period_end) != payload["period_end"]:
            return
        at = now()
        if sub.access_until is not None and sub.access_until > at:
            if sub.status is SubscriptionStatus.ACTIVE and not sub.cancel_at_period_end:
                sub.status = SubscriptionStatus.PAST_DUE
                sub.grace_until = sub.access_until
                if sub.action_required is None:
                    sub.action_required = ActionRequired.UPDATE_PAYMENT_METHOD
                await sub.save(using_db=change.conn)
            # Look again when the access ends.
            await change.enqueue(
                PERIOD_END, payload, delay=(sub.access_until - at).total_seconds() + 1
            )
            return
        if sub.status is not SubscriptionStatus.EXPIRED:
            sub.status = SubscriptionStatus.EXPIRED
            sub.ended_at = at
            await sub.save(using_db=change.conn)
            await (
                Payment.filter(subscription_id=sub.id, status=PaymentStatus.PENDING)
                .using_db(change.conn)
                .update(status=PaymentStatus.CANCELED)
            )
            await self.stop_at_vendor(change, sub)

    async def stop_vendor(self, payload: dict[str, Any]) -> Commit:
        """`payments.stop_vendor` {subscription, charges}: cancel the subscription's open
        charges at its processor and stop anything there that charges on its own. A vendor
        that does not answer fails the job (retried, then dead: the ledger is unaffected)."""
        sub = await Subscription.get_or_none(id=payload["subscription"])
        if sub is None or sub.provider not in self.payments.providers:
            return nothing
        provider = self.payments.get(sub.provider)
        for charge_id in payload.get("charges", []):
            with contextlib.suppress(NotFound):
                await provider.cancel(charge_id)
        if sub.customer_id is not None:
            others = (
                await Subscription.filter(
                    provider=sub.provider,
                    customer_id=sub.customer_id,
                    status__in=(SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE),
                    cancel_at_period_end=False,
                    switch_to=None,
                )
                .exclude(id=sub.id)
                .exists()
            )
            if not others:
                await provider.stop_renewals(sub.customer_id)

        async def commit(change: Change) -> None:
            await (
                Subscription.filter(id=sub.id).using_db(change.conn).update(vendor_stopped_at=now())
            )

        return commit

    async def cancel_charges(self, payload: dict[str, Any]) -> Commit:
        """`payments.cancel_charges` {provider, charges}: cancel charges at the vendor so
        they can no longer be paid (retried while it does not answer)."""
        if payload["provider"] not in self.payments.providers:
            return nothing
        provider = self.payments.get(payload["provider"])
        for charge_id in payload["charges"]:
            with contextlib.suppress(NotFound):
                await provider.cancel(charge_id)
        return nothing
