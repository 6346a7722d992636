"""Premium subscriptions: plans, subscribing, cancelling, resuming, admin grants and manual
payments, premium badges and perks.

The ledger's rules are in app/services/billing_ledger.py (what a payment does to a
subscription), billing_events.py (vendor events) and billing_jobs.py (renewals, period ends);
moving subscribers to another processor is billing_switch.py. Who has premium access is
`views.premium`, the one definition every read path uses. Nothing here asks a vendor who has
access.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from app import sql
from app.changes import Changes
from app.errors import DomainError, ErrorCode
from app.ids import new_id
from app.models import (
    LIVE_STATUSES,
    ActionRequired,
    Payment,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
    User,
)
from app.payments import COMPLIMENTARY, Payments
from app.services.accounts import Viewer
from app.services.billing_jobs import Ledger
from app.services.billing_ledger import Superseded, add_interval, effective_status, now
from app.services.billing_switch import ProviderSwitch
from app.services.paging import Page, PageRequest, make_page
from app.services.views import gives_access, premium
from app.settings import Settings
from providers.errors import Declined, ProviderError
from providers.payments.base import ActionKind, Charge, Interval, PlanPrice

log = logging.getLogger("holdfast.payments")

# The perks of the plans an account has premium access through now.
_PERKS = f"""
SELECT pl.perks FROM plans pl
WHERE pl.id IN (SELECT s.plan_id FROM subscriptions s
                WHERE s.user_id = :user AND {gives_access("s")})
"""


@dataclass(frozen=True, slots=True)
class PaymentAction:
    """What the subscriber must do for a pending payment."""

    kind: ActionKind
    payment_id: int
    amount: int
    currency: str
    client_secret: str | None = None
    url: str | None = None
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class RequiredAction:
    """What the subscriber must do to keep or get access, for people and clients."""

    kind: ActionRequired
    provider: str
    """The configuration to act through: `switch_to` for SWITCH_PROVIDER, else the
    subscription's own."""
    message: str


_ACTION_MESSAGES = {
    ActionRequired.CONFIRM_PAYMENT: "Confirm the payment to start your subscription.",
    ActionRequired.PAY: "Pay the amount due to keep your subscription.",
    ActionRequired.UPDATE_PAYMENT_METHOD: (
        "Your payment failed: pay with another method before your access ends."
    ),
}


def required_action(sub: Subscription, status: SubscriptionStatus) -> RequiredAction | None:
    if sub.action_required is None or status is SubscriptionStatus.EXPIRED:
        return None
    kind = ActionRequired(sub.action_required)
    if kind is ActionRequired.SWITCH_PROVIDER:
        target = sub.switch_to or sub.provider
        until = sub.access_until.strftime("%Y-%m-%d") if sub.access_until else "the period's end"
        message = (
            f"Payments through {sub.provider} are ending: subscribe again through {target} "
            f"before {until} to keep your access (nothing paid is lost)."
        )
        return RequiredAction(kind, target, message)
    return RequiredAction(kind, sub.provider, _ACTION_MESSAGES[kind])


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription: Subscription
    plan: Plan
    status: SubscriptionStatus
    pending: PaymentAction | None

    @property
    def action(self) -> RequiredAction | None:
        return required_action(self.subscription, self.status)

    @property
    def in_grace_period(self) -> bool:
        sub = self.subscription
        return (
            self.status is SubscriptionStatus.PAST_DUE
            and sub.current_period_end is not None
            and sub.current_period_end <= now()
        )


@dataclass(frozen=True, slots=True)
class Perks:
    max_post_length: int
    max_attachments: int


