"""libcloud's errors, as its drivers raise them, mapped the same way for storage, compute and
DNS: by HTTP status for both of libcloud's HTTP error families."""

from __future__ import annotations

import pytest
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.google import GoogleBaseError, ResourceNotFoundError
from libcloud.common.types import InvalidCredsError
from libcloud.common.types import ProviderError as LibcloudProviderError

from providers.errors import ConfigurationError, NotFound, ProviderError, Unavailable
from providers.libcloud_errors import map_error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ResourceNotFoundError("no such instance", 404, "notFound"), NotFound),
        (GoogleBaseError("forbidden", 403, "forbidden"), ConfigurationError),
        (LibcloudProviderError("unauthorised", 401), ConfigurationError),
        (LibcloudProviderError("slow down", 429), Unavailable),
        (LibcloudProviderError("backend error", 503), Unavailable),
        (LibcloudProviderError("bad request", 400), ProviderError),
        (InvalidCredsError("refused"), ConfigurationError),
        (BaseHTTPError(404, "gone"), NotFound),
        (BaseHTTPError(500, "oops"), Unavailable),
        (BaseHTTPError(400, "InvalidInstanceID.NotFound: i-1"), NotFound),
        (TypeError("create_node() got an unexpected keyword argument 'ex_x'"), ProviderError),
        (AttributeError("'NoneType' object has no attribute 'id'"), ProviderError),
    ],
)
def test_maps_by_http_status(error: Exception, expected: type[ProviderError]) -> None:
    mapped = map_error("op", error)
    assert type(mapped) is expected
    assert str(mapped).startswith("libcloud op")


def test_our_errors_pass_and_others_are_not_ours() -> None:
    ours = NotFound("x")
    assert map_error("op", ours) is ours
    assert map_error("op", RuntimeError("a bug")) is None
