"""Media test helpers: images (honest and hostile), uploads over GraphQL multipart, and what
a storage backend's directory holds."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
from PIL import ExifTags, Image
from starlette.applications import Starlette

from tests.support import Account, GraphQLClient

MEDIA_FIELDS = """
id state purpose url thumbnailUrl width height blurhash altText animated errorCode errorMessage
focus { x y }
"""


def _mutation(verb: str, input_type: str, payload: str) -> str:
    name = verb[0].upper() + verb[1:]
    return f"""
mutation($input: {input_type}!) {{
  {verb}(input: $input) {{
    __typename
    ... on {name}Success {{ {payload} }}
    ... on {name}Error {{ code message field }}
  }}
}}"""


UPLOAD_MEDIA = _mutation("uploadMedia", "UploadMediaInput", f"media {{ {MEDIA_FIELDS} }}")
CREATE_UPLOAD = _mutation(
    "createUpload",
    "CreateUploadInput",
    f"media {{ {MEDIA_FIELDS} }} upload {{ url method expiresAt headers {{ name value }} "
    "fields { name value } }",
)
FINALIZE_UPLOAD = _mutation("finalizeUpload", "FinalizeUploadInput", f"media {{ {MEDIA_FIELDS} }}")
UPDATE_MEDIA = _mutation("updateMedia", "UpdateMediaInput", f"media {{ {MEDIA_FIELDS} }}")
POST_WITH_MEDIA = f"id text visibility isDeleted media {{ {MEDIA_FIELDS} }}"
CREATE_POST = _mutation("createPost", "CreatePostInput", f"post {{ {POST_WITH_MEDIA} }}")
EDIT_POST = _mutation("editPost", "EditPostInput", f"post {{ {POST_WITH_MEDIA} }}")
POST = f"query($id: ID!) {{ node(id: $id) {{ ... on Post {{ {POST_WITH_MEDIA} }} }} }}"
UPDATE_PROFILE = _mutation(
    "updateProfile",
    "UpdateProfileInput",
    f"user {{ username avatar {{ {MEDIA_FIELDS} }} header {{ {MEDIA_FIELDS} }} }}",
)

MEDIA = f"query($id: ID!) {{ media(id: $id) {{ {MEDIA_FIELDS} }} }}"

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>'
GIF_HTML_POLYGLOT = b"GIF89a" + HTML


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    return encoded(Image.new("RGB", size, colour), "PNG")


def jpeg_with_gps() -> bytes:
    """A 300x200 JPEG with a camera make, GPS coordinates and a comment."""
    image = Image.new("RGB", (300, 200), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    return encoded(image, "JPEG", exif=exif, comment=b"my home address")


def pixel_bomb_png(side: int = 20_000) -> bytes:
    """A PNG whose header claims side x side pixels over a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    rng = random.Random(7)  # noqa: S311 (test data)
    noise = Image.frombytes("RGB", (200, 200), rng.randbytes(200 * 200 * 3))
    data = encoded(noise, "JPEG", quality=95)
    return data[: len(data) // 2]


async def upload(
    http: httpx.AsyncClient,
    token: str,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    preflight: bool = True,
    **fields: Any,
) -> httpx.Response:
    """uploadMedia as a GraphQL multipart request (the spec's operations, map, then the file)."""
    operations = {
        "query": UPLOAD_MEDIA,
        "variables": {"input": {"file": None, **fields}},
    }
    headers = {"Authorization": f"Bearer {token}"}
    if preflight:
        headers["Apollo-Require-Preflight"] = "true"
    return await http.post(
        "/graphql",
        data={
            "operations": json.dumps(operations),
            "map": json.dumps({"0": ["variables.input.file"]}),
        },
        files={"0": (filename, data, content_type)},
        headers=headers,
    )


async def settle(app: Starlette) -> int:
    """Run the app's due jobs (media processing among them); how many ran."""
    services = app.state.services
    ran: int = await services.jobs.run_due(services.changes)
    return ran


def stored_files(root: Path) -> set[str]:
    """Every file under a local backend's root (objects and their sidecars), relative."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def path_of(url: str) -> str:
    """The path and query of a media URL, for the in-process client."""
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


async def upload_ok(
    http: httpx.AsyncClient, token: str, data: bytes | None = None, **fields: Any
) -> dict[str, Any]:
    """uploadMedia that must succeed (a PNG unless `data`); the medium, not processed yet."""
    response = await upload(http, token, data if data is not None else png(), **fields)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["data"]["uploadMedia"]
    assert result["__typename"] == "UploadMediaSuccess", result
    media: dict[str, Any] = result["media"]
    return media


async def media_of(gql: GraphQLClient, account: Account, media_id: str) -> dict[str, Any]:
    data = await gql(MEDIA, {"id": media_id}, token=account.access_token)
    media: dict[str, Any] = data["media"]
    return media


async def ready_media(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    account: Account,
    data: bytes | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A processed medium of the account's."""
    created = await upload_ok(http, account.access_token, data, **fields)
    await settle(app)
    media = await media_of(gql, account, created["id"])
    assert media["state"] == "READY", media
    return media


async def post_with_media(
    gql: GraphQLClient, account: Account, media_ids: list[str], visibility: str = "PUBLIC"
) -> dict[str, Any]:
    """createPost with `media_ids`: its result (success or error)."""
    data = await gql(
        CREATE_POST,
        {"input": {"text": "look", "visibility": visibility, "mediaIds": media_ids}},
        token=account.access_token,
    )
    result: dict[str, Any] = data["createPost"]
    return result
