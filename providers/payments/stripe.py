"""Stripe, through the stripe SDK's async methods (`StripeClient.v1.<resource>.<verb>_async`).

The only module that imports stripe. Each paid period is one PaymentIntent carrying our
reference in its metadata (`holdfast_reference`); Stripe never holds a subscription of ours:
the ledger renews, this provider only charges.

- A payer-present charge with a method the client collected (`pm_...`) attaches the method to
  the customer and confirms at once, asking Stripe to keep the card usable off-session
  (`setup_future_usage`); once the payment succeeded (or is processing) the method becomes
  the customer's default (what renewals charge). A declined method is detached again, so it
  never replaces a working saved card. Without a method the intent is left for the client
  to confirm with Stripe.js (`ActionKind.CONFIRM_CARD`).
- An off-session renewal confirms against the customer's default method, else its first
  saved card; with none saved it is `Declined` (nothing can be taken without the payer).
- A charge refused at confirmation raises `Declined`; the intent is marked
  (`holdfast_declined=1`) and cancelled so that it can no longer be paid, and reads as FAILED
  afterwards (`fetch`, a retried `charge`, its events).
- `charge` is idempotent on the reference: it first looks for the customer's intent of ours
  with that reference (Stripe's `customer` filter on the PaymentIntent list; ours: our
  metadata, the same price, amount and currency), and creates with an idempotency key derived
  from it, which covers two calls racing within Stripe's 24 hours. Stripe replays the answer
  to a key for 24 hours, a 500 too: a charge whose create was answered 5xx stays Unavailable
  for that key until then (the ledger retries; nothing is charged twice). A fresh key after a
  5xx would let a retry succeed sooner, but only the list lookup would then stand between a
  create that did happen behind the 500 and a second one, so the key is kept as it is.
- Webhook signatures are checked with the SDK (`WebhookSignature.verify_header`); the age is
  checked here against `now` (the SDK only knows the wall clock).
- Events (webhooks and `events_since`) are read for the `payment_intent.*` types we use, and
  their kind comes from the intent's status in the event, mapped exactly as `fetch` maps it:
  a `payment_failed` of an intent the payer can still confirm is CHARGE_PENDING (carrying
  the failure), a `canceled` after a decline is CHARGE_FAILED. Intents without our metadata
  are IGNORED.
- `events_since` pulls `GET /v1/events` forward from a cursor `evt:<last event id>:<its
  created>`: `ending_before=<id>` gives the page just newer than it (newest first, reversed
  here), so each pull reads only what is new. When Stripe no longer knows the id (events are
  kept 30 days) it falls back to `created[gte]` of the time in the cursor.

Stripe answers in the account's API version (localstripe in an old one): responses are read
as plain mappings (`to_dict()`), defensively.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import stripe
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from providers.errors import (
    ConfigurationError,
    Declined,
    InvalidWebhook,
    NotFound,
    ProviderError,
    Unavailable,
)
from providers.payments.base import (
    WEBHOOK_TOLERANCE_SECONDS,
    ActionKind,
    Charge,
    ChargeRequest,
    ChargeStatus,
    Customer,
    EventKind,
    EventPage,
    NextAction,
    PaymentEvent,
    PlanPrice,
)

log = logging.getLogger("holdfast.payments.stripe")

REFERENCE_KEY = "holdfast_reference"
"""The metadata key carrying `ChargeRequest.reference` (and `Customer.reference`)."""
PRICE_KEY = "holdfast_price"
PLAN_KEY = "holdfast_plan"
DECLINED_KEY = "holdfast_declined"
"""Set to `1` on an intent before `charge` cancels it after a decline: Stripe clears
`last_payment_error` when an intent is updated, so the decline must be read from our own
metadata afterwards."""
DECLINED = "Your card was declined."
NO_SAVED_METHOD = "There is no saved card to charge: please pay with a card."
PAGE_SIZE = 100

_EVENT_TYPES = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
)
"""The events read (webhooks and `events_since`); the kind comes from the intent's status in
the event, mapped as `fetch` maps it, never from the event's name alone."""
_KIND_OF_STATUS = {
    ChargeStatus.SUCCEEDED: EventKind.CHARGE_SUCCEEDED,
    ChargeStatus.FAILED: EventKind.CHARGE_FAILED,
    ChargeStatus.CANCELED: EventKind.CHARGE_CANCELED,
    ChargeStatus.PENDING: EventKind.CHARGE_PENDING,
}
_PAYER_ACTS = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
_IN_FLIGHT = frozenset({"processing", "requires_capture"})

