"""GraphQL over HTTP: GET and POST at /graphql, to the GraphQL-over-HTTP specification (the
draft at graphql.github.io/graphql-over-http, "spec" in the comments below, which name the
rule each branch follows).

A request goes: method -> `Accept` negotiation -> its parameters (a GET's query string, a
POST's JSON body, or a GraphQL multipart request for uploads) as a `GraphQLRequest` -> the
per-request `Context` (the viewer of its bearer token; one request of the viewer's budget
spent) -> its document (`documents`, a `DocumentSource`) -> the operation's result
(`runner`) -> the answer, encoded with orjson.

Two response media types are served. `application/graphql-response+json` tells failures by
status: a request that cannot run (not a GraphQL request; its document unparsable, invalid or
over a limit; no such operation; variables that do not coerce) is a 4xx with no `data` entry,
and 200 means the operation ran, field errors or not. `application/json`, kept for older
clients, answers 200 to every well-formed request (but a mutation over GET, 405, and a spent
budget, 429) and 4xx to requests that are not one.

This is the read path's hot loop: nothing here is built per request but the request's own
objects, header values are parsed once per distinct value (small caches), and responses are
built directly.

strawberry's view (`schema.view.GraphQLView`) keeps WebSockets and renders the GraphiQL page.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.http import error_response
from app.ratelimit import Budget
from app.services import Services
from app.services.accounts import Viewer
from schema.context import Context
from schema.document import Code, TextDocuments, public_error
from schema.operations import DocumentSource, GraphQLRequest, RequestError
from schema.runner import Runner

if TYPE_CHECKING:
    from schema import HoldfastSchema
    from schema.view import GraphQLView

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# spec "Body": the response's Content-Type SHOULD indicate the encoding; we only write UTF-8.
CONTENT_TYPES = {
    GRAPHQL_RESPONSE: GRAPHQL_RESPONSE + "; charset=utf-8",
    JSON: JSON + "; charset=utf-8",
}

# Headers a browser sends only after a CORS preflight, so a form on another origin cannot
# (the Apollo convention for multipart uploads).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")

NOT_ACCEPTABLE_MESSAGE = (
    f"Accept must allow {GRAPHQL_RESPONSE} or {JSON} (with charset utf-8, if any)."
)
_HEADER_CACHE_LIMIT = 1_000  # characters: longer header values are parsed without caching


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


# --- Accept -------------------------------------------------------------------------------

_SERVED = (GRAPHQL_RESPONSE, JSON)


def _range_params(params: str) -> tuple[float, bool] | None:
    """A media range's quality, and whether its charset (if named) is UTF-8; None when the
    q-value is malformed (the range is ignored)."""
    quality = 1.0
    utf8 = True
    for param in params.split(";"):
        name, _, value = param.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        if name == "q":
            try:
                quality = float(value)
            except ValueError:
                return None
            if not 0.0 <= quality <= 1.0:  # also refuses nan
                return None
            break  # what follows the weight are accept-extensions (RFC 9110 12.5.1)
        if name == "charset" and value.lower() != "utf-8":
            utf8 = False
    return quality, utf8


def _negotiate(accept: str) -> str | None:
    """The media type to answer in for an `Accept` value; None when it allows neither.

    spec "Body": the server MUST respect Accept and answer in the highest priority media type
    listed that it supports. Per RFC 9110 12.5.1, each type takes the quality of the most
    specific range matching it (`application/json` over `application/*` over `*/*`; q=0
    refuses it). A range asking for a charset other than UTF-8 matches nothing we write (spec
    "Media Types": UTF-8 is assumed when none is named). At equal quality the type named more
    specifically wins; named alike, `application/graphql-response+json` (the spec's
    preferred type) when both are named, `application/json` when only a wildcard reached
    them (`*/*` is what legacy clients send; the graphql-http audit's "SHOULD accept */* and
    use application/json").
    """
    # For each type: (specificity of the range that set it, quality); -1: no range matched.
    found = {GRAPHQL_RESPONSE: (-1, 0.0), JSON: (-1, 0.0)}
    for media_range in accept.split(","):
        mime, _, params = media_range.partition(";")
        mime = mime.strip().lower()
        if mime == "*/*":
            specificity = 0
        elif mime == "application/*":
            specificity = 1
        elif mime in found:
            specificity = 2
        else:
            continue
        parsed = _range_params(params) if params else (1.0, True)
        if parsed is None or not parsed[1]:
            continue
        for media_type in _SERVED:
            if (specificity == 2 and mime != media_type) or specificity <= found[media_type][0]:
                continue
            found[media_type] = (specificity, parsed[0])
    (g_specificity, g_quality), (j_specificity, j_quality) = found[GRAPHQL_RESPONSE], found[JSON]
    if g_quality <= 0.0 and j_quality <= 0.0:
        return None
    if g_quality != j_quality:
        return GRAPHQL_RESPONSE if g_quality > j_quality else JSON
    if g_specificity != j_specificity:
        return GRAPHQL_RESPONSE if g_specificity > j_specificity else JSON
    return GRAPHQL_RESPONSE if g_specificity == 2 else JSON


_negotiate_cached = lru_cache(maxsize=256)(_negotiate)


def negotiate(accept: str | None) -> str | None:
    """The response media type for a request's `Accept` header (None: not acceptable, 406).
    spec "Legacy watershed": from 2025-01-01 a request without Accept SHOULD be treated as if
    it had `Accept: application/graphql-response+json` (an empty value too: it lists none)."""
    if accept is None or not accept.strip():
        return GRAPHQL_RESPONSE
    if len(accept) > _HEADER_CACHE_LIMIT:
        return _negotiate(accept)
    return _negotiate_cached(accept)


# --- Content-Type ---------------------------------------------------------------------------

_JSON_BODY = "json"
_MULTIPART_BODY = "multipart"


@lru_cache(maxsize=64)
def _body_kind_cached(content_type: str) -> str | None:
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    if mime == "multipart/form-data":
        return _MULTIPART_BODY
    if mime != JSON:
        return None
    # spec "POST": application/json encoded with UTF-8 MUST be read, and UTF-8 assumed when no
    # charset is named; we read no other encoding.
    for param in params.split(";") if params else ():
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return None
    return _JSON_BODY


def body_kind(content_type: str | None) -> str | None:
    """What a POST body is by its Content-Type: JSON, a multipart form (uploads), or None
    (a body we do not read: 415)."""
    if not content_type or len(content_type) > _HEADER_CACHE_LIMIT:
        return None
    return _body_kind_cached(content_type)


# --- Request parameters ---------------------------------------------------------------------


class _Refusal(Exception):
    """The request is not a well-formed GraphQL-over-HTTP request (or one we do not read):
    answered with this status under either media type, no `data` entry."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> _Refusal:
    return _Refusal(400, message)


def graphql_request(data: object, method: str) -> GraphQLRequest:
    """The parameters of a decoded GET query string or JSON body. spec "Request Parameters":
    `query` a string, `operationName` a string, `variables` and `extensions` maps, null
    being the same as absent; anything else is not a well-formed request (400 under both
    media types: spec "Status Codes", "Invalid parameters")."""
    if isinstance(data, list):
        raise _bad("Batching is not supported: send one operation per request.")
    if not isinstance(data, dict):
        raise _bad("The body must be a JSON object: a GraphQL request.")
    query = data.get("query")
    variables = data.get("variables")
    operation_name = data.get("operationName")
    extensions = data.get("extensions")
    if not isinstance(query, str | None):
        raise _bad("The request's `query` must be a string.")
    if not isinstance(variables, dict | None):
        raise _bad("The request's `variables` must be an object or null.")
    if not isinstance(operation_name, str | None):
        raise _bad("The request's `operationName` must be a string or null.")
    if not isinstance(extensions, dict | None):
        raise _bad("The request's `extensions` must be an object or null.")
    if query is None and not (extensions and "persistedQuery" in extensions):
        # spec "Request Parameters": `query` is required; without it the request names no
        # document, unless it names a persisted one by hash (APQ, `schema.persisted`).
        raise _bad("No GraphQL query found in the request.")
    return GraphQLRequest(
        query=query,
        variables=variables,
        # spec "GET": an empty operationName is the same as none (no operation has that name,
        # so a POST's means the same).
        operation_name=operation_name or None,
        extensions=extensions,
        http_method=method,
    )


def _json_parameter(params: Mapping[str, str], name: str) -> object:
    """spec "GET": `variables` and `extensions` are JSON-encoded (empty: absent)."""
    value = params.get(name)
    if not value:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad(f"The request's `{name}` is not valid JSON.") from None


def from_query_string(params: Mapping[str, str]) -> GraphQLRequest:
    """spec "GET": the parameters in the URL's query, as application/x-www-form-urlencoded."""
    data = {
        "query": params.get("query"),
        "operationName": params.get("operationName"),
        "variables": _json_parameter(params, "variables"),
        "extensions": _json_parameter(params, "extensions"),
    }
    return graphql_request(data, "GET")


def _decode(body: bytes | str, what: str) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # spec "Status Codes", "JSON parsing failure": 400 under both media types.
        raise _bad(f"{what} is not valid JSON (UTF-8).") from None


async def from_multipart(request: Request) -> GraphQLRequest:
    """A GraphQL multipart request (github.com/jaydenseric/graphql-multipart-request-spec):
    the `operations` field (one request: no batching), the `map` field naming, for each file
    part, the variables it fills."""
    headers = request.headers
    if not any(headers.get(name) for name in PREFLIGHT_HEADERS):
        # A page on another origin can post a form (a CORS "simple" request) with the viewer's
        # cookies; it cannot add a custom header without a preflight (spec, "Security").
        raise _bad(
            "Multipart requests need an Apollo-Require-Preflight (or X-Apollo-Operation-Name) "
            "header."
        )
    try:
        form = await request.form()
    except (HTTPException, MultiPartException):
        raise _bad("The multipart body could not be read.") from None
    operations_field = form.get("operations")
    map_field = form.get("map")
    if not isinstance(operations_field, str) or not isinstance(map_field, str):
        raise _bad("A multipart request needs `operations` and `map` fields.")
    operations = _decode(operations_field, "The `operations` field")
    files_map = _decode(map_field, "The `map` field")
    if not isinstance(operations, dict):  # a list is a batch: graphql_request refuses it
        return graphql_request(operations, "POST")
    if not isinstance(files_map, dict):
        raise _bad("The `map` field must be an object of file parts to variable paths.")
    for part, paths in files_map.items():
        upload = form.get(part)
        if not isinstance(upload, UploadFile):
            raise _bad(f"The file part {part!r} is missing.")
        if not isinstance(paths, list):
            raise _bad("The `map` field must be an object of file parts to variable paths.")
        for path in paths:
            _place(operations, path, upload)
    return graphql_request(operations, "POST")


def _place(operations: dict[str, Any], path: object, upload: UploadFile) -> None:
    """Put `upload` where `path` (`variables.input.file`, `variables.files.0`) points."""
    keys = path.split(".") if isinstance(path, str) else []
    if len(keys) < 2 or keys[0] != "variables":
        raise _bad(f"A file can only fill a variable: {path!r} is not a variable's path.")
    target: Any = operations
    for index, key in enumerate(keys):
        last = index == len(keys) - 1
        if isinstance(target, dict):
            if key not in target:
                raise _bad(f"{path!r} names no value of the operation's variables.")
            if last:
                target[key] = upload
            else:
                target = target[key]
        elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
            if last:
                target[int(key)] = upload
            else:
                target = target[int(key)]
        else:
            raise _bad(f"{path!r} names no value of the operation's variables.")


# --- The endpoint ---------------------------------------------------------------------------


def _headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Accept, Content-Type and Authorization, in one pass over the request's headers
    (ASGI gives their names in lower case). Several Accept lines make one list."""
    accept: bytes | None = None
    content_type: bytes | None = None
    authorization: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value if accept is None else accept + b"," + value
        elif name == b"content-type":
            content_type = value
        elif name == b"authorization":
            authorization = value
    return (
        accept.decode("latin-1") if accept is not None else None,
        content_type.decode("latin-1") if content_type is not None else None,
        authorization.decode("latin-1") if authorization is not None else None,
    )


# RFC 9110 12.5.5: the answer depends on Accept (its media type and, with it, its status), so
# a cache must not give it to a request that asks for another.
_VARY = {"Vary": "Accept"}


def _negotiated_headers(
    budget: Budget | None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers of an answer in the negotiated media type: Vary, the budget's RateLimit
    fields on every answer to a counted request (README "Rate limits"), and `extra`."""
    headers = budget.headers() if budget is not None else {}
    headers.update(_VARY)
    if extra:
        headers.update(extra)
    return headers


def _error_status(error: RequestError, media_type: str) -> int:
    """The status of a request that could not run, its parameters being well-formed."""
    if error.status == 405:
        # spec "GET": a mutation over GET MUST be answered 405, whatever the media type.
        return 405
    if media_type == JSON:
        # spec "application/json": 200 for every well-formed request, whatever request error
        # (unparsable, invalid, no such operation, variables that do not coerce).
        return 200
    # spec "application/graphql-response+json": no `data` entry MUST be 4xx or 5xx, 400 for a
    # request that does not pass validation (and its other examples); a fault of ours is 5xx.
    if any((e.extensions or {}).get("code") == Code.INTERNAL for e in error.errors):
        return 500
    return error.status


class GraphQLHTTP:
    """The ASGI app answering GraphQL requests over HTTP.

    `documents` (where a request's document comes from) and `runner` (what runs it) are
    attributes so that persisted documents and the test harness can put theirs in."""

    def __init__(
        self, schema: HoldfastSchema, services: Services, ide: GraphQLView | None = None
    ) -> None:
        self.schema = schema
        self.services = services
        self.documents: DocumentSource = TextDocuments(schema.pipeline)
        self.runner = Runner(schema)
        # The GraphiQL page, rendered by strawberry's view; None (or the view's IDE off, as in
        # production): such requests get 404.
        self._ide = ide

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        finally:
            # A multipart request's files (spooled to disk past 1 MiB) go now.
            await request.close()
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """The answer to one request (spec "Request", "Response")."""
        method = request.method
        if method != "GET" and method != "POST":
            # spec "Request": POST MUST be accepted, GET may; HEAD (which the route adds to
            # GET) and the rest are not served.
            return error_response(
                405, "Use GET or POST.", {"Allow": "GET, POST"}, media_type=CONTENT_TYPES[JSON]
            )
        accept, content_type, authorization = _headers(request.scope)
        params = request.query_params if method == "GET" else None
        if params is not None and "query" not in params and accept and "text/html" in accept:
            return await self._page(request)
        media_type = negotiate(accept)
        if media_type is None:
            # spec "Body": Accept lists no type we serve: 406 and stop (RECOMMENDED).
            return error_response(
                406, NOT_ACCEPTABLE_MESSAGE, dict(_VARY), media_type=CONTENT_TYPES[JSON]
            )
        parsed: GraphQLRequest | _Refusal
        try:
            if params is not None:
                parsed = from_query_string(params)
            else:
                parsed = await self._from_body(request, content_type)
        except _Refusal as refusal:
            parsed = refusal
        budget: Budget | None = None
        try:
            # Counted from here on, refusals of malformed requests too: hammering with them
            # spends the budget like any other request.
            context, budget = await self.context(request, authorization)
            if budget is not None and not budget.allowed:
                # spec "URL": a server MAY forbid a request for any reason (here: its rate),
                # with the relevant 4xx.
                return self._refused(429, "Too many requests; try again later.", media_type, budget)
            if isinstance(parsed, _Refusal):
                return self._refused(parsed.status, parsed.message, media_type, budget)
            document = await self.documents.resolve(parsed)
            result = await self.runner.run(document, parsed, context)
        except RequestError as error:
            body = {"errors": [public_error(e).formatted for e in error.errors]}
            status = _error_status(error, media_type)
            # RFC 9110 15.5.6: a 405 names the methods that would do (for this URL: POST).
            allow = {"Allow": "POST"} if status == 405 else None
            return self._answer(body, status, media_type, budget, allow)
        except Exception as exc:  # a fault of ours: logged, masked
            return self._unexpected(exc, media_type, budget)
        # spec "Status Codes": the operation ran (field errors or not): 200 under both types.
        answer: dict[str, object] = {"data": result.data}
        if result.errors:
            answer["errors"] = [public_error(e).formatted for e in result.errors]
        if result.extensions:
            answer["extensions"] = result.extensions
        return self._answer(answer, 200, media_type, budget)

    async def context(
        self, request: Request, authorization: str | None
    ) -> tuple[Context, Budget | None]:
        """The request's context (its viewer by the bearer token; none for a missing or bad
        one), with one request of the viewer's budget spent (None: nothing to count against)."""
        services = self.services
        viewer: Viewer | None = None
        token = bearer_token(authorization)
        if token:
            viewer = await services.accounts.resolve_viewer(token)
        context = Context(request=request, services=services, viewer=viewer)
        budget = await services.limiter.spend_request(context.viewer_id, context.client_ip)
        return context, budget

    async def _from_body(self, request: Request, content_type: str | None) -> GraphQLRequest:
        kind = body_kind(content_type)
        if kind == _JSON_BODY:
            return graphql_request(_decode(await request.body(), "The body"), "POST")
        if kind == _MULTIPART_BODY:
            return await from_multipart(request)
        # spec "POST": a body of no media type (a missing Content-Type SHOULD get a 4xx) or of
        # one we do not read.
        raise _Refusal(
            415, "Send application/json (or multipart/form-data for uploads) as Content-Type."
        )

    async def _page(self, request: Request) -> Response:
        """The GraphiQL page (a browser asking for HTML, with no query): not a GraphQL request
        and not counted (spec "URL": the URL MAY serve other purposes)."""
        if self._ide is None or not self._ide.graphql_ide:
            return error_response(404, "Not Found", dict(_VARY), media_type=CONTENT_TYPES[JSON])
        page = await self._ide.render_graphql_ide(request)
        page.headers.update(_VARY)  # chosen by Accept, as the GraphQL answers are
        return page

    def _answer(
        self,
        body: Mapping[str, object],
        status: int,
        media_type: str,
        budget: Budget | None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return Response(
            orjson.dumps(body),
            status,
            _negotiated_headers(budget, headers),
            media_type=CONTENT_TYPES[media_type],
        )

    def _refused(
        self, status: int, message: str, media_type: str, budget: Budget | None
    ) -> Response:
        return error_response(
            status, message, _negotiated_headers(budget), media_type=CONTENT_TYPES[media_type]
        )

    def _unexpected(self, exc: Exception, media_type: str, budget: Budget | None) -> Response:
        error = GraphQLError(str(exc), original_error=exc)
        self.schema.process_errors([error])
        body = {"errors": [public_error(error).formatted]}
        # A GraphQL response with a request error: 200 as application/json (spec
        # "application/json"), a 5xx as application/graphql-response+json (no `data` entry).
        return self._answer(
            body, 500 if media_type == GRAPHQL_RESPONSE else 200, media_type, budget
        )
