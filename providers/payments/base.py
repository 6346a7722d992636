"""The payment provider interface: customers, one charge per paid period, webhooks, events.

Holdfast keeps subscriptions and their renewal schedule in its own ledger (app/models/billing.py)
and uses a processor only to take money: each period of a subscription is one charge, started
by us (the first one with the payer present, the renewals off-session where the processor can
charge a saved method), and its outcome arrives as a webhook event, a reconciliation pull
(`events_since`) or a `fetch`. Nothing about who has access is ever asked of a vendor, so a
processor that drops the network takes no paid period with it.

Every implementation (Stripe, BTCPay Server's Greenfield API, manual payments) passes the one
contract suite in `tests/contract/test_payments_contract.py`, against localstripe or a fake that
checks every request against the vendor's published API description.

Rules every implementation keeps:
- Amounts are integers in the currency's minor unit (cents); currencies are lower-case ISO
  4217 codes (`eur`).
- A charge carries our `reference` (the ledger's payment id) to the vendor and back: every
  event about it names it, so the ledger applies an event without asking the vendor. `charge`
  is idempotent on `reference`: calling it again (a retried job) returns the same charge and
  never takes the money twice.
- Webhooks are verified on the raw body: a bad signature, a malformed body or a timestamp
  older than the tolerance raise `InvalidWebhook` and nothing is parsed.
- Only `providers.errors` cross this interface: `Declined` when the payer's method was
  refused, `NotFound` for an unknown id, `Unavailable` for a transient failure (retry),
  `InvalidWebhook` for a webhook to refuse, `ProviderError` otherwise. No vendor type or
  exception is ever returned or raised, and no message carries a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

WEBHOOK_TOLERANCE_SECONDS = 300
"""A signed webhook older than this is refused (replays of captured deliveries)."""


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


@dataclass(frozen=True, slots=True)
class PlanPrice:
    """One way to pay for a plan: an amount per interval in one currency."""

    plan: str
    """The plan's code (stable, operator-chosen: `supporter`)."""
    name: str
    """What payers see on receipts and invoices."""
    amount: int
    currency: str
    interval: Interval

    @property
    def key(self) -> str:
        """Unique per plan, currency and interval: `supporter:eur:month`."""
        return f"{self.plan}:{self.currency}:{self.interval.value}"


@dataclass(frozen=True, slots=True)
class Customer:
    """Who pays. `reference` is ours (the user's id), kept by the vendor with the customer."""

    reference: str
    email: str
    name: str


class ChargeStatus(StrEnum):
    PENDING = "pending"
    """Waiting for the payer (a card to confirm, an invoice to pay, a transfer to arrive) or
    for the processor."""
    SUCCEEDED = "succeeded"
    """The money was taken: the period is paid. Final."""
    FAILED = "failed"
    """The attempt failed (declined, expired unpaid, invalid). Final for this charge; the
    ledger may start another."""
    CANCELED = "canceled"
    """We cancelled it before it was paid. Final."""


FINAL_STATUSES = frozenset({ChargeStatus.SUCCEEDED, ChargeStatus.FAILED, ChargeStatus.CANCELED})


class ActionKind(StrEnum):
    """What the payer must do next for a pending charge."""

    NONE = "none"
    CONFIRM_CARD = "confirm_card"
    """Confirm the payment in the client with `client_secret` (Stripe.js, 3-D Secure)."""
    PAY_AT_URL = "pay_at_url"
    """Pay on the processor's hosted page at `url` (a BTCPay checkout, a hosted invoice)."""
    AWAIT_MANUAL_PAYMENT = "await_manual_payment"
    """Pay outside any processor as `instructions` say; an admin confirms it."""


