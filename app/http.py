"""HTTP plumbing shared by every route: refusals as GraphQL-shaped error bodies with a code,
and the request body limit."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
    media_type: str = "application/json",
) -> Response:
    """A refusal before any GraphQL ran: `{"errors": [{message, extensions: {code}}]}`
    (`media_type`: the GraphQL endpoint's negotiated one)."""
    code = code or HTTP_ERROR_CODES.get(status, "BAD_REQUEST")
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status, headers, media_type=media_type)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, a method it does not serve), coded too."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413: at once when Content-Length says so,
    else as soon as the streamed body passes the limit, so no oversized body is ever held.

    A multipart/form-data POST to one of `multipart_paths` (uploads through GraphQL; paths
    below the application's `root_path`) may have up to `multipart_max_bytes` instead.

    On those paths the refusal comes in the Content-Type that `negotiate` gives for the
    request's Accept header (GraphQL over HTTP's media type when the client asked for it),
    with `Vary: Accept`; elsewhere, and without `negotiate`, as application/json."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        multipart_max_bytes: int | None = None,
        multipart_paths: tuple[str, ...] = (),
        negotiate: Callable[[str | None], str] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.multipart_max_bytes = multipart_max_bytes
        self.multipart_paths = frozenset(multipart_paths)
        self.negotiate = negotiate

    def limit(self, scope: Scope) -> int:
        """The body limit of this request."""
        if (
            self.multipart_max_bytes is not None
            and scope["method"] == "POST"
            and _route_path(scope) in self.multipart_paths
            and _is_multipart(scope)
        ):
            return self.multipart_max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"The request body is larger than {limit} bytes."
        headers = {"connection": "close"}
        media_type = "application/json"
        if self.negotiate is not None and _route_path(scope) in self.multipart_paths:
            media_type = self.negotiate(_header(scope, b"accept"))
            headers["Vary"] = "Accept"
        response = error_response(413, message, headers=headers, media_type=media_type)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path below the application's mount point: ASGI servers put `root_path`
    (uvicorn --root-path, a mount) in front of `path`, as Starlette's routing strips it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root.rstrip("/") + "/")):
        return path[len(root.rstrip("/")) :] or "/"
    return path


def _is_multipart(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"multipart/form-data")
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (several lines joined with commas, as for Accept)."""
    values = [value for key, value in scope["headers"] if key == name]
    return b",".join(values).decode("latin-1") if values else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
