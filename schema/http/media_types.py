"""The media types of GraphQL over HTTP: which one to answer in (`Accept`), and which
request bodies are read (`Content-Type`). Header values repeat (a client sends the same ones
on every request), so each distinct one is parsed once (small caches). "spec": the
GraphQL-over-HTTP draft (see `schema.http`)."""

from __future__ import annotations

from functools import lru_cache

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# spec "Body": the response's Content-Type SHOULD indicate the encoding; we only write UTF-8.
CONTENT_TYPES = {
    GRAPHQL_RESPONSE: GRAPHQL_RESPONSE + "; charset=utf-8",
    JSON: JSON + "; charset=utf-8",
}
NOT_ACCEPTABLE_MESSAGE = (
    f"Accept must allow {GRAPHQL_RESPONSE} or {JSON} (with charset utf-8, if any)."
)
_HEADER_CACHE_LIMIT = 1_000  # characters: longer header values are parsed without caching

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

JSON_BODY = "json"
MULTIPART_BODY = "multipart"


@lru_cache(maxsize=64)
def _body_kind_cached(content_type: str) -> str | None:
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    if mime == "multipart/form-data":
        return MULTIPART_BODY
    if mime != JSON:
        return None
    # spec "POST": application/json encoded with UTF-8 MUST be read, and UTF-8 assumed when no
    # charset is named; we read no other encoding.
    for param in params.split(";") if params else ():
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return None
    return JSON_BODY


def body_kind(content_type: str | None) -> str | None:
    """What a POST body is by its Content-Type: JSON, a multipart form (uploads), or None
    (a body we do not read: 415)."""
    if not content_type or len(content_type) > _HEADER_CACHE_LIMIT:
        return None
    return _body_kind_cached(content_type)
