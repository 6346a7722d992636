"""What the payments contract suite needs from each provider's test setup.

The suite (`test_payments_contract.py`) is the same for every provider; what differs is how
the world outside the provider acts: how a payer completes a charge at the vendor, which
payment method a client would have collected, how the vendor signs a webhook. Each provider's
test module (`payments_stripe.py`, `payments_btcpay.py`, `payments_manual.py`) implements this
harness against its real local server (localstripe) or contract-checking fake (BTCPay), and
`conftest.py` parametrizes the suite over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from providers.payments.base import Charge, PaymentProvider


class PaymentsHarness(Protocol):
    name: str
    """The registry name (`stripe`, `btcpay`, `manual`)."""
    provider: PaymentProvider
    webhooks: bool
    """Whether the vendor sends webhooks (manual payments have none)."""
    off_session: bool
    """Whether a renewal can be charged without the payer (a saved card); when not, an
    off-session charge comes back PENDING with an action for the payer."""
    events: bool
    """Whether `events_since` returns the vendor's events (manual payments have none)."""

    def payment_method(self, *, declined: bool = False) -> str | None:
        """A method a client would have collected for the payer (declined: one the vendor
        accepts but refuses to charge); None for a vendor without such a thing."""
        ...

    async def pay(self, charge: Charge) -> None:
        """The payer completes the pending `charge` at the vendor (confirms the card, pays
        the invoice). Not called for the manual provider."""
        ...

    async def pay_unconfirmed(self, charge: Charge) -> None:
        """The payer pays the pending `charge`, and the vendor has not made it final yet where
        it has such a state (a Bitcoin payment seen, unconfirmed); where it has none, the
        charge is simply paid. Not called for the manual provider."""
        ...

    async def foreign_charges(self, reference: str, customer_id: str) -> dict[str, bool]:
        """Objects at the vendor that carry `reference` the way our charges do but are not
        ours (the store's own apps, another program on the same account, another amount),
        each paid: id -> whether it carries our own marks too (our metadata, our store: only
        the amount differs, which only `charge` can tell). Empty for a vendor without
        objects."""
        ...

    async def expire(self, charge: Charge) -> None:
        """The vendor gives up on the pending `charge` unpaid (an invoice expires). Not called
        for the manual provider."""
        ...

    def webhook(
        self, event_id: str, charge: Charge, *, succeeded: bool, at: datetime
    ) -> tuple[bytes, Mapping[str, str]]:
        """The raw body and (lower-case) headers of a delivery, signed as the vendor signs
        it, of an event saying `charge` succeeded (or failed) at `at`."""
        ...

    def sign(self, body: bytes, *, at: datetime, secret: str | None = None) -> Mapping[str, str]:
        """Headers signing `body` at `at` as the vendor does, with `secret` (None: the one
        the provider is configured with)."""
        ...

    def configured(
        self, *, api_key: str | None = None, url: str | None = None, timeout: float | None = None
    ) -> PaymentProvider | None:
        """Another provider like `provider` but with this API key, server address or request
        timeout; None for a provider without a vendor to call."""
        ...

    async def reset(self) -> None:
        """Forget everything the server holds (between tests)."""
        ...
