"""BTCPay Server through its Greenfield API v1: one invoice per paid period.

No maintained Python client exists for Greenfield, so this module is a small typed client
over `httpx.AsyncClient` (`Authorization: token <api key>`), held to the API description in
`tests/contracts/btcpay-greenfield.openapi.json` by the contract-checking fake the tests run
against (`tests/btcpay_fake.py`).

How the interface maps onto BTCPay:
- A charge is an invoice of the configured store. Its `metadata.orderId` is
  `holdfast:<reference>` (BTCPay indexes it, and the invoice list filters on it, which makes
  `charge` idempotent: an invoice already carrying the reference is returned instead of a
  second one). An invoice is only ever taken for ours when it is of our store, carries our
  own metadata (`holdfastCustomer`, ...) and, when found by reference, the amount, currency
  and payer asked for: the store's own apps (WooCommerce, the point of sale) and anyone else
  with an API key on the store create invoices too. The payer pays on BTCPay's hosted
  checkout: every pending charge's action is `PAY_AT_URL`.
- Bitcoin cannot be pulled from a payer, so an off-session renewal is an invoice like any
  other, PENDING with the checkout link for the payer.
- Nothing at BTCPay renews on its own (no plans, no saved methods): `sync_plans` keeps no
  vendor objects and `stop_renewals` has nothing to stop.
- Webhooks are signed `BTCPay-Sig: sha256=<hex HMAC-SHA256 of the raw body>` with the
  webhook's secret; BTCPay signs no timestamp header, but the signed body carries the
  delivery's `timestamp`, which is checked against WEBHOOK_TOLERANCE_SECONDS.
- Greenfield has no global event feed: `events_since` derives events from the store's
  invoices (see its docstring).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from providers.errors import (
    ConfigurationError,
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
from providers.payments.money import minor_unit_exponent

__all__ = ["BTCPayPayments", "minor_unit_exponent", "to_decimal_string", "to_minor_units"]

CUSTOMER_PREFIX = "btcpay-payer:"
"""`create_customer` returns this followed by our reference (BTCPay has no payer object)."""

META_PREFIX = "holdfast"
"""Our own keys in an invoice's metadata start with this (`holdfastCustomer`, ...)."""

ORDER_PREFIX = "holdfast:"
"""An invoice's `metadata.orderId` is this followed by our reference: the store's own apps
(WooCommerce, the point of sale) use bare order numbers, which would collide with ours."""

MAX_PENDING_IN_CURSOR = 10
"""How many still-pending invoices `events_since` carries in its cursor (re-fetched by id on
each pull) so that the cursor can move past them; beyond that it waits behind the next one."""

_FINAL_INVOICE_STATUSES = frozenset({"Settled", "Expired", "Invalid"})

_WEBHOOK_KINDS: Mapping[str, EventKind] = {
    "InvoiceSettled": EventKind.CHARGE_SUCCEEDED,
    "InvoiceExpired": EventKind.CHARGE_FAILED,
    "InvoiceInvalid": EventKind.CHARGE_FAILED,
    "InvoiceProcessing": EventKind.CHARGE_PENDING,
    "InvoiceReceivedPayment": EventKind.CHARGE_PENDING,
}

_STATUS_EVENT_TYPES: Mapping[str, str] = {
    "Settled": "InvoiceSettled",
    "Expired": "InvoiceExpired",
    "Invalid": "InvoiceInvalid",
}

_FAILURE_EXPIRED = "The invoice expired before it was paid."
_FAILURE_EXPIRED_PARTIAL = "The invoice expired after being paid only in part."
_FAILURE_PAID_LATE = "The invoice was paid after it expired; support will sort it out."
_FAILURE_INVALID = "The payment could not be confirmed in time."


def to_decimal_string(amount: int, currency: str) -> str:
    """Minor units as the decimal string Greenfield takes (`1050`, `eur` -> `10.50`)."""
    exponent = minor_unit_exponent(currency)
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"


