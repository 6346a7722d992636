"""A contract-checking fake BTCPay Server (Greenfield API v1) for the payments tests.

It implements, statefully and in memory, only what `providers/payments/btcpay.py` calls: the
store's invoice list (with the `orderId`, `startDate`, `skip` and `take` filters), invoice
creation, fetching one invoice and marking its status. Every request it receives and every
response it sends is validated with openapi-core against BTCPay's published API description,
`tests/contracts/btcpay-greenfield.openapi.json` (a copy of
`/work/shared/contracts/btcpay-greenfield.openapi.json`: BTCPay Server's
`BTCPayServer/wwwroot/swagger/v1/swagger.template*.json` merged, at commit
03345c2886a58ea4d2f603cb6554b2e3f5d690a4, MIT licence). A request the contract does not allow
is answered 400 and recorded in `violations`; a response that breaks it is recorded too and
answered 500. Tests assert `violations` is empty after each test.

Two repairs are applied to the contract before use, each one a place where the description
says something BTCPay itself does not do (see `repair_contract`):
- security requirements list `API_Key` and `Basic` in one object, which OpenAPI reads as
  "both at once" (impossible: both are the Authorization header); BTCPay takes either.
- schemas composed with `allOf` where one member has `additionalProperties: false` (invoices,
  invoice requests, webhook events) reject every property the other members define, so no
  invoice with metadata would validate; the members are merged into one schema first, which
  keeps unknown properties refused.

Test hooks, outside the contract, are Python methods (`settle`, `expire`, `unavailable`,
`webhook_body`, `send_webhook`) and one route, `POST /_fake/inbox`, that records the
webhook deliveries it receives (so a test can point `send_webhook` at the fake itself).

The server runs in a thread of the test process on a free port (uvicorn), so the adapter
talks real HTTP unchanged, and the hooks are plain method calls on the same object.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from openapi_core import OpenAPI
from openapi_core.contrib.starlette.requests import StarletteOpenAPIRequest
from openapi_core.contrib.starlette.responses import StarletteOpenAPIResponse
from openapi_schema_validator import OAS30Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONTRACT_PATH = Path(__file__).parent / "contracts" / "btcpay-greenfield.openapi.json"

API_KEY = "test-btcpay-api-key-5f0c1d"
WEBHOOK_SECRET = "test-btcpay-webhook-secret-9a7e"
STORE_ID = "9CiNzKoANXxmk5ayZngSXrHTiVvvgCrwrpFQd4m2K776"
WEBHOOK_ID = "WbHk7Qw2m3Lq9TfGx1"

_WEBHOOK_SCHEMAS = {
    "InvoiceSettled": "WebhookInvoiceSettledEvent",
    "InvoiceExpired": "WebhookInvoiceExpiredEvent",
    "InvoiceInvalid": "WebhookInvoiceInvalidEvent",
    "InvoiceProcessing": "WebhookInvoiceProcessingEvent",
    "InvoiceReceivedPayment": "WebhookInvoiceReceivedPaymentEvent",
    "InvoiceCreated": "WebhookInvoiceEvent",
}


# -- the contract ---------------------------------------------------------------------------


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _flatten_all_of(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """One object schema with the properties of every `allOf` member (recursively)."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.pop("properties", {}))
    required: list[str] = list(merged.pop("required", []))
    closed = merged.get("additionalProperties") is False
    for member in schema["allOf"]:
        resolved = _resolve(spec, member)
        if "allOf" in resolved:
            resolved = _flatten_all_of(spec, resolved)
        for name, prop in resolved.get("properties", {}).items():
            properties[name] = {"allOf": [properties[name], prop]} if name in properties else prop
        required += [r for r in resolved.get("required", []) if r not in required]
        closed = closed or resolved.get("additionalProperties") is False
        for key, value in resolved.items():
            if key not in ("properties", "required", "additionalProperties", "allOf"):
                merged.setdefault(key, value)
    merged["properties"] = properties
    if required:
        merged["required"] = required
    if closed:
        merged["additionalProperties"] = False
    return merged


