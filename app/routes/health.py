from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from tortoise import connections

log = structlog.get_logger("holdfast.health")


async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception as exc:
        log.warning("health.database_down", error=type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "up"})