@dataclass(frozen=True, slots=True)
class NextAction:
    kind: ActionKind = ActionKind.NONE
    client_secret: str | None = None
    url: str | None = None
    instructions: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A period's charge."""

    reference: str
    """Ours (the ledger's payment id): the idempotency key, echoed by every event about it."""
    customer_id: str
    price: PlanPrice
    period_start: datetime
    period_end: datetime
    off_session: bool = False
    """A renewal: charge the method the payer saved with an earlier charge, without them.
    A provider that cannot (an invoice must be paid by hand) returns a PENDING charge with
    the action the payer must take instead."""
    payment_method: str | None = None
    """A method the client already collected with the vendor's own client library (a Stripe
    `pm_...`); kept for off-session renewals where the vendor allows."""
    return_url: str | None = None
    """Where a hosted payment page sends the payer back to."""


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge as the vendor sees it now."""

    id: str
    reference: str
    status: ChargeStatus
    amount: int
    currency: str
    action: NextAction = NextAction()
    failure: str | None = None
    """Why it failed, fit to show the payer (`Your card was declined.`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Vendor detail, for logs and support: never for decisions."""


class EventKind(StrEnum):
    CHARGE_SUCCEEDED = "charge_succeeded"
    CHARGE_FAILED = "charge_failed"
    CHARGE_CANCELED = "charge_canceled"
    CHARGE_PENDING = "charge_pending"
    """The payer acted but the money is not final yet (a Bitcoin payment seen, unconfirmed)."""
    IGNORED = "ignored"
    """An event this interface has no use for (kept so reconciliation moves past it)."""


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One vendor event, normalised. `id` is unique per vendor account and the same on every
    delivery of the event (the ledger records each id once). A vendor may name one outcome
    under two ids (BTCPay: a webhook's delivery id, and the invoice-and-status id that
    reconciliation derives); the ledger applies outcomes to a charge's state, where a final
    outcome applied twice changes nothing, so that is harmless."""

    id: str
    kind: EventKind
    occurred_at: datetime
    charge_id: str | None = None
    reference: str | None = None
    """The `ChargeRequest.reference` of the charge it is about, when it is about one of ours."""
    amount: int | None = None
    currency: str | None = None
    failure: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events in the order they happened, and where the next pull starts (opaque; pass it to
    `events_since`). `cursor` is the one given when there was nothing new."""

    events: tuple[PaymentEvent, ...]
    cursor: str | None
    more: bool = False
    """True when more events are waiting beyond this page."""


@runtime_checkable
class PaymentProvider(Protocol):
    """A payment processor. Methods are coroutines, except `verify_webhook` (pure: no I/O)."""

    kind: ClassVar[str]
    """The registry name of the implementation (`stripe`, `btcpay`, `manual`)."""

    async def sync_plans(self, prices: Sequence[PlanPrice]) -> Mapping[str, str]:
        """Create or update the vendor's objects for these prices (products, plans,
        offerings), idempotently: running it again changes nothing but what differs.
        Returns the vendor's id for each `PlanPrice.key` it keeps an object for (a vendor
        that needs none returns an empty mapping)."""
        ...

    async def create_customer(self, customer: Customer) -> str:
        """The vendor's id for this payer, created if needed; the same id when called again
        with the same `reference` (a retried job makes no second customer)."""
        ...

    async def charge(self, request: ChargeRequest) -> Charge:
        """Start the charge for a period and return it with what the payer must do next.
        Idempotent on `request.reference`. A method refused outright raises `Declined`
        (nothing is owed; the ledger decides what happens to the subscription)."""
        ...

    async def fetch(self, charge_id: str) -> Charge:
        """The charge as the vendor sees it now; NotFound for an unknown id."""
        ...

    async def cancel(self, charge_id: str) -> Charge:
        """Cancel a charge that is not paid yet (an open invoice, an unconfirmed payment),
        so it can no longer be paid; a final charge is returned as it is."""
        ...

    async def stop_renewals(self, customer_id: str) -> None:
        """Make sure nothing at the vendor charges this payer again on its own (a saved card,
        a vendor-side subscription or schedule). Called when a subscription will not renew
        (cancelled, or moved to another processor). Idempotent; NotFound is not an error."""
        ...

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> list[PaymentEvent]:
        """The events of a webhook delivery, after checking its signature on the raw `body`
        (header names are lower-case) and its age against WEBHOOK_TOLERANCE_SECONDS where
        the vendor signs a timestamp. InvalidWebhook otherwise; never any I/O."""
        ...

    async def events_since(self, cursor: str | None, *, limit: int = 100) -> EventPage:
        """Events after `cursor` (None: from the oldest the vendor still lists), oldest
        first, at most `limit`: what reconciliation pulls to catch missed webhooks. A vendor
        without an event feed may yield an event again, under the same id, on a later pull
        (its cursor cannot move past a charge still pending)."""
        ...

    async def close(self) -> None:
        """Release connections; the provider is not used afterwards."""
        ...
