"""The payments harness for manual payments: no vendor, no server, nothing for a payer to do
at a processor (an admin confirms each payment in the app, against the ledger)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from providers import registry
from providers.payments.base import Charge, PaymentProvider

INSTRUCTIONS = "Transfer to IBAN DE89 3704 0044 0532 0130 00 (Holdfast e.V.), BIC COBADEFFXXX."


class ManualHarness:
    name = "manual"
    webhooks = False
    off_session = False
    events = False

    def __init__(self) -> None:
        self.provider: PaymentProvider = registry.load(
            "payments", "manual", {"instructions": INSTRUCTIONS}
        )

    def payment_method(self, *, declined: bool = False) -> str | None:
        return None

    async def pay(self, charge: Charge) -> None:
        raise AssertionError("a manual payment is confirmed in the app, never at a vendor")

    async def pay_unconfirmed(self, charge: Charge) -> None:
        raise AssertionError("a manual payment is confirmed in the app, never at a vendor")

    async def foreign_charges(self, reference: str, customer_id: str) -> dict[str, bool]:
        """None: there is no vendor holding anything."""
        return {}

    async def expire(self, charge: Charge) -> None:
        raise AssertionError("a manual payment has no vendor to give up on it")

    def webhook(
        self, event_id: str, charge: Charge, *, succeeded: bool, at: datetime
    ) -> tuple[bytes, Mapping[str, str]]:
        raise AssertionError("manual payments have no webhooks")

    def sign(self, body: bytes, *, at: datetime, secret: str | None = None) -> Mapping[str, str]:
        raise AssertionError("manual payments have no webhooks")

    def configured(
        self, *, api_key: str | None = None, url: str | None = None, timeout: float | None = None
    ) -> PaymentProvider | None:
        return None

    async def reset(self) -> None:
        """Nothing is held anywhere."""
