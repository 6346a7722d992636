"""Media end to end over GraphQL on the local backend: uploads through the application, the
processing job, what is served and to whom, attachments to posts and profiles."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from app.errors import DomainError, ErrorCode
from app.models import Media, MediaState, StoredObject
from app.services.media_reads import PUBLIC
from app.services.views import visible
from app.settings import Settings
from tests.authz import db_id
from tests.media import (
    CREATE_POST,
    CREATE_UPLOAD,
    EDIT_POST,
    GIF_HTML_POLYGLOT,
    HTML,
    POST,
    SVG,
    UPDATE_MEDIA,
    UPDATE_PROFILE,
    UPLOAD_MEDIA,
    jpeg_with_gps,
    media_of,
    path_of,
    pixel_bomb_png,
    png,
    post_with_media,
    ready_media,
    settle,
    stored_files,
    truncated_jpeg,
    upload,
    upload_ok,
)
from tests.social import action
from tests.support import GraphQLClient

DELETE_POST = action("deletePost", "PostRefInput", "deletedPostId")
FOLLOW = action("followUser", "UserRefInput", "followState")
DELETE_ACCOUNT = action("deleteAccount", "DeleteAccountInput", "deletedUserId")
BLOCK = action("blockUser", "UserRefInput", "userId")


@pytest.fixture
def media_root(settings: Settings) -> Path:
    return settings.data_dir / "media"


# --- uploads and processing ------------------------------------------------------------------


async def test_an_upload_without_the_preflight_header_is_refused(
    http: httpx.AsyncClient, gql: GraphQLClient, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    before = stored_files(media_root)

    response = await upload(http, alice.access_token, png(), preflight=False)

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert "Apollo-Require-Preflight" in error["message"]
    assert stored_files(media_root) == before
    assert not await Media.exists()


async def test_the_operation_name_header_also_passes_the_csrf_rule(
    http: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    alice = await gql.sign_up("alice")
    response = await http.post(
        "/graphql",
        data={
            "operations": '{"query": "mutation($f: Upload!) { uploadMedia(input: {file: $f}) '
            '{ __typename } }", "variables": {"f": null}}',
            "map": '{"0": ["variables.f"]}',
        },
        files={"0": ("a.png", png(), "image/png")},
        headers={
            "Authorization": f"Bearer {alice.access_token}",
            "X-Apollo-Operation-Name": "upload",
        },
    )
    assert response.json() == {"data": {"uploadMedia": {"__typename": "UploadMediaSuccess"}}}


async def test_an_uploaded_jpeg_is_served_as_webp_without_its_metadata(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")

    created = await upload_ok(
        http, alice.access_token, jpeg_with_gps(), altText="A blue field", focus={"x": 0.5, "y": -1}
    )
    assert created["state"] == "PROCESSING"
    assert created["url"] is None
    upload_key = f"uploads/{db_id(created['id'])}"
    assert (media_root / upload_key).exists()
    # The original bytes are never served, even while they wait.
    assert (await http.get(f"/media/{upload_key}")).status_code == 404

    assert await settle(app) == 1
    media = await media_of(gql, alice, created["id"])

    assert media["state"] == "READY"
    assert (media["width"], media["height"]) == (300, 200)
    assert media["blurhash"]
    assert media["altText"] == "A blue field"
    assert media["focus"] == {"x": 0.5, "y": -1.0}
    assert media["errorCode"] is None
    # Not on a post yet: only its owner's signed preview.
    assert "sig=" in media["url"]
    assert media["url"].startswith("http://testserver/media/media/")
    for url in (media["url"], media["thumbnailUrl"]):
        served = await http.get(path_of(url))
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        assert served.content[:4] == b"RIFF"
        assert served.content[8:12] == b"WEBP"
        assert b"Exif" not in served.content
        assert b"SecretCam" not in served.content
        assert b"my home address" not in served.content
        with Image.open(io.BytesIO(served.content)) as image:
            assert not image.getexif()
            assert image.format == "WEBP"
    # The upload is gone once processed, and was never served.
    assert not (media_root / upload_key).exists()
    assert (await http.get(f"/media/{upload_key}")).status_code == 404
    rows = await StoredObject.all().order_by("key")
    prefix = f"media/{db_id(created['id'])}/"
    assert [row.key.removeprefix(prefix).split("-", 1)[1] for row in rows] == [
        "full.webp",
        "thumb.webp",
    ]
    assert all(row.key.startswith(prefix) for row in rows)
    for row in rows:
        assert row.backend == "local"
        assert row.content_type == "image/webp"
        assert len(row.sha256) == 64
        assert row.size == (media_root / row.key).stat().st_size


HOSTILE = [
    pytest.param(HTML, "image/jpeg", "photo.jpg", "UNSUPPORTED_TYPE", id="html-named-jpg"),
    pytest.param(SVG, "image/png", "icon.png", "UNSUPPORTED_TYPE", id="svg"),
    pytest.param(GIF_HTML_POLYGLOT, "image/gif", "a.gif", "CORRUPT", id="gif-html-polyglot"),
    pytest.param(pixel_bomb_png(), "image/png", "big.png", "TOO_MANY_PIXELS", id="20k-png"),
    pytest.param(truncated_jpeg(), "image/jpeg", "cut.jpg", "CORRUPT", id="truncated-jpeg"),
]


@pytest.mark.parametrize(("data", "content_type", "filename", "code"), HOSTILE)
async def test_hostile_uploads_fail_with_a_typed_error_and_nothing_stored(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    media_root: Path,
    data: bytes,
    content_type: str,
    filename: str,
    code: str,
) -> None:
    alice = await gql.sign_up("alice")
    before = stored_files(media_root)

    created = await upload_ok(
        http, alice.access_token, data, filename=filename, content_type=content_type
    )
    await settle(app)
    media = await media_of(gql, alice, created["id"])

    assert media["state"] == "FAILED"
    assert media["errorCode"] == code
    assert media["errorMessage"]
    assert media["url"] is None
    assert media["thumbnailUrl"] is None
    assert not await StoredObject.exists()
    assert stored_files(media_root) == before


@pytest.mark.parametrize(
    ("data", "content_type", "code", "field"),
    [
        pytest.param(SVG, "image/svg+xml", "UNSUPPORTED_MEDIA_TYPE", "contentType", id="svg"),
        pytest.param(HTML, "text/html", "UNSUPPORTED_MEDIA_TYPE", "contentType", id="html"),
        pytest.param(
            b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024),
            "image/jpeg",
            "MEDIA_TOO_LARGE",
            "byteSize",
            id="oversized",
        ),
    ],
)
async def test_uploads_refused_at_once_store_nothing(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    media_root: Path,
    data: bytes,
    content_type: str,
    code: str,
    field: str,
) -> None:
    alice = await gql.sign_up("alice")
    before = stored_files(media_root)

    response = await upload(http, alice.access_token, data, content_type=content_type)

    assert response.status_code == 200, response.text
    result = response.json()["data"]["uploadMedia"]
    assert result["__typename"] == "UploadMediaError"
    assert (result["code"], result["field"]) == (code, field)
    assert not await Media.exists()
    assert not await StoredObject.exists()
    assert stored_files(media_root) == before


async def test_only_multipart_requests_may_be_larger_than_the_body_limit(
    http: httpx.AsyncClient, gql: GraphQLClient, settings: Settings
) -> None:
    alice = await gql.sign_up("alice")
    body_limit = settings.http.max_body_bytes
    # Over the body limit, under the upload limit: the file reaches the mutation.
    big = await upload(http, alice.access_token, b"GIF89a" + b"\x00" * (2 * body_limit))
    assert big.status_code == 200
    assert big.json()["data"]["uploadMedia"]["__typename"] == "UploadMediaSuccess"
    # A JSON body of that size is still refused unread.
    json_body = await http.post(
        "/graphql",
        content=b'{"query": "' + b" " * (2 * body_limit) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert json_body.status_code == 413
    # Multipart past the upload limit and a form's worth: refused unread too.
    limit = settings.media.max_upload_bytes + body_limit
    huge = await upload(http, alice.access_token, b"\x00" * (limit + 1))
    assert huge.status_code == 413
    assert huge.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_json_upload_variable_is_a_typed_error(gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    data = await gql(
        'mutation { uploadMedia(input: {file: "not a file"}) { __typename '
        "... on UploadMediaError { code field } } }",
        token=alice.access_token,
    )
    assert data["uploadMedia"] == {
        "__typename": "UploadMediaError",
        "code": "INVALID_INPUT",
        "field": "file",
    }


async def test_alt_text_and_focus_can_be_changed_by_the_owner_only(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice, bob = await gql.sign_up("alice"), await gql.sign_up("bob")
    media = await ready_media(http, gql, app, alice)

    data = await gql(
        UPDATE_MEDIA,
        {"input": {"id": media["id"], "altText": "A red square", "focus": {"x": -0.25, "y": 1}}},
        token=alice.access_token,
    )
    assert data["updateMedia"]["media"]["altText"] == "A red square"
    assert data["updateMedia"]["media"]["focus"] == {"x": -0.25, "y": 1.0}

    for update, code, field in (
        ({"focus": {"x": 2, "y": 0}}, "INVALID_INPUT", "focus"),
        ({"altText": "x" * 1501}, "TEXT_TOO_LONG", "altText"),
    ):
        refused = await gql(
            UPDATE_MEDIA, {"input": {"id": media["id"], **update}}, token=alice.access_token
        )
        assert (refused["updateMedia"]["code"], refused["updateMedia"]["field"]) == (code, field)
    others = await gql(
        UPDATE_MEDIA, {"input": {"id": media["id"], "altText": "mine"}}, token=bob.access_token
    )
    assert others["updateMedia"]["code"] == "NOT_FOUND"
    assert (await media_of(gql, bob, media["id"])) is None
    assert (await media_of(gql, alice, media["id"]))["altText"] == "A red square"


# --- attachments -------------------------------------------------------------------------------


async def test_up_to_the_limit_of_media_attach_to_a_post_in_order(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = [await ready_media(http, gql, app, alice) for _ in range(5)]
    ids = [m["id"] for m in media]

    refused = await post_with_media(gql, alice, ids)
    assert (refused["code"], refused["field"]) == ("TOO_MANY_ATTACHMENTS", "mediaIds")
    assert not await Media.filter(post_id__not_isnull=True).exists()

    created = await post_with_media(gql, alice, list(reversed(ids[:4])))
    assert created["__typename"] == "CreatePostSuccess", created
    assert [m["id"] for m in created["post"]["media"]] == list(reversed(ids[:4]))
    post_id = created["post"]["id"]

    # Editing with a fifth one is refused and changes nothing; an edit can reorder and drop.
    over = await gql(
        EDIT_POST,
        {"input": {"id": post_id, "text": "more", "mediaIds": ids}},
        token=alice.access_token,
    )
    assert over["editPost"]["code"] == "TOO_MANY_ATTACHMENTS"
    data = await gql(POST, {"id": post_id}, token=alice.access_token)
    assert data["node"]["text"] == "look"
    assert [m["id"] for m in data["node"]["media"]] == list(reversed(ids[:4]))
    edited = await gql(
        EDIT_POST,
        {"input": {"id": post_id, "text": "fewer", "mediaIds": [ids[4], ids[0]]}},
        token=alice.access_token,
    )
    assert [m["id"] for m in edited["editPost"]["post"]["media"]] == [ids[4], ids[0]]


async def test_media_that_cannot_be_attached_are_refused_and_nothing_is_posted(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice, bob = await gql.sign_up("alice"), await gql.sign_up("bob")
    bobs = await ready_media(http, gql, app, bob)
    avatar = await ready_media(http, gql, app, alice, purpose="AVATAR")
    failed = await upload_ok(http, alice.access_token, HTML)
    mine = await ready_media(http, gql, app, alice)  # settles `failed` too
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
        token=alice.access_token,
    )
    pending = created["createUpload"]["media"]
    assert pending["state"] == "PENDING"
    assert created["createUpload"]["upload"] is None  # local storage: send it with uploadMedia
    on_a_post = await post_with_media(gql, alice, [mine["id"]])
    assert on_a_post["__typename"] == "CreatePostSuccess"
    posts_before = await gql("{ publicTimeline(first: 10) { edges { cursor } } }")

    for media_id, code in (
        (bobs["id"], "NOT_FOUND"),
        (avatar["id"], "WRONG_MEDIA_PURPOSE"),
        (pending["id"], "MEDIA_NOT_READY"),
        (failed["id"], "MEDIA_NOT_READY"),
        (mine["id"], "MEDIA_IN_USE"),
        ("UG9zdDox", "NOT_FOUND"),
    ):
        refused = await post_with_media(gql, alice, [media_id])
        assert (refused["code"], refused["field"]) == (code, "mediaIds"), media_id
    assert await gql("{ publicTimeline(first: 10) { edges { cursor } } }") == posts_before
    assert await Media.filter(post_id__not_isnull=True).count() == 1


# --- serving and who may see what ---------------------------------------------------------


async def test_public_post_media_are_served_to_anyone(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]]))["post"]

    anonymous = await gql(POST, {"id": post["id"]})
    url = anonymous["node"]["media"][0]["url"]
    assert "sig=" not in url
    assert "?" not in url
    served = await http.get(path_of(url))
    assert served.status_code == 200
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert served.headers["cache-control"].startswith("public, max-age=")
    etag = served.headers["etag"]
    assert etag.strip('"') == (await StoredObject.get(key=path_of(url)[len("/media/") :])).sha256
    again = await http.get(path_of(url), headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # Unattached, the same bytes would need a signature.
    assert (await http.get(path_of(media["thumbnailUrl"]).split("?")[0])).status_code == 200


async def test_followers_post_media_need_a_valid_signature(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice, bob, carol = [await gql.sign_up(name) for name in ("alice", "bob", "carol")]
    follows = await gql(FOLLOW, {"input": {"userId": alice.id}}, token=bob.access_token)
    assert follows["followUser"]["followState"] == "FOLLOWING"
    media = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]], visibility="FOLLOWERS"))["post"]

    seen = await gql(POST, {"id": post["id"]}, token=bob.access_token)
    url = seen["node"]["media"][0]["url"]
    path, _, query = path_of(url).partition("?")
    assert query.startswith("exp=")
    assert "&sig=" in query

    served = await http.get(path_of(url))
    assert served.status_code == 200
    assert served.headers["cache-control"].startswith("private, max-age=")
    assert 0 < int(served.headers["cache-control"].split("=")[1]) <= 3_600 + 60
    assert served.content[8:12] == b"WEBP"
    # Unsigned, tampered with, for another key, or expired: as if it did not exist.
    assert (await http.get(path)).status_code == 404
    signature = query.split("sig=")[1]
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert (await http.get(f"{path}?{query.split('&')[0]}&sig={tampered}")).status_code == 404
    thumb_path = path_of(seen["node"]["media"][0]["thumbnailUrl"]).split("?")[0]
    assert (await http.get(f"{thumb_path}?{query}")).status_code == 404
    links = app.state.services.media.links
    expired = links.url(
        path[len("/media/") :], origin="http://t", public=False, now=time.time() - 7_200
    )
    assert (await http.get(path_of(expired))).status_code == 404
    # Someone outside the audience never sees the post, so never gets a URL.
    assert (await gql(POST, {"id": post["id"]}, token=carol.access_token))["node"] is None
    assert (await gql(POST, {"id": post["id"]}))["node"] is None


async def test_media_of_a_deleted_post_are_not_served(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]]))["post"]
    url = post["media"][0]["url"]
    assert (await http.get(path_of(url))).status_code == 200

    deleted = await gql(DELETE_POST, {"input": {"postId": post["id"]}}, token=alice.access_token)
    assert deleted["deletePost"]["__typename"] == "DeletePostSuccess"

    assert (await http.get(path_of(url))).status_code == 404
    tombstone = await gql(POST, {"id": post["id"]}, token=alice.access_token)
    assert tombstone["node"] is None or tombstone["node"]["media"] == []


async def test_media_of_a_deleted_account_are_not_served(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]]))["post"]
    avatar = await ready_media(http, gql, app, alice, purpose="AVATAR")
    profile = await gql(
        UPDATE_PROFILE, {"input": {"avatarId": avatar["id"]}}, token=alice.access_token
    )
    urls = [post["media"][0]["url"], profile["updateProfile"]["user"]["avatar"]["url"]]
    for url in urls:
        assert (await http.get(path_of(url))).status_code == 200

    gone = await gql(
        DELETE_ACCOUNT,
        {"input": {"password": "correct horse battery staple"}},
        token=alice.access_token,
    )
    assert gone["deleteAccount"]["__typename"] == "DeleteAccountSuccess"

    for url in urls:
        assert (await http.get(path_of(url))).status_code == 404


async def test_avatars_and_headers_are_public_once_in_use(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    avatar = await ready_media(http, gql, app, alice, purpose="AVATAR")
    header = await ready_media(http, gql, app, alice, purpose="HEADER")
    for_a_post = await ready_media(http, gql, app, alice)

    wrong = await gql(
        UPDATE_PROFILE, {"input": {"avatarId": header["id"]}}, token=alice.access_token
    )
    assert (wrong["updateProfile"]["code"], wrong["updateProfile"]["field"]) == (
        "WRONG_MEDIA_PURPOSE",
        "avatarId",
    )
    wrong = await gql(
        UPDATE_PROFILE, {"input": {"headerId": for_a_post["id"]}}, token=alice.access_token
    )
    assert wrong["updateProfile"]["code"] == "WRONG_MEDIA_PURPOSE"

    data = await gql(
        UPDATE_PROFILE,
        {"input": {"avatarId": avatar["id"], "headerId": header["id"]}},
        token=alice.access_token,
    )
    user = data["updateProfile"]["user"]
    assert user["avatar"]["id"] == avatar["id"]
    assert user["header"]["id"] == header["id"]
    anonymous = await gql(
        'query { user(username: "alice") { avatar { url } header { thumbnailUrl } } }'
    )
    for url in (anonymous["user"]["avatar"]["url"], anonymous["user"]["header"]["thumbnailUrl"]):
        assert "sig=" not in url
        assert (await http.get(path_of(url))).status_code == 200

    # Omitted keeps it; null removes it (and its URL needs a signature again).
    kept = await gql(UPDATE_PROFILE, {"input": {"bio": "hi"}}, token=alice.access_token)
    assert kept["updateProfile"]["user"]["avatar"]["id"] == avatar["id"]
    removed = await gql(UPDATE_PROFILE, {"input": {"avatarId": None}}, token=alice.access_token)
    assert removed["updateProfile"]["user"]["avatar"] is None
    assert (await http.get(path_of(anonymous["user"]["avatar"]["url"]))).status_code == 404


async def test_inflight_keys_are_those_of_pending_and_processingmedia_of(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = app.state.services.media
    ready = await ready_media(http, gql, app, alice)
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "AVATAR", "contentType": "image/webp", "byteSize": 10}},
        token=alice.access_token,
    )
    pending = created["createUpload"]["media"]
    processing = await upload_ok(http, alice.access_token)  # its job not run yet

    keys = await media.inflight_upload_keys()

    assert keys == {
        f"uploads/{db_id(processing['id'])}",
        f"uploads/{db_id(pending['id'])}",
        # Where uploadMedia streams the bytes of a pending medium before they are its own.
        f"uploads/sent/{db_id(pending['id'])}/",
        # Its job stores renditions before it records them: not orphans meanwhile.
        f"media/{db_id(processing['id'])}/",
    }
    assert f"uploads/{db_id(ready['id'])}" not in keys


# --- review fixes -----------------------------------------------------------------------------


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _multipart_without_part_type(token: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """uploadMedia whose file part has no Content-Type at all."""
    boundary = "holdfast-test-boundary"
    operations = json.dumps(
        {"query": UPLOAD_MEDIA, "variables": {"input": {"file": None}}}
    ).encode()
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'.encode(),
            operations,
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n'.encode(),
            b'{"0": ["variables.input.file"]}',
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="0"; '
            'filename="upload"\r\n\r\n'.encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    headers = {
        "Authorization": f"Bearer {token}",
        "Apollo-Require-Preflight": "true",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    return body, headers


async def test_a_file_part_without_an_image_type_is_judged_by_its_content(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    generic = "application/octet-stream"
    photo = await upload_ok(http, alice.access_token, jpeg_with_gps(), content_type=generic)
    page = await upload_ok(http, alice.access_token, HTML, filename="a", content_type=generic)
    body, headers = _multipart_without_part_type(alice.access_token, png())
    untyped = await http.post("/graphql", content=body, headers=headers)
    assert untyped.status_code == 200, untyped.text
    result = untyped.json()["data"]["uploadMedia"]
    assert result["__typename"] == "UploadMediaSuccess", result

    await settle(app)

    assert (await media_of(gql, alice, photo["id"]))["state"] == "READY"
    assert (await media_of(gql, alice, result["media"]["id"]))["state"] == "READY"
    refused = await media_of(gql, alice, page["id"])
    assert (refused["state"], refused["errorCode"]) == ("FAILED", "UNSUPPORTED_TYPE")
    # createUpload keeps the check: the type is bound into the direct-upload policy.
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": generic, "byteSize": 100}},
        token=alice.access_token,
    )
    assert created["createUpload"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_an_upload_losing_the_race_for_a_pending_medium_is_refused_and_dropped(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
        token=alice.access_token,
    )
    global_id = created["createUpload"]["media"]["id"]
    media_id = db_id(global_id)
    services = app.state.services
    viewer = await services.accounts.resolve_viewer(alice.access_token)
    assert viewer is not None
    winner = png(colour=(0, 200, 0))

    async def losing_chunks() -> AsyncIterator[bytes]:
        yield b"\x89PNG\r\n\x1a\n"
        # While these bytes stream in, another upload of the same medium gets there first.
        won = await services.media.upload(
            viewer, chunks=_chunks(winner), content_type="image/png", media_id=media_id
        )
        assert won.state is MediaState.PROCESSING
        yield HTML

    with pytest.raises(DomainError) as refused:
        await services.media.upload(
            viewer, chunks=losing_chunks(), content_type="image/png", media_id=media_id
        )

    assert (refused.value.code, refused.value.field) == (ErrorCode.UPLOAD_NOT_PENDING, "id")
    row = await Media.get(id=media_id)
    assert row.state is MediaState.PROCESSING
    # The winner's bytes are untouched, and nothing of the loser's is left.
    assert (media_root / row.upload_key).read_bytes() == winner
    uploads = {p for p in stored_files(media_root) if str(media_id) in p and "uploads/" in p}
    assert uploads == {row.upload_key, f".holdfast/meta/{row.upload_key}"}
    assert row.upload_key.startswith(f"uploads/sent/{media_id}/")
    # Sent again afterwards, over GraphQL: a typed error too.
    again = await upload(http, alice.access_token, png(), id=global_id)
    result = again.json()["data"]["uploadMedia"]
    assert (result["__typename"], result["code"]) == ("UploadMediaError", "UPLOAD_NOT_PENDING")
    assert (media_root / row.upload_key).read_bytes() == winner

    await settle(app)
    media = await media_of(gql, alice, global_id)
    assert media["state"] == "READY", media
    assert not {p for p in stored_files(media_root) if str(media_id) in p and "uploads/" in p}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("exp=%C2%B2&sig=" + "0" * 64, id="superscript-exp"),
        pytest.param("exp=%D9%A1%D9%A2&sig=" + "0" * 64, id="arabic-indic-exp"),
        pytest.param("exp={exp}&sig=%C3%A9", id="non-ascii-sig"),
        pytest.param("exp={exp}&sig=" + "%C3%A9" * 64, id="64-non-ascii-sig"),
        pytest.param("exp={exp}&sig={upper}", id="upper-case-sig"),
        pytest.param("exp={exp}&sig={sig}0", id="long-sig"),
    ],
)
async def test_crafted_signatures_are_a_404_not_a_500(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, query: str
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)  # on no post: signed URLs only
    path, _, signed = path_of(media["url"]).partition("?")
    params = dict(part.split("=", 1) for part in signed.split("&"))
    assert (await http.get(f"{path}?{signed}")).status_code == 200

    crafted = query.format(exp=params["exp"], sig=params["sig"], upper=params["sig"].upper())
    response = await http.get(f"{path}?{crafted}")

    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_who_sees_media_is_the_rule_of_who_sees_posts() -> None:
    # The signed-out case of the one visibility rule, not a restatement of it.
    assert visible("p", "NULL") in PUBLIC


async def test_direct_post_media_reach_only_its_audience(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice, bob, dave = [await gql.sign_up(name) for name in ("alice", "bob", "dave")]
    media = await ready_media(http, gql, app, alice)
    created = await gql(
        CREATE_POST,
        {"input": {"text": "@bob @dave look", "visibility": "DIRECT", "mediaIds": [media["id"]]}},
        token=alice.access_token,
    )
    post = created["createPost"]["post"]
    blocked = await gql(BLOCK, {"input": {"userId": dave.id}}, token=alice.access_token)
    assert blocked["blockUser"]["__typename"] == "BlockUserSuccess", blocked

    seen = await gql(POST, {"id": post["id"]}, token=bob.access_token)
    url = seen["node"]["media"][0]["url"]
    assert "sig=" in url
    assert (await http.get(path_of(url))).status_code == 200
    assert (await http.get(path_of(url).split("?")[0])).status_code == 404
    # Mentioned but blocked, or signed out: the post is not theirs to see, so neither is a URL.
    assert (await gql(POST, {"id": post["id"]}, token=dave.access_token))["node"] is None
    assert (await gql(POST, {"id": post["id"]}))["node"] is None


async def test_an_upload_is_never_served_while_pending_or_processing(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    services = app.state.services
    links = services.media.links
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 100}},
        token=alice.access_token,
    )
    pending_id = db_id(created["createUpload"]["media"]["id"])
    pending_key = f"uploads/{pending_id}"
    await services.storage.provider("local").put(
        pending_key, _chunks(png()), content_type="image/png"
    )
    processing = await upload_ok(http, alice.access_token)  # its job not run yet
    processing_key = f"uploads/{db_id(processing['id'])}"

    for key in (pending_key, processing_key):
        assert (media_root / key).exists()
        assert (await http.get(f"/media/{key}")).status_code == 404
        # Not even with a good signature for the key.
        signed = links.url(key, origin="http://testserver", public=False)
        assert (await http.get(path_of(signed))).status_code == 404
    assert (await Media.get(id=pending_id)).state is MediaState.PENDING
    assert (await Media.get(id=db_id(processing["id"]))).state is MediaState.PROCESSING


async def test_a_medium_on_no_post_has_signed_urls_for_its_owner(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)

    for url in (media["url"], media["thumbnailUrl"]):
        path, _, query = path_of(url).partition("?")
        assert query.startswith("exp=")
        assert "&sig=" in query
        assert (await http.get(path_of(url))).status_code == 200
        assert (await http.get(path)).status_code == 404
