"""`holdfast seed`: generate the data set, load it, fill the home timelines, report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from tortoise import connections

from app import ids
from app.auth import hash_password
from app.seed.generate import (
    PLAN_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    Generator,
    Posts,
    Users,
    moment,
    premium_rows,
)
from app.seed.load import (
    HOME_CHUNK_ROWS,
    POST_COLUMNS,
    SEEDED_TABLES,
    USER_COLUMNS,
    Loader,
    PostgresLoader,
    SqliteLoader,
    owner_ranges,
    reset_session,
    tune_session,
)
from app.seed.options import SeedError, SeedOptions, SeedReport
from app.seed.text import post_rows
from app.seed.words import display_name
from app.settings import Settings


def _claim(held: ids.IdGenerator, last_ms: int) -> None:
    """Make sure the ids generated up to `last_ms` are this process's to make (its node id's
    lease covers them), and that its later ids, and the next holder's, come after them."""
    if held.until_ms is not None and last_ms >= held.until_ms:
        raise SeedError(
            "the generated ids reach past this process's node id lease (a `now` in the "
            "future, or the lease lapsed?); nothing was written"
        )
    held.cover(last_ms)


async def seed(
    settings: Settings,
    options: SeedOptions,
    *,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> SeedReport:
    """Fill the (migrated, account-free) database of the open Tortoise connection."""
    if options.users < 1 or options.posts < 0:
        raise SeedError("seed needs at least one user and a non-negative number of posts")
    shares = (
        options.followers_only_share,
        options.subscribers_share,
        options.direct_share,
        options.premium_share,
    )
    if not all(0 <= share <= 1 for share in shares) or sum(shares[:3]) > 1:
        raise SeedError(
            "the shares must be between 0 and 1, and the followers-only, subscribers and "
            "direct ones add up to at most 1"
        )
    client = connections.get("default")
    existing = await client.execute_query_dict("SELECT COUNT(*) AS n FROM users")
    if existing[0]["n"]:
        raise SeedError(
            f"the database already has {existing[0]['n']} accounts; seed needs an empty one"
        )
    started = time.perf_counter()
    report = SeedReport()
    clock = [started]

    def phase(name: str) -> None:
        now_ = time.perf_counter()
        report.phases[name] = now_ - clock[0]
        clock[0] = now_
        if progress:
            progress(f"{name}: {report.phases[name]:.1f} s")

    held = ids.current()
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    generator = Generator(options, now_ms, held.node_id)
    password_hash = await hash_password(options.password)
    users = generator.users()
    posts = generator.posts(users)
    likes = generator.interactions(
        users,
        posts,
        options.likes_per_post,
        public_only=False,
        counter=posts.like_count,
    )
    reposts = generator.interactions(
        users,
        posts,
        options.reposts_per_post,
        public_only=True,
        counter=posts.repost_count,
    )
    bookmarks = generator.interactions(
        users,
        posts,
        options.bookmarks_per_post,
        public_only=False,
        counter=None,
    )
    follows = sorted(generator.follow_rows(users))
    plan, subscriptions = premium_rows(generator, users)
    _claim(held, generator.snowflakes.last_ms)
    phase("generate graph and interactions")

    postgres = client.capabilities.dialect == "postgres"
    async with client.acquire_connection() as raw:
        loader: Loader
        if postgres:
            loader = PostgresLoader(client, raw)
            await tune_session(raw)
        else:
            loader = SqliteLoader(raw)
            await raw.execute("PRAGMA foreign_keys = OFF")
            await raw.execute("BEGIN")
        deferred: list[str] = []
        try:
            if isinstance(loader, PostgresLoader):
                deferred = await loader.drop_secondary_indexes()
            await _load(
                generator,
                loader,
                users,
                posts,
                follows,
                plan,
                subscriptions,
                likes,
                reposts,
                bookmarks,
                password_hash,
                report,
                phase,
            )
            limits = settings.timelines
            if isinstance(loader, PostgresLoader):
                # The home rule's subqueries are planned per row or hashed by the tables'
                # sizes: without statistics the planner guesses them empty.
                await raw.execute("ANALYZE " + ", ".join(SEEDED_TABLES))
            await loader.fill_home(
                owner_ranges(users, posts, HOME_CHUNK_ROWS if postgres else 0),
                limits.fanout_max_followers,
                limits.home_max_entries,
            )
            phase("home timelines")
            if isinstance(loader, PostgresLoader):
                await loader.create_indexes(deferred)
                deferred = []
                phase("indexes")
                await raw.execute("ANALYZE " + ", ".join(SEEDED_TABLES))
            else:
                await raw.execute("COMMIT")
                await raw.execute("ANALYZE")
            phase("analyze")
        except BaseException:
            if not postgres:
                await raw.execute("ROLLBACK")
            raise
        finally:
            if isinstance(loader, PostgresLoader):
                try:
                    await loader.create_indexes(deferred)  # put back what a failure left out
                finally:
                    await reset_session(raw)
            else:
                await raw.execute("PRAGMA foreign_keys = ON")
    counted = await client.execute_query_dict("SELECT COUNT(*) AS n FROM home_entries")
    report.home_entries = int(counted[0]["n"])
    report.seconds = time.perf_counter() - started
    return report


async def _load(
    generator: Generator,
    loader: Loader,
    users: Users,
    posts: Posts,
    follows: list[tuple[Any, ...]],
    plan: tuple[Any, ...] | None,
    subscriptions: list[tuple[Any, ...]],
    likes: list[tuple[int, int, int]],
    reposts: list[tuple[int, int, int]],
    bookmarks: list[tuple[int, int, int]],
    password_hash: str,
    report: SeedReport,
    phase: Callable[[str], None],
) -> None:
    rng = generator.rng

    def user_rows() -> Iterator[tuple[Any, ...]]:
        for i, user_id in enumerate(users.ids):
            name = users.names[i]
            created = moment(users.created_ms[i])
            shown = display_name(rng)
            yield (
                user_id,
                name,
                name,
                f"{name}@example.org",
                password_hash,
                shown,
                shown.casefold(),
                "",
                False,
                "user",
                users.follower_count[i],
                len(users.followees[i]),
                0,
                created,
                created,
            )

    await loader.copy("users", USER_COLUMNS, user_rows())
    report.users = len(users.ids)
    await loader.copy("follows", ("id", "follower_id", "followee_id"), follows)
    report.follows = len(follows)
    phase("users and follows")
    if plan is not None:
        await loader.copy("plans", PLAN_COLUMNS, [plan])
    await loader.copy("subscriptions", SUBSCRIPTION_COLUMNS, subscriptions)
    report.premium_users = len(subscriptions)
    phase("plans and subscriptions")

    mentions: list[tuple[int, int]] = []
    tags: list[tuple[int, str]] = []
    await loader.copy("posts", POST_COLUMNS, post_rows(rng, users, posts, mentions, tags))
    report.posts = len(posts.ids)
    report.replies = sum(1 for r in posts.reply_to if r >= 0)
    report.quotes = sum(1 for q in posts.quote_of if q >= 0)
    report.subscribers_posts = posts.visibility.count("subscribers")
    phase("posts")
    await loader.copy("post_tags", ("post_id", "tag"), tags)
    await loader.copy("mentions", ("post_id", "user_id"), mentions)
    report.tags, report.mentions = len(tags), len(mentions)
    phase("hashtags and mentions")
    for table, rows in (("likes", likes), ("reposts", reposts), ("bookmarks", bookmarks)):
        await loader.copy(table, ("id", "user_id", "post_id"), rows)
    report.likes, report.reposts, report.bookmarks = len(likes), len(reposts), len(bookmarks)
    phase("likes, reposts and bookmarks")
