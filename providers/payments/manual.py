"""Manual payments: a bank transfer or cash, confirmed by an admin in the app.

No vendor and no state: the ledger is the only record of a manual payment, and an admin
marking it paid there is what ends it. This provider only says how to pay: each charge is
PENDING with `ActionKind.AWAIT_MANUAL_PAYMENT` and instructions naming the amount and the
reference the payer quotes with the transfer. Renewals are the same (a person must pay).

Charge ids are `manual-<currency>-<amount>-<reference>`: deterministic, so `charge` is
idempotent on the reference, and enough for `fetch` to describe the charge again without
keeping anything. `fetch` can only ever say PENDING (whether the money arrived is known to the
ledger, not here); `cancel` answers CANCELED (nothing here could take the money later) and
the ledger records it. There are no webhooks and no events.
"""

from __future__ import annotations

import re
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
from providers.payments.money import format_amount

__all__ = ["ManualPayments", "format_amount"]

_ID = re.compile(r"manual-(?P<currency>[a-z]{3})-(?P<amount>[0-9]{1,15})-(?P<reference>.+)\Z", re.S)


class ManualPayments:
    """A `PaymentProvider` for payments made outside any processor."""

    kind: ClassVar[str] = "manual"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        instructions: str = Field(
            min_length=1,
            description="How to pay, shown to the payer with each charge: the bank account "
            "(IBAN, BIC, holder) or where to bring cash. The amount and the reference to "
            "quote are added after it.",
        )

    def __init__(self, options: ManualPayments.Options) -> None:
        self.options = options

    async def sync_plans(self, prices: Sequence[PlanPrice]) -> Mapping[str, str]:
        """Nothing to create: no vendor objects, so an empty mapping."""
        return {}

    async def create_customer(self, customer: Customer) -> str:
        """`manual-<reference>`: there is no one to ask."""
        return f"manual-{customer.reference}"

    async def charge(self, request: ChargeRequest) -> Charge:
        """A PENDING charge the payer settles by hand, off-session too."""
        return self._charge(request.reference, request.price.amount, request.price.currency)

    async def fetch(self, charge_id: str) -> Charge:
        """PENDING for an id this provider made (only the ledger knows whether it was paid);
        NotFound for any other."""
        match = _ID.match(charge_id)
        if match is None:
            raise NotFound(f"manual: no charge {charge_id[:200]!r}")
        return self._charge(match["reference"], int(match["amount"]), match["currency"])

    async def cancel(self, charge_id: str) -> Charge:
        """CANCELED: nothing here can take the money later (the ledger records the
        cancellation and refuses a late transfer by hand)."""
        pending = await self.fetch(charge_id)
        return Charge(
            id=pending.id,
            reference=pending.reference,
            status=ChargeStatus.CANCELED,
            amount=pending.amount,
            currency=pending.currency,
        )

    async def stop_renewals(self, customer_id: str) -> None:
        """Nothing renews on its own here."""

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> list[PaymentEvent]:
        """Always InvalidWebhook: manual payments have no webhooks."""
        raise InvalidWebhook("manual payments have no webhooks")

    async def events_since(self, cursor: str | None, *, limit: int = 100) -> EventPage:
        """Always empty, with the cursor given: there are no vendor events."""
        return EventPage(events=(), cursor=cursor)

    async def close(self) -> None:
        """Nothing to release."""

    def _charge(self, reference: str, amount: int, currency: str) -> Charge:
        instructions = (
            f"{self.options.instructions.rstrip()}\n\n"
            f"Amount: {format_amount(amount, currency)}\n"
            f"Reference (quote it with the payment): {reference}"
        )
        return Charge(
            id=f"manual-{currency}-{amount}-{reference}",
            reference=reference,
            status=ChargeStatus.PENDING,
            amount=amount,
            currency=currency,
            action=NextAction(ActionKind.AWAIT_MANUAL_PAYMENT, instructions=instructions),
        )