T = TypeVar("T")


class StripePayments:
    """A `PaymentProvider` on one Stripe account (or localstripe, through `api_base`)."""

    kind: ClassVar[str] = "stripe"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        api_key: SecretStr = Field(description="The account's secret key (`sk_live_...`).")
        webhook_secret: SecretStr = Field(
            description="The signing secret of the webhook endpoint (`whsec_...`)."
        )
        api_base: str | None = Field(
            default=None,
            description="Another API address than Stripe's, e.g. a localstripe in tests.",
        )
        max_network_retries: int = Field(
            default=2,
            ge=0,
            description="Retries of a failed request by the SDK (with the same idempotency "
            "key, so a retried create makes nothing twice).",
        )
        timeout: float = Field(default=30, gt=0, description="Seconds allowed per request.")

    def __init__(self, options: StripePayments.Options) -> None:
        self.options = options
        self._secrets = tuple(
            value
            for value in (
                options.api_key.get_secret_value(),
                options.webhook_secret.get_secret_value(),
            )
            if value
        )
        self._http = _HTTPXClient(timeout=options.timeout)
        self._client = stripe.StripeClient(
            options.api_key.get_secret_value(),
            base_addresses={"api": options.api_base} if options.api_base else None,
            max_network_retries=options.max_network_retries,
            http_client=self._http,
        )

    # -- plans and customers -------------------------------------------------------------

    async def sync_plans(self, prices: Sequence[PlanPrice]) -> Mapping[str, str]:
        """A Product `holdfast-<plan>` per plan (renamed when the name changed) and a Plan
        `holdfast-<plan>-<currency>-<interval>-<amount>` per price: Stripe cannot change a
        plan's amount, so a new amount is a new plan, and the plans it replaces (same
        product, currency and interval) are deactivated (kept for Stripe's history)."""
        v1 = self._client.v1
        ids: dict[str, str] = {}
        names: dict[str, str] = {}
        for price in prices:
            names.setdefault(price.plan, price.name)
        for plan, name in names.items():
            product_id = f"holdfast-{plan}"
            try:
                product = _dict(await self._call("product", v1.products.retrieve_async(product_id)))
            except NotFound:
                await self._call(
                    "product",
                    v1.products.create_async(
                        {"id": product_id, "name": name, "metadata": {PLAN_KEY: plan}}
                    ),
                )
            else:
                if product.get("name") != name or _inactive(product):
                    await self._call(
                        "product",
                        v1.products.update_async(product_id, {"name": name, "active": True}),
                    )
        for price in prices:
            plan_id = (
                f"holdfast-{price.plan}-{price.currency}-{price.interval.value}-{price.amount}"
            )
            try:
                existing = _dict(await self._call("plan", v1.plans.retrieve_async(plan_id)))
            except NotFound:
                await self._call(
                    "plan",
                    v1.plans.create_async(
                        {
                            "id": plan_id,
                            "product": f"holdfast-{price.plan}",
                            "amount": price.amount,
                            "currency": price.currency,
                            "interval": price.interval.value,
                            "nickname": price.name,
                            "metadata": {PRICE_KEY: price.key},
                        }
                    ),
                )
            else:
                if existing.get("nickname") != price.name or _inactive(existing):
                    await self._call(
                        "plan",
                        v1.plans.update_async(plan_id, {"nickname": price.name, "active": True}),
                    )
            ids[price.key] = plan_id
        for plan in names:
            await self._deactivate_replaced(f"holdfast-{plan}", ids)
        return ids

    async def _deactivate_replaced(self, product_id: str, current: Mapping[str, str]) -> None:
        plans = await self._call(
            "plan",
            self._client.v1.plans.list_async(
                {"product": product_id, "active": True, "limit": PAGE_SIZE}
            ),
        )
        for plan in plans.data:
            data = _dict(plan)
            key = _mapping(data.get("metadata")).get(PRICE_KEY)
            if isinstance(key, str) and key in current and data.get("id") != current[key]:
                await self._call(
                    "plan", self._client.v1.plans.update_async(str(data["id"]), {"active": False})
                )

    async def create_customer(self, customer: Customer) -> str:
        """Found by email among the customers whose metadata carries this reference; else
        created, with an idempotency key from the reference and the details sent. A payer
        whose email changed since gets a new customer: the ledger keeps the id it got."""
        found = await self._call(
            "customer",
            self._client.v1.customers.list_async({"email": customer.email, "limit": PAGE_SIZE}),
        )
        for item in found.data:
            data = _dict(item)
            if _mapping(data.get("metadata")).get(REFERENCE_KEY) == customer.reference:
                return str(data["id"])
        digest = hashlib.sha256(f"{customer.email}\0{customer.name}".encode()).hexdigest()[:16]
        created = await self._call(
            "customer",
            self._client.v1.customers.create_async(
                {
                    "email": customer.email,
                    "name": customer.name,
                    "metadata": {REFERENCE_KEY: customer.reference},
                },
                {"idempotency_key": f"holdfast-customer-{customer.reference}-{digest}"},
            ),
        )
        return str(created.id)

    # -- charges -------------------------------------------------------------------------

    async def charge(self, request: ChargeRequest) -> Charge:
        """See the module docstring for the three ways a charge starts."""
        existing = await self._find_intent(request)
        if existing is not None:
            charge = _not_declined(_charge(existing))
            await self._keep_as_default(request, existing)
            return charge
        v1 = self._client.v1
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": request.price.amount,
            "currency": request.price.currency,
            "customer": request.customer_id,
            "metadata": {
                REFERENCE_KEY: request.reference,
                PRICE_KEY: request.price.key,
                "holdfast_period_start": request.period_start.isoformat(),
                "holdfast_period_end": request.period_end.isoformat(),
            },
        }
        if request.off_session:
            method = request.payment_method or await self._saved_method(request.customer_id)
            if method is None:
                raise Declined(NO_SAVED_METHOD)
            params.update({"payment_method": method, "confirm": True, "off_session": True})
            _no_redirects(params, request.return_url)
        else:
            params["setup_future_usage"] = "off_session"
            if request.payment_method is not None:
                await self._call(
                    "attach",
                    v1.payment_methods.attach_async(
                        request.payment_method, {"customer": request.customer_id}
                    ),
                )
                params.update({"payment_method": request.payment_method, "confirm": True})
                _no_redirects(params, request.return_url)
        try:
            intent = await self._call(
                "charge",
                v1.payment_intents.create_async(
                    params, {"idempotency_key": f"holdfast-charge-{request.reference}"}
                ),
            )
        except Declined:
            # The intent exists, refused: mark it declined (Stripe clears the payment error on
            # any update) and cancel it so that it can never be paid later.
            refused = await self._find_intent(request)
            if refused is not None and refused.get("status") in _PAYER_ACTS:
                refused_id = str(refused["id"])
                await self._call(
                    "cancel",
                    v1.payment_intents.update_async(refused_id, {"metadata": {DECLINED_KEY: "1"}}),
                )
                await self._call("cancel", v1.payment_intents.cancel_async(refused_id))
            await self._forget_declined_method(request)
            raise
        created = _dict(intent)
        charge = _not_declined(_charge(created))
        await self._keep_as_default(request, created)
        return charge

    async def _keep_as_default(self, request: ChargeRequest, intent: Mapping[str, Any]) -> None:
        """The payer's new method becomes what renewals charge once it took money (or is
        taking it): never before, so a declined card never replaces a working one. Best
        effort: the payment is made whether or not this succeeds (a failure here must not
        report a payment taken as failed)."""
        if request.off_session or request.payment_method is None:
            return
        if intent.get("status") not in ("succeeded", "processing", "requires_capture"):
            return
        try:
            await self._make_default(request)
        except ProviderError as exc:
            log.warning("stripe: could not make the new card the customer's default: %s", exc)

    async def _make_default(self, request: ChargeRequest) -> None:
        assert request.payment_method is not None
        customer = _dict(
            await self._call(
                "customer", self._client.v1.customers.retrieve_async(request.customer_id)
            )
        )
        if _default_method(customer) == request.payment_method:
            return
        await self._call(
            "customer",
            self._client.v1.customers.update_async(
                request.customer_id,
                {"invoice_settings": {"default_payment_method": request.payment_method}},
            ),
        )

    async def _forget_declined_method(self, request: ChargeRequest) -> None:
        """Detaches a method the payer just gave that was declined (attached by `charge`), so
        that no renewal falls back to it; the customer's default is left alone."""
        if request.off_session or request.payment_method is None:
            return
        v1 = self._client.v1
        try:
            customer = _dict(
                await self._call("customer", v1.customers.retrieve_async(request.customer_id))
            )
            if _default_method(customer) == request.payment_method:
                return
            with contextlib.suppress(NotFound):
                await self._call("detach", v1.payment_methods.detach_async(request.payment_method))
        except ProviderError as exc:
            # Best effort: the decline is what the payer must hear about.
            log.warning("stripe: could not detach a declined card: %s", exc)

    async def fetch(self, charge_id: str) -> Charge:
        """The PaymentIntent `charge_id`, read now."""
        intent = await self._call(
            "fetch", self._client.v1.payment_intents.retrieve_async(charge_id)
        )
        return _charge(_dict(intent))

    async def cancel(self, charge_id: str) -> Charge:
        """Cancels the intent unless it is final; one that became final meanwhile (paid
        while we asked) is returned as it is now."""
        charge = await self.fetch(charge_id)
        if charge.status != ChargeStatus.PENDING:
            return charge
        try:
            intent = await self._call(
                "cancel", self._client.v1.payment_intents.cancel_async(charge_id)
            )
        except NotFound:
            raise
        except ProviderError:
            now = await self.fetch(charge_id)
            if now.status != ChargeStatus.PENDING:
                return now
            raise
        return _charge(_dict(intent))

    async def stop_renewals(self, customer_id: str) -> None:
        """Clears the customer's default method and detaches every saved card, so that no
        off-session charge can be taken (Stripe holds no subscription of ours)."""
        v1 = self._client.v1
        try:
            await self._call(
                "stop renewals",
                v1.customers.update_async(
                    customer_id, {"invoice_settings": {"default_payment_method": ""}}
                ),
            )
            while True:
                methods = await self._call(
                    "stop renewals",
                    v1.payment_methods.list_async(
                        {"customer": customer_id, "type": "card", "limit": PAGE_SIZE}
                    ),
                )
                if not methods.data:
                    return
                for method in methods.data:
                    await self._call("stop renewals", v1.payment_methods.detach_async(method.id))
        except NotFound:
            return

    async def _saved_method(self, customer_id: str) -> str | None:
        v1 = self._client.v1
        customer = _dict(await self._call("customer", v1.customers.retrieve_async(customer_id)))
        default = _default_method(customer)
        if default is not None:
            return default
        methods = await self._call(
            "customer",
            v1.payment_methods.list_async({"customer": customer_id, "type": "card", "limit": 1}),
        )
        return methods.data[0].id if methods.data else None

    async def _find_intent(self, request: ChargeRequest) -> dict[str, Any] | None:
        """The customer's intent of ours for this charge: our reference and price in its
        metadata, the same amount and currency (an intent some other program made with a
        colliding reference is not ours)."""
        params: stripe.params.PaymentIntentListParams = {
            "customer": request.customer_id,
            "limit": self.page_size,
        }
        price = request.price
        while True:
            page = await self._call("charge", self._client.v1.payment_intents.list_async(params))
            for item in page.data:
                data = _dict(item)
                metadata = _mapping(data.get("metadata"))
                if (
                    metadata.get(REFERENCE_KEY) == request.reference
                    and metadata.get(PRICE_KEY) == price.key
                    and data.get("amount") == price.amount
                    and str(data.get("currency", "")).lower() == price.currency.lower()
                ):
                    return data
            if not page.has_more or not page.data:
                return None
            params["starting_after"] = page.data[-1].id

    # -- webhooks and events -------------------------------------------------------------

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> list[PaymentEvent]:
        """One event per delivery (Stripe sends one), after its `stripe-signature` header
        verifies over the raw body and its signed time is within the tolerance of `now`."""
        header = headers.get("stripe-signature")
        try:
            stripe.WebhookSignature.verify_header(
                body, header, self.options.webhook_secret.get_secret_value(), tolerance=None
            )
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise InvalidWebhook("stripe webhook: the signature does not verify") from None
        assert header is not None
        signed_at = _signed_at(header)
        moment = (now or datetime.now(UTC)).timestamp()
        if abs(moment - signed_at) > WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook("stripe webhook: signed outside the tolerance (a replay?)")
        try:
            data = json.loads(body)
            return [_event(data)]
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidWebhook(f"stripe webhook: not an event ({type(exc).__name__})") from None

    async def events_since(self, cursor: str | None, *, limit: int = 100) -> EventPage:
        """Events after `cursor`, oldest first (see the module docstring for the cursor): one
        request per `page_size` new events, whatever the feed's length behind the cursor."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after_id, since = _parse_cursor(cursor)
        listed: list[dict[str, Any]]
        more = False
        if after_id is not None:
            try:
                listed, more = await self._events_after(after_id, limit)
            except NotFound:
                # Stripe no longer lists that event (30 days): from its time on, again.
                listed, more = await self._events_from(since, limit, skip=after_id)
        else:
            listed, more = await self._events_from(since, limit, skip=None)
        try:
            events = [_event(item) for item in listed]
        except (ValueError, TypeError, KeyError) as exc:
            raise ProviderError(
                f"stripe events: an event is unreadable ({type(exc).__name__})"
            ) from None
        if not events:
            return EventPage(events=(), cursor=cursor)
        last = listed[-1]
        return EventPage(
            events=tuple(events),
            cursor=f"evt:{last['id']}:{int(last.get('created') or 0)}",
            more=more,
        )

    page_size: int = PAGE_SIZE
    """Objects per list request; tests make it small to walk several pages."""

    def _event_params(self) -> stripe.params.EventListParams:
        return {"limit": self.page_size, "types": list(_EVENT_TYPES)}

    async def _events_after(self, after_id: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` events newer than `after_id`, oldest first, and whether more wait:
        `ending_before` gives the page just newer than the cursor, newest first."""
        collected: list[dict[str, Any]] = []
        cursor = after_id
        while True:
            params = self._event_params()
            params["ending_before"] = cursor
            page = await self._call("events", self._client.v1.events.list_async(params))
            items = [_dict(item) for item in page.data]
            items.reverse()
            collected.extend(items)
            if len(collected) >= limit:
                return collected[:limit], len(collected) > limit or bool(page.has_more)
            if not page.has_more or not items:
                return collected, False
            cursor = str(items[-1]["id"])

    async def _events_from(
        self, since: int, limit: int, *, skip: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The oldest `limit` events created at `since` or later (all of them when `since` is
        0), oldest first: the whole range is listed newest first, so this walks it all (only
        on a first pull or when the cursor's event is gone)."""
        params = self._event_params()
        if since:
            params["created"] = {"gte": since}
        listed: list[dict[str, Any]] = []
        while True:
            page = await self._call("events", self._client.v1.events.list_async(params))
            listed.extend(_dict(item) for item in page.data)
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        listed.reverse()
        seen: set[str] = set()
        fresh = []
        for item in listed:
            if item.get("id") != skip and item.get("id") not in seen:
                seen.add(str(item.get("id")))
                fresh.append(item)
        return fresh[:limit], len(fresh) > limit

    async def close(self) -> None:
        """Closes the SDK's HTTP connections."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    # -- calls and errors ----------------------------------------------------------------

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except stripe.StripeError as exc:
            raise self._error(operation, exc) from None

    def _error(self, operation: str, exc: stripe.StripeError) -> ProviderError:
        """Our error for a Stripe one, named by its class, code and HTTP status (Stripe's own
        messages may quote a masked key); a decline keeps Stripe's payer-fit message."""
        status = exc.http_status or 0
        code = exc.code or ""
        where = f"stripe {operation}: {type(exc).__name__}"
        where += f" {code}" if code else ""
        where += f" (HTTP {status})" if status else ""
        if isinstance(exc, stripe.CardError):
            return Declined(self._scrub(str(exc.user_message or DECLINED)))
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return ConfigurationError(f"{where}: the api_key was refused")
        if (
            isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
            or status >= 500
            or status == 429
            # idempotency_key_in_use, lock_timeout: another request on the same key or
            # object is running; the same call succeeds a little later.
            or status == 409
            or code in ("idempotency_key_in_use", "lock_timeout")
        ):
            return Unavailable(where)
        if isinstance(exc, stripe.InvalidRequestError) and (
            status == 404 or code == "resource_missing"
        ):
            return NotFound(where)
        return ProviderError(where)

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, sending the form-encoded body as `content=`: the SDK passes
    it as `data=<str>`, which httpx deprecates (a DeprecationWarning on every request now,
    an error once httpx drops it)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs["content"] = kwargs.pop("data") or None
        return [args, kwargs]


def _dict(item: Any) -> dict[str, Any]:
    """A Stripe object as a plain dict (nested objects too)."""
    data = item.to_dict() if hasattr(item, "to_dict") else item
    if not isinstance(data, dict):
        raise ProviderError(f"stripe: unexpected answer ({type(item).__name__})")
    return data


def _inactive(data: Mapping[str, Any]) -> bool:
    # localstripe keeps an updated flag as the form's string ("false").
    return data.get("active") in (False, "false")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _charge(intent: Mapping[str, Any]) -> Charge:
    """A PaymentIntent as a Charge. FAILED is an intent cancelled after a refusal (the
    `charge` path: our `holdfast_declined` mark, or a payment error still on it); an intent a
    payer can still confirm (even after a refused card) is PENDING with the client secret,
    carrying the refusal's message."""
    status = intent.get("status")
    error = _mapping(intent.get("last_payment_error"))
    failure = error.get("message") if isinstance(error.get("message"), str) else None
    declined = _mapping(intent.get("metadata")).get(DECLINED_KEY) == "1"
    action = NextAction()
    if status == "succeeded":
        ours = ChargeStatus.SUCCEEDED
    elif status == "canceled":
        ours = ChargeStatus.FAILED if error or declined else ChargeStatus.CANCELED
    elif status in _PAYER_ACTS:
        ours = ChargeStatus.PENDING
        secret = intent.get("client_secret")
        action = NextAction(
            ActionKind.CONFIRM_CARD, client_secret=secret if isinstance(secret, str) else None
        )
    elif status in _IN_FLIGHT:
        ours = ChargeStatus.PENDING
    else:
        raise ProviderError(f"stripe: a payment intent in an unknown status {status!r}")
    if ours is ChargeStatus.FAILED and failure is None:
        failure = DECLINED
    extra = {
        key: intent[key]
        for key in ("status", "customer", "payment_method", "created")
        if intent.get(key) is not None and not isinstance(intent[key], Mapping)
    }
    return Charge(
        id=str(intent["id"]),
        reference=str(_mapping(intent.get("metadata")).get(REFERENCE_KEY, "")),
        status=ours,
        amount=int(intent.get("amount") or 0),
        currency=str(intent.get("currency") or ""),
        action=action,
        failure=failure,
        extra=extra,
    )


def _no_redirects(params: stripe.params.PaymentIntentCreateParams, return_url: str | None) -> None:
    """A charge confirmed by us, not in the payer's browser: a method that redirects the
    payer (a bank page) needs somewhere to send them back to; without one, Stripe is told to
    offer no such method."""
    if return_url is not None:
        params["return_url"] = return_url
    else:
        params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}


def _not_declined(charge: Charge) -> Charge:
    if charge.status == ChargeStatus.FAILED:
        raise Declined(charge.failure or DECLINED)
    return charge


def _event(data: Any) -> PaymentEvent:
    """A Stripe event (`{id, type, created, data: {object}}`) normalised; ValueError,
    TypeError or KeyError when it is not one."""
    if not isinstance(data, Mapping):
        raise TypeError("not an object")
    event_id, kind_name, created = data["id"], data["type"], data["created"]
    if not (isinstance(event_id, str) and isinstance(kind_name, str) and event_id):
        raise ValueError("id and type are strings")
    if not isinstance(created, int) or isinstance(created, bool):
        raise ValueError("created is an integer")
    occurred_at = datetime.fromtimestamp(created, UTC)
    obj = _mapping(_mapping(data.get("data")).get("object"))
    extra = {"type": kind_name}
    metadata = _mapping(obj.get("metadata"))
    reference = metadata.get(REFERENCE_KEY)
    if (
        kind_name not in _EVENT_TYPES
        or obj.get("object") != "payment_intent"
        or not isinstance(reference, str)
        or PRICE_KEY not in metadata
    ):
        return PaymentEvent(
            id=event_id, kind=EventKind.IGNORED, occurred_at=occurred_at, extra=extra
        )
    try:
        charge = _charge(obj)
    except ProviderError as exc:
        raise ValueError(str(exc)) from None
    amount = obj.get("amount")
    currency = obj.get("currency")
    return PaymentEvent(
        id=event_id,
        kind=_KIND_OF_STATUS[charge.status],
        occurred_at=occurred_at,
        charge_id=charge.id,
        reference=reference,
        amount=amount if isinstance(amount, int) else None,
        currency=currency if isinstance(currency, str) else None,
        failure=charge.failure,
        extra={**extra, "status": obj.get("status")},
    )


def _signed_at(header: str) -> int:
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            return int(value)
    raise InvalidWebhook("stripe webhook: the signature has no timestamp")


def _default_method(customer: Mapping[str, Any]) -> str | None:
    default = _mapping(customer.get("invoice_settings")).get("default_payment_method")
    if isinstance(default, Mapping):
        default = default.get("id")
    return default if isinstance(default, str) and default else None


def _parse_cursor(cursor: str | None) -> tuple[str | None, int]:
    """`evt:<event id>:<created>` -> (the id, its time); a cursor of the earlier form
    `<created>:<ids>` -> (None, that time): read again from that second on."""
    if not cursor:
        return None, 0
    if cursor.startswith("evt:"):
        event_id, _, moment = cursor.removeprefix("evt:").rpartition(":")
        if event_id and moment.isdigit():
            return event_id, int(moment)
    else:
        moment = cursor.partition(":")[0]
        if moment.isdigit():
            return None, int(moment)
    raise ProviderError("stripe events: not a cursor this provider returned")
