from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from app.http import BodySizeLimit


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    return None


LIMIT = BodySizeLimit(_app, 1_000, multipart_max_bytes=50_000, multipart_paths=("/graphql",))


def _scope(path: str, root_path: str = "", content_type: bytes = b"multipart/form-data") -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": root_path,
        "headers": [(b"content-type", content_type + b"; boundary=x")],
    }


@pytest.mark.parametrize(
    ("path", "root_path", "limit"),
    [
        ("/graphql", "", 50_000),
        # Under a root path (uvicorn --root-path, a mount), `path` carries it in front.
        ("/api/graphql", "/api", 50_000),
        ("/api/graphql", "/api/", 50_000),
        # A server that leaves it out of `path`.
        ("/graphql", "/api", 50_000),
        ("/api/other", "/api", 1_000),
        ("/apigraphql", "/api", 1_000),
        ("/other/graphql", "", 1_000),
    ],
)
def test_the_multipart_limit_applies_to_its_paths_below_the_root_path(
    path: str, root_path: str, limit: int
) -> None:
    assert LIMIT.limit(_scope(path, root_path)) == limit


def test_other_bodies_keep_the_limit_under_a_root_path() -> None:
    assert LIMIT.limit(_scope("/api/graphql", "/api", content_type=b"application/json")) == 1_000