class BillingService:
    def __init__(self, settings: Settings, changes: Changes, payments: Payments) -> None:
        self.settings = settings
        self.changes = changes
        self.payments = payments
        self.ledger = Ledger(settings, changes, payments)
        self.switch = ProviderSwitch(changes, payments, self.ledger)

    # --- plans -----------------------------------------------------------------------------

    async def ensure_plans(self) -> list[Plan]:
        """Copy the configured plans into the ledger (new ones added, changed ones updated;
        a plan no longer configured stays for its subscribers, inactive)."""
        configured = self.settings.payments.plans
        async with self.changes.begin() as change:
            existing = {p.code: p for p in await Plan.all().using_db(change.conn)}
            for code, spec in configured.items():
                fields = {
                    "name": spec.name,
                    "description": spec.description,
                    "interval": spec.interval,
                    "prices": dict(spec.prices),
                    "perks": spec.perks.model_dump(exclude_none=True),
                    "active": True,
                }
                plan = existing.get(code)
                if plan is None:
                    # Several processes may start at once: the first insert wins.
                    await sql.execute(
                        "INSERT INTO plans (id, code, name, description, interval, prices, "
                        "perks, vendor_ids, active, updated_at) VALUES (:id, :code, :name, "
                        ":description, :interval, :prices, :perks, '{}', :active, :now) "
                        "ON CONFLICT (code) DO NOTHING",
                        {
                            "id": new_id(),
                            "code": code,
                            **fields,
                            "prices": orjson.dumps(fields["prices"]).decode(),
                            "perks": orjson.dumps(fields["perks"]).decode(),
                        },
                        change.conn,
                    )
                elif any(getattr(plan, k) != v for k, v in fields.items()):
                    await Plan.filter(id=plan.id).using_db(change.conn).update(**fields)
            gone = [code for code in existing if code not in configured]
            if gone:
                await Plan.filter(code__in=gone).using_db(change.conn).update(active=False)
        return await Plan.filter(active=True).order_by("id")

    async def plans(self) -> list[Plan]:
        return await Plan.filter(active=True).order_by("id")

    async def sync(self, names: list[str] | None = None) -> dict[str, dict[str, str]]:
        """`holdfast payments sync`: the plans in the ledger, and the matching objects at each
        configured processor (idempotent). Returns the vendor ids by configuration."""
        plans = await self.ensure_plans()
        prices = [
            PlanPrice(plan.code, plan.name, amount, currency, Interval(plan.interval))
            for plan in plans
            for currency, amount in sorted(plan.prices.items())
        ]
        result: dict[str, dict[str, str]] = {}
        for name in names or list(self.payments.providers):
            ids = dict(await self.payments.get(name).sync_plans(prices))
            result[name] = ids
            for plan in plans:
                mine = {k: v for k, v in ids.items() if k.startswith(plan.code + ":")}
                vendor_ids = {**plan.vendor_ids, name: mine}
                if vendor_ids != plan.vendor_ids:
                    plan.vendor_ids = vendor_ids
                    await plan.save(update_fields=["vendor_ids"])
        return result

    # --- reading ---------------------------------------------------------------------------

    async def is_premium(self, user_id: int) -> bool:
        rows = await sql.fetch(f"SELECT {premium()} AS premium", {"viewer": user_id})
        return bool(rows[0]["premium"])

    async def premium_among(self, user_ids: list[int]) -> set[int]:
        """Which of these accounts have premium access now (badges): one statement."""
        if not user_ids:
            return set()
        rows = await sql.fetch(
            "SELECT DISTINCT s.user_id FROM subscriptions s "
            f"WHERE s.user_id IN (:ids) AND {gives_access('s')}",
            {"ids": sql.ids_param(user_ids)},
        )
        return {row["user_id"] for row in rows}

    async def perks(self, user_id: int) -> Perks:
        """What the account may do: the network's limits, raised by the plans it has access
        through now (one statement)."""
        rows = await sql.fetch(_PERKS, {"user": user_id})
        granted = [
            orjson.loads(row["perks"]) if isinstance(row["perks"], str | bytes) else row["perks"]
            for row in rows
        ]
        return self.perks_of(*granted)

    def perks_of(self, *plan_perks: Mapping[str, Any]) -> Perks:
        """The network's limits raised by these plans' perks (each plan's `perks`)."""
        length = self.settings.posts.max_length
        attachments = self.settings.media.max_attachments
        for perks in plan_perks:
            length = max(length, int(perks.get("max_post_length") or 0))
            attachments = max(attachments, int(perks.get("max_attachments") or 0))
        return Perks(max_post_length=length, max_attachments=attachments)

    async def current(self, user_id: int) -> Subscription | None:
        """The subscription that says where the subscriber stands: the newest one not ended
        and not replaced (else the newest that still gives access)."""
        subs = await Subscription.filter(
            user_id=user_id, status__in=LIVE_STATUSES, replaced_by_id=None
        ).order_by("-id")
        live = [sub for sub in subs if effective_status(sub) is not SubscriptionStatus.EXPIRED]
        # One the subscriber pays for comes before a complimentary grant (which they cannot
        # cancel, and which would hide what their paid one asks of them); one never paid
        # comes after both.
        for sub in sorted(
            live,
            key=lambda sub: (sub.status is SubscriptionStatus.INCOMPLETE, sub.complimentary),
        ):
            return sub
        return (
            await Subscription.filter(user_id=user_id, access_until__gt=now())
            .order_by("-access_until")
            .first()
        )

    async def view(self, sub: Subscription, charge: Charge | None = None) -> SubscriptionView:
        return (await self.views([sub], charge))[0]

    async def views(
        self, subs: list[Subscription], charge: Charge | None = None
    ) -> list[SubscriptionView]:
        """Each subscription with its plan and the payment it waits for (two statements for
        any number of them). `charge`, the one a subscribe call just started, gives its
        client secret (never stored)."""
        if not subs:
            return []
        plans = {p.id: p for p in await Plan.filter(id__in={s.plan_id for s in subs})}
        pending_rows = await Payment.filter(
            subscription_id__in=[s.id for s in subs], status=PaymentStatus.PENDING
        ).order_by("id")
        latest = {payment.subscription_id: payment for payment in pending_rows}
        views = []
        for sub in subs:
            payment = latest.get(sub.id)
            pending = None
            if payment is not None and payment.action_kind != ActionKind.NONE.value:
                pending = PaymentAction(
                    kind=ActionKind(payment.action_kind),
                    payment_id=payment.id,
                    amount=payment.amount,
                    currency=payment.currency,
                    client_secret=charge.action.client_secret
                    if charge is not None and charge.reference == str(payment.id)
                    else None,
                    url=payment.action_url,
                    instructions=payment.instructions,
                )
            views.append(SubscriptionView(sub, plans[sub.plan_id], effective_status(sub), pending))
        return views

    async def viewer_subscription(self, viewer: Viewer) -> SubscriptionView | None:
        sub = await self.current(viewer.user.id)
        return await self.view(sub) if sub is not None else None

    # --- the subscriber's verbs ------------------------------------------------------------

    async def subscribe(
        self,
        viewer: Viewer,
        plan_id: int,
        provider: str,
        currency: str | None = None,
        payment_method: str | None = None,
    ) -> SubscriptionView:
        """Start paying for a plan through a configuration (or pay what is due now: a first
        payment never made, a renewal unpaid). Returns the subscription with what the payer
        must do next. A subscriber already paid up through this configuration gets
        ALREADY_SUBSCRIBED; one paid up through another (a processor being left) starts a
        new subscription whose first period begins where the paid one ends."""
        plan = await Plan.get_or_none(id=plan_id, active=True)
        if plan is None:
            raise DomainError(ErrorCode.NOT_FOUND, "There is no such plan.", "planId")
        if provider not in self.payments.accepting():
            raise DomainError(
                ErrorCode.PROVIDER_NOT_ACCEPTED,
                "New payments are not accepted through this provider.",
                "provider",
            )
        if currency is None:
            currency = sorted(plan.prices)[0]
        currency = currency.lower()
        if currency not in plan.prices:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "The plan has no price in this currency.", "currency"
            )
        if payment_method is not None and not (0 < len(payment_method) <= 255):
            raise DomainError(
                ErrorCode.INVALID_INPUT, "This is not a payment method.", "paymentMethod"
            )
        user_id = viewer.user.id
        async with self.changes.begin() as change:
            await User.filter(id=user_id).select_for_update().using_db(change.conn).first()
            current = (
                await Subscription.filter(
                    user_id=user_id, status__in=LIVE_STATUSES, replaced_by_id=None
                )
                .order_by("-id")
                .using_db(change.conn)
            )
            same = None
            for sub in current:
                status = effective_status(sub)
                if status is SubscriptionStatus.EXPIRED:
                    continue
                if sub.provider == provider and sub.plan_id == plan.id and sub.switch_to is None:
                    same = sub
                # Paid up with nothing to do: a renewal waiting for the payer (a declined
                # card to replace, an invoice to pay) may be paid now instead.
                if (
                    status is SubscriptionStatus.ACTIVE
                    and sub.switch_to is None
                    and not sub.cancel_at_period_end
                    and not sub.complimentary
                    and not (sub is same and sub.action_required is not None)
                ):
                    raise DomainError(
                        ErrorCode.ALREADY_SUBSCRIBED,
                        "You already have a subscription; cancel it or let it end first.",
                    )
            renewal = same is not None and effective_status(same) in (
                SubscriptionStatus.ACTIVE,
                SubscriptionStatus.PAST_DUE,
            )
            if same is not None and renewal:
                sub = same  # pay the renewal that is due (from the end of the period paid)
            elif same is not None and same.status is SubscriptionStatus.INCOMPLETE:
                sub = same  # try the first payment again
            else:
                sub = await Subscription.create(
                    user_id=user_id,
                    plan_id=plan.id,
                    provider=provider,
                    currency=currency,
                    amount=plan.prices[currency],
                    interval=plan.interval,
                    using_db=change.conn,
                )
            # Locked before its payments are looked at (the order every change takes), so a
            # renewal starting its charge meanwhile is seen.
            sub = await self.ledger._lock(change, sub.id)
            if same is not None and await self.ledger.charging(change, sub):
                raise DomainError(
                    ErrorCode.PAYMENT_IN_PROGRESS,
                    "A payment for this subscription is being made; wait for it to finish.",
                )
            # An earlier attempt still waiting for the payer is superseded by this one.
            await self.ledger.supersede_pending(change, sub)
            start = sub.current_period_end if renewal else None
            payment = await Payment.create(
                subscription_id=sub.id,
                provider=provider,
                amount=sub.amount,
                currency=sub.currency,
                renewal=renewal,
                period_start=start,
                period_end=add_interval(start, sub.interval) if start is not None else None,
                using_db=change.conn,
            )
        try:
            charge = await self.ledger.start_charge(
                sub, payment, off_session=False, payment_method=payment_method
            )
        except Declined as exc:
            raise DomainError(
                ErrorCode.PAYMENT_DECLINED,
                str(exc) or "The payment was declined.",
                "paymentMethod",
            ) from None
        except Superseded:
            raise DomainError(
                ErrorCode.UNAVAILABLE, "The payment was cancelled meanwhile; try again."
            ) from None
        except ProviderError:
            log.warning("payment provider %s failed to start a charge", provider, exc_info=True)
            raise DomainError(
                ErrorCode.UNAVAILABLE,
                "The payment provider is not answering; try again shortly.",
            ) from None
        await sub.refresh_from_db()
        return await self.view(sub, charge)

    async def _own(self, viewer: Viewer) -> Subscription:
        sub = await self.current(viewer.user.id)
        if sub is None or sub.complimentary or effective_status(sub) is SubscriptionStatus.EXPIRED:
            raise DomainError(ErrorCode.NOT_SUBSCRIBED, "You have no subscription.")
        return sub

    async def cancel(self, viewer: Viewer, *, at_period_end: bool = True) -> SubscriptionView:
        """Stop renewing: access continues to the end of the period paid; or end it now."""
        sub = await self._own(viewer)
        async with self.changes.begin() as change:
            sub = (
                await Subscription.filter(id=sub.id).select_for_update().using_db(change.conn).get()
            )
            at = now()
            if at_period_end and sub.status is not SubscriptionStatus.INCOMPLETE:
                sub.cancel_at_period_end = True
                sub.status = SubscriptionStatus.CANCELED
                if sub.current_period_end is not None:
                    sub.access_until = max(sub.current_period_end, at)
            else:
                sub.status = SubscriptionStatus.EXPIRED
                sub.cancel_at_period_end = True
                sub.access_until = at
                sub.ended_at = at
            sub.action_required = None
            await sub.save(using_db=change.conn)
            await self.ledger.supersede_pending(change, sub)
            if sub.status is SubscriptionStatus.EXPIRED:
                # Ended now: nothing at the vendor may charge again. (One cancelled at period
                # end keeps its saved method until the period ends, so a resume can renew.)
                await self.ledger.stop_at_vendor(change, sub)
        return await self.view(sub)

    async def resume(self, viewer: Viewer) -> SubscriptionView:
        """Renew again a subscription cancelled at period end, while its period lasts."""
        sub = await self._own(viewer)
        if not sub.cancel_at_period_end or sub.switch_to is not None:
            raise DomainError(ErrorCode.INVALID_INPUT, "This subscription is not cancelled.")
        if sub.replaced_by_id is not None:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "This subscription was replaced by a newer one."
            )
        if sub.provider not in self.payments.accepting():
            raise DomainError(
                ErrorCode.PROVIDER_NOT_ACCEPTED,
                "This provider takes no new payments; subscribe again through another.",
            )
        async with self.changes.begin() as change:
            sub = (
                await Subscription.filter(id=sub.id).select_for_update().using_db(change.conn).get()
            )
            if sub.current_period_end is None or sub.current_period_end <= now():
                raise DomainError(ErrorCode.INVALID_INPUT, "The period has ended; subscribe again.")
            sub.cancel_at_period_end = False
            sub.status = SubscriptionStatus.ACTIVE
            sub.access_until = sub.current_period_end + self.ledger.grace
            sub.vendor_stopped_at = None
            await sub.save(using_db=change.conn)
            await self.ledger.schedule(change, sub)
        return await self.view(sub)

    # --- admin -----------------------------------------------------------------------------

    @staticmethod
    def _admin(viewer: Viewer) -> None:
        if not viewer.is_admin:
            raise DomainError(ErrorCode.FORBIDDEN, "Only an admin may do this.")

    async def grant_complimentary(
        self, viewer: Viewer, user_id: int, plan_id: int, days: int
    ) -> SubscriptionView:
        """Premium access for `days` without payment (support, press, contributors)."""
        self._admin(viewer)
        if not 1 <= days <= 3_660:
            raise DomainError(ErrorCode.INVALID_INPUT, "Days must be 1 to 3660.", "days")
        plan = await Plan.get_or_none(id=plan_id)
        if plan is None:
            raise DomainError(ErrorCode.NOT_FOUND, "There is no such plan.", "planId")
        if not await User.exists(id=user_id):
            raise DomainError(ErrorCode.NOT_FOUND, "There is no such account.", "userId")
        at = now()
        until = at + timedelta(days=days)
        async with self.changes.begin() as change:
            sub = await Subscription.create(
                user_id=user_id,
                plan_id=plan.id,
                provider=COMPLIMENTARY,
                currency=sorted(plan.prices)[0],
                amount=0,
                interval=plan.interval,
                status=SubscriptionStatus.ACTIVE,
                complimentary=True,
                current_period_start=at,
                current_period_end=until,
                access_until=until,
                using_db=change.conn,
            )
            await self.ledger.schedule(change, sub)
        return await self.view(sub)

    async def confirm_manual_payment(self, viewer: Viewer, payment_id: int) -> SubscriptionView:
        """An admin saw a manual payment (a transfer, cash) arrive: its period is paid."""
        self._admin(viewer)
        payment = await Payment.get_or_none(id=payment_id)
        if payment is None or self.payments.kind(payment.provider) != "manual":
            raise DomainError(ErrorCode.NOT_FOUND, "There is no such manual payment.", "paymentId")
        if payment.status is PaymentStatus.SUCCEEDED:
            # A cancelled or superseded one is credited all the same: the money arrived.
            raise DomainError(ErrorCode.INVALID_INPUT, "This payment is already paid.", "paymentId")
        async with self.changes.begin() as change:
            await self.ledger.paid(change, payment.id, now())
            await (
                Payment.filter(id=payment.id)
                .using_db(change.conn)
                .update(confirmed_by_id=viewer.user.id)
            )
        sub = await Subscription.get(id=payment.subscription_id)
        return await self.view(sub)

    async def subscribers(
        self, viewer: Viewer, page: PageRequest, status: SubscriptionStatus | None = None
    ) -> Page[SubscriptionView]:
        """Subscriptions, newest first (admins), by cursor over ids; `status` as stored."""
        self._admin(viewer)
        query = Subscription.all()
        if status is not None:
            query = query.filter(status=status)
        if page.after is not None:
            query = query.filter(id__lt=page.after)
        if page.before is not None:
            query = query.filter(id__gt=page.before)
        order = "id" if page.backward else "-id"
        rows = list(await query.order_by(order).limit(page.limit + 1))
        views = await self.views(rows)
        return make_page(page, views, [row.id for row in rows])
