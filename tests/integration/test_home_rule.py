"""One definition of the home timeline: whatever history of posts, replies, reposts, edits,
deletions, follows, blocks and mutes the services go through, rebuilding every home
timeline from the rule gives exactly the rows the live path wrote, and every timeline reads
the same before and after.

Histories are small (five accounts, a few dozen actions), well inside the caps (`BACKFILL`
posts per followed account, `home_max_entries` per timeline), with a follower threshold of
one, so that accounts keep crossing it both ways and the read-time merge of big accounts is
exercised on every path. Hypothesis runs derandomised: CI sees the same examples each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from tortoise import connections

from app.errors import DomainError
from app.models import Post, User, Visibility
from app.services import Services, fanout, timelines
from app.services.accounts import Viewer
from app.services.paging import PageRequest
from app.settings import Settings
from tests.conftest import empty_database, make_settings

ACCOUNTS = 4
BIG = 1  # accounts with more than one follower are merged into home timelines at read time
MAX_ENTRIES = 800
PAGE = 4  # small pages, so that reading crosses the fanned-out/merged boundary often

KINDS = (
    ["post"] * 6
    + ["follow"] * 5
    + ["repost"] * 3
    + ["edit"] * 2
    + ["unfollow", "block", "unblock", "mute", "unmute", "unrepost", "delete"]
)
VISIBILITIES = (Visibility.PUBLIC, Visibility.PUBLIC, Visibility.FOLLOWERS, Visibility.DIRECT)

# (kind, actor, other account, post, visibility, mentions, is a reply); each kind reads what
# it needs. Posts are counted back from the newest, so small numbers mean recent posts.
ACTIONS = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, ACCOUNTS - 1),
    st.integers(0, ACCOUNTS - 1),
    st.integers(0, 40),
    st.sampled_from(VISIBILITIES),
    st.frozensets(st.integers(0, ACCOUNTS - 1), max_size=2),
    st.booleans(),
)


@dataclass
class World:
    services: Services
    users: list[User]
    posts: list[int]

    def viewer(self, index: int) -> Viewer:
        return Viewer(user=self.users[index], session_id=0)

    async def author(self, post_id: int) -> Viewer:
        author_id = (await Post.get(id=post_id)).author_id
        return Viewer(user=next(u for u in self.users if u.id == author_id), session_id=0)

    def post(self, ref: int) -> int | None:
        return self.posts[-1 - ref % len(self.posts)] if self.posts else None


async def apply(world: World, action: tuple[Any, ...]) -> None:
    """One action through the services; an expected refusal (DomainError) changes nothing."""
    kind, actor, other, ref, visibility, mentioned, is_reply = action
    services, viewer, post_id = world.services, world.viewer(actor), world.post(ref)
    graph = services.graph
    text = " ".join(f"@{world.users[m].username}" for m in sorted(mentioned)) + " hi"
    try:
        if kind == "post":
            created = await services.posts.create_post(
                viewer,
                text=text,
                visibility=visibility,
                reply_to_id=post_id if is_reply else None,
            )
            world.posts.append(created.id)
        elif post_id is None and kind in ("repost", "unrepost", "delete", "edit"):
            return
        elif kind == "repost":
            await services.interactions.repost(viewer, post_id)
        elif kind == "unrepost":
            await services.interactions.unrepost(viewer, post_id)
        elif kind == "delete":
            await services.posts.delete_post(await world.author(post_id), post_id)
        elif kind == "edit":
            await services.posts.edit_post(await world.author(post_id), post_id, text=text)
        else:
            verbs = {
                "follow": graph.follow,
                "unfollow": graph.unfollow,
                "block": graph.block,
                "unblock": graph.unblock,
                "mute": graph.mute,
                "unmute": graph.unmute,
            }
            await verbs[kind](viewer, world.users[other].id)
    except DomainError:
        pass


async def read_home(owner_id: int) -> list[tuple[int, int, int | None]]:
    """Every page of the home timeline, as (sort key, post, reposter)."""
    read: list[tuple[int, int, int | None]] = []
    after: int | None = None
    while True:
        page = await timelines.home(owner_id, PageRequest("home", PAGE, after=after), BIG)
        for post in page.items:
            reposter = post.reposted_by.id if post.reposted_by else None
            read.append((post.sort_key, post.id, reposter))
        if not page.has_next:
            return read
        after = page.keys[-1]


async def stored_entries() -> set[tuple[Any, ...]]:
    rows = await connections.get("default").execute_query_dict(
        "SELECT owner_id, entry_id, post_id, reposter_id, source_id FROM home_entries"
    )
    return {
        (r["owner_id"], r["entry_id"], r["post_id"], r["reposter_id"], r["source_id"]) for r in rows
    }


async def make_world(settings: Settings) -> World:
    await empty_database()
    services = Services.from_settings(settings)
    users = [
        await User.create(
            username=f"u{i}",
            username_key=f"u{i}",
            email=f"u{i}@example.org",
            password_hash="-",  # never signs in
            display_name=f"U{i}",
        )
        for i in range(ACCOUNTS)
    ]
    return World(services, users, [])


@given(
    follows=st.lists(
        st.tuples(st.integers(0, ACCOUNTS - 1), st.integers(0, ACCOUNTS - 1)), max_size=8
    ),
    history=st.lists(ACTIONS, min_size=5, max_size=30),
)
@settings(
    max_examples=60,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_rebuilding_gives_what_the_live_path_gave(
    app: Starlette,
    data_dir: Path,
    database_url: str,
    follows: list[tuple[int, int]],
    history: list[tuple[Any, ...]],
) -> None:
    limits = {"fanout_max_followers": BIG, "home_max_entries": MAX_ENTRIES}
    world = await make_world(make_settings(data_dir, database_url, timelines=limits))
    note(f"follows={follows!r}\nhistory={history!r}")
    for follower, followee in follows:
        await apply(world, ("follow", follower, followee, 0, Visibility.PUBLIC, frozenset(), False))
    for action in history:
        await apply(world, action)
    live_rows = await stored_entries()
    live = {user.id: await read_home(user.id) for user in world.users}

    for user in world.users:
        await fanout.rebuild_home(user.id, max_entries=MAX_ENTRIES, big_account=BIG)

    assert await stored_entries() == live_rows
    for user in world.users:
        assert await read_home(user.id) == live[user.id], user.username
