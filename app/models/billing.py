"""Premium subscriptions: our ledger, the truth about who pays for what until when.

A processor (providers/payments) only takes money; which plan a subscriber has, the period
paid, when it renews, the grace period after a failed renewal and whether premium access
continues are all decided here, from these rows, never by a live call to a vendor. So a
processor's outage or exit changes nobody's access (app/services/billing.py).
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from app.models.account import User
from app.models.base import SnowflakeModel


class Plan(SnowflakeModel):
    """A plan the operator offers (`HOLDFAST_PAYMENTS__PLANS`, copied here by
    `holdfast payments sync` and at start-up). `prices` maps a currency to the amount per
    interval in its minor unit; `vendor_ids` maps a payment configuration's name to the
    vendor's id for each price key (what `sync_plans` returned)."""

    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100)
    description = fields.CharField(max_length=500, default="")
    interval = fields.CharField(max_length=8)
    prices: dict[str, int] = fields.JSONField(default=dict)
    perks: dict[str, int] = fields.JSONField(default=dict)
    vendor_ids: dict[str, dict[str, str]] = fields.JSONField(default=dict)
    active = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plans"


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"
    """Started; its first payment is not made yet (no access from it)."""
    ACTIVE = "active"
    """Paid through `current_period_end`; renews unless `cancel_at_period_end`."""
    PAST_DUE = "past_due"
    """A period ended unpaid: access continues until `grace_until` while renewal is retried."""
    CANCELED = "canceled"
    """Will not renew; access continues until `access_until` (the period already paid)."""
    EXPIRED = "expired"
    """Over: no access from it."""


LIVE_STATUSES = (
    SubscriptionStatus.INCOMPLETE,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.PAST_DUE,
    SubscriptionStatus.CANCELED,
)


class ActionRequired(StrEnum):
    """What the subscriber must do to keep or get access."""

    CONFIRM_PAYMENT = "confirm_payment"
    """Confirm a card payment in the client."""
    PAY = "pay"
    """Pay a period's charge: at a hosted page, or by the manual instructions."""
    UPDATE_PAYMENT_METHOD = "update_payment_method"
    """A renewal was declined: pay again with another method before the grace period ends."""
    SWITCH_PROVIDER = "switch_provider"
    """The processor is leaving: subscribe again through `switch_to` before access ends."""


class Subscription(SnowflakeModel):
    """One subscriber's subscription to a plan through one payment configuration. A user has
    at most one subscription that is neither EXPIRED nor replaced, plus the old one a switch
    of processor keeps until its paid period ends.

    `access_until` is the one column access is decided from (views.audience,
    billing.premium): the end of the period paid, or of the grace period while a renewal is
    retried; NULL before anything was paid."""

    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, on_delete=fields.CASCADE
    )
    plan: fields.ForeignKeyRelation[Plan] = fields.ForeignKeyField(
        "models.Plan", related_name=False, on_delete=fields.RESTRICT
    )
    provider = fields.CharField(max_length=64)
    """A name of `HOLDFAST_PAYMENTS__PROVIDERS` (or `complimentary`), not a vendor."""
    customer_id = fields.CharField(max_length=255, null=True)
    currency = fields.CharField(max_length=3)
    amount = fields.IntField()
    interval = fields.CharField(max_length=8)
    status = fields.CharEnumField(
        SubscriptionStatus, max_length=16, default=SubscriptionStatus.INCOMPLETE
    )
    current_period_start = fields.DatetimeField(null=True)
    current_period_end = fields.DatetimeField(null=True)
    access_until = fields.DatetimeField(null=True)
    grace_until = fields.DatetimeField(null=True)
    cancel_at_period_end = fields.BooleanField(default=False)
    renewal_failures = fields.IntField(default=0)
    complimentary = fields.BooleanField(default=False)
    action_required: ActionRequired | None = fields.CharEnumField(  # type: ignore[assignment]
        ActionRequired, max_length=24, null=True
    )
    switch_to = fields.CharField(max_length=64, null=True)
    """Set by `holdfast payments migrate`: the configuration to subscribe through next."""
    replaced_by: fields.ForeignKeyNullableRelation[Subscription] = fields.ForeignKeyField(
        "models.Subscription", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    vendor_stopped_at = fields.DatetimeField(null=True)
    """When the vendor confirmed nothing there charges this subscriber again."""
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    ended_at = fields.DatetimeField(null=True)

    user_id: int
    plan_id: int
    replaced_by_id: int | None

    class Meta:
        table = "subscriptions"
        indexes = (
            # The visibility rule: does this viewer have access now?
            Index(fields=("user_id", "access_until")),
            Index(fields=("provider", "status")),
        )


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Payment(SnowflakeModel):
    """One period's charge. Its id is the `reference` the processor carries and echoes, so an
    event is applied without asking the vendor. `period_start`/`period_end` are fixed when the
    charge is made for a renewal; a first payment's period starts when it is paid."""

    subscription: fields.ForeignKeyRelation[Subscription] = fields.ForeignKeyField(
        "models.Subscription", related_name=False, on_delete=fields.CASCADE
    )
    provider = fields.CharField(max_length=64)
    charge_id = fields.CharField(max_length=255, null=True)
    amount = fields.IntField()
    currency = fields.CharField(max_length=3)
    renewal = fields.BooleanField(default=False)
    period_start = fields.DatetimeField(null=True)
    period_end = fields.DatetimeField(null=True)
    status = fields.CharEnumField(PaymentStatus, max_length=16, default=PaymentStatus.PENDING)
    action_kind = fields.CharField(max_length=32, default="none")
    action_url = fields.CharField(max_length=2000, null=True)
    instructions = fields.TextField(null=True)
    failure = fields.CharField(max_length=500, null=True)
    confirmed_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    """When its charge was last sent to the vendor (set under the subscription's lock just
    before the call): a charge started moments ago may still be at the vendor, and nothing
    else may charge the subscription meanwhile."""
    paid_at = fields.DatetimeField(null=True)

    subscription_id: int
    confirmed_by_id: int | None

    class Meta:
        table = "payments"
        unique_together = (("provider", "charge_id"),)
        indexes = (Index(fields=("subscription_id", "id")),)


class PaymentEventRecord(SnowflakeModel):
    """A vendor event received (webhook or reconciliation). Unique per configuration and
    event id: a second delivery, even at the same moment, inserts nothing and is not applied
    again. `processed_at` is set in the transaction that applied it."""

    provider = fields.CharField(max_length=64)
    event_id = fields.CharField(max_length=255)
    kind = fields.CharField(max_length=32)
    occurred_at = fields.DatetimeField()
    charge_id = fields.CharField(max_length=255, null=True)
    reference = fields.CharField(max_length=64, null=True)
    data: dict[str, object] = fields.JSONField(default=dict)
    received_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "payment_events"
        unique_together = (("provider", "event_id"),)


class PaymentFeed(Model):
    """Where reconciliation (`holdfast payments reconcile`) resumes for each configuration."""

    provider = fields.CharField(max_length=64, primary_key=True)
    cursor = fields.CharField(max_length=500, null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "payment_feeds"
