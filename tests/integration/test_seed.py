"""`holdfast seed`: a synthetic data set whose denormalised counters, ids and home timelines
are exactly what the services would have written (the home timelines: what the home rule
stores, as a rebuild writes it)."""

from __future__ import annotations

import base64
import os
import sqlite3
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from tortoise import connections

from app import ids
from app.ids import EPOCH_MS, ms_of, new_id, node_of
from app.seed import SEED_PASSWORD, SeedError, SeedOptions, seed
from app.services import fanout
from app.services.entities import parse_entities
from app.settings import Settings
from tests.conftest import make_settings
from tests.home_model import expected_home, stored_entries
from tests.support import GraphQLClient

HOLDFAST = str(Path(sys.executable).with_name("holdfast"))

HOME = """
query {
  homeTimeline(first: 20) {
    edges { cursor repostedBy { username } node { id text author { username } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def rows(statement: str) -> list[dict[str, Any]]:
    return list(await connections.get("default").execute_query_dict(statement))


async def scalar(statement: str) -> Any:
    return next(iter((await rows(statement))[0].values()))


def millis(value: datetime | str) -> int:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return round(moment.timestamp() * 1000)


@pytest.fixture
async def seeded(app: Starlette, settings: Settings) -> SeedOptions:
    options = SeedOptions(users=50, posts=500, seed=7)
    report = await seed(settings, options)
    assert report.users == 50
    assert report.posts == 500
    return options


async def test_user_counters_match_the_follow_rows(seeded: SeedOptions) -> None:
    wrong = await scalar(
        """
        SELECT COUNT(*) FROM users u
        WHERE u.follower_count <> (SELECT COUNT(*) FROM follows f WHERE f.followee_id = u.id)
           OR u.following_count <> (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id)
        """
    )
    assert wrong == 0
    assert await scalar("SELECT COUNT(*) FROM follows") > 50


async def test_post_counters_match_the_rows_they_count(seeded: SeedOptions) -> None:
    wrong = await rows(
        """
        SELECT p.id FROM posts p
        WHERE p.like_count <> (SELECT COUNT(*) FROM likes l WHERE l.post_id = p.id)
           OR p.repost_count <> (SELECT COUNT(*) FROM reposts r WHERE r.post_id = p.id)
           OR p.reply_count <> (SELECT COUNT(*) FROM posts c
                                WHERE c.reply_to_id = p.id AND c.visibility = 'public')
           OR p.quote_count <> (SELECT COUNT(*) FROM posts c
                                WHERE c.quote_of_id = p.id AND c.visibility = 'public')
        """
    )
    assert wrong == []
    totals = (
        await rows(
            "SELECT SUM(like_count) AS likes, SUM(repost_count) AS reposts, "
            "SUM(reply_count) AS replies, SUM(quote_count) AS quotes FROM posts"
        )
    )[0]
    assert all(value > 0 for value in totals.values()), totals
    # Non-public replies exist and are not counted.
    assert (
        await scalar(
            "SELECT COUNT(*) FROM posts WHERE reply_to_id IS NOT NULL AND visibility <> 'public'"
        )
        > 0
    )


async def test_ids_are_unique_snowflakes_of_their_creation_time(seeded: SeedOptions) -> None:
    posts = await rows("SELECT id, created_at, reply_to_id, quote_of_id FROM posts ORDER BY id")
    assert len({p["id"] for p in posts}) == len(posts) == 500
    for post in posts:
        assert (post["id"] >> 22) + EPOCH_MS == millis(post["created_at"])
        for ref in (post["reply_to_id"], post["quote_of_id"]):
            assert ref is None or ref < post["id"]
    times = [millis(p["created_at"]) for p in posts]
    assert times == sorted(times)
    assert times[-1] - times[0] > 20 * 86_400_000  # spread over the last 30 days
    reposts = {r["id"] for r in await rows("SELECT id FROM reposts")}
    assert reposts.isdisjoint(p["id"] for p in posts)  # they share home_entries.entry_id
    users = await rows("SELECT id, created_at FROM users ORDER BY username")
    assert [u["id"] for u in users] == sorted(u["id"] for u in users)
    for user in users:
        assert (user["id"] >> 22) + EPOCH_MS == millis(user["created_at"])
    # Interactions happen after the post.
    late = await scalar(
        "SELECT COUNT(*) FROM likes l JOIN posts p ON p.id = l.post_id WHERE l.id <= p.id"
    )
    assert late == 0


async def test_follow_graph_is_skewed_without_self_follows(seeded: SeedOptions) -> None:
    assert await scalar("SELECT COUNT(*) FROM follows WHERE follower_id = followee_id") == 0
    duplicates = await rows(
        "SELECT follower_id, followee_id FROM follows GROUP BY follower_id, followee_id "
        "HAVING COUNT(*) > 1"
    )
    assert duplicates == []
    counts = [r["follower_count"] for r in await rows("SELECT follower_count FROM users")]
    assert max(counts) >= 4 * max(1, statistics.median(counts)), sorted(counts)
    names = [r["username"] for r in await rows("SELECT username FROM users ORDER BY username")]
    assert names[:2] == ["user00001", "user00002"]
    assert names[-1] == "user00050"


async def test_entities_tags_and_mentions_are_what_posting_would_store(
    seeded: SeedOptions,
) -> None:
    posts = await rows("SELECT id, text, entities, visibility FROM posts")
    tags: dict[int, set[str]] = defaultdict(set)
    for row in await rows("SELECT post_id, tag FROM post_tags"):
        tags[row["post_id"]].add(row["tag"])
    mentioned: dict[int, set[str]] = defaultdict(set)
    for row in await rows(
        "SELECT m.post_id, u.username_key FROM mentions m JOIN users u ON u.id = m.user_id"
    ):
        mentioned[row["post_id"]].add(row["username_key"])
    import json

    for post in posts:
        stored = post["entities"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        expected = parse_entities(post["text"])
        assert stored == [e.as_json() for e in expected]
        assert tags[post["id"]] == {e.value for e in expected if e.kind == "hashtag"}
        assert mentioned[post["id"]] == {e.value.lower() for e in expected if e.kind == "mention"}
        if post["visibility"] == "direct":
            assert mentioned[post["id"]]
    assert sum(len(t) for t in tags.values()) > 50
    assert sum(len(m) for m in mentioned.values()) > 10
    kinds = {p["visibility"] for p in posts}
    assert {"public", "followers", "direct"} <= kinds


async def test_home_entries_are_the_capped_rule(seeded: SeedOptions, settings: Settings) -> None:
    limits = settings.timelines
    expected = await expected_home(limits.fanout_max_followers, limits.home_max_entries)
    assert await stored_entries() == expected
    assert any(e[3] is not None for e in expected)  # reposts came in too


async def test_home_entries_are_what_a_rebuild_writes(
    seeded: SeedOptions, settings: Settings
) -> None:
    limits = settings.timelines
    seeded_rows = await stored_entries()
    owners = [row["id"] for row in await rows("SELECT id FROM users")]
    await connections.get("default").execute_script("DELETE FROM home_entries")

    for owner in owners:
        await fanout.rebuild_home(
            owner, max_entries=limits.home_max_entries, big_account=limits.fanout_max_followers
        )

    assert await stored_entries() == seeded_rows
    # Replies and reposts are among them, not only top-level posts.
    assert any(e[3] is not None for e in seeded_rows)
    replies = {r["id"] for r in await rows("SELECT id FROM posts WHERE reply_to_id IS NOT NULL")}
    assert any(e[2] in replies and e[0] != e[4] for e in seeded_rows)


async def test_big_accounts_are_not_fanned_out_and_timelines_are_capped(
    app: Starlette, data_dir: Path, database_url: str
) -> None:
    tight = make_settings(
        data_dir, database_url, timelines={"fanout_max_followers": 8, "home_max_entries": 20}
    )
    await seed(tight, SeedOptions(users=40, posts=600, seed=3))
    big = await rows("SELECT id FROM users WHERE follower_count > 8")
    assert big, "the data set should have accounts above the threshold"
    expected = await expected_home(8, 20)
    actual = await stored_entries()
    assert actual == expected
    per_owner: dict[int, int] = defaultdict(int)
    for entry in actual:
        per_owner[entry[0]] += 1
    assert max(per_owner.values()) == 20
    # Only their own timelines and those of accounts mentioned in direct posts get their
    # posts (reposts by others aside).
    big_ids = {b["id"] for b in big}
    direct = {p["id"] for p in await rows("SELECT id FROM posts WHERE visibility = 'direct'")}
    fanned = [
        e
        for e in actual
        if e[4] in big_ids and e[0] != e[4] and e[3] is None and e[2] not in direct
    ]
    assert fanned == []


async def test_a_seeded_account_signs_in_and_reads_its_home_timeline(
    seeded: SeedOptions, gql: GraphQLClient
) -> None:
    busiest = (
        await rows(
            "SELECT u.username, u.id FROM home_entries e JOIN users u ON u.id = e.owner_id "
            "GROUP BY u.username, u.id ORDER BY COUNT(*) DESC, u.username LIMIT 1"
        )
    )[0]
    signed_in = await gql.log_in(busiest["username"], SEED_PASSWORD)
    assert signed_in["__typename"] == "LogInSuccess", signed_in
    token = signed_in["session"]["accessToken"]

    data = await gql(HOME, token=token)

    edges = data["homeTimeline"]["edges"]
    assert len(edges) == 20
    assert data["homeTimeline"]["pageInfo"]["hasNextPage"] is True
    # Its newest entries, without the SUBSCRIBERS posts of others unless it has premium access.
    newest = await rows(
        f"""
        SELECT e.post_id FROM home_entries e JOIN posts p ON p.id = e.post_id
        WHERE e.owner_id = {busiest["id"]}
          AND (p.visibility <> 'subscribers' OR p.author_id = e.owner_id
               OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = e.owner_id))
        ORDER BY e.entry_id DESC LIMIT 20
        """
    )
    shown = [int(base64.b64decode(e["node"]["id"]).decode().split(":")[1]) for e in edges]
    assert shown == [r["post_id"] for r in newest]
    assert all(e["node"]["text"] for e in edges)


PAGE = """
query($after: String) {
  homeTimeline(first: 100, after: $after) {
    edges { node { id visibility author { username } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
PREMIUM_VIEWER = """
query {
  viewer {
    isPremium
    subscription { status complimentary accessUntil currentPeriodEnd plan { code } }
  }
}"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


def post_gid(post_id: int) -> str:
    return base64.b64encode(f"Post:{post_id}".encode()).decode()


def post_id_of(gid: str) -> int:
    return int(base64.b64decode(gid).decode().split(":")[1])


async def test_premium_accounts_and_subscribers_posts_are_seeded_and_counted(
    app: Starlette, settings: Settings
) -> None:
    now = datetime.now(UTC)
    options = SeedOptions(users=60, posts=800, seed=5, subscribers_share=0.1, premium_share=0.25)

    report = await seed(settings, options, now=now)

    assert report.premium_users == 15
    kinds = {
        r["visibility"]: r["n"]
        for r in await rows("SELECT visibility, COUNT(*) AS n FROM posts GROUP BY visibility")
    }
    assert report.subscribers_posts == kinds["subscribers"]
    assert 40 <= kinds["subscribers"] <= 130  # about a tenth of 800
    assert {"public", "followers", "direct"} <= set(kinds)
    assert "15 premium" in report.summary()
    plans = await rows("SELECT id, code, interval, active FROM plans")
    assert [(p["code"], p["interval"], bool(p["active"])) for p in plans] == [
        ("supporter", "month", True)
    ]
    subscriptions = await rows(
        "SELECT user_id, plan_id, status, provider, complimentary, current_period_start, "
        "current_period_end, access_until, created_at FROM subscriptions"
    )
    assert len(subscriptions) == len({s["user_id"] for s in subscriptions}) == 15
    for sub in subscriptions:
        assert sub["plan_id"] == plans[0]["id"]
        assert (sub["status"], sub["provider"], bool(sub["complimentary"])) == (
            "active",
            "complimentary",
            True,
        )
        start, end = millis(sub["current_period_start"]), millis(sub["current_period_end"])
        assert millis(sub["created_at"]) <= start <= millis(now) < end
        assert millis(sub["access_until"]) == end
        assert end - start <= 31 * 86_400_000
    # Likes and bookmarks of subscribers posts are by accounts that may see them.
    outsiders = await scalar(
        """
        SELECT COUNT(*) FROM likes l JOIN posts p ON p.id = l.post_id
        WHERE p.visibility = 'subscribers' AND l.user_id <> p.author_id
          AND l.user_id NOT IN (SELECT user_id FROM subscriptions)
        """
    )
    assert outsiders == 0
    assert (
        await scalar(
            "SELECT COUNT(*) FROM reposts r JOIN posts p ON p.id = r.post_id "
            "WHERE p.visibility <> 'public'"
        )
        == 0
    )
    limits = settings.timelines
    expected = await expected_home(limits.fanout_max_followers, limits.home_max_entries)
    assert await stored_entries() == expected


async def test_no_premium_and_no_subscribers_posts_when_their_shares_are_zero(
    app: Starlette, settings: Settings
) -> None:
    report = await seed(
        settings, SeedOptions(users=20, posts=200, subscribers_share=0.0, premium_share=0.0)
    )

    assert (report.premium_users, report.subscribers_posts) == (0, 0)
    assert await scalar("SELECT COUNT(*) FROM plans") == 0
    assert await scalar("SELECT COUNT(*) FROM subscriptions") == 0
    assert await scalar("SELECT COUNT(*) FROM posts WHERE visibility = 'subscribers'") == 0


async def test_seed_refuses_shares_out_of_range(app: Starlette, settings: Settings) -> None:
    with pytest.raises(SeedError, match="shares"):
        await seed(settings, SeedOptions(users=5, posts=5, premium_share=1.5))
    with pytest.raises(SeedError, match="shares"):
        await seed(
            settings,
            SeedOptions(users=5, posts=5, followers_only_share=0.5, subscribers_share=0.6),
        )
    assert await scalar("SELECT COUNT(*) FROM users") == 0


async def test_subscribers_posts_reach_every_follower_and_show_to_premium_ones_only(
    seeded: SeedOptions, gql: GraphQLClient
) -> None:
    premium = {r["user_id"] for r in await rows("SELECT user_id FROM subscriptions")}
    assert premium
    # Stored for every follower, premium or not (home rule 3): access is decided on reading.
    stored = await rows(
        """
        SELECT e.owner_id, e.post_id, u.username FROM home_entries e
        JOIN posts p ON p.id = e.post_id JOIN users u ON u.id = e.owner_id
        WHERE p.visibility = 'subscribers' AND p.author_id <> e.owner_id
          AND e.reposter_id IS NULL
        """
    )
    per_owner: dict[int, set[int]] = defaultdict(set)
    names = {}
    for row in stored:
        per_owner[row["owner_id"]].add(row["post_id"])
        names[row["owner_id"]] = row["username"]
    with_access = sorted(o for o in per_owner if o in premium)
    without = sorted(o for o in per_owner if o not in premium)
    assert with_access, (premium, sorted(per_owner))
    assert without, (premium, sorted(per_owner))

    async def read_home(token: str) -> dict[int, str]:
        shown: dict[int, str] = {}
        after = None
        while True:
            data = (await gql(PAGE, {"after": after}, token=token))["homeTimeline"]
            for edge in data["edges"]:
                shown[post_id_of(edge["node"]["id"])] = edge["node"]["visibility"]
            if not data["pageInfo"]["hasNextPage"]:
                return shown
            after = data["pageInfo"]["endCursor"]

    for owner in (with_access[0], without[0]):
        signed_in = await gql.log_in(names[owner], SEED_PASSWORD)
        token = signed_in["session"]["accessToken"]
        me = (await gql(PREMIUM_VIEWER, token=token))["viewer"]
        shown = await read_home(token)
        theirs = per_owner[owner]
        post = next(iter(theirs))
        node = (await gql(NODE, {"id": post_gid(post)}, token=token))["node"]
        if owner in premium:
            assert me["isPremium"] is True
            sub = me["subscription"]
            assert (sub["status"], sub["complimentary"], sub["plan"]["code"]) == (
                "ACTIVE",
                True,
                "supporter",
            )
            assert theirs <= set(shown)
            assert all(shown[p] == "SUBSCRIBERS" for p in theirs)
            assert node == {"id": post_gid(post)}
        else:
            assert me["isPremium"] is False
            assert me["subscription"] is None
            assert theirs.isdisjoint(shown)
            own = await own_posts(owner)
            assert "SUBSCRIBERS" not in {v for p, v in shown.items() if p not in own}
            assert node is None


async def own_posts(owner: int) -> set[int]:
    return {r["id"] for r in await rows(f"SELECT id FROM posts WHERE author_id = {owner}")}


async def test_seed_refuses_a_database_with_accounts(
    seeded: SeedOptions, settings: Settings
) -> None:
    with pytest.raises(SeedError, match="already has 50 accounts"):
        await seed(settings, SeedOptions(users=5, posts=5))
    assert await scalar("SELECT COUNT(*) FROM users") == 50


async def test_seeded_ids_carry_this_processes_node_id_and_later_ids_follow(
    seeded: SeedOptions,
) -> None:
    made = [
        r["id"]
        for table in ("users", "follows", "posts", "likes", "reposts", "bookmarks")
        for r in await rows(f"SELECT id FROM {table}")
    ]

    assert {node_of(i) for i in made} == {ids.current().node_id}
    assert len(set(made)) == len(made)
    assert new_id() > max(made)


async def test_seed_refuses_ids_its_node_id_lease_does_not_cover(
    app: Starlette, settings: Settings
) -> None:
    # Ids for moments after the lease's end could meet the next holder's. (The test apps
    # use an assigned node id, which has no end: this test holds a leased one's window.)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assigned = ids.current()
    ids.configure(assigned.node_id, until_ms=ids.now_ms() + 60_000)
    try:
        with pytest.raises(SeedError, match="reach past this process's node id lease"):
            await seed(settings, SeedOptions(users=5, posts=5), now=tomorrow)
    finally:
        ids.configure(assigned.node_id, start_ms=ids.now_ms() + 1)  # after what it made
    assert await scalar("SELECT COUNT(*) FROM users") == 0


@pytest.mark.no_database
def test_seed_command_seeds_once_then_refuses(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env["HOLDFAST_DATA_DIR"] = str(tmp_path)
    command = [HOLDFAST, "seed", "--users", "30", "--posts", "200"]

    first = subprocess.run(command, env=env, capture_output=True, text=True)

    assert first.returncode == 0, first.stderr
    assert "seeded 30 users" in first.stdout
    assert SEED_PASSWORD in first.stdout
    with sqlite3.connect(tmp_path / "holdfast.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM posts").fetchone() == (200,)
        hashes = db.execute("SELECT DISTINCT password_hash FROM users").fetchall()
        seeded_ids = [i for (i,) in db.execute("SELECT id FROM users UNION SELECT id FROM likes")]
        leases = db.execute("SELECT node_id, holder, expires_at FROM node_leases").fetchall()
    assert len(hashes) == 1
    # The command leased a node id, made the ids with it, and gave it back ending after them.
    [(node, holder, end)] = leases
    assert holder.startswith("seed ")
    assert {node_of(i) for i in seeded_ids} == {node}
    assert max(ms_of(i) for i in seeded_ids) < millis(end)

    again = subprocess.run(command, env=env, capture_output=True, text=True)

    assert again.returncode == 1
    assert "already has 30 accounts" in again.stderr
