"""Moving subscribers off a payment processor (`holdfast payments migrate --from A --to B`).

Every subscription through A renews no more and asks its subscriber to go on through B
(`actionRequired` SWITCH_PROVIDER); access stays until the end of what was paid (with the
grace period: the subscriber did nothing wrong). The old vendor is told to charge no more by
jobs retried while it does not answer (app/services/billing_jobs.py); the ledger needs nothing
from it. A subscriber who subscribes through B starts paying where the paid period through A
ends (app/services/billing_ledger.py `paid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q

from app.changes import Changes
from app.errors import DomainError, ErrorCode
from app.models import (
    LIVE_STATUSES,
    ActionRequired,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)
from app.payments import Payments
from app.services.billing_jobs import Ledger
from app.services.billing_ledger import effective_status, now


@dataclass(frozen=True, slots=True)
class SwitchReport:
    """Subscribers of `source` told to go on paying through `target`: who has moved (a
    subscription through `target` that is paid) and who has not yet."""

    source: str
    target: str
    marked: int
    moved: list[tuple[int, int]]
    """(user id, new subscription id)"""
    waiting: list[tuple[int, int, datetime | None]]
    """(user id, old subscription id, access until)"""


class ProviderSwitch:
    def __init__(self, changes: Changes, payments: Payments, ledger: Ledger) -> None:
        self.changes = changes
        self.payments = payments
        self.ledger = ledger

    async def run(self, source: str, target: str) -> SwitchReport:
        """`holdfast payments migrate --from source --to target`: every subscription through
        `source` renews no more and asks its subscriber to go on through `target`; access
        stays until the end of what was paid. The old vendor is told to charge no more by
        jobs retried while it does not answer; the ledger needs nothing from it. Idempotent:
        a second run marks only what the first did not and reports again."""
        if target not in self.payments.accepting():
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"{target!r} is not a payment configuration accepting new subscribers.",
                "to",
            )
        if source == target:
            raise DomainError(ErrorCode.INVALID_INPUT, "Choose two different providers.", "to")
        marked = 0
        while True:
            batch = (
                await Subscription.filter(
                    provider=source,
                    switch_to=None,
                    replaced_by_id=None,
                    status__in=LIVE_STATUSES,
                    # One its subscriber cancelled ends where it would have: nothing to ask.
                    cancel_at_period_end=False,
                )
                .order_by("id")
                .limit(200)
            )
            if not batch:
                break
            async with self.changes.begin() as change:
                for candidate in batch:
                    sub = (
                        await Subscription.filter(id=candidate.id)
                        .select_for_update()
                        .using_db(change.conn)
                        .get()
                    )
                    sub.switch_to = target
                    if effective_status(sub) is SubscriptionStatus.EXPIRED:
                        sub.status = SubscriptionStatus.EXPIRED
                        sub.ended_at = sub.ended_at or now()
                    else:
                        sub.action_required = ActionRequired.SWITCH_PROVIDER
                        if sub.status is not SubscriptionStatus.INCOMPLETE:
                            sub.status = SubscriptionStatus.CANCELED
                        else:
                            sub.status = SubscriptionStatus.EXPIRED
                            sub.ended_at = now()
                    await sub.save(using_db=change.conn)
                    await (
                        Payment.filter(subscription_id=sub.id, status=PaymentStatus.PENDING)
                        .using_db(change.conn)
                        .update(status=PaymentStatus.CANCELED)
                    )
                    await self.ledger.stop_at_vendor(change, sub)
                    marked += 1
        return await self.report(source, target, marked=marked)

    async def report(self, source: str, target: str, *, marked: int = 0) -> SwitchReport:
        olds = await Subscription.filter(provider=source, switch_to=target).order_by("id")
        moved: list[tuple[int, int]] = []
        waiting: list[tuple[int, int, datetime | None]] = []
        for old in olds:
            new = (
                await Subscription.filter(
                    Q(user_id=old.user_id, provider=target, id__gt=old.id)
                    & Q(current_period_end__not_isnull=True)
                )
                .order_by("-id")
                .first()
            )
            if new is not None:
                moved.append((old.user_id, new.id))
            elif old.access_until is not None:
                waiting.append((old.user_id, old.id, old.access_until))
        return SwitchReport(source, target, marked, moved, waiting)
