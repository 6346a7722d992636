"""What page plans (schema/rowplan.py) rely on beyond graphql-core: orjson writes a UTC
datetime exactly as the DateTime scalar serializes it (its `isoformat()`), so a plan leaves such
values for orjson; and a row is read by the same `views` tables `post_from_row` uses."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import orjson
from hypothesis import given
from hypothesis import strategies as st

from app.models import Role, Visibility
from app.services.timelines import HOME_FIELDS
from app.services.views import (
    ACCOUNT_READS,
    POST_READS,
    AccountCard,
    PostView,
    page_fields,
    post_from_row,
)
from app.settings import Settings
from schema import build_schema
from schema.compiled import isoformats
from schema.executor import _plans_for


@given(st.datetimes(timezones=st.just(UTC)))
def test_orjson_writes_a_utc_datetime_as_its_isoformat(value: datetime) -> None:
    assert orjson.dumps(value) == orjson.dumps(value.isoformat())


def test_the_datetime_scalar_serializes_by_isoformat(settings: Settings) -> None:
    schema = build_schema(settings)._schema
    post = schema.get_type("Post")
    plans = _plans_for(schema, post)  # type: ignore[arg-type]
    assert isoformats(plans["createdAt"])
    assert not isoformats(plans["text"])
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    # Another offset is not left for orjson (a plan coerces it): the scalar's own answer.
    assert plans["createdAt"].coerce(created) == created.isoformat()  # type: ignore[misc]


def _row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7,
        "text": "hi",
        "content_warning": "",
        "visibility": "followers",
        "entities": '[{"kind": "hashtag", "start": 0, "end": 3, "value": "x"}]',
        "like_count": 1,
        "repost_count": 2,
        "reply_count": 3,
        "quote_count": 4,
        "created_at": "2026-01-02T03:04:05+00:00",
        "edited_at": None,
        "deleted_at": None,
        "reply_to_id": None,
        "quote_of_id": None,
        "v_liked": 1,
        "v_reposted": 0,
        "v_bookmarked": None,
        "a_id": 3,
        "a_username": "ana",
        "a_display_name": "Ana",
        "a_bio": "",
        "a_is_locked": 0,
        "a_role": "admin",
        "a_email": "ana@example.org",
        "a_created_at": "2025-01-01T00:00:00+00:00",
        "a_follower_count": 5,
        "a_following_count": 6,
    }
    row.update(overrides)
    return row


def test_a_row_reads_into_a_post_view() -> None:
    post = post_from_row(_row())
    assert post.visibility is Visibility.FOLLOWERS
    assert post.entities == [{"kind": "hashtag", "start": 0, "end": 3, "value": "x"}]
    assert post.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (post.viewer_has_liked, post.viewer_has_reposted) == (True, False)
    assert post.viewer_state_loaded
    assert post.author.role is Role.ADMIN
    assert post.author.is_locked is False
    assert post.is_deleted is False
    assert post.sort_key == 7


def test_a_deleted_posts_row_reads_as_a_tombstone() -> None:
    # The statement empties a deleted post's content (views.post_fields): entities NULL.
    post = post_from_row(_row(deleted_at="2026-02-01T00:00:00+00:00", entities=None, v_liked=None))
    assert post.is_deleted
    assert post.entities == []
    assert not post.viewer_state_loaded


def test_the_reads_cover_the_views_and_the_select_lists_carry_them() -> None:
    # Every field of a view that is a column's is read through the tables, from a column the
    # select lists have; the rest are what a reader computes (post_from_row, page plans).
    computed = {"author", "sort_key", "viewer_state_loaded", "reply_to", "quote_of"}
    computed |= {"related_loaded", "reposted_by", "extra"}
    assert set(POST_READS) == {f.name for f in dataclasses.fields(PostView)} - computed
    assert set(ACCOUNT_READS) == {f.name for f in dataclasses.fields(AccountCard)}
    for prefix in ("", "r_", "q_"):
        columns = {name for name, _ in page_fields() if name.startswith(prefix)}
        assert {prefix + read.column for read in POST_READS.values()} <= columns
        assert {prefix + "a_" + read.column for read in ACCOUNT_READS.values()} <= columns
    assert {"rb_" + read.column for read in ACCOUNT_READS.values()} <= {n for n, _ in HOME_FIELDS}
