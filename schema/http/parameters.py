"""The parameters of a GraphQL-over-HTTP request (spec "Request Parameters"): a GET's query
string, a POST's JSON body, or a GraphQL multipart request (uploads) as a `GraphQLRequest`;
`Refusal` when the request is not a well-formed one. "spec": the GraphQL-over-HTTP draft
(see `schema.http`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from schema.operations import NO_DOCUMENT_MESSAGE, GraphQLRequest, names_a_document

# Headers a browser sends only after a CORS preflight, so a form on another origin cannot
# (the Apollo convention for multipart uploads).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name")


class Refusal(Exception):
    """The request is not a well-formed GraphQL-over-HTTP request (or one we do not read):
    answered with this status under either media type, no `data` entry."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> Refusal:
    return Refusal(400, message)


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
    document_id = data.get("documentId")
    if not isinstance(document_id, str | None):
        raise _bad("The request's `documentId` must be a string or null.")
    if not isinstance(query, str | None):
        raise _bad("The request's `query` must be a string.")
    if not isinstance(variables, dict | None):
        raise _bad("The request's `variables` must be an object or null.")
    if not isinstance(operation_name, str | None):
        raise _bad("The request's `operationName` must be a string or null.")
    if not isinstance(extensions, dict | None):
        raise _bad("The request's `extensions` must be an object or null.")
    if not names_a_document(query, document_id, extensions):
        # spec "Request Parameters": `query` is required; without it the request names no
        # document, unless it names a persisted one: by `documentId` (the specification's
        # persisted documents appendix) or by hash (APQ); see `schema.persisted`. An empty
        # `query` is a document, one that does not parse (GRAPHQL_PARSE_FAILED).
        raise _bad(NO_DOCUMENT_MESSAGE)
    return GraphQLRequest(
        query=query,
        variables=variables,
        # spec "GET": an empty operationName is the same as none (no operation has that name,
        # so a POST's means the same).
        operation_name=operation_name or None,
        extensions=extensions,
        http_method=method,
        document_id=document_id,
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
        # (Empty: absent, as the URL's other optional parameters.)
        "documentId": params.get("documentId") or None,
    }
    return graphql_request(data, "GET")


def decode(body: bytes | str, what: str) -> object:
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
    operations = decode(operations_field, "The `operations` field")
    files_map = decode(map_field, "The `map` field")
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
