"""POST /webhooks/payments/{provider}: a payment processor's event deliveries.

`{provider}` is a name of `HOLDFAST_PAYMENTS__PROVIDERS`. The signature is checked on the raw
body by the provider (a bad signature, a stale timestamp or a malformed body: 400, nothing
recorded); the events are recorded, each once, with the jobs that apply them, in one
transaction, and the delivery is acknowledged at once (200). Applying an event is a job
(app/services/billing_events.py), so a slow ledger never makes the vendor retry, and a
delivery repeated, concurrent or out of order changes nothing twice.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.http import error_response
from app.services import Services
from providers.errors import InvalidWebhook

log = structlog.get_logger("holdfast.payments")

# Vendors' deliveries are small (Stripe's largest events are a few tens of KB).
MAX_WEBHOOK_BYTES = 256 * 1024


async def payment_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    name: str = request.path_params["provider"]
    if name not in services.payments.providers:
        return error_response(404, "Not Found")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        return error_response(413, "Payload Too Large")
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        new = await services.billing.ledger.receive_webhook(name, body, headers)
    except InvalidWebhook as exc:
        log.warning("payments.webhook_refused", provider=name, reason=str(exc))
        return error_response(400, "The webhook was refused.", code="INVALID_WEBHOOK")
    return JSONResponse({"received": True, "new": new})
