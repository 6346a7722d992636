"""The payments harness for BTCPay Server, against the contract-checking fake
(`tests/btcpay_fake.py`, served on a local port by the session fixture `btcpay_server`).

The payer's side happens in the fake: `pay` settles the invoice (paid in full, confirmed),
`expire` expires it unpaid. Webhook deliveries are built as BTCPay builds them (checked
against the contract's webhook schemas) and signed with `BTCPay-Sig`.

BTCPay signs no timestamp: a delivery's age is its body's `timestamp`, so `sign` ignores
`at` (a body made by `webhook` already carries it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from providers.payments.base import Charge
from providers.payments.btcpay import BTCPayPayments
from tests.btcpay_fake import API_KEY, STORE_ID, WEBHOOK_SECRET, FakeBTCPay, RunningFake


def btcpay_options(url: str, **overrides: object) -> BTCPayPayments.Options:
    """Options for a provider talking to the fake at `url`."""
    values: dict[str, object] = {
        "url": url,
        "api_key": API_KEY,
        "store_id": STORE_ID,
        "webhook_secret": WEBHOOK_SECRET,
        "timeout": 5.0,
    }
    values.update(overrides)
    return BTCPayPayments.Options.model_validate(values)


class BTCPayHarness:
    """`PaymentsHarness` for BTCPay (see tests/contract/payments_harness.py)."""

    name = "btcpay"
    webhooks = True
    off_session = False
    """Bitcoin cannot be pulled from a payer: a renewal is an invoice to pay, PENDING."""
    events = True

    def __init__(self, server: RunningFake) -> None:
        self.server = server
        self.fake: FakeBTCPay = server.fake
        self.provider = BTCPayPayments(btcpay_options(server.url))

    def payment_method(self, *, declined: bool = False) -> str | None:
        """None: BTCPay has no saved payment methods."""
        return None

    async def pay(self, charge: Charge) -> None:
        """The payer pays the invoice in full and the payment confirms: Settled."""
        self.fake.settle(charge.id)

    async def pay_unconfirmed(self, charge: Charge) -> None:
        """The payer paid in full, the payment awaits confirmations: Processing."""
        self.fake.process(charge.id)

    async def foreign_charges(self, reference: str, customer_id: str) -> dict[str, bool]:
        """Settled invoices carrying `reference`: a point-of-sale one with the bare order
        number, one of another store with our metadata, and one of ours in form but of another
        amount (another Holdfast on the same store)."""
        ours_in_form = {
            "orderId": f"holdfast:{reference}",
            "holdfastCustomer": customer_id,
        }
        made = {
            self.fake.add_invoice(metadata={"orderId": reference}, amount="5.00"): False,
            self.fake.add_invoice(
                metadata=ours_in_form, amount="5.00", store_id="AnotherStore0000000000000000"
            ): False,
            self.fake.add_invoice(metadata=ours_in_form, amount="7.00"): True,
        }
        for invoice_id in made:
            self.fake.settle(invoice_id)
        return made

    async def expire(self, charge: Charge) -> None:
        """The invoice expires unpaid: Expired."""
        self.fake.expire(charge.id)

    def webhook(
        self, event_id: str, charge: Charge, *, succeeded: bool, at: datetime
    ) -> tuple[bytes, Mapping[str, str]]:
        """An `InvoiceSettled` (or `InvoiceExpired`) delivery whose first delivery id is
        `event_id`, carrying the invoice's metadata (so its orderId) as BTCPay does."""
        invoice = self.fake.invoices.get(charge.id)
        metadata = invoice["metadata"] if invoice else {"orderId": charge.reference}
        if succeeded:
            body = self.fake.webhook_body(
                "InvoiceSettled",
                charge.id,
                at=at,
                delivery_id=event_id,
                metadata=metadata,
                manuallyMarked=False,
                overPaid=False,
            )
        else:
            body = self.fake.webhook_body(
                "InvoiceExpired",
                charge.id,
                at=at,
                delivery_id=event_id,
                metadata=metadata,
                partiallyPaid=False,
            )
        return body, self.sign(body, at=at)

    def configured(
        self, *, api_key: str | None = None, url: str | None = None, timeout: float | None = None
    ) -> BTCPayPayments:
        overrides: dict[str, object] = {}
        if api_key is not None:
            overrides["api_key"] = api_key
        if timeout is not None:
            overrides["timeout"] = timeout
        return BTCPayPayments(btcpay_options(url or self.server.url, **overrides))

    def sign(self, body: bytes, *, at: datetime, secret: str | None = None) -> Mapping[str, str]:
        """`btcpay-sig: sha256=<hex HMAC-SHA256 of body>`; `at` is not signed by BTCPay."""
        return self.fake.sign(body, secret)

    async def reset(self) -> None:
        """Forget every invoice; fails when the fake recorded a contract violation since
        the last reset, so a suite that knows nothing of the fake still catches them."""
        violations = list(self.fake.violations)
        self.fake.reset()
        assert not violations, f"requests or responses broke the BTCPay contract: {violations}"

    async def close(self) -> None:
        """Closes the provider's connections."""
        await self.provider.close()
