"""The payments harness for Stripe, against localstripe (`tests.servers.start_localstripe`).

What a client would do with Stripe.js (collect a card, confirm an intent) is done here with
the same API calls on the secret key; webhook deliveries are signed as Stripe signs them
(`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), computed here rather than with the SDK the
provider uses."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import anyio.to_thread
import httpx

from providers import registry
from providers.payments.base import Charge, PaymentProvider
from tests.servers import LocalStripe

API_KEY = "sk_test_holdfast_contract_key"
WEBHOOK_SECRET = "whsec_holdfast_contract_secret"
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
"""Attaches to a customer, then every charge on it is declined (localstripe, as Stripe)."""


class StripeHarness:
    name = "stripe"
    webhooks = True
    off_session = True
    events = True

    def __init__(self, server: LocalStripe) -> None:
        self.server = server
        self.provider: PaymentProvider = self.configured()
        self.headers = {"Authorization": f"Bearer {API_KEY}"}

    def configured(
        self, *, api_key: str | None = None, url: str | None = None, timeout: float | None = None
    ) -> PaymentProvider:
        provider: PaymentProvider = registry.load(
            "payments",
            "stripe",
            {
                "api_key": api_key or API_KEY,
                "webhook_secret": WEBHOOK_SECRET,
                "api_base": url or self.server.url,
                "max_network_retries": 0,
                "timeout": timeout or 10,
            },
        )
        return provider

    def payment_method(self, *, declined: bool = False) -> str | None:
        """A card PaymentMethod, made as Stripe.js makes it from the card's details."""
        return str(
            self.api_sync(
                "POST",
                "/v1/payment_methods",
                {
                    "type": "card",
                    "card[number]": DECLINED_CARD if declined else GOOD_CARD,
                    "card[exp_month]": "12",
                    "card[exp_year]": "2034",
                    "card[cvc]": "123",
                },
            )["id"]
        )

    async def pay(self, charge: Charge) -> None:
        """The payer enters a good card in Stripe.js, which confirms the intent."""
        assert charge.action.client_secret, "a Stripe charge to pay has a client secret"
        method = self.payment_method()
        await self.api("POST", f"/v1/payment_intents/{charge.id}", {"payment_method": method})
        await self.api("POST", f"/v1/payment_intents/{charge.id}/confirm", {})

    async def pay_unconfirmed(self, charge: Charge) -> None:
        """A card payment has no unconfirmed state here: the intent is paid (succeeded)."""
        await self.pay(charge)

    async def foreign_charges(self, reference: str, customer_id: str) -> dict[str, bool]:
        """Succeeded PaymentIntents of the same customer carrying `reference` in their
        metadata as ours do: one without our other metadata (another program on the account)
        and one with it but another amount."""
        made = {}
        for amount, metadata in (
            (500, {"metadata[holdfast_reference]": reference}),
            (
                700,
                {
                    "metadata[holdfast_reference]": reference,
                    "metadata[holdfast_price]": "supporter:eur:month",
                },
            ),
        ):
            intent = await self.api(
                "POST",
                "/v1/payment_intents",
                {
                    "amount": str(amount),
                    "currency": "eur",
                    "customer": customer_id,
                    "payment_method": self.payment_method(),
                    "confirm": "true",
                    **metadata,
                },
            )
            made[str(intent["id"])] = "metadata[holdfast_price]" in metadata
        return made

    async def expire(self, charge: Charge) -> None:
        """Stripe never expires an intent by itself; what comes closest is the intent being
        cancelled at the vendor (from the Dashboard)."""
        await self.api("POST", f"/v1/payment_intents/{charge.id}/cancel", {})

    def webhook(
        self, event_id: str, charge: Charge, *, succeeded: bool, at: datetime
    ) -> tuple[bytes, Mapping[str, str]]:
        """The intent as the vendor holds it (its metadata, amount), in the state the event
        says: succeeded, or refused and cancelled (a decline, as `charge` leaves it)."""
        response = httpx.get(
            f"{self.server.url}/v1/payment_intents/{charge.id}", headers=self.headers
        )
        intent: dict[str, Any] = (
            response.json()
            if response.status_code == 200
            else {
                "id": charge.id,
                "object": "payment_intent",
                "amount": charge.amount,
                "currency": charge.currency,
                "metadata": {"holdfast_reference": charge.reference},
            }
        )
        intent["status"] = "succeeded" if succeeded else "canceled"
        intent["last_payment_error"] = (
            None if succeeded else {"code": "card_declined", "message": "Your card was declined."}
        )
        if not succeeded:
            intent["metadata"] = {**intent.get("metadata", {}), "holdfast_declined": "1"}
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": int(at.timestamp()),
                "livemode": False,
                "type": "payment_intent.succeeded" if succeeded else "payment_intent.canceled",
                "data": {"object": intent},
            }
        ).encode()
        return body, self.sign(body, at=at)

    def sign(self, body: bytes, *, at: datetime, secret: str | None = None) -> Mapping[str, str]:
        timestamp = int(at.timestamp())
        key = (secret or WEBHOOK_SECRET).encode()
        signature = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return {
            "stripe-signature": f"t={timestamp},v1={signature}",
            "content-type": "application/json; charset=utf-8",
        }

    async def reset(self) -> None:
        await anyio.to_thread.run_sync(self.server.reset)

    # -- the vendor's API, as a client or the Dashboard would use it ---------------------

    async def api(self, method: str, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.url, headers=self.headers) as client:
            if method == "GET":
                response = await client.get(path, params=dict(data))
            else:
                response = await client.request(method, path, data=dict(data))
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def api_sync(self, method: str, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        response = httpx.request(
            method, f"{self.server.url}{path}", data=dict(data), headers=self.headers
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer
