"""Live-update channels and the events on them: services publish through `Change.publish` (so
an event leaves only once its transaction has committed) and subscriptions listen
(app/services/live.py).

Events carry ids, never content: whoever delivers one loads what it names and checks it
against its viewer's permissions at that moment, with the rules the queries use.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

from app.changes import Change
from app.models import Visibility
from app.pubsub import Event

PUBLIC = "public"


def hashtag_channel(tag: str) -> str:
    """New posts with the tag (lower case, without #), of any visibility."""
    return f"tag:{tag}"


def author_channel(author_id: int) -> str:
    """New posts of one account: how posts of accounts too big to fan out reach the home
    timelines of their followers."""
    return f"author:{author_id}"


def post_channel(post_id: int) -> str:
    """Changes to one post: counts, edits, deletion."""
    return f"post:{post_id}"


def home_channel(owner_id: int) -> str:
    """Entries written into one account's home timeline."""
    return f"home:{owner_id}"


def notifications_channel(recipient_id: int) -> str:
    return f"notifications:{recipient_id}"


def session_channel(session_id: int) -> str:
    """The end of one sign-in session (logged out, revoked, its account deleted)."""
    return f"session:{session_id}"


class Kind(StrEnum):
    POST_CREATED = "post.created"  # {"id"}
    POST_CHANGED = "post.changed"  # {"id"}: counts or text
    POST_DELETED = "post.deleted"  # {"id"}
    HOME_ENTRY = "home.entry"  # {"entry", "post"}: the entry's sort key and its post
    NOTIFICATION = "notification.created"  # {"id"}
    SESSION_ENDED = "session.ended"  # {"id"}


class HomeEntry(Protocol):
    """A row written into `home_entries` (what `app.services.home`'s functions return)."""

    @property
    def owner_id(self) -> int: ...
    @property
    def entry_id(self) -> int: ...
    @property
    def post_id(self) -> int: ...


def publish_new_post(
    change: Change, post_id: int, author_id: int, visibility: Visibility, tags: Iterable[str]
) -> None:
    data = {"id": post_id}
    if visibility is Visibility.PUBLIC:
        change.publish(PUBLIC, Event(Kind.POST_CREATED, data))
    # Hashtag timelines show every post the viewer may see, as the query does.
    for tag in tags:
        change.publish(hashtag_channel(tag), Event(Kind.POST_CREATED, data))
    change.publish(author_channel(author_id), Event(Kind.POST_CREATED, data))


def publish_post_changed(change: Change, post_id: int) -> None:
    change.publish(post_channel(post_id), Event(Kind.POST_CHANGED, {"id": post_id}))


def publish_post_deleted(change: Change, post_id: int) -> None:
    change.publish(post_channel(post_id), Event(Kind.POST_DELETED, {"id": post_id}))


def publish_home_entries(change: Change, entries: Iterable[HomeEntry]) -> None:
    for entry in entries:
        change.publish(
            home_channel(entry.owner_id),
            Event(Kind.HOME_ENTRY, {"entry": entry.entry_id, "post": entry.post_id}),
        )


def publish_notification(change: Change, recipient_id: int, notification_id: int) -> None:
    change.publish(
        notifications_channel(recipient_id), Event(Kind.NOTIFICATION, {"id": notification_id})
    )


def publish_sessions_ended(change: Change, session_ids: Iterable[int]) -> None:
    for session_id in session_ids:
        change.publish(session_channel(session_id), Event(Kind.SESSION_ENDED, {"id": session_id}))
