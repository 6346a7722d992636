"""Media on other storage configurations: a CDN base URL, direct uploads to S3 (moto's
server), and a storage failure while processing."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.jobs import outbox
from app.main import create_app
from app.models import Job, JobState, Media, MediaState, StoredObject
from app.services.media_purge import EXPIRE_MEDIA
from providers.errors import Unavailable
from tests.authz import db_id
from tests.conftest import make_settings
from tests.media import (
    CREATE_POST,
    CREATE_UPLOAD,
    FINALIZE_UPLOAD,
    MEDIA,
    path_of,
    png,
    settle,
    stored_files,
    upload,
)
from tests.servers import MotoServer, start_moto_server
from tests.support import GraphQLClient


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with start_moto_server() as server:
        yield server


@asynccontextmanager
async def _variant(
    app: Starlette, data_dir: Path, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient, GraphQLClient]]:
    """Another app on the test database (opened by `app`) with other settings; its client."""
    variant = create_app(make_settings(data_dir, database_url, **overrides))
    services = variant.state.services
    transport = httpx.ASGITransport(app=variant, client=("203.0.113.8", 50_000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield variant, http, GraphQLClient(http, settle=lambda: settle(variant))
    finally:
        await services.limiter.close()
        await services.storage.close()


async def test_media_urls_use_the_configured_base_url(
    app: Starlette, data_dir: Path, database_url: str
) -> None:
    base = "https://cdn.example.net/m"
    async with _variant(app, data_dir, database_url, media={"base_url": base + "/"}) as (
        variant,
        http,
        gql,
    ):
        alice = await gql.sign_up("alice")
        created = (await upload(http, alice.access_token, png())).json()["data"]["uploadMedia"]
        await settle(variant)
        data = await gql(
            CREATE_POST,
            {"input": {"text": "hi", "mediaIds": [created["media"]["id"]]}},
            token=alice.access_token,
        )
        media = data["createPost"]["post"]["media"][0]

        assert media["url"].startswith(f"{base}/media/")
        assert media["url"].endswith("-full.webp")
        assert media["thumbnailUrl"].startswith(f"{base}/media/")
        # The CDN fetches from this server's /media route: same path below the base.
        assert (await http.get("/media" + media["url"][len(base) :])).status_code == 200


def _s3_storage(moto: MotoServer) -> dict[str, Any]:
    return {
        "default": "s3",
        "backends": {
            "s3": {
                "provider": "s3",
                "options": {
                    "bucket": f"media-{secrets.token_hex(6)}",
                    "endpoint_url": moto.endpoint,
                    "addressing_style": "path",
                    "access_key_id": "testing",
                    "secret_access_key": "testing",
                    "create_bucket": True,
                },
            }
        },
    }


async def test_direct_upload_to_s3_then_finalize(
    app: Starlette, data_dir: Path, database_url: str, moto_server: MotoServer
) -> None:
    storage = _s3_storage(moto_server)
    async with _variant(app, data_dir, database_url, storage=storage) as (variant, http, gql):
        alice = await gql.sign_up("alice")
        data = png((120, 80))
        created = await gql(
            CREATE_UPLOAD,
            {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": len(data)}},
            token=alice.access_token,
        )
        result = created["createUpload"]
        assert result["__typename"] == "CreateUploadSuccess", result
        media_id, direct = result["media"]["id"], result["upload"]
        assert result["media"]["state"] == "PENDING"
        assert direct["method"] in ("POST", "PUT")
        assert direct["url"].startswith(moto_server.endpoint)

        # Finalizing before the file is there is a typed error; the medium stays pending.
        early = await gql(FINALIZE_UPLOAD, {"input": {"id": media_id}}, token=alice.access_token)
        assert early["finalizeUpload"]["code"] == "UPLOAD_MISSING"

        async with httpx.AsyncClient() as vendor:
            if direct["method"] == "POST":
                sent = await vendor.post(
                    direct["url"],
                    data={f["name"]: f["value"] for f in direct["fields"]},
                    files={"file": ("photo.png", data, "image/png")},
                )
            else:
                sent = await vendor.put(
                    direct["url"],
                    content=data,
                    headers={h["name"]: h["value"] for h in direct["headers"]},
                )
        assert sent.status_code in (200, 201, 204), sent.text

        finalized = await gql(
            FINALIZE_UPLOAD, {"input": {"id": media_id}}, token=alice.access_token
        )
        assert finalized["finalizeUpload"]["media"]["state"] == "PROCESSING"
        media = (await gql(MEDIA, {"id": media_id}, token=alice.access_token))["media"]
        assert media["state"] == "READY", media
        assert (media["width"], media["height"]) == (120, 80)

        rows = await StoredObject.all()
        assert {row.backend for row in rows} == {"s3"}
        assert len(rows) == 2
        served = await http.get(path_of(media["url"]))
        assert served.status_code == 200
        assert served.content[8:12] == b"WEBP"
        assert "amazonaws" not in media["url"]
        assert moto_server.endpoint not in media["url"]
        # The original is gone from the bucket, so never served, even by the vendor.
        services = variant.state.services
        uploads = await services.storage.provider("s3").list("uploads/")
        assert uploads.objects == ()


async def test_a_storage_failure_while_processing_is_retried_with_nothing_recorded(
    app: Starlette, data_dir: Path, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "objects"
    storage = {"backends": {"local": {"provider": "local", "options": {"root": str(root)}}}}
    async with _variant(app, data_dir, database_url, storage=storage) as (variant, http, gql):
        alice = await gql.sign_up("alice")
        # A file where the renditions' directory must go: every rendition put fails.
        root.mkdir(parents=True, exist_ok=True)
        (root / "media").write_bytes(b"in the way")
        created = (await upload(http, alice.access_token, png())).json()["data"]["uploadMedia"]
        media_id = created["media"]["id"]

        assert await settle(variant) == 1

        job = await Job.get(name="media.process")
        assert job.state is JobState.PENDING  # to be retried
        assert job.attempts == 1
        assert job.last_error
        assert not await StoredObject.exists()
        row = await Media.get()
        assert row.state is MediaState.PROCESSING
        assert stored_files(root) == {
            "media",
            f"uploads/{row.id}",
            f".holdfast/meta/uploads/{row.id}",
        }

        # Once storage works again, the retry finishes the job.
        (root / "media").unlink()
        await Job.filter(id=job.id).update(run_after=outbox.now())
        assert await settle(variant) == 1
        media = (await gql(MEDIA, {"id": media_id}, token=alice.access_token))["media"]
        assert media["state"] == "READY"
        assert await StoredObject.all().count() == 2
        assert f"uploads/{row.id}" not in stored_files(root)


async def test_a_failing_storage_backend_is_a_typed_unavailable_error(
    app: Starlette, data_dir: Path, database_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "objects"
    storage = {"backends": {"local": {"provider": "local", "options": {"root": str(root)}}}}
    async with _variant(app, data_dir, database_url, storage=storage) as (_, http, gql):
        alice = await gql.sign_up("alice")
        created = await gql(
            CREATE_UPLOAD,
            {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
            token=alice.access_token,
        )
        pending_id = created["createUpload"]["media"]["id"]
        # The backend's root becomes a symbolic link, which the local provider never follows:
        # every read and write fails.
        elsewhere = tmp_path / "elsewhere"
        shutil.move(root, elsewhere)
        root.symlink_to(elsewhere)

        sent = await upload(http, alice.access_token, png())
        assert sent.status_code == 200, sent.text
        assert "errors" not in sent.json()
        result = sent.json()["data"]["uploadMedia"]
        assert (result["__typename"], result["code"]) == ("UploadMediaError", "UNAVAILABLE")
        assert result["message"] == "Storage is unavailable; try again."
        to_pending = await upload(http, alice.access_token, png(), id=pending_id)
        assert to_pending.json()["data"]["uploadMedia"]["code"] == "UNAVAILABLE"
        finalized = await gql(
            FINALIZE_UPLOAD, {"input": {"id": pending_id}}, token=alice.access_token
        )
        assert finalized["finalizeUpload"]["code"] == "UNAVAILABLE"

        assert [m.state for m in await Media.all()] == [MediaState.PENDING]


async def test_a_vendor_refusing_direct_uploads_is_a_typed_unavailable_error(
    app: Starlette, gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await gql.sign_up("alice")

    async def down(*args: object, **kwargs: object) -> None:
        raise Unavailable("the vendor is down")

    monkeypatch.setattr(app.state.services.storage.provider("local"), "presigned_upload", down)
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
        token=alice.access_token,
    )

    assert created["createUpload"]["code"] == "UNAVAILABLE"
    assert not await Media.exists()


async def test_a_backend_no_longer_configured_is_retried_until_the_timeout_fails_it(
    app: Starlette, http: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
        token=alice.access_token,
    )
    pending_id = created["createUpload"]["media"]["id"]
    sent = (await upload(http, alice.access_token, png())).json()["data"]["uploadMedia"]
    media_id = sent["media"]["id"]  # over HTTP: its job has not run yet
    # Both uploads wait in a backend since removed from the settings.
    await Media.all().update(upload_backend="gone")

    finalized = await gql(FINALIZE_UPLOAD, {"input": {"id": pending_id}}, token=alice.access_token)
    assert finalized["finalizeUpload"]["code"] == "UNAVAILABLE"

    job = await Job.get(name="media.process")
    assert job.state is JobState.PENDING  # failed, to be retried like a vendor's failure
    assert job.attempts == 1
    assert "not configured" in (job.last_error or "")
    [check] = [
        j
        for j in await Job.filter(name=EXPIRE_MEDIA)
        if j.payload == {"media": db_id(media_id), "state": "processing"}
    ]
    await Job.filter(id__in=[job.id, check.id]).update(run_after=outbox.now())
    await settle(app)

    media = (await gql(MEDIA, {"id": media_id}, token=alice.access_token))["media"]
    assert (media["state"], media["errorCode"]) == ("FAILED", "PROCESSING_FAILED")
