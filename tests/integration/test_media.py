"""Media end to end over GraphQL on the local backend: uploads through the application, the
processing job, what is served and to whom, attachments."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from app.models import Media, MediaState, StoredObject
from app.settings import Settings
from tests.media import (
    CREATE_POST,
    EDIT_POST,
    GIF_HTML_POLYGLOT,
    HTML,
    POST,
    SVG,
    UPDATE_MEDIA,
    UPDATE_PROFILE,
    encoded,
    jpeg_with_gps,
    path_of,
    pixel_bomb_png,
    png,
    settle,
    stored_files,
    truncated_jpeg,
    upload,
)
from tests.support import Account, GraphQLClient


@pytest.fixture
def media_root(settings: Settings) -> Path:
    return settings.data_dir / "media"


async def _ready(http: httpx.AsyncClient, app: Starlette, account: Account, data: bytes | None = None, **fields: Any) -> dict[str, Any]:
    """A processed medium of `account`'s."""
    response = await upload(http, account.access_token, data or png(), **fields)
    result = response.json()["data"]["uploadMedia"]
    assert result["__typename"] == "UploadMediaSuccess", result
    await settle(app)
    return await _media(account, result["media"]["id"])


async def _media(account: Account, media_id: str) -> dict[str, Any]:
    row = await Media.get(id=int(__import__("base64").b64decode(media_id).decode().split(":")[1]))
    return {"id": media_id, "row": row}


async def test_an_upload_needs_the_preflight_header(
    http: httpx.AsyncClient, gql: GraphQLClient, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    before = stored_files(media_root)

    response = await upload(http, alice.access_token, png(), preflight=False)

    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "Apollo-Require-Preflight" in response.json()["errors"][0]["message"]
    assert stored_files(media_root) == before
    assert not await Media.exists()


async def test_an_uploaded_jpeg_is_served_as_webp_without_its_metadata(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")

    response = await upload(http, alice.access_token, jpeg_with_gps(), altText="A blue field")
    result = response.json()["data"]["uploadMedia"]
    assert result["__typename"] == "UploadMediaSuccess", result
    assert result["media"]["state"] == "PROCESSING"
    assert result["media"]["url"] is None
    assert await settle(app) == 1
    print(result)
