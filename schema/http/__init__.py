"""GraphQL over HTTP: GET and POST at /graphql, to the GraphQL-over-HTTP specification (the
draft at graphql.github.io/graphql-over-http, "spec" in the comments below, which name the
rule each branch follows).

A request goes: method -> `Accept` negotiation -> the per-request `Context` (the viewer of
its bearer token; one request of the viewer's budget spent, by the headers alone: a spent
budget is answered before the body is read) -> its parameters (a GET's query string, a POST's
JSON body, or a GraphQL multipart request for uploads) as a `GraphQLRequest` -> its document
(`documents`, a `DocumentSource`) -> the operation's result (`runner`) -> the answer, encoded
with orjson. Answers to GET carry an explicit `Cache-Control` (see `_cache_policy`).

Two response media types are served. `application/graphql-response+json` tells failures by
status: a request that cannot run (not a GraphQL request; its document unparsable, invalid or
over a limit; no such operation; variables that do not coerce) is a 4xx with no `data` entry,
and 200 means the operation ran, field errors or not. `application/json`, kept for older
clients, answers 200 to every well-formed request (but a mutation over GET, 405, and a spent
budget, 429) and 4xx to requests that are not one.

This is the read path's hot loop: nothing here is built per request but the request's own
objects, header values are parsed once per distinct value (small caches), and responses are
built directly.

`media_types` chooses the answer's media type and tells which bodies are read; `parameters`
reads the request's parameters. strawberry's view (`schema.view.GraphQLView`) keeps WebSockets
and renders the GraphiQL page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.http import error_response
from app.ratelimit import Budget
from app.services import Services
from schema.context import Context
from schema.document import Code, public_error
from schema.http.media_types import (
    CONTENT_TYPES,
    GRAPHQL_RESPONSE,
    JSON,
    JSON_BODY,
    MULTIPART_BODY,
    NOT_ACCEPTABLE_MESSAGE,
    body_kind,
    negotiate,
)
from schema.http.parameters import (
    Refusal,
    decode,
    from_multipart,
    from_query_string,
    graphql_request,
)
from schema.operations import DocumentSource, GraphQLRequest, RequestError
from schema.runner import Runner

if TYPE_CHECKING:
    from schema import HoldfastSchema
    from schema.view import GraphQLView

__all__ = [
    "GRAPHQL_RESPONSE",
    "JSON",
    "GraphQLHTTP",
    "bearer_token",
    "negotiate",
    "refusal_content_type",
]


def refusal_content_type(accept: str | None) -> str:
    """The Content-Type of a refusal made before the endpoint runs (the body limit's 413,
    `app.http.BodySizeLimit`): the media type `Accept` asks for, as the endpoint answers, or
    application/json when it allows neither (a 406 would hide the 413)."""
    return CONTENT_TYPES[negotiate(accept) or JSON]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (None: none, or another scheme)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


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


# Answers to GET are cacheable by default (RFC 9111), and a GET's URL names the whole request
# (an APQ hash keeps it short): the policy is explicit. With an Authorization header the answer
# is the viewer's and no shared cache may keep it; without one it is everyone's but may change
# with the next post, so a cache must ask again each time (no validators are given: it fetches
# it anew). A CDN meant to cache anonymous queries needs a rule of its own. POST answers are not
# cached (RFC 9110 9.3.3) and carry none.
_GET_PRIVATE = {"Cache-Control": "private"}
_GET_SHARED = {"Cache-Control": "no-cache"}


def _cache_policy(method: str, authorization: str | None) -> dict[str, str] | None:
    if method != "GET":
        return None
    return _GET_PRIVATE if authorization else _GET_SHARED


def _asks_for_the_page(params: Mapping[str, str], accept: str | None) -> bool:
    """A browser's GET of the endpoint itself: the GraphiQL page. Not when the URL carries a
    GraphQL request's parameters (a `query`, a `documentId`, or `extensions` naming an APQ
    hash), which a browser may send too (spec "URL": the URL MAY serve other purposes)."""
    return (
        accept is not None
        and "text/html" in accept
        and "query" not in params
        and "documentId" not in params
        and "extensions" not in params
    )


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


def _malformed(error: RequestError) -> bool:
    """A request whose parameters are not a GraphQL request's (BAD_REQUEST: a `documentId` or
    persistedQuery extension of the wrong shape, as the parameters' own refusals): 400 under
    both media types, as a Refusal is."""
    return all((e.extensions or {}).get("code") == Code.BAD_REQUEST for e in error.errors)


def _error_status(error: RequestError, media_type: str) -> int:
    """The status of a request that could not run, its parameters being well-formed."""
    if error.status == 405:
        # spec "GET": a mutation over GET MUST be answered 405, whatever the media type.
        return 405
    if media_type == JSON and not _malformed(error):
        # spec "application/json": 200 for every well-formed request, whatever request error
        # (unparsable, invalid, no such operation, variables that do not coerce).
        return 200
    # spec "application/graphql-response+json": no `data` entry MUST be 4xx or 5xx, 400 for a
    # request that does not pass validation (and its other examples); a fault of ours is 5xx.
    if any((e.extensions or {}).get("code") == Code.INTERNAL for e in error.errors):
        return 500
    return error.status if error.status >= 400 else 400


class GraphQLHTTP:
    """The ASGI app answering GraphQL requests over HTTP.

    `documents` (where a request's document comes from: the app's one `schema.persisted.
    PersistedDocuments`, shared with the WebSocket view) is required, so that no endpoint can
    be built that ignores trusted-documents mode. `runner` (what runs it) is an attribute the
    test harness replaces."""

    def __init__(
        self,
        schema: HoldfastSchema,
        services: Services,
        documents: DocumentSource,
        ide: GraphQLView | None = None,
    ) -> None:
        self.schema = schema
        self.services = services
        self.documents = documents
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
        if params is not None and _asks_for_the_page(params, accept):
            return await self._page(request)
        media_type = negotiate(accept)
        if media_type is None:
            # spec "Body": Accept lists no type we serve: 406 and stop (RECOMMENDED).
            return error_response(
                406, NOT_ACCEPTABLE_MESSAGE, dict(_VARY), media_type=CONTENT_TYPES[JSON]
            )
        cache = _cache_policy(method, authorization)
        # Counted from here on, by the request's headers alone: a spent budget is answered
        # before the body is read (or a multipart request's files spooled), and refusals of
        # malformed requests spend the budget like any other request.
        try:
            context, budget = await self.context(request, authorization)
        except Exception as exc:  # a fault of ours (the budget's store): logged, masked
            return self._unexpected(exc, media_type, None, cache)
        if budget is not None and not budget.allowed:
            # spec "URL": a server MAY forbid a request for any reason (here: its rate), with
            # the relevant 4xx.
            return self._refused(
                429, "Too many requests; try again later.", media_type, budget, cache
            )
        # Not in the try below: what else reading the body raises (the body limit's 413, a
        # client gone) is the server's and its middleware's to answer.
        try:
            if params is not None:
                parsed = from_query_string(params)
            else:
                parsed = await self._from_body(request, content_type)
        except Refusal as refusal:
            return self._refused(refusal.status, refusal.message, media_type, budget, cache)
        try:
            document = await self.documents.resolve(parsed)
            result = await self.runner.run(document, parsed, context)
        except RequestError as error:
            body = {"errors": [public_error(e).formatted for e in error.errors]}
            status = _error_status(error, media_type)
            headers = dict(cache or {})
            headers.update(error.headers)
            # RFC 9110 15.5.6: a 405 names the methods that would do (for this URL: POST).
            if status == 405:
                headers["Allow"] = "POST"
            return self._answer(body, status, media_type, budget, headers)
        except Exception as exc:  # a fault of ours: logged, masked
            return self._unexpected(exc, media_type, budget, cache)
        # spec "Status Codes": the operation ran (field errors or not): 200 under both types.
        answer: dict[str, object] = {"data": result.data}
        if result.errors:
            answer["errors"] = [public_error(e).formatted for e in result.errors]
        if result.extensions:
            answer["extensions"] = result.extensions
        return self._answer(answer, 200, media_type, budget, cache)

    async def context(
        self, request: Request, authorization: str | None
    ) -> tuple[Context, Budget | None]:
        """The request's context (the verified claims of its bearer token; none for a missing
        or bad one), with one request of the budget of the token's user (or of the client's
        address) spent (None: nothing to count against)."""
        services = self.services
        token = bearer_token(authorization)
        # The token is verified here; its session is checked by the runner before the
        # operation runs, or by the operation's own statement (schema.runner).
        claims = services.accounts.access_claims(token) if token else None
        context = Context(request=request, services=services, viewer=None, claims=claims)
        budget = await services.limiter.spend_request(context.budget_id, context.client_ip)
        return context, budget

    async def _from_body(self, request: Request, content_type: str | None) -> GraphQLRequest:
        kind = body_kind(content_type)
        if kind == JSON_BODY:
            return graphql_request(decode(await request.body(), "The body"), "POST")
        if kind == MULTIPART_BODY:
            return await from_multipart(request)
        # spec "POST": a body of no media type (a missing Content-Type SHOULD get a 4xx) or of
        # one we do not read.
        raise Refusal(
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
            # orjson's defaults: page plans (schema.rowplan) leave UTC datetimes in `data` for
            # it to write, which it does as their isoformat(), the DateTime scalar's output.
            orjson.dumps(body),
            status,
            _negotiated_headers(budget, headers),
            media_type=CONTENT_TYPES[media_type],
        )

    def _refused(
        self,
        status: int,
        message: str,
        media_type: str,
        budget: Budget | None,
        headers: dict[str, str] | None,
    ) -> Response:
        return error_response(
            status,
            message,
            _negotiated_headers(budget, headers),
            media_type=CONTENT_TYPES[media_type],
        )

    def _unexpected(
        self,
        exc: Exception,
        media_type: str,
        budget: Budget | None,
        headers: dict[str, str] | None,
    ) -> Response:
        error = GraphQLError(str(exc), original_error=exc)
        self.schema.process_errors([error])
        body = {"errors": [public_error(error).formatted]}
        # A GraphQL response with a request error: 200 as application/json (spec
        # "application/json"), a 5xx as application/graphql-response+json (no `data` entry).
        return self._answer(
            body, 500 if media_type == GRAPHQL_RESPONSE else 200, media_type, budget, headers
        )
