"""Stored media never outlive what they belong to: a deleted post's, an account's, those an
edit drops or a new avatar replaces, uploads never finished and media never used are purged,
rows in the change and bytes by a retried job (app/services/media_purge.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Collection
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.jobs import outbox
from app.models import Job, JobState, Media, MediaState, StoredObject
from app.services.media import PROCESS_MEDIA
from app.services.media_purge import DELETE_OBJECTS, EXPIRE_MEDIA
from app.settings import Settings
from tests.authz import db_id
from tests.media import (
    CREATE_UPLOAD,
    EDIT_POST,
    FINALIZE_UPLOAD,
    HTML,
    UPDATE_PROFILE,
    media_of,
    path_of,
    png,
    post_with_media,
    ready_media,
    settle,
    stored_files,
    upload_ok,
)
from tests.social import action
from tests.support import STRONG_PASSWORD, Account, GraphQLClient

DELETE_POST = action("deletePost", "PostRefInput", "deletedPostId")
DELETE_ACCOUNT = action("deleteAccount", "DeleteAccountInput", "deletedUserId")


@pytest.fixture
def media_root(settings: Settings) -> Path:
    return settings.data_dir / "media"


def files_of(root: Path, media_id: int) -> set[str]:
    """The files (objects and sidecars) of one medium under a local backend's root: its
    renditions and its upload."""
    return {
        path
        for path in stored_files(root)
        if f"media/{media_id}/" in path
        or f"uploads/sent/{media_id}/" in path
        or path.endswith(f"uploads/{media_id}")
    }


async def rendition_keys(media_id: int) -> set[str]:
    media = await Media.get(id=media_id)
    ids = [i for i in (media.full_id, media.thumb_id) if i is not None]
    keys = {obj.key for obj in await StoredObject.filter(id__in=ids)}
    assert len(keys) == 2
    return keys


async def assert_purged(root: Path, media_id: int, keys: Collection[str] = ()) -> None:
    """The medium's row, its objects' rows (`keys`) and its files are gone."""
    assert not await Media.exists(id=media_id)
    if keys:
        assert not await StoredObject.exists(key__in=list(keys))
    assert files_of(root, media_id) == set()


async def assert_kept(root: Path, media_id: int) -> None:
    media = await Media.get(id=media_id)
    assert media.state is MediaState.READY
    keys = await rendition_keys(media_id)
    assert {key for key in keys if key in stored_files(root)} == keys


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _make_due(**filters: Any) -> int:
    """Jobs recorded with a delay (or backing off after a failure) due now."""
    return await Job.filter(state=JobState.PENDING, **filters).update(run_after=outbox.now())


async def _expiries(**payload: object) -> list[Job]:
    """The `media.expire` jobs whose payload has these values."""
    jobs = await Job.filter(name=EXPIRE_MEDIA)
    return [job for job in jobs if all(job.payload.get(k) == v for k, v in payload.items())]


async def _pending_upload(gql: GraphQLClient, app: Starlette, account: Account) -> str:
    """A createUpload medium with part of its bytes already in storage; its id."""
    created = await gql(
        CREATE_UPLOAD,
        {"input": {"purpose": "POST", "contentType": "image/png", "byteSize": 10}},
        token=account.access_token,
    )
    global_id: str = created["createUpload"]["media"]["id"]
    row = await Media.get(id=db_id(global_id))
    storage = app.state.services.storage
    await storage.provider(row.upload_backend).put(
        row.upload_key, _chunks(b"\x89PNG half"), content_type="image/png"
    )
    return global_id


# --- deleting a post, editing it, replacing a profile picture ------------------------------


async def test_a_deleted_posts_media_are_purged_rows_first_then_bytes(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    attached = [await ready_media(http, gql, app, alice) for _ in range(2)]
    other = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [m["id"] for m in attached]))["post"]
    ids = [db_id(m["id"]) for m in attached]
    keys = {media_id: await rendition_keys(media_id) for media_id in ids}
    assert all(files_of(media_root, media_id) for media_id in ids)

    # Without settling: the deleting change itself purged the rows and owes the bytes.
    unsettled = GraphQLClient(http)
    deleted = await unsettled(
        DELETE_POST, {"input": {"postId": post["id"]}}, token=alice.access_token
    )
    assert deleted["deletePost"]["__typename"] == "DeletePostSuccess"
    assert not await Media.exists(id__in=ids)
    assert not await StoredObject.exists(key__in=[k for ks in keys.values() for k in ks])
    assert all(files_of(media_root, media_id) for media_id in ids)
    owed = await Job.filter(name=DELETE_OBJECTS, state=JobState.PENDING)
    assert sorted(key for job in owed for _, key in job.payload["objects"]) == sorted(
        k for ks in keys.values() for k in ks
    )

    await settle(app)

    for media_id in ids:
        await assert_purged(media_root, media_id, keys[media_id])
    await assert_kept(media_root, db_id(other["id"]))
    assert [job.state for job in await Job.filter(name=DELETE_OBJECTS)] == [JobState.DONE]


async def test_media_an_edit_drops_are_purged_and_the_rest_kept(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    dropped, kept = [await ready_media(http, gql, app, alice) for _ in range(2)]
    post = (await post_with_media(gql, alice, [dropped["id"], kept["id"]]))["post"]
    dropped_keys = await rendition_keys(db_id(dropped["id"]))

    edited = await gql(
        EDIT_POST,
        {"input": {"id": post["id"], "text": "just one", "mediaIds": [kept["id"]]}},
        token=alice.access_token,
    )

    assert [m["id"] for m in edited["editPost"]["post"]["media"]] == [kept["id"]]
    await assert_purged(media_root, db_id(dropped["id"]), dropped_keys)
    await assert_kept(media_root, db_id(kept["id"]))
    url = edited["editPost"]["post"]["media"][0]["url"]
    assert (await http.get(path_of(url))).status_code == 200
    # Omitting mediaIds keeps them.
    again = await gql(
        EDIT_POST, {"input": {"id": post["id"], "text": "same"}}, token=alice.access_token
    )
    assert [m["id"] for m in again["editPost"]["post"]["media"]] == [kept["id"]]
    await assert_kept(media_root, db_id(kept["id"]))


async def test_an_avatar_replaced_or_removed_is_purged(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    first, second = [await ready_media(http, gql, app, alice, purpose="AVATAR") for _ in "ab"]
    header = await ready_media(http, gql, app, alice, purpose="HEADER")
    await gql(
        UPDATE_PROFILE,
        {"input": {"avatarId": first["id"], "headerId": header["id"]}},
        token=alice.access_token,
    )
    first_keys = await rendition_keys(db_id(first["id"]))

    replaced = await gql(
        UPDATE_PROFILE, {"input": {"avatarId": second["id"]}}, token=alice.access_token
    )

    assert replaced["updateProfile"]["user"]["avatar"]["id"] == second["id"]
    await assert_purged(media_root, db_id(first["id"]), first_keys)
    await assert_kept(media_root, db_id(second["id"]))
    await assert_kept(media_root, db_id(header["id"]))
    # Setting the same one again purges nothing; removing it purges it.
    await gql(UPDATE_PROFILE, {"input": {"avatarId": second["id"]}}, token=alice.access_token)
    await assert_kept(media_root, db_id(second["id"]))
    await gql(UPDATE_PROFILE, {"input": {"avatarId": None}}, token=alice.access_token)
    await assert_purged(media_root, db_id(second["id"]))
    await assert_kept(media_root, db_id(header["id"]))


# --- deleting an account ---------------------------------------------------------------------


async def test_every_medium_of_a_deleted_account_is_purged(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice, bob = await gql.sign_up("alice"), await gql.sign_up("bob")
    on_post = await ready_media(http, gql, app, alice)
    await post_with_media(gql, alice, [on_post["id"]])
    unattached = await ready_media(http, gql, app, alice)
    avatar = await ready_media(http, gql, app, alice, purpose="AVATAR")
    header = await ready_media(http, gql, app, alice, purpose="HEADER")
    await gql(
        UPDATE_PROFILE,
        {"input": {"avatarId": avatar["id"], "headerId": header["id"]}},
        token=alice.access_token,
    )
    bobs = await ready_media(http, gql, app, bob)
    failed = await upload_ok(http, alice.access_token, HTML, content_type="image/png")
    pending = db_id(await _pending_upload(gql, app, alice))  # settles: `failed` is processed
    processing = await upload_ok(http, alice.access_token)  # its job not run yet
    processing_id = db_id(processing["id"])
    ready_ids = [db_id(m["id"]) for m in (on_post, unattached, avatar, header)]
    alices = [*ready_ids, db_id(failed["id"]), pending, processing_id]
    assert (await Media.get(id=db_id(failed["id"]))).state is MediaState.FAILED
    assert files_of(media_root, pending)
    assert files_of(media_root, processing_id)
    keys = {key for media_id in ready_ids for key in await rendition_keys(media_id)}
    # Objects of its own; after the account's deletion no row would lead to them.
    assert await StoredObject.filter(owner_id=db_id(alice.id)).count() == 2 * len(ready_ids)

    gone = await gql(
        DELETE_ACCOUNT, {"input": {"password": STRONG_PASSWORD}}, token=alice.access_token
    )

    assert gone["deleteAccount"]["__typename"] == "DeleteAccountSuccess"
    for media_id in alices:
        await assert_purged(media_root, media_id, keys)
    assert not await StoredObject.exists(key__in=list(keys))
    assert await StoredObject.all().count() == 2
    await assert_kept(media_root, db_id(bobs["id"]))
    assert not await Job.exclude(state=JobState.DONE).filter(name=DELETE_OBJECTS).exists()


# --- failures and repeats ------------------------------------------------------------------


async def test_a_purge_that_storage_fails_is_retried_and_completes_later(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    media_root: Path,
    tmp_path: Path,
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]]))["post"]
    media_id = db_id(media["id"])
    keys = await rendition_keys(media_id)
    # A symbolic link where the renditions' directory is: the local backend refuses to
    # follow it, so every delete under it fails (root ignores permissions; this it cannot).
    directory = media_root / "media" / str(media_id)
    aside = tmp_path / "aside"
    shutil.move(directory, aside)
    os.symlink(aside, directory)
    try:
        await gql(DELETE_POST, {"input": {"postId": post["id"]}}, token=alice.access_token)

        job = await Job.get(name=DELETE_OBJECTS)
        assert job.state is JobState.PENDING  # to be retried
        assert job.attempts == 1
        assert "2 of 2 objects not deleted" in (job.last_error or "")
        assert job.run_after > outbox.now()
        assert not await Media.exists(id=media_id)
        assert not await StoredObject.exists(key__in=list(keys))
        assert len(list(aside.iterdir())) == 2  # the bytes are still there: orphans for now

        # Still failing: retried again, later.
        await _make_due(id=job.id)
        assert await settle(app) == 1
        assert (await Job.get(id=job.id)).attempts == 2
    finally:
        directory.unlink()
        shutil.move(aside, directory)

    await _make_due(id=job.id)
    assert await settle(app) == 1

    done = await Job.get(id=job.id)
    assert (done.state, done.attempts) == (JobState.DONE, 3)
    await assert_purged(media_root, media_id, keys)


async def test_running_a_purge_again_does_nothing_harmful(
    http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette, media_root: Path
) -> None:
    alice = await gql.sign_up("alice")
    media = await ready_media(http, gql, app, alice)
    other = await ready_media(http, gql, app, alice)
    post = (await post_with_media(gql, alice, [media["id"]]))["post"]
    await gql(DELETE_POST, {"input": {"postId": post["id"]}}, token=alice.access_token)
    await assert_purged(media_root, db_id(media["id"]))

    # At least once: both kinds of job run again (a lost completion, a retry); the expiry
    # checks of both states it had (processing, ready).
    purge = await Job.get(name=DELETE_OBJECTS)
    expire = await _expiries(media=db_id(media["id"]))
    rerun = [purge.id, *(job.id for job in expire)]
    await Job.filter(id__in=rerun).update(state=JobState.PENDING, run_after=outbox.now())
    assert await settle(app) == len(rerun) == 3

    assert {job.state for job in await Job.filter(id__in=rerun)} == {JobState.DONE}
    await assert_purged(media_root, db_id(media["id"]))
    await assert_kept(media_root, db_id(other["id"]))


# --- expiry ----------------------------------------------------------------------------------


async def test_an_upload_whose_bytes_never_came_expires(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    media_root: Path,
    settings: Settings,
) -> None:
    alice = await gql.sign_up("alice")
    media = app.state.services.media
    before = outbox.now()
    abandoned_id = await _pending_upload(gql, app, alice)
    finished_id = await _pending_upload(gql, app, alice)
    abandoned, finished = db_id(abandoned_id), db_id(finished_id)
    sent = await upload_ok(http, alice.access_token, png(), id=finished_id)
    assert sent["state"] == "PROCESSING"
    await settle(app)
    assert (await Media.get(id=finished)).state is MediaState.READY

    [expiry] = await _expiries(media=abandoned)
    wait = timedelta(seconds=settings.media.upload_url_ttl + settings.media.pending_ttl)
    assert before + wait <= expiry.run_after <= outbox.now() + wait
    assert await settle(app) == 0  # not due yet
    assert f"uploads/{abandoned}" in await media.inflight_upload_keys()

    pending = await _expiries(state="pending")
    assert len(pending) == 2
    await _make_due(id__in=[job.id for job in pending])
    await settle(app)

    await assert_purged(media_root, abandoned)
    assert (await media_of(gql, alice, abandoned_id)) is None
    assert f"uploads/{abandoned}" not in await media.inflight_upload_keys()
    # The one whose bytes came is no longer pending: its expiry left it alone.
    await assert_kept(media_root, finished)


async def test_a_medium_never_used_expires_and_one_in_use_is_kept(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    media_root: Path,
    settings: Settings,
) -> None:
    alice = await gql.sign_up("alice")
    before = outbox.now()
    unused = await ready_media(http, gql, app, alice)
    on_post = await ready_media(http, gql, app, alice)
    avatar = await ready_media(http, gql, app, alice, purpose="AVATAR")
    failed = await upload_ok(http, alice.access_token, HTML, content_type="image/png")
    await settle(app)
    assert (await media_of(gql, alice, failed["id"]))["state"] == "FAILED"
    post = (await post_with_media(gql, alice, [on_post["id"]]))["post"]
    await gql(UPDATE_PROFILE, {"input": {"avatarId": avatar["id"]}}, token=alice.access_token)
    unused_keys = await rendition_keys(db_id(unused["id"]))

    expiries = [
        job for job in await Job.filter(name=EXPIRE_MEDIA) if job.payload["state"] != "processing"
    ]
    assert len(expiries) == 4
    wait = timedelta(seconds=settings.media.unattached_ttl)
    assert all(before + wait <= job.run_after <= outbox.now() + wait for job in expiries)
    # The processing checks too: each finds its medium processed, and does nothing.
    assert await _make_due(name=EXPIRE_MEDIA) == 8
    await settle(app)

    await assert_purged(media_root, db_id(unused["id"]), unused_keys)
    assert not await Media.exists(id=db_id(failed["id"]))
    await assert_kept(media_root, db_id(on_post["id"]))
    await assert_kept(media_root, db_id(avatar["id"]))
    served = await gql(
        "query($id: ID!) { node(id: $id) { ... on Post { media { url } } } }", {"id": post["id"]}
    )
    assert (await http.get(path_of(served["node"]["media"][0]["url"]))).status_code == 200


# --- processing that never finishes ----------------------------------------------------------


async def test_a_medium_whose_processing_job_died_fails_after_the_timeout(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    app: Starlette,
    media_root: Path,
    settings: Settings,
) -> None:
    alice = await gql.sign_up("alice")
    before = outbox.now()
    created = await upload_ok(http, alice.access_token)  # over HTTP: no job runs yet
    media_id = db_id(created["id"])
    # Its job dies (every attempt failed on a storage outage), after a run that crashed had
    # stored a rendition it never recorded.
    died = await Job.filter(name=PROCESS_MEDIA).update(
        state=JobState.DEAD, last_error="Unavailable: storage is down"
    )
    assert died == 1
    storage = app.state.services.storage
    await storage.provider("local").put(
        f"media/{media_id}/0badf00d-full.webp", _chunks(b"RIFF...."), content_type="image/webp"
    )
    [check] = await _expiries(media=media_id, state="processing")
    timeout = timedelta(seconds=settings.processing_timeout())
    assert before + timeout <= check.run_after <= outbox.now() + timeout
    assert await settle(app) == 0  # not due yet
    assert (await media_of(gql, alice, created["id"]))["state"] == "PROCESSING"

    await _make_due(id=check.id)
    assert await settle(app) == 1

    media = await media_of(gql, alice, created["id"])
    assert (media["state"], media["errorCode"], media["errorMessage"]) == (
        "FAILED",
        "PROCESSING_FAILED",
        "Processing failed; upload the file again.",
    )
    assert media["url"] is None
    assert files_of(media_root, media_id) == set()
    assert not await StoredObject.exists()
    # Revived once storage works again (`holdfast jobs retry-dead`), the job changes nothing.
    await Job.filter(name=PROCESS_MEDIA).update(state=JobState.PENDING, run_after=outbox.now())
    assert await settle(app) == 1
    assert (await Media.get(id=media_id)).state is MediaState.FAILED
    assert files_of(media_root, media_id) == set()
    # Then it expires as any failed medium nobody used.
    [expiry] = await _expiries(media=media_id, state="failed")
    await _make_due(id=expiry.id)
    await settle(app)
    await assert_purged(media_root, media_id)


async def test_a_finalized_upload_gets_its_processing_timeout_too(
    gql: GraphQLClient, app: Starlette
) -> None:
    alice = await gql.sign_up("alice")
    pending_id = await _pending_upload(gql, app, alice)
    assert not await _expiries(media=db_id(pending_id), state="processing")

    finalized = await gql(FINALIZE_UPLOAD, {"input": {"id": pending_id}}, token=alice.access_token)
    assert finalized["finalizeUpload"]["__typename"] == "FinalizeUploadSuccess"

    [check] = await _expiries(media=db_id(pending_id), state="processing")
    # Its job ran (and refused a few bytes that are no image); the check, once due, leaves
    # the outcome alone.
    assert (await Media.get(id=db_id(pending_id))).error_code == "unsupported_type"
    await _make_due(id=check.id)
    assert await settle(app) == 1
    media = await Media.get(id=db_id(pending_id))
    assert (media.state, media.error_code) == (MediaState.FAILED, "unsupported_type")
