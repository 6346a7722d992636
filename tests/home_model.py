"""The home-timeline rule of `app.services.home`, restated in plain Python over the rows of the
database: an independent statement of what the SQL must compute, for the tests to hold it to.

`expected_home` is what a rebuild of every account stores (big accounts' posts are merged
at read time, so not stored), the newest `cap` entries of each.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tortoise import connections

Entry = tuple[int, int, int, int | None, int]  # owner, entry id, post, reposter, source
# Visibilities whose posts reach their author's followers (whether a follower may see a
# SUBSCRIBERS post is decided when the timeline is read).
FOLLOWED = ("public", "followers", "subscribers")


async def _rows(statement: str) -> list[dict[str, Any]]:
    return list(await connections.get("default").execute_query_dict(statement))


async def stored_entries() -> set[Entry]:
    return {
        (e["owner_id"], e["entry_id"], e["post_id"], e["reposter_id"], e["source_id"])
        for e in await _rows(
            "SELECT owner_id, entry_id, post_id, reposter_id, source_id FROM home_entries"
        )
    }


async def expected_home(big: int, cap: int) -> set[Entry]:
    following = {
        (f["follower_id"], f["followee_id"])
        for f in await _rows("SELECT follower_id, followee_id FROM follows")
    }
    followers = {
        u["id"]: u["follower_count"] for u in await _rows("SELECT id, follower_count FROM users")
    }
    posts = {
        p["id"]: p
        for p in await _rows("SELECT id, author_id, visibility, reply_to_id, deleted_at FROM posts")
    }
    mentioned: dict[int, set[int]] = defaultdict(set)
    for m in await _rows("SELECT post_id, user_id FROM mentions"):
        mentioned[m["post_id"]].add(m["user_id"])
    reposts = await _rows("SELECT id, user_id, post_id FROM reposts ORDER BY id")

    def admits(owner: int, post: dict[str, Any]) -> bool:
        author = post["author_id"]
        if post["deleted_at"] is not None:
            return False
        if author == owner:
            return True
        if post["visibility"] == "direct":
            return owner in mentioned[post["id"]]
        if post["visibility"] not in FOLLOWED or (owner, author) not in following:
            return False
        if post["reply_to_id"] is None:
            return True
        replied_to = posts[post["reply_to_id"]]["author_id"]
        return replied_to in (author, owner) or (owner, replied_to) in following

    def merged(owner: int, post: dict[str, Any]) -> bool:
        return (
            post["author_id"] != owner
            and post["visibility"] in FOLLOWED
            and followers[post["author_id"]] > big
        )

    expected: set[Entry] = set()
    for owner in followers:
        entries: list[Entry] = []
        present: set[int] = set()
        for post in posts.values():
            if admits(owner, post):
                present.add(post["id"])
                if not merged(owner, post):
                    entries.append((owner, post["id"], post["id"], None, post["author_id"]))
        for repost in reposts:  # oldest first: the earliest repost brings a post in
            post = posts[repost["post_id"]]
            if (
                post["deleted_at"] is None
                and post["author_id"] != owner
                and (owner, repost["user_id"]) in following
                and post["id"] not in present
            ):
                present.add(post["id"])
                reposter = repost["user_id"]
                entries.append((owner, repost["id"], post["id"], reposter, reposter))
        expected.update(sorted(entries, key=lambda e: e[1], reverse=True)[:cap])
    return expected