def _closes_properties(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    for member in schema.get("allOf", []):
        resolved = _resolve(spec, member)
        if resolved.get("additionalProperties") is False:
            return True
        if "allOf" in resolved and _closes_properties(spec, resolved):
            return True
    return False


def repair_contract(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of the contract with the two repairs of the module docstring."""
    original = spec
    repaired = copy.deepcopy(spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "allOf" in node and _closes_properties(original, node):
                flat = _flatten_all_of(original, node)
                node.clear()
                node.update(flat)
            for key, value in node.items():
                if key == "security" and isinstance(value, list):
                    node[key] = [{name: scopes} for req in value for name, scopes in req.items()]
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(repaired)
    return repaired


def _deref(spec: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """`node` with every `$ref` inlined (for validating a lone schema)."""
    if depth > 40:
        return {}
    if isinstance(node, dict):
        if "$ref" in node:
            return _deref(spec, _resolve(spec, node), depth + 1)
        return {k: _deref(spec, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_deref(spec, v, depth + 1) for v in node]
    return node


class Contract:
    """The repaired contract, for openapi-core and for lone schemas (webhook payloads)."""

    def __init__(self, path: Path = CONTRACT_PATH) -> None:
        self.spec = repair_contract(json.loads(path.read_text()))
        self.openapi = OpenAPI.from_dict(self.spec)

    def query_parameters(self, method: str, path: str) -> set[str]:
        """The query parameters the contract declares for the operation at `path`."""
        for template, item in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            operation = item.get(method.lower())
            if operation is None or not re.match(pattern, path):
                continue
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            return {
                p["name"]
                for p in (_deref(self.spec, p) for p in parameters)
                if p.get("in") == "query"
            }
        return set()

    def schema_errors(self, schema_name: str, value: Any) -> list[str]:
        schema = _deref(self.spec, self.spec["components"]["schemas"][schema_name])
        validator = OAS30Validator(schema)
        return [e.message for e in validator.iter_errors(value)]


_IMPLEMENTED_QUERY = frozenset({"orderId", "startDate", "skip", "take"})
"""The list filters the fake applies (the adapter uses these)."""


# -- the fake -------------------------------------------------------------------------------


@dataclass
class Delivery:
    """A webhook delivery received at `/_fake/inbox`."""

    body: bytes
    headers: dict[str, str]


@dataclass
class FakeBTCPay:
    """The fake server's state and hooks; `app` is its ASGI application."""

    contract: Contract
    api_key: str = API_KEY
    webhook_secret: str = WEBHOOK_SECRET
    store_id: str = STORE_ID
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path with query) of every request, in order."""
    inbox: list[Delivery] = field(default_factory=list)
    unavailable: bool = False
    """When true, every API request is answered 503 (a test hook, not validated)."""
    base_url: str = "http://127.0.0.1"
    clock: float | None = None
    """When set, the creation time of new invoices (unix seconds) instead of now."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/_fake/inbox", self._inbox, methods=["POST"]),
                Route("/{path:path}", self._api, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    # -- hooks --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every invoice, request, delivery and violation; available again."""
        with self._lock:
            self.invoices.clear()
            self.violations.clear()
            self.requests.clear()
            self.inbox.clear()
            self.unavailable = False
            self.clock = None

    def settle(self, invoice_id: str) -> dict[str, Any]:
        """The payer paid in full and the payment confirmed: Settled."""
        return self._set_status(invoice_id, "Settled", "None", paid=True)

    def add_invoice(
        self,
        *,
        metadata: dict[str, Any],
        amount: str = "5.00",
        currency: str = "EUR",
        store_id: str | None = None,
    ) -> str:
        """An invoice made outside the adapter (the store's own apps, another store on the
        same server); its id."""
        with self._lock:
            invoice = self._new_invoice(
                {"amount": amount, "currency": currency, "metadata": metadata}, self.base_url
            )
            invoice["storeId"] = store_id or self.store_id
            return str(invoice["id"])

    def process(self, invoice_id: str) -> dict[str, Any]:
        """A payment was seen, not confirmed yet: Processing."""
        return self._set_status(invoice_id, "Processing", "None", paid=True)

    def pay_partly(self, invoice_id: str) -> dict[str, Any]:
        """The payer paid less than the amount; the invoice waits for the rest: New."""
        return self._set_status(invoice_id, "New", "PaidPartial", paid=False)

    def expire(self, invoice_id: str, *, partially_paid: bool = False) -> dict[str, Any]:
        """The invoice expired unpaid (or paid in part): Expired."""
        return self._set_status(
            invoice_id, "Expired", "PaidPartial" if partially_paid else "None", paid=False
        )

    def webhook_body(
        self,
        event_type: str,
        invoice_id: str,
        *,
        at: datetime,
        delivery_id: str | None = None,
        original_delivery_id: str | None = None,
        redelivery: bool = False,
        **fields: Any,
    ) -> bytes:
        """The body BTCPay would deliver for `event_type` about an invoice, checked against
        the contract's webhook schema for that type (AssertionError when it breaks it)."""
        invoice = self.invoices.get(invoice_id, {})
        delivery = delivery_id or secrets.token_hex(11)
        payload: dict[str, Any] = {
            "deliveryId": delivery,
            "webhookId": WEBHOOK_ID,
            "originalDeliveryId": original_delivery_id or delivery,
            "isRedelivery": redelivery,
            "type": event_type,
            "timestamp": int(at.timestamp()),
            "storeId": invoice.get("storeId", self.store_id),
            "invoiceId": invoice_id,
            "metadata": invoice.get("metadata", {}),
            **fields,
        }
        schema = _WEBHOOK_SCHEMAS.get(event_type, "WebhookInvoiceEvent")
        errors = self.contract.schema_errors(schema, payload)
        assert not errors, f"the fake built a {event_type} webhook the contract refuses: {errors}"
        return json.dumps(payload).encode()

    def sign(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        """The headers of a delivery of `body`: `BTCPay-Sig: sha256=<hex HMAC-SHA256>`."""
        key = (secret if secret is not None else self.webhook_secret).encode()
        digest = hmac.new(key, body, hashlib.sha256).hexdigest()
        return {"btcpay-sig": f"sha256={digest}", "content-type": "application/json"}

    def send_webhook(self, url: str, body: bytes, *, secret: str | None = None) -> int:
        """POSTs a signed delivery of `body` to `url`, as BTCPay does; the status code."""
        headers = {"BTCPay-Sig": self.sign(body, secret)["btcpay-sig"]}
        headers["Content-Type"] = "application/json"
        return httpx.post(url, content=body, headers=headers, timeout=10).status_code

    # -- handlers -----------------------------------------------------------------------

    def _set_status(
        self, invoice_id: str, status: str, additional: str, *, paid: bool
    ) -> dict[str, Any]:
        with self._lock:
            invoice = self.invoices[invoice_id]
            invoice["status"] = status
            invoice["additionalStatus"] = additional
            if paid:
                invoice["paidAmount"] = invoice["amount"]
            invoice["availableStatusesForManualMarking"] = _markable(status)
            return copy.deepcopy(invoice)

    async def _inbox(self, request: Request) -> Response:
        self.inbox.append(Delivery(await request.body(), dict(request.headers)))
        return Response(status_code=200)

    async def _api(self, request: Request) -> Response:
        body = await request.body()
        query = f"?{request.url.query}" if request.url.query else ""
        self.requests.append((request.method, request.url.path + query))
        openapi_request = StarletteOpenAPIRequest(request, body)
        result = self.contract.openapi.unmarshal_request(openapi_request)
        problems = [_describe(e) for e in result.errors]
        if not problems:
            # OpenAPI lets a server ignore query parameters it does not declare, and so does
            # openapi-core; a fake that did would let an adapter rely on a filter BTCPay does
            # not have (or has under another name), so they are violations here. So are
            # declared ones this fake does not implement: it would answer as if unfiltered.
            declared = self.contract.query_parameters(request.method, request.url.path)
            for name in request.query_params:
                if name not in declared:
                    problems.append(f"query parameter {name!r} is not in the contract")
                elif name not in _IMPLEMENTED_QUERY:
                    problems.append(f"query parameter {name!r} is not implemented by the fake")
        if problems:
            detail = "; ".join(problems)
            self.violations.append(f"request {request.method} {request.url.path}: {detail}")
            return JSONResponse(
                [{"path": "", "message": f"not allowed by the contract: {detail}"}],
                status_code=400,
            )
        # Down, for a request the contract allows (a refused one is refused all the same).
        if self.unavailable:
            return JSONResponse({"code": "unavailable", "message": "down"}, status_code=503)
        response = self._handle(request, body)
        outcome = self.contract.openapi.unmarshal_response(
            openapi_request, StarletteOpenAPIResponse(response)
        )
        if outcome.errors:
            detail = "; ".join(_describe(e) for e in outcome.errors)
            self.violations.append(f"response to {request.method} {request.url.path}: {detail}")
            return JSONResponse({"code": "fake-broke-contract", "message": detail}, 500)
        return response

    def _handle(self, request: Request, body: bytes) -> Response:
        path = request.url.path.split("/")
        method = request.method
        if request.headers.get("authorization") != f"token {self.api_key}":
            # The contract gives the invoice list a 401 with ProblemDetails; the other
            # operations used here document only 403 (with no body) for a key refused.
            if path[-1] == "invoices" and method == "GET":
                problem = {"code": "unauthenticated", "message": "Authentication is required"}
                return JSONResponse(problem, status_code=401)
            return Response(status_code=403)
        with self._lock:
            if path[1:4] == ["api", "v1", "stores"] and len(path) == 6 and path[5] == "invoices":
                if path[4] != self.store_id:
                    return Response(status_code=403)
                if method == "GET":
                    return self._list(request)
                return self._create(json.loads(body), request)
            if path[1:4] == ["api", "v1", "invoices"] and len(path) in (5, 6):
                invoice = self.invoices.get(path[4])
                if len(path) == 5 and method == "GET":
                    if invoice is None:
                        return Response(status_code=404)
                    return JSONResponse(invoice)
                if len(path) == 6 and path[5] == "status" and method == "POST":
                    return self._mark(invoice, json.loads(body)["status"])
        # An operation the contract has but this fake does not implement: answering like a
        # refused key would hide that the adapter used it.
        self.violations.append(f"request {method} {request.url.path}: not implemented by the fake")
        return JSONResponse({"code": "not-implemented", "message": "not in the fake"}, 500)

    def _list(self, request: Request) -> Response:
        order_ids = request.query_params.getlist("orderId")
        start = request.query_params.get("startDate")
        skip = int(float(request.query_params.get("skip") or 0))
        take = request.query_params.get("take")
        found = [
            inv
            for inv in self.invoices.values()
            if inv["storeId"] == self.store_id
            and (not order_ids or inv["metadata"].get("orderId") in order_ids)
            and (start is None or inv["createdTime"] >= float(start))
        ]
        # BTCPay lists the newest first.
        found.sort(key=lambda inv: (inv["createdTime"], inv["id"]), reverse=True)
        end = None if take is None else skip + int(float(take))
        return JSONResponse(found[skip:end])

    def _create(self, data: dict[str, Any], request: Request) -> Response:
        return JSONResponse(self._new_invoice(data, str(request.base_url)))

    def _new_invoice(self, data: dict[str, Any], base_url: str) -> dict[str, Any]:
        created = int(self.clock if self.clock is not None else time.time())
        invoice_id = secrets.token_urlsafe(16).replace("-", "a").replace("_", "b")
        checkout = data.get("checkout") or {}
        minutes = checkout.get("expirationMinutes") or 15
        invoice: dict[str, Any] = {
            "id": invoice_id,
            "storeId": self.store_id,
            "amount": data.get("amount") or "0",
            "paidAmount": "0",
            "currency": (data.get("currency") or "USD"),
            "type": "Standard" if data.get("amount") else "TopUp",
            "checkoutLink": f"{base_url.rstrip('/')}/i/{invoice_id}",
            "createdTime": created,
            "expirationTime": created + int(minutes) * 60,
            "monitoringExpiration": created + int(minutes) * 60 + 86400,
            "status": "New",
            "additionalStatus": "None",
            "availableStatusesForManualMarking": _markable("New"),
            "archived": False,
            "metadata": data.get("metadata") or {},
            "checkout": checkout,
        }
        self.invoices[invoice_id] = invoice
        return invoice

    def _mark(self, invoice: dict[str, Any] | None, status: str) -> Response:
        # The contract lists no 404 for this operation: an unknown invoice is a 400 here.
        if invoice is None:
            return JSONResponse([{"path": "invoiceId", "message": "unknown"}], status_code=400)
        if status not in invoice["availableStatusesForManualMarking"]:
            message = f"cannot mark a {invoice['status']} invoice {status}"
            return JSONResponse([{"path": "status", "message": message}], status_code=400)
        invoice["status"] = status
        invoice["additionalStatus"] = "Marked"
        invoice["availableStatusesForManualMarking"] = _markable(status)
        return JSONResponse(invoice)


def _markable(status: str) -> list[str]:
    return {"Settled": ["Invalid"], "Invalid": ["Settled"]}.get(status, ["Settled", "Invalid"])


def _describe(error: Exception) -> str:
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        return f"{error}: " + ", ".join(str(getattr(e, "message", e)) for e in schema_errors)
    return f"{type(error).__name__}: {error}" + (f" ({cause})" if cause else "")


# -- running it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningFake:
    fake: FakeBTCPay
    url: str


@contextmanager
def run_fake_btcpay(contract: Contract | None = None) -> Iterator[RunningFake]:
    """The fake served by uvicorn in a thread on a free local port, until the block ends."""
    fake = FakeBTCPay(contract or Contract())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake.app, log_level="warning", access_log=False, lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake BTCPay server did not start")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    fake.base_url = url
    try:
        yield RunningFake(fake, url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