def to_minor_units(amount: str, currency: str) -> int:
    """Greenfield's decimal string as minor units; ProviderError when it is not a whole
    number of them."""
    try:
        value = Decimal(amount).scaleb(minor_unit_exponent(currency))
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ProviderError(f"BTCPay returned an amount that is not a number: {amount!r}") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise ProviderError(f"BTCPay returned an amount finer than {currency}'s minor unit")
    return int(value)


class _Refused(ProviderError):
    """BTCPay refused a request (HTTP 400, 409, 422...): not transient, not a bad key."""


_INVOICE_ID = re.compile(r"[A-Za-z0-9]{1,64}")


class BTCPayPayments:
    """A `PaymentProvider` on one BTCPay Server store, through the Greenfield API."""

    kind: ClassVar[str] = "btcpay"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        url: str
        """The server's base URL (`https://pay.example.org`); the API lives under `/api/v1`."""
        api_key: SecretStr
        """A Greenfield API key with the store permissions `btcpay.store.canviewinvoices`,
        `btcpay.store.cancreateinvoice` and `btcpay.store.canmodifyinvoices`."""
        store_id: str = Field(min_length=1)
        webhook_secret: SecretStr
        """The secret of the store webhook that points at our webhook endpoint."""
        timeout: float = Field(default=30.0, gt=0)
        """Seconds for each request (connect, read, write)."""
        invoice_expiration_minutes: int | None = Field(default=None, ge=1)
        """How long the payer has to pay an invoice; None: the store's setting (15 min)."""

    def __init__(
        self,
        options: BTCPayPayments.Options,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` is a test seam (an in-process server); configuration never sets it."""
        self.options = options
        self._client = httpx.AsyncClient(
            base_url=options.url.rstrip("/"),
            headers={
                "Authorization": f"token {options.api_key.get_secret_value()}",
                "Accept": "application/json",
            },
            timeout=options.timeout,
            transport=transport,
        )
        self._secret = options.webhook_secret.get_secret_value().encode()

    # -- the interface ------------------------------------------------------------------

    async def sync_plans(self, prices: Sequence[PlanPrice]) -> Mapping[str, str]:
        """Keeps no vendor objects: returns an empty mapping.

        Each paid period is one invoice created by `charge` with its own amount, which needs
        no plan at BTCPay. The Greenfield subscriptions API (offerings, plans, subscribers)
        would run BTCPay's own renewal engine next to our ledger: two sources of truth for who
        pays until when, which the design rules out."""
        return {}

    async def create_customer(self, customer: Customer) -> str:
        """`btcpay-payer:<reference>`, with no call: Greenfield invoices have no payer object
        (the subscriptions API's subscribers belong to its renewal engine, unused here).
        Deterministic, so a retried job gets the same id."""
        return f"{CUSTOMER_PREFIX}{customer.reference}"

    async def charge(self, request: ChargeRequest) -> Charge:
        """An invoice for the period, or the one of ours already carrying `request.reference`
        (found through the list's `orderId` filter, and only when it is of our store, carries
        our metadata, the same payer, amount and currency). PENDING with the checkout link to
        pay at, off-session or not."""
        existing = await self._find_by_reference(request)
        if existing is not None:
            return self._to_charge(existing)
        price = request.price
        metadata: dict[str, Any] = {
            "orderId": f"{ORDER_PREFIX}{request.reference}",
            "itemDesc": price.name,
            "itemCode": price.key,
            f"{META_PREFIX}Customer": request.customer_id,
            f"{META_PREFIX}Plan": price.plan,
            f"{META_PREFIX}Interval": price.interval.value,
            f"{META_PREFIX}PeriodStart": request.period_start.isoformat(),
            f"{META_PREFIX}PeriodEnd": request.period_end.isoformat(),
            f"{META_PREFIX}OffSession": request.off_session,
        }
        checkout: dict[str, Any] = {}
        if request.return_url is not None:
            checkout["redirectURL"] = request.return_url
        if self.options.invoice_expiration_minutes is not None:
            checkout["expirationMinutes"] = self.options.invoice_expiration_minutes
        body: dict[str, Any] = {
            "amount": to_decimal_string(price.amount, price.currency),
            "currency": price.currency.upper(),
            "metadata": metadata,
            "additionalSearchTerms": [request.reference],
        }
        if checkout:
            body["checkout"] = checkout
        invoice = await self._request(
            "POST", f"/api/v1/stores/{self.options.store_id}/invoices", json=body
        )
        return self._to_charge(_as_object(invoice))

    async def fetch(self, charge_id: str) -> Charge:
        """The invoice now: New and Processing are PENDING, Settled SUCCEEDED, Expired
        FAILED, Invalid FAILED (CANCELED when it was marked invalid by hand, as `cancel`
        does). NotFound for an invoice that is not ours (another store's, the store's own
        apps')."""
        return self._to_charge(await self._get_invoice(charge_id))

    async def cancel(self, charge_id: str) -> Charge:
        """Marks an unpaid (New) invoice Invalid, so its checkout takes no more payment.

        Any other invoice is returned as it is: a final one, and a Processing one (the payer
        paid, the payment awaits confirmations: marking it Invalid would leave coins paid and
        never credited; it stays PENDING and settles or fails on its own). When BTCPay refuses
        the marking because the invoice changed meanwhile (paid while we asked), the invoice is
        fetched again and returned as it now is."""
        invoice = await self._get_invoice(charge_id)
        if invoice.get("status") != "New" or invoice.get("additionalStatus") == "PaidPartial":
            # A New invoice paid in part keeps the payer's coins too: left to expire, when
            # the merchant settles the part paid with the payer (BTCPay's own flow).
            return self._to_charge(invoice)
        try:
            marked = await self._request(
                "POST", f"/api/v1/invoices/{charge_id}/status", json={"status": "Invalid"}
            )
        except _Refused:
            now = await self._get_invoice(charge_id)
            if now.get("status") != "New":
                return self._to_charge(now)
            raise
        return self._to_charge(self._ours_or_not_found(_as_object(marked)))

    async def stop_renewals(self, customer_id: str) -> None:
        """Nothing to do: BTCPay keeps no payment method and creates no invoice on its own;
        every renewal is an invoice `charge` creates."""

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> list[PaymentEvent]:
        """The delivery's event, after checking `btcpay-sig` (HMAC-SHA256 of `body` with the
        webhook secret, compared in constant time) and the signed `timestamp` (refused when
        more than WEBHOOK_TOLERANCE_SECONDS away from `now`, either way).

        The event id is the payload's `originalDeliveryId` (the `deliveryId` of its first
        delivery, kept by BTCPay on every redelivery), falling back to `deliveryId`. A manual
        redelivery carries a fresh `timestamp` and is accepted (and deduplicated by that id);
        BTCPay's automatic retries resend the first body, so one retried past the tolerance is
        refused: `events_since` catches up what was refused.

        Invoice events name the invoice (`charge_id`) and our reference (its
        `metadata.orderId` without `holdfast:`, which BTCPay includes); other event types,
        and events about invoices that are not ours (another store's, or without our
        metadata), are IGNORED and name no charge or reference."""
        signature = headers.get("btcpay-sig", "")
        scheme, _, digest = signature.partition("=")
        if scheme != "sha256" or not digest:
            raise InvalidWebhook("the BTCPay-Sig header is missing or not sha256=<hex>")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), digest.strip().lower().encode()):
            raise InvalidWebhook("the BTCPay-Sig signature does not verify")
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidWebhook("the webhook body is not JSON") from exc
        if not isinstance(payload, dict):
            raise InvalidWebhook("the webhook body is not a JSON object")
        event_type = payload.get("type")
        timestamp = payload.get("timestamp")
        delivery_id = payload.get("originalDeliveryId") or payload.get("deliveryId")
        if not isinstance(event_type, str) or not isinstance(delivery_id, str):
            raise InvalidWebhook("the webhook body has no type or delivery id")
        if (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
            or not math.isfinite(timestamp)
        ):
            raise InvalidWebhook("the webhook body has no timestamp")
        current = (now or datetime.now(UTC)).timestamp()
        if abs(current - timestamp) > WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidWebhook("the webhook's timestamp is outside the tolerance")
        occurred_at = datetime.fromtimestamp(timestamp, UTC)
        kind = _WEBHOOK_KINDS.get(event_type, EventKind.IGNORED)
        invoice_id = payload.get("invoiceId")
        if not event_type.startswith("Invoice"):
            return [
                PaymentEvent(
                    id=delivery_id,
                    kind=EventKind.IGNORED,
                    occurred_at=occurred_at,
                    extra={"type": event_type},
                )
            ]
        if not isinstance(invoice_id, str) or not invoice_id:
            raise InvalidWebhook("the invoice event names no invoice")
        metadata = payload.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidWebhook("the invoice event's metadata is not an object")
        extra = {
            "type": event_type,
            "deliveryId": payload.get("deliveryId"),
            "isRedelivery": payload.get("isRedelivery") is True,
            "storeId": payload.get("storeId"),
        }
        reference = _our_reference(metadata)
        if payload.get("storeId") != self.options.store_id or reference is None:
            return [
                PaymentEvent(
                    id=delivery_id, kind=EventKind.IGNORED, occurred_at=occurred_at, extra=extra
                )
            ]
        failure: str | None = None
        if event_type == "InvoiceExpired":
            failure = _FAILURE_EXPIRED_PARTIAL if payload.get("partiallyPaid") else _FAILURE_EXPIRED
        elif event_type == "InvoiceInvalid":
            if payload.get("manuallyMarked") is True:
                kind = EventKind.CHARGE_CANCELED
            else:
                failure = _FAILURE_INVALID
        return [
            PaymentEvent(
                id=delivery_id,
                kind=kind,
                occurred_at=occurred_at,
                charge_id=invoice_id,
                reference=reference,
                failure=failure,
                extra=extra,
            )
        ]

    async def events_since(self, cursor: str | None, *, limit: int = 100) -> EventPage:
        """Events derived from the store's invoices, for reconciliation.

        Greenfield has no event feed, and an invoice records no time for its status changes,
        so this walks the store's invoices of ours in creation order (`createdTime`, then id)
        from the cursor and yields one event per invoice that reached a final status: id
        `<invoiceId>:<webhook type>` (`InvoiceSettled`, `InvoiceExpired`, `InvoiceInvalid`),
        at the invoice's expiration time for Expired, its creation time otherwise. These ids
        differ from the webhook deliveries' ids for the same change (the ledger's transition
        of a final charge must be a no-op; see the report on base.py).

        The cursor (`<createdTime>:<ids done at that second>;<ids still pending>`) moves past
        an invoice that is still New or Processing and carries its id (at most
        MAX_PENDING_IN_CURSOR of them): each pull fetches those again by id and yields the
        event of each one that became final, so one slow invoice (Processing can last a day)
        holds nothing back. Past that many, the cursor waits behind the next pending invoice:
        final invoices after it are yielded on each pull until it is final too (expiry bounds
        that), with the same ids, deduplicated by the ledger; `more` stays false behind it.
        The list is read newest first with skip/take while invoices are being created, so a
        page can repeat an invoice: invoices are deduplicated by id. A status changed by hand
        after the cursor passed (a settled invoice marked invalid) comes only by webhook.
        Invoices that are not ours (the store's own apps) are skipped."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        done_time, done_ids, pending_ids = _parse_cursor(cursor)
        listed = await self._list_since(done_time)
        candidates: dict[str, dict[str, Any]] = {}
        for inv in listed:
            invoice_id = inv.get("id")
            if (
                isinstance(invoice_id, str)
                and invoice_id not in pending_ids
                and self._is_ours(inv)
                and _after(inv, done_time, done_ids)
            ):
                candidates.setdefault(invoice_id, inv)
        still_pending: list[str] = []
        for invoice_id in sorted(pending_ids):
            try:
                inv = await self._get_invoice(invoice_id)
            except NotFound:
                continue  # gone (deleted, archived): nothing more will come of it
            if not self._is_ours(inv):
                continue
            if inv.get("status") in _FINAL_INVOICE_STATUSES:
                candidates[invoice_id] = inv
            else:
                still_pending.append(invoice_id)
        ordered = sorted(candidates.values(), key=_position)
        events: list[PaymentEvent] = []
        new_time, new_ids = done_time, set(done_ids)
        blocked = False
        more = False
        for invoice in ordered:
            invoice_id = str(invoice["id"])
            revisited = invoice_id in pending_ids
            final = invoice.get("status") in _FINAL_INVOICE_STATUSES
            if not final:
                if blocked or len(still_pending) >= self.max_pending:
                    blocked = True
                    continue
                still_pending.append(invoice_id)
            elif len(events) == limit:
                # Behind a pending invoice the same events would come again: no `more`.
                more = not blocked
                if revisited:
                    still_pending.append(invoice_id)  # final, not yielded yet: next pull
                    continue
                break
            else:
                events.append(self._invoice_event(invoice))
            if not blocked and not revisited:
                created, _ = _position(invoice)
                if created != new_time:
                    new_time, new_ids = created, set()
                new_ids.add(invoice_id)
        new_cursor = cursor
        state = (new_time, new_ids, set(still_pending))
        if new_time is not None and state != (done_time, set(done_ids), set(pending_ids)):
            new_cursor = _format_cursor(new_time, new_ids, still_pending)
        return EventPage(events=tuple(events), cursor=new_cursor, more=more)

    async def close(self) -> None:
        """Closes the HTTP connections."""
        await self._client.aclose()

    # -- helpers ------------------------------------------------------------------------

    page_size: int = 100
    """Invoices per list request (`take`); tests make it small to walk several pages."""
    max_pending: int = MAX_PENDING_IN_CURSOR
    """How many pending invoices the cursor carries (see `events_since`)."""

    def _is_ours(self, invoice: Mapping[str, Any]) -> bool:
        """Whether `charge` created the invoice in our store (a store may also sell through
        its own apps, and an API key may be shared)."""
        return invoice.get("storeId") == self.options.store_id and (
            _our_reference(invoice.get("metadata")) is not None
        )

    def _ours_or_not_found(self, invoice: dict[str, Any]) -> dict[str, Any]:
        if not self._is_ours(invoice):
            raise NotFound(f"BTCPay invoice {invoice.get('id')!r} is not a charge of ours")
        return invoice

    async def _get_invoice(self, invoice_id: str) -> dict[str, Any]:
        if not _INVOICE_ID.fullmatch(invoice_id):
            raise NotFound(f"no BTCPay invoice {invoice_id[:100]!r}")
        invoice = _as_object(await self._request("GET", f"/api/v1/invoices/{invoice_id}"))
        return self._ours_or_not_found(invoice)

    async def _find_by_reference(self, request: ChargeRequest) -> dict[str, Any] | None:
        order_id = f"{ORDER_PREFIX}{request.reference}"
        found = await self._request(
            "GET",
            f"/api/v1/stores/{self.options.store_id}/invoices",
            params={"orderId": order_id},
        )
        if not isinstance(found, list):
            raise ProviderError("BTCPay's invoice list is not a list")
        price = request.price
        matching = [
            inv
            for inv in found
            if isinstance(inv, dict)
            and self._is_ours(inv)
            and inv["metadata"].get("orderId") == order_id
            and inv["metadata"].get(f"{META_PREFIX}Customer") == request.customer_id
            and str(inv.get("currency", "")).lower() == price.currency.lower()
            and _same_amount(inv.get("amount"), price.amount, price.currency)
        ]
        if not matching:
            return None
        # The oldest: the charge the first attempt created.
        return min(matching, key=_position)

    async def _list_since(self, start: int | None) -> list[dict[str, Any]]:
        page_size = self.page_size
        skip = 0
        collected: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"skip": skip, "take": page_size}
            if start is not None:
                params["startDate"] = start
            page = await self._request(
                "GET", f"/api/v1/stores/{self.options.store_id}/invoices", params=params
            )
            if not isinstance(page, list):
                raise ProviderError("BTCPay's invoice list is not a list")
            collected.extend(inv for inv in page if isinstance(inv, dict))
            if len(page) < page_size:
                return collected
            skip += page_size

    async def _request(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        # `from None` throughout: an httpx exception holds the request, whose headers carry
        # the API key.
        try:
            response = await self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise Unavailable(f"BTCPay did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"BTCPay could not be reached ({type(exc).__name__})") from None
        status = response.status_code
        if status in (401, 403):
            raise ConfigurationError(
                f"BTCPay refused the api_key for {method} {path} (HTTP {status}): check the "
                "key and its store permissions"
            )
        if status == 404:
            if path.startswith(f"/api/v1/stores/{self.options.store_id}/"):
                raise ConfigurationError(
                    f"BTCPay has no store {self.options.store_id!r}: check the store_id"
                )
            raise NotFound(f"BTCPay has no {path}")
        if status == 429 or status >= 500:
            raise Unavailable(f"BTCPay answered {method} {path} with HTTP {status}")
        if status >= 400:
            raise _Refused(f"BTCPay refused {method} {path} (HTTP {status}): {_problem(response)}")
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"BTCPay answered {method} {path} with no JSON") from None

    def _to_charge(self, invoice: Mapping[str, Any]) -> Charge:
        invoice_id = invoice.get("id")
        reference = _our_reference(invoice.get("metadata"))
        currency = invoice.get("currency")
        amount = invoice.get("amount")
        if not isinstance(invoice_id, str) or not isinstance(currency, str):
            raise ProviderError("BTCPay returned an invoice without id or currency")
        if reference is None:
            raise ProviderError(f"BTCPay invoice {invoice_id} carries no orderId of ours")
        status, failure = _charge_status(invoice)
        action = NextAction()
        link = invoice.get("checkoutLink")
        if invoice.get("status") == "New" and isinstance(link, str):
            action = NextAction(kind=ActionKind.PAY_AT_URL, url=link)
        return Charge(
            id=invoice_id,
            reference=reference,
            status=status,
            amount=to_minor_units(str(amount), currency),
            currency=currency.lower(),
            action=action,
            failure=failure,
            extra={
                "status": invoice.get("status"),
                "additionalStatus": invoice.get("additionalStatus"),
                "checkoutLink": link,
                "paidAmount": invoice.get("paidAmount"),
            },
        )

    def _invoice_event(self, invoice: Mapping[str, Any]) -> PaymentEvent:
        charge = self._to_charge(invoice)
        status = str(invoice.get("status"))
        kind = {
            ChargeStatus.SUCCEEDED: EventKind.CHARGE_SUCCEEDED,
            ChargeStatus.FAILED: EventKind.CHARGE_FAILED,
            ChargeStatus.CANCELED: EventKind.CHARGE_CANCELED,
        }[charge.status]
        when = invoice.get("expirationTime") if status == "Expired" else invoice.get("createdTime")
        return PaymentEvent(
            id=f"{charge.id}:{_STATUS_EVENT_TYPES[status]}",
            kind=kind,
            occurred_at=datetime.fromtimestamp(float(when or 0), UTC),
            charge_id=charge.id,
            reference=charge.reference,
            amount=charge.amount,
            currency=charge.currency,
            failure=charge.failure,
            extra={"status": status, "additionalStatus": invoice.get("additionalStatus")},
        )


def _charge_status(invoice: Mapping[str, Any]) -> tuple[ChargeStatus, str | None]:
    status = invoice.get("status")
    additional = invoice.get("additionalStatus")
    if status == "Settled":
        return ChargeStatus.SUCCEEDED, None
    if status == "Expired":
        if additional == "PaidLate":
            return ChargeStatus.FAILED, _FAILURE_PAID_LATE
        if additional == "PaidPartial":
            return ChargeStatus.FAILED, _FAILURE_EXPIRED_PARTIAL
        return ChargeStatus.FAILED, _FAILURE_EXPIRED
    if status == "Invalid":
        if additional == "Marked":
            return ChargeStatus.CANCELED, None
        return ChargeStatus.FAILED, _FAILURE_INVALID
    if status in ("New", "Processing"):
        return ChargeStatus.PENDING, None
    raise ProviderError(
        f"BTCPay returned an invoice status this provider does not know: {status!r}"
    )


def _after(invoice: Mapping[str, Any], done_time: int | None, done_ids: frozenset[str]) -> bool:
    """Whether the invoice comes after the cursor `done_time`, `done_ids`."""
    created, invoice_id = _position(invoice)
    if done_time is None or created > done_time:
        return True
    return created == done_time and invoice_id not in done_ids


def _our_reference(metadata: Any) -> str | None:
    """Our reference in an invoice's metadata: its `orderId` without `holdfast:`, when the
    metadata also carries our own keys; None for any other invoice."""
    if not isinstance(metadata, Mapping) or f"{META_PREFIX}Customer" not in metadata:
        return None
    order_id = metadata.get("orderId")
    if not isinstance(order_id, str) or not order_id.startswith(ORDER_PREFIX):
        return None
    return order_id.removeprefix(ORDER_PREFIX) or None


def _same_amount(amount: Any, expected: int, currency: str) -> bool:
    try:
        return to_minor_units(str(amount), currency) == expected
    except ProviderError:
        return False


def _position(invoice: Mapping[str, Any]) -> tuple[int, str]:
    created = invoice.get("createdTime")
    return (int(created) if isinstance(created, int | float) else 0, str(invoice.get("id", "")))


def _parse_cursor(cursor: str | None) -> tuple[int | None, frozenset[str], frozenset[str]]:
    """`<createdTime>:<id>,<id>...;<id>,<id>...`: every invoice created before that time is
    done, and those created at that very second whose ids are listed (ids do not order by
    creation); after `;`, invoices passed while still pending, fetched again on each pull."""
    if cursor is None:
        return None, frozenset(), frozenset()
    position, _, pending = cursor.partition(";")
    created, sep, ids = position.partition(":")
    if not sep or not created.isdigit():
        raise ProviderError("not a cursor this provider returned")
    return (
        int(created),
        frozenset(filter(None, ids.split(","))),
        frozenset(filter(None, pending.split(","))),
    )


def _format_cursor(created: int, done: set[str], pending: Sequence[str]) -> str:
    cursor = f"{created}:{','.join(sorted(done))}"
    if pending:
        cursor += f";{','.join(sorted(pending))}"
    return cursor


def _as_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProviderError("BTCPay answered with something other than a JSON object")
    return value


def _problem(response: httpx.Response) -> str:
    """The server's own message: ProblemDetails `{code, message}` or ValidationProblemDetails
    `[{path, message}]`."""
    try:
        body = response.json()
    except ValueError:
        return "no details"
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, list):
        parts = [
            f"{item.get('path')}: {item.get('message')}" for item in body if isinstance(item, dict)
        ]
        if parts:
            return "; ".join(parts)
    return "no details"
