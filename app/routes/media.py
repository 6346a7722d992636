"""GET /media/{key}: the re-encoded renditions of media, streamed from the backend holding them.

Only renditions of ready media are served, never an upload's original bytes. Media of a
deleted post or account are not served. Media everyone may see (a public post's, an avatar or
header in use) are served to anyone; the rest only with a signed URL that has not expired
(app/services/media_links.py). Every refusal is the same 404 as a key that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.http import error_response
from app.services import Services
from app.services.media_reads import served_rendition
from providers.errors import NotFound, ProviderError
from providers.storage.base import MAX_KEY_LENGTH

# Public media may be cached by browsers and CDNs, briefly: a post deleted or made private
# should stop being served soon.
PUBLIC_MAX_AGE = 300
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def _not_found() -> Response:
    return error_response(404, "Not Found")


async def media(request: Request) -> Response:
    services: Services = request.app.state.services
    key: str = request.path_params["key"]
    if not key or len(key.encode()) > MAX_KEY_LENGTH:
        return _not_found()
    served = await served_rendition(key)
    if served is None:
        return _not_found()
    if served.public:
        cache = f"public, max-age={PUBLIC_MAX_AGE}"
    else:
        params = request.query_params
        remaining = services.media.links.check(key, params.get("exp"), params.get("sig"))
        if remaining <= 0:
            return _not_found()
        cache = f"private, max-age={remaining}"
    obj = served.obj
    etag = f'"{obj.sha256}"'
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": cache}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    chunks = services.storage.open(obj)
    try:
        first = await anext(chunks, b"")
    except NotFound:
        return _not_found()
    except ProviderError:
        return error_response(503, "Storage is unavailable; try again.", code="UNAVAILABLE")
    headers["Content-Length"] = str(obj.size)
    return StreamingResponse(_chain(first, chunks), media_type=obj.content_type, headers=headers)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates or "*" in candidates
