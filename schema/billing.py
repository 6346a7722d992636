"""Premium subscriptions over GraphQL: plans, the viewer's subscription, subscribing,
cancelling and resuming, and the admins' grants, manual payments and subscribers list.

The GraphQL root type for live updates is already called `Subscription`, so a premium
subscription is `PremiumSubscription`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from app.errors import ErrorCode
from app.models import ActionRequired as ActionRequiredModel
from app.models import Plan as PlanModel
from app.models import SubscriptionStatus as SubscriptionStatusModel
from app.services.billing import BillingService, PaymentAction, SubscriptionView
from app.services.paging import Page
from providers.payments.base import ActionKind
from schema.context import Context
from schema.errors import MutationError, code, error_codes
from schema.paging import After, Before, First, Last, edges_of, page_info, page_request
from schema.results import INPUT, ResultTypes, decode_id, result_union
from schema.users import User, as_user_or_none

# --- enums ---------------------------------------------------------------------------------


@strawberry.enum(description="How often a plan is paid for.")
class PlanInterval(Enum):
    MONTH = strawberry.enum_value("month", description="Every month, on the same day.")
    YEAR = strawberry.enum_value("year", description="Every year, on the same day.")


@strawberry.enum(description="Where a premium subscription stands.")
class SubscriptionStatus(Enum):
    INCOMPLETE = strawberry.enum_value(
        SubscriptionStatusModel.INCOMPLETE.value,
        description="Started; its first payment is not made yet (no access from it).",
    )
    ACTIVE = strawberry.enum_value(
        SubscriptionStatusModel.ACTIVE.value,
        description="Paid through currentPeriodEnd; renews unless cancelAtPeriodEnd.",
    )
    PAST_DUE = strawberry.enum_value(
        SubscriptionStatusModel.PAST_DUE.value,
        description="A period ended unpaid: access continues through the grace period "
        "(accessUntil) while the renewal waits to be paid.",
    )
    CANCELED = strawberry.enum_value(
        SubscriptionStatusModel.CANCELED.value,
        description="Will not renew; access continues until accessUntil.",
    )
    EXPIRED = strawberry.enum_value(
        SubscriptionStatusModel.EXPIRED.value, description="Over: no access from it."
    )


@strawberry.enum(description="What the subscriber must do to keep or get access.")
class ActionRequiredKind(Enum):
    CONFIRM_PAYMENT = strawberry.enum_value(
        ActionRequiredModel.CONFIRM_PAYMENT.value,
        description="Confirm a card payment in the client (pendingPayment.clientSecret).",
    )
    PAY = strawberry.enum_value(
        ActionRequiredModel.PAY.value,
        description="Pay a period's charge: at pendingPayment.url, or as its instructions say.",
    )
    UPDATE_PAYMENT_METHOD = strawberry.enum_value(
        ActionRequiredModel.UPDATE_PAYMENT_METHOD.value,
        description="A payment failed: subscribe again with another method before access ends.",
    )
    SWITCH_PROVIDER = strawberry.enum_value(
        ActionRequiredModel.SWITCH_PROVIDER.value,
        description="The payment provider is being left: subscribe again through `provider` "
        "before access ends (the new period starts where the paid one ends).",
    )


@strawberry.enum(description="How a pending payment is made.")
class PaymentActionKind(Enum):
    CONFIRM_CARD = strawberry.enum_value(
        ActionKind.CONFIRM_CARD.value,
        description="Confirm it in the client with clientSecret (the processor's own library).",
    )
    PAY_AT_URL = strawberry.enum_value(
        ActionKind.PAY_AT_URL.value, description="Pay on the processor's page at url."
    )
    AWAIT_MANUAL_PAYMENT = strawberry.enum_value(
        ActionKind.AWAIT_MANUAL_PAYMENT.value,
        description="Pay outside any processor as instructions say; an admin confirms it.",
    )


# --- types ---------------------------------------------------------------------------------


@strawberry.type(description="A price of a plan.")
class Price:
    currency: str = strawberry.field(description="A lower-case ISO 4217 code (eur).")
    amount: int = strawberry.field(
        description="The amount per interval in the currency's minor unit (500 is EUR 5.00)."
    )


@strawberry.type(description="What a plan allows.")
class Perks:
    max_post_length: int = strawberry.field(description="Characters of post text.")
    max_attachments: int = strawberry.field(description="Media on one post.")


@strawberry.type(description="A premium plan the network offers.")
class Plan:
    id: strawberry.ID = strawberry.field(description="The plan's global ID.")
    code: str = strawberry.field(description="The operator's stable name for it.")
    name: str = strawberry.field(description="What it is called.")
    description: str = strawberry.field(description="What it is, for people; may be empty.")
    interval: PlanInterval = strawberry.field(description="How often it is paid for.")
    prices: list[Price] = strawberry.field(description="Its price in each currency accepted.")
    perks: Perks = strawberry.field(
        description="What it allows (the network's own limits where it raises none)."
    )

    @classmethod
    def from_model(cls, plan: PlanModel, billing: BillingService) -> Plan:
        perks = billing.perks_of(plan.perks)
        return cls(
            id=strawberry.ID(relay.to_base64("Plan", plan.id)),
            code=plan.code,
            name=plan.name,
            description=plan.description,
            interval=PlanInterval(plan.interval),
            prices=[Price(currency=c, amount=a) for c, a in sorted(plan.prices.items())],
            perks=Perks(
                max_post_length=perks.max_post_length, max_attachments=perks.max_attachments
            ),
        )


@strawberry.type(description="What the subscriber must do to keep or get access.")
class ActionRequired:
    kind: ActionRequiredKind = strawberry.field(description="What to do.")
    provider: str = strawberry.field(
        description="The payment provider to do it through (for SWITCH_PROVIDER: the new one; "
        "pass it to subscribe)."
    )
    message: str = strawberry.field(description="What to do, for people.")


@strawberry.type(description="A payment waiting for the payer.")
class PendingPayment:
    kind: PaymentActionKind = strawberry.field(description="How to make it.")
    payment_id: strawberry.ID = strawberry.field(
        description="The payment's global ID (the reference to quote; admins confirm manual "
        "payments by it)."
    )
    amount: int = strawberry.field(description="The amount in the currency's minor unit.")
    currency: str = strawberry.field(description="A lower-case ISO 4217 code.")
    client_secret: str | None = strawberry.field(
        description="For CONFIRM_CARD: the secret to confirm it with; only in subscribe's "
        "result, never stored."
    )
    url: str | None = strawberry.field(description="For PAY_AT_URL: where to pay.")
    instructions: str | None = strawberry.field(
        description="For AWAIT_MANUAL_PAYMENT: how to pay, the amount and the reference."
    )

    @classmethod
    def from_action(cls, action: PaymentAction) -> PendingPayment:
        return cls(
            kind=PaymentActionKind(action.kind.value),
            payment_id=strawberry.ID(relay.to_base64("Payment", action.payment_id)),
            amount=action.amount,
            currency=action.currency,
            client_secret=action.client_secret,
            url=action.url,
            instructions=action.instructions,
        )


@strawberry.type(description="An account's premium subscription to a plan through a provider.")
class PremiumSubscription:
    id: strawberry.ID = strawberry.field(description="The subscription's global ID.")
    plan: Plan = strawberry.field(description="The plan.")
    provider: str = strawberry.field(
        description="The payment provider's configuration name (`complimentary` for a grant)."
    )
    status: SubscriptionStatus = strawberry.field(description="Where it stands now.")
    current_period_start: datetime | None = strawberry.field(
        description="When the period paid began; null before the first payment."
    )
    current_period_end: datetime | None = strawberry.field(
        description="When the period paid ends; null before the first payment."
    )
    access_until: datetime | None = strawberry.field(
        description="Until when it gives premium access (the period paid, plus the grace "
        "period while it would renew); null before anything was paid."
    )
    cancel_at_period_end: bool = strawberry.field(
        description="Whether it ends at currentPeriodEnd instead of renewing."
    )
    in_grace_period: bool = strawberry.field(
        description="Whether its period ended unpaid and access continues for the grace period."
    )
    complimentary: bool = strawberry.field(description="Whether an admin granted it (no payment).")
    action_required: ActionRequired | None = strawberry.field(
        description="What the subscriber must do to keep or get access; null when nothing."
    )
    pending_payment: PendingPayment | None = strawberry.field(
        description="The payment it waits for, if any."
    )
    user_id: strawberry.Private[int]

    @strawberry.field(description="The subscriber.")
    async def user(self, info: Info[Context, None]) -> User | None:
        return as_user_or_none(await info.context.loaders.user_by_id.load(self.user_id))

    @classmethod
    def from_view(cls, view: SubscriptionView, billing: BillingService) -> PremiumSubscription:
        sub = view.subscription
        action = view.action
        return cls(
            id=strawberry.ID(relay.to_base64("PremiumSubscription", sub.id)),
            plan=Plan.from_model(view.plan, billing),
            provider=sub.provider,
            status=SubscriptionStatus(view.status.value),
            current_period_start=sub.current_period_start,
            current_period_end=sub.current_period_end,
            access_until=sub.access_until,
            cancel_at_period_end=sub.cancel_at_period_end,
            in_grace_period=view.in_grace_period,
            complimentary=sub.complimentary,
            action_required=ActionRequired(
                kind=ActionRequiredKind(action.kind.value),
                provider=action.provider,
                message=action.message,
            )
            if action is not None
            else None,
            pending_payment=PendingPayment.from_action(view.pending)
            if view.pending is not None
            else None,
            user_id=sub.user_id,
        )


def as_subscription(view: SubscriptionView, info: Info[Context, None]) -> PremiumSubscription:
    return PremiumSubscription.from_view(view, info.context.services.billing)


@strawberry.type(description="A subscription in a list.")
class PremiumSubscriptionEdge:
    cursor: str = strawberry.field(description="Where it is in the list.")
    node: PremiumSubscription = strawberry.field(description="The subscription.")


@strawberry.type(description="A page of subscriptions, newest first.")
class PremiumSubscriptionConnection:
    edges: list[PremiumSubscriptionEdge] = strawberry.field(
        description="The subscriptions with their cursors."
    )
    page_info: relay.PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def from_page(
        cls, page: Page[SubscriptionView], info: Info[Context, None]
    ) -> PremiumSubscriptionConnection:
        return cls(
            edges=edges_of(
                page,
                lambda cursor, view: PremiumSubscriptionEdge(
                    cursor=cursor, node=as_subscription(view, info)
                ),
            ),
            page_info=page_info(page),
        )


# --- inputs and payloads -------------------------------------------------------------------


@strawberry.input(description="A plan to subscribe to, and how to pay for it.")
class SubscribeInput:
    plan_id: strawberry.ID = strawberry.field(description="The plan (from plans).")
    provider: str = strawberry.field(
        description="The payment provider to pay through (one of paymentProviders)."
    )
    currency: str | None = strawberry.field(
        default=None,
        description="A currency the plan has a price in (lower-case ISO 4217); null: the "
        "first of them.",
    )
    payment_method: str | None = strawberry.field(
        default=None,
        description="A payment method the client collected with the processor's own library "
        "(a card's id), where the provider takes one.",
    )


@strawberry.input(description="How to cancel the viewer's subscription.")
class CancelSubscriptionInput:
    at_period_end: bool = strawberry.field(
        default=True,
        description="True: stop renewing, keeping access to the end of the period paid. "
        "False: end it and its access now.",
    )


@strawberry.input(description="Premium access granted without payment.")
class GrantComplimentaryInput:
    user_id: strawberry.ID = strawberry.field(description="The account.")
    plan_id: strawberry.ID = strawberry.field(description="The plan whose perks it gets.")
    days: int = strawberry.field(description="For how many days (1 to 3,660).")


@strawberry.input(description="A manual payment whose money arrived.")
class ConfirmManualPaymentInput:
    payment_id: strawberry.ID = strawberry.field(
        description="The payment (pendingPayment.paymentId, the reference the payer quoted)."
    )


@strawberry.type(description="A subscription as it is now.")
class SubscriptionPayload:
    subscription: PremiumSubscription = strawberry.field(description="The subscription.")


@strawberry.type(description="The subscription waits for its payment (nextAction), or is paid.")
class SubscribeSuccess:
    subscription: PremiumSubscription = strawberry.field(description="The subscription.")
    next_action: PendingPayment | None = strawberry.field(
        description="What the payer must do now (null when the payment went through)."
    )


@error_codes("subscribe")
class SubscribeErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    PROVIDER_NOT_ACCEPTED = code(ErrorCode.PROVIDER_NOT_ACCEPTED)
    ALREADY_SUBSCRIBED = code(ErrorCode.ALREADY_SUBSCRIBED)
    PAYMENT_DECLINED = code(ErrorCode.PAYMENT_DECLINED)
    PAYMENT_IN_PROGRESS = code(ErrorCode.PAYMENT_IN_PROGRESS)
    UNAVAILABLE = code(ErrorCode.UNAVAILABLE)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)


@strawberry.type(
    description="subscribe failed; nothing was charged (a declined payment is recorded, and a "
    "subscription whose first payment failed waits for another attempt)."
)
class SubscribeError(MutationError):
    code: SubscribeErrorCode = strawberry.field(description="What went wrong.")


SubscribeResult = Annotated[SubscribeSuccess | SubscribeError, result_union("subscribe")]
SUBSCRIBE = ResultTypes(SubscribeSuccess, SubscribeError, SubscribeErrorCode)


@strawberry.type(description="The subscription will not renew, or has ended.")
class CancelSubscriptionSuccess(SubscriptionPayload):
    pass


@error_codes("cancelSubscription")
class CancelSubscriptionErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_SUBSCRIBED = code(ErrorCode.NOT_SUBSCRIBED)


@strawberry.type(description="cancelSubscription failed; nothing changed.")
class CancelSubscriptionError(MutationError):
    code: CancelSubscriptionErrorCode = strawberry.field(description="What went wrong.")


CancelSubscriptionResult = Annotated[
    CancelSubscriptionSuccess | CancelSubscriptionError, result_union("cancelSubscription")
]
CANCEL_SUBSCRIPTION = ResultTypes(
    CancelSubscriptionSuccess, CancelSubscriptionError, CancelSubscriptionErrorCode
)


@strawberry.type(description="The subscription renews again.")
class ResumeSubscriptionSuccess(SubscriptionPayload):
    pass


@error_codes("resumeSubscription")
class ResumeSubscriptionErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    NOT_SUBSCRIBED = code(ErrorCode.NOT_SUBSCRIBED)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)
    PROVIDER_NOT_ACCEPTED = code(ErrorCode.PROVIDER_NOT_ACCEPTED)


@strawberry.type(description="resumeSubscription failed; nothing changed.")
class ResumeSubscriptionError(MutationError):
    code: ResumeSubscriptionErrorCode = strawberry.field(description="What went wrong.")


ResumeSubscriptionResult = Annotated[
    ResumeSubscriptionSuccess | ResumeSubscriptionError, result_union("resumeSubscription")
]
RESUME_SUBSCRIPTION = ResultTypes(
    ResumeSubscriptionSuccess, ResumeSubscriptionError, ResumeSubscriptionErrorCode
)


@strawberry.type(description="The account has premium access for the days granted.")
class GrantComplimentarySuccess(SubscriptionPayload):
    pass


@error_codes("grantComplimentary")
class GrantComplimentaryErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    FORBIDDEN = code(ErrorCode.FORBIDDEN)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)


@strawberry.type(description="grantComplimentary failed; nothing was granted.")
class GrantComplimentaryError(MutationError):
    code: GrantComplimentaryErrorCode = strawberry.field(description="What went wrong.")


GrantComplimentaryResult = Annotated[
    GrantComplimentarySuccess | GrantComplimentaryError, result_union("grantComplimentary")
]
GRANT_COMPLIMENTARY = ResultTypes(
    GrantComplimentarySuccess, GrantComplimentaryError, GrantComplimentaryErrorCode
)


@strawberry.type(description="The payment's period is paid.")
class ConfirmManualPaymentSuccess(SubscriptionPayload):
    pass


@error_codes("confirmManualPayment")
class ConfirmManualPaymentErrorCode(Enum):
    NOT_AUTHENTICATED = code(ErrorCode.NOT_AUTHENTICATED)
    FORBIDDEN = code(ErrorCode.FORBIDDEN)
    NOT_FOUND = code(ErrorCode.NOT_FOUND)
    INVALID_INPUT = code(ErrorCode.INVALID_INPUT)


@strawberry.type(description="confirmManualPayment failed; nothing changed.")
class ConfirmManualPaymentError(MutationError):
    code: ConfirmManualPaymentErrorCode = strawberry.field(description="What went wrong.")


ConfirmManualPaymentResult = Annotated[
    ConfirmManualPaymentSuccess | ConfirmManualPaymentError, result_union("confirmManualPayment")
]
CONFIRM_MANUAL_PAYMENT = ResultTypes(
    ConfirmManualPaymentSuccess, ConfirmManualPaymentError, ConfirmManualPaymentErrorCode
)


P = TypeVar("P", bound=SubscriptionPayload)


def _payload(view: SubscriptionView, info: Info[Context, None], success: type[P]) -> P:
    return success(subscription=as_subscription(view, info))


# --- queries and mutations -----------------------------------------------------------------


@strawberry.type
class BillingQuery:
    @strawberry.field(description="The premium plans offered now.")
    async def plans(self, info: Info[Context, None]) -> list[Plan]:
        plans = await info.context.services.billing.plans()
        return [Plan.from_model(plan, info.context.services.billing) for plan in plans]

    @strawberry.field(
        description="The payment providers (configuration names) new subscribers may pay "
        "through: subscribe's `provider`."
    )
    def payment_providers(self, info: Info[Context, None]) -> list[str]:
        return info.context.services.payments.accepting()

    @strawberry.field(
        description="Every premium subscription, newest first: admins only (FORBIDDEN otherwise)."
    )
    async def subscribers(
        self,
        info: Info[Context, None],
        status: Annotated[
            SubscriptionStatus | None,
            strawberry.argument(description="Only subscriptions with this recorded status."),
        ] = None,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PremiumSubscriptionConnection:
        viewer = info.context.require_viewer()
        request = page_request("subscribers", first, after, last, before)
        page = await info.context.services.billing.subscribers(
            viewer,
            request,
            SubscriptionStatusModel[status.name] if status is not None else None,
        )
        return PremiumSubscriptionConnection.from_page(page, info)


@strawberry.type
class BillingMutation:
    @strawberry.mutation(
        description="Subscribe to a plan through a payment provider (or pay what is due on "
        "the viewer's subscription through it)."
    )
    async def subscribe(
        self, info: Info[Context, None], input: Annotated[SubscribeInput, INPUT]
    ) -> SubscribeResult:
        async def action() -> SubscribeSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.billing.subscribe(
                viewer,
                decode_id(input.plan_id, "Plan", "planId"),
                input.provider,
                currency=input.currency,
                payment_method=input.payment_method,
            )
            return SubscribeSuccess(
                subscription=as_subscription(view, info),
                next_action=PendingPayment.from_action(view.pending)
                if view.pending is not None
                else None,
            )

        return await SUBSCRIBE.run(action)

    @strawberry.mutation(
        description="Stop the viewer's subscription renewing (access lasts to the end of the "
        "period paid), or end it now."
    )
    async def cancel_subscription(
        self, info: Info[Context, None], input: Annotated[CancelSubscriptionInput, INPUT]
    ) -> CancelSubscriptionResult:
        async def action() -> CancelSubscriptionSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.billing.cancel(
                viewer, at_period_end=input.at_period_end
            )
            return _payload(view, info, CancelSubscriptionSuccess)

        return await CANCEL_SUBSCRIPTION.run(action)

    @strawberry.mutation(
        description="Renew again a subscription cancelled at period end, while its period lasts."
    )
    async def resume_subscription(self, info: Info[Context, None]) -> ResumeSubscriptionResult:
        async def action() -> ResumeSubscriptionSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.billing.resume(viewer)
            return _payload(view, info, ResumeSubscriptionSuccess)

        return await RESUME_SUBSCRIPTION.run(action)

    @strawberry.mutation(description="Give an account premium access without payment (admins).")
    async def grant_complimentary(
        self, info: Info[Context, None], input: Annotated[GrantComplimentaryInput, INPUT]
    ) -> GrantComplimentaryResult:
        async def action() -> GrantComplimentarySuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.billing.grant_complimentary(
                viewer,
                decode_id(input.user_id, "User", "userId"),
                decode_id(input.plan_id, "Plan", "planId"),
                input.days,
            )
            return _payload(view, info, GrantComplimentarySuccess)

        return await GRANT_COMPLIMENTARY.run(action)

    @strawberry.mutation(description="Record that a manual payment's money arrived (admins).")
    async def confirm_manual_payment(
        self, info: Info[Context, None], input: Annotated[ConfirmManualPaymentInput, INPUT]
    ) -> ConfirmManualPaymentResult:
        async def action() -> ConfirmManualPaymentSuccess:
            viewer = info.context.require_viewer()
            view = await info.context.services.billing.confirm_manual_payment(
                viewer, decode_id(input.payment_id, "Payment", "paymentId")
            )
            return _payload(view, info, ConfirmManualPaymentSuccess)

        return await CONFIRM_MANUAL_PAYMENT.run(action)
