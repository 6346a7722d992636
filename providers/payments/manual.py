"""Manual payments: bank transfer or cash, confirmed by an admin.

There is no vendor: a charge is a request to pay, with the operator's instructions and the
reference to quote, and an admin confirms each payment that arrives (the `confirmManualPayment`
mutation, app/services/billing.py). The provider keeps no state; the ledger is the truth about
what was paid. It sends no webhooks and lists no events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from providers.errors import InvalidWebhook, NotFound
from providers.payments.base import (
    ActionKind,
    Charge,
    ChargeRequest,
    ChargeStatus,
    Customer,
    EventPage,
    NextAction,
    PaymentEvent,
    PlanPrice,
)

_PREFIX = "manual-"
_ZERO_DECIMAL = frozenset({"jpy", "krw", "vnd", "clp", "isk", "huf", "twd", "ugx", "xaf", "xof"})


def format_amount(amount: int, currency: str) -> str:
    """`500, "eur"` -> `5.00 EUR` (zero-decimal currencies have no minor unit)."""
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


class ManualPayments:
    """Payments by hand: every charge waits for an admin's confirmation."""

    kind: ClassVar[str] = "manual"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        instructions: str = Field(
            "Pay by bank transfer, quoting the reference.",
            min_length=1,
            max_length=2_000,
            description="how to pay (bank account, where to bring cash); shown with the amount "
            "and the reference to quote",
        )

    def __init__(self, options: Options) -> None:
        self.options = options

    async def sync_plans(self, prices: Sequence[PlanPrice]) -> Mapping[str, str]:
        """No vendor objects: nothing to create."""
        return {}

    async def create_customer(self, customer: Customer) -> str:
        return _PREFIX + customer.reference

    def _pending(self, reference: str, amount: int, currency: str) -> Charge:
        instructions = (
            f"{self.options.instructions}\nAmount: {format_amount(amount, currency)}\n"
            f"Reference: {reference}"
        )
        return Charge(
            id=_PREFIX + reference,
            reference=reference,
            status=ChargeStatus.PENDING,
            amount=amount,
            currency=currency,
            action=NextAction(ActionKind.AWAIT_MANUAL_PAYMENT, instructions=instructions),
        )

    async def charge(self, request: ChargeRequest) -> Charge:
        """A request to pay by hand (off-session too: a person must pay). The same reference
        gives the same charge."""
        return self._pending(request.reference, request.price.amount, request.price.currency)

    def _reference(self, charge_id: str) -> str:
        reference = charge_id.removeprefix(_PREFIX)
        if not charge_id.startswith(_PREFIX) or not reference.isdigit():
            raise NotFound(f"no manual charge {charge_id!r}")
        return reference

    async def fetch(self, charge_id: str) -> Charge:
        """Always PENDING: whether the money arrived is known only to the admin who confirms
        it in the ledger. The amount is not kept here (0)."""
        reference = self._reference(charge_id)
        return Charge(
            id=charge_id,
            reference=reference,
            status=ChargeStatus.PENDING,
            amount=0,
            currency="",
            action=NextAction(
                ActionKind.AWAIT_MANUAL_PAYMENT, instructions=self.options.instructions
            ),
        )

    async def cancel(self, charge_id: str) -> Charge:
        """Nothing to stop anywhere: the ledger refuses to confirm a cancelled payment."""
        reference = self._reference(charge_id)
        return Charge(
            id=charge_id, reference=reference, status=ChargeStatus.CANCELED, amount=0, currency=""
        )

    async def stop_renewals(self, customer_id: str) -> None:
        """Nothing charges a manual payer on its own."""

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> list[PaymentEvent]:
        raise InvalidWebhook("manual payments have no webhooks")

    async def events_since(self, cursor: str | None, *, limit: int = 100) -> EventPage:
        """No events: an admin's confirmation goes straight to the ledger."""
        return EventPage(events=(), cursor=cursor)

    async def close(self) -> None:
        """Nothing to release."""
