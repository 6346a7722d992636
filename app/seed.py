"""A realistic synthetic data set, built fast with bulk inserts (`holdfast seed`).

Accounts `user00001`..., all with one shared password (hashed once); a power-law follow graph
(a few accounts with very many followers, most with a few); posts spread over the last days
with snowflake ids made from their timestamps; replies, quotes, hashtags, mentions, links;
likes (power-law over posts), reposts and bookmarks; every denormalised counter exact; and
the home-timeline fan-out table filled in SQL the way `PostService._fan_out` and reposts
fill it, capped to the newest `home_max_entries` entries per account.

Everything is generated in Python with a seeded `random.Random` (the same options make the
same data), then loaded with COPY on PostgreSQL (asyncpg) or executemany in one transaction
on SQLite. The database must be empty of accounts.

The ids encode the past moments they stand for, with this process's node id (held through
`app.nodes`), so they cannot meet another process's ids: no other live process holds that node
id; ids an earlier holder of it made are in none of the seeded tables (all empty, as they
hang off accounts); a later holder starts after the end this lease records, which `_claim`
moves past the latest millisecond seeded.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from app import ids
from app.auth import hash_password
from app.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS
from app.services.entities import parse_entities
from app.settings import Settings

SEED_PASSWORD = "holdfast-seed-password"  # noqa: S105 (a published test password)

_MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000

_WORDS_TEXT = """
    the a an and or but so if when then just really very quite still already never always today
    tomorrow yesterday tonight morning evening week weekend year time people friends family team
    city home work office train coffee tea lunch dinner breakfast music song album film book
    story game match news idea plan project code bug release update weather rain sun snow wind
    walk run ride trip photo picture garden cat dog bird tree sea river mountain park street
    market shop library school class talk meeting call think know feel want need like love hate
    try make take give find see look watch read write listen play build fix ship learn start
    finish share post wait hope guess good great nice bad new old big small long short happy
    tired busy quiet loud early late strange funny lovely amazing boring simple hard easy free
    open warm cold finally honestly apparently maybe probably definitely actually again here
    there everyone nobody something nothing anything this that these those my your our their
    """
WORDS = tuple(_WORDS_TEXT.split())

_HASHTAGS_TEXT = """
    photography python music coffee OpenSource travel gaming art books running cats dogs science
    news football cooking film design climate space history jazz hiking writing linux rustlang
    gardening cycling chess anime podcast tbt MondayMotivation foodie fitness nature sunset
    DevLife startup AI
    """
HASHTAGS = tuple(_HASHTAGS_TEXT.split())

CONTENT_WARNINGS = ("spoilers", "politics", "food", "eye contact", "long post", "mental health")

_FIRST_NAMES_TEXT = """
    Ada Alan Grace Linus Margaret Dennis Barbara Ken Frances Edsger Radia Guido Hedy Tim
    Katherine John Sophie Yukihiro Anita Donald Mary Niklaus Karen Bjarne Lynn Rasmus
    """
FIRST_NAMES = tuple(_FIRST_NAMES_TEXT.split())
_LAST_NAMES_TEXT = """
    Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson Allen Dijkstra Perlman
    Rossum Lamarr Berners Johnson McCarthy Wilson Matsumoto Borg Knuth Keller Wirth Jones
    Stroustrup Conway Lerdorf
    """
LAST_NAMES = tuple(_LAST_NAMES_TEXT.split())


class SeedError(Exception):
    """The database cannot be seeded (for example: it already has accounts)."""


@dataclass(frozen=True, slots=True)
class SeedOptions:
    users: int
    posts: int
    seed: int = 1
    days: int = 30  # posts spread over this many days up to now
    following_median: int = 15  # typical number of accounts an account follows
    popularity_exponent: float = 1.0  # Zipf exponent of who gets followed
    reply_share: float = 0.2
    quote_share: float = 0.05
    followers_only_share: float = 0.08
    direct_share: float = 0.02
    likes_per_post: float = 2.0
    reposts_per_post: float = 0.05
    bookmarks_per_post: float = 0.1
    password: str = SEED_PASSWORD


@dataclass(slots=True)
class SeedReport:
    users: int = 0
    follows: int = 0
    posts: int = 0
    replies: int = 0
    quotes: int = 0
    likes: int = 0
    reposts: int = 0
    bookmarks: int = 0
    mentions: int = 0
    tags: int = 0
    home_entries: int = 0
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.users:,} users, {self.follows:,} follows, {self.posts:,} posts "
            f"({self.replies:,} replies, {self.quotes:,} quotes), {self.likes:,} likes, "
            f"{self.reposts:,} reposts, {self.bookmarks:,} bookmarks, {self.mentions:,} mentions, "
            f"{self.tags:,} hashtags, {self.home_entries:,} home timeline entries "
            f"in {self.seconds:.1f} s"
        )


class _Snowflakes:
    """Unique snowflake ids for given milliseconds: the sequence counts ids within a
    millisecond; a full millisecond borrows the next one, as `app.ids` does."""

    def __init__(self, node: int) -> None:
        self._node_bits = node << SEQUENCE_BITS
        self._used: dict[int, int] = {}
        self.last_ms = -1  # the latest millisecond encoded

    def make(self, ms: int) -> tuple[int, int]:
        """(id, the millisecond it encodes) for an event at `ms` (Unix milliseconds)."""
        used = self._used
        sequence = used.get(ms, 0)
        while sequence > _MAX_SEQUENCE:
            ms += 1
            sequence = used.get(ms, 0)
        used[ms] = sequence + 1
        if ms > self.last_ms:
            self.last_ms = ms
        return ((ms - EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS)) | self._node_bits | sequence, ms


def _at(ms: int) -> datetime:
    return _UNIX_EPOCH + timedelta(milliseconds=ms)


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


# --- the data set, in memory -------------------------------------------------------------


@dataclass(slots=True)
class _Users:
    ids: list[int]
    names: list[str]
    created_ms: list[int]
    followees: list[list[int]]  # indexes, per follower
    follower_count: list[int]
    followers: list[list[int]]  # indexes, per followee
    follow_keys: set[int]  # follower * n + followee


@dataclass(slots=True)
class _Posts:
    ids: list[int]
    ms: list[int]
    author: list[int]  # user indexes
    visibility: list[str]
    reply_to: list[int]  # post index or -1
    quote_of: list[int]  # post index or -1
    like_count: list[int]
    repost_count: list[int]
    reply_count: list[int]
    quote_count: list[int]


class _Generator:
    def __init__(self, options: SeedOptions, now_ms: int, node: int) -> None:
        self.o = options
        # One sequence per millisecond for every table: the ids are unique across all of them
        # (posts and reposts share the home timeline's `entry_id` space).
        self.snowflakes = _Snowflakes(node)
        self.rng = random.Random(options.seed)  # noqa: S311 (synthetic data, not secrets)
        self.now_ms = now_ms
        # Posts fall in [window_start, now); accounts are older. Snowflakes start at EPOCH_MS.
        self.window_start = max(now_ms - options.days * _DAY_MS, EPOCH_MS + _DAY_MS)
        if self.window_start >= now_ms:
            raise SeedError("the clock is before the id epoch plus a day")
        self._appeal: list[float] | None = None
        self._engagement: list[float] = []

    # accounts and the follow graph

    def users(self) -> _Users:
        o, rng = self.o, self.rng
        n = o.users
        # Accounts were created before the posting window (and after the id epoch);
        # user00001 is the oldest.
        newest = self.window_start
        oldest = max(EPOCH_MS, newest - 365 * _DAY_MS)
        created = sorted(rng.randrange(oldest, newest) for _ in range(n))
        snowflakes = self.snowflakes
        ids, created_ms = [], []
        for ms in created:
            user_id, at = snowflakes.make(ms)
            ids.append(user_id)
            created_ms.append(at)
        width = max(5, len(str(n)))
        names = [f"user{i + 1:0{width}d}" for i in range(n)]

        # Who gets followed: Zipf over a random ranking of the accounts.
        ranking = list(range(n))
        rng.shuffle(ranking)
        popularity = [0.0] * n
        for rank, user in enumerate(ranking):
            popularity[user] = 1.0 / (rank + 1) ** o.popularity_exponent
        cumulative = _cumulative(popularity)
        population = range(n)
        # How many each follows: log-normal around the median, at most half the others.
        median = max(1, min(o.following_median, n // 10))
        cap = max(0, min(n - 1, max(median * 20, n // 2)))
        followees: list[list[int]] = []
        for user in range(n):
            want = min(cap, max(1, round(median * rng.lognormvariate(0, 0.9)))) if cap else 0
            chosen: set[int] = set()
            attempts = 0
            while len(chosen) < want and attempts < 8:
                attempts += 1
                for other in rng.choices(population, cum_weights=cumulative, k=want * 2):
                    if other != user:
                        chosen.add(other)
                        if len(chosen) == want:
                            break
            followees.append(sorted(chosen))
        followers: list[list[int]] = [[] for _ in range(n)]
        follow_keys: set[int] = set()
        for user, theirs in enumerate(followees):
            for other in theirs:
                followers[other].append(user)
                follow_keys.add(user * n + other)
        return _Users(
            ids=ids,
            names=names,
            created_ms=created_ms,
            followees=followees,
            follower_count=[len(f) for f in followers],
            followers=followers,
            follow_keys=follow_keys,
        )

    def follow_rows(self, users: _Users) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        snowflakes = self.snowflakes
        for follower, theirs in enumerate(users.followees):
            for followee in theirs:
                since = max(users.created_ms[follower], users.created_ms[followee])
                follow_id, _ = snowflakes.make(rng.randrange(since, self.now_ms))
                yield (follow_id, users.ids[follower], users.ids[followee])

    # posts, without their text

    def posts(self, users: _Users) -> _Posts:
        o, rng = self.o, self.rng
        n, m = o.users, o.posts
        times = sorted(rng.randrange(self.window_start, self.now_ms) for _ in range(m))
        snowflakes = self.snowflakes
        ids, ms = [], []
        for t in times:
            post_id, at = snowflakes.make(t)
            ids.append(post_id)
            ms.append(at)
        activity = _cumulative(rng.lognormvariate(0, 1.0) for _ in range(n))
        author = rng.choices(range(n), cum_weights=activity, k=m)
        visibility: list[str] = []
        reply_to = [-1] * m
        quote_of = [-1] * m
        reply_count = [0] * m
        quote_count = [0] * m
        public_so_far: list[int] = []
        followers_cut = 1.0 - o.direct_share - o.followers_only_share
        direct_cut = 1.0 - o.direct_share
        random_ = rng.random
        for i in range(m):
            r = random_()
            kind = "public" if r < followers_cut else "followers" if r < direct_cut else "direct"
            if n < 2 and kind == "direct":
                kind = "public"
            visibility.append(kind)
            if public_so_far:
                r = random_()
                target = -1
                if r < o.reply_share + o.quote_share:
                    count = len(public_so_far)
                    if random_() < 0.7:  # mostly the conversation of the moment
                        back = min(count - 1, int(rng.expovariate(1 / 300)))
                        target = public_so_far[count - 1 - back]
                    else:
                        target = public_so_far[int(random_() * count)]
                if r < o.reply_share:
                    reply_to[i] = target
                    if kind == "public":
                        reply_count[target] += 1
                elif target >= 0:
                    quote_of[i] = target
                    if kind == "public":
                        quote_count[target] += 1
            if kind == "public":
                public_so_far.append(i)
        return _Posts(
            ids=ids,
            ms=ms,
            author=author,
            visibility=visibility,
            reply_to=reply_to,
            quote_of=quote_of,
            like_count=[0] * m,
            repost_count=[0] * m,
            reply_count=reply_count,
            quote_count=quote_count,
        )

    # likes, reposts, bookmarks

    def interactions(
        self,
        users: _Users,
        posts: _Posts,
        per_post: float,
        *,
        public_only: bool,
        counter: list[int] | None,
    ) -> list[tuple[int, int, int]]:
        """(id, user_id, post_id) rows, about `per_post` per post: power-law over posts (the
        author's audience times a heavy-tailed appeal, at most a third of the accounts on one
        post), each by an account that may see the post, some time after it."""
        rng = self.rng
        n, m = len(users.ids), len(posts.ids)
        wanted = m * per_post
        if not wanted or n < 2:
            return []
        if self._appeal is None:
            audience = [(count + 1) ** 0.7 for count in users.follower_count]
            self._appeal = [audience[author] * rng.paretovariate(1.5) for author in posts.author]
            self._engagement = _cumulative(rng.lognormvariate(0, 1.0) for _ in range(n))
        allowed = ("public",) if public_only else ("public", "followers")
        appeal, visibility = self._appeal, posts.visibility
        total = sum(appeal[i] for i in range(m) if visibility[i] in allowed)
        if not total:
            return []
        scale = wanted / total
        cap = max(1, n // 3)
        population, engagement = range(n), self._engagement
        followers = users.followers
        snowflakes = self.snowflakes
        random_, choices, sample, expovariate = rng.random, rng.choices, rng.sample, rng.expovariate
        mean_delay = 1 / (6 * 3_600_000)
        rows: list[tuple[int, int, int]] = []
        for post in range(m):
            kind = visibility[post]
            if kind not in allowed:
                continue
            expected = appeal[post] * scale
            count = int(expected)
            if random_() < expected - count:
                count += 1
            if not count:
                continue
            author = posts.author[post]
            if kind == "followers":
                pool = followers[author]
                actors = sample(pool, min(count, cap, len(pool)))
            else:
                count = min(count, cap)
                chosen: set[int] = set()
                for _ in range(6):
                    for actor in choices(population, cum_weights=engagement, k=count):
                        if actor != author:
                            chosen.add(actor)
                    if len(chosen) >= count:
                        break
                actors = list(chosen)[:count]
            posted, post_id = posts.ms[post], posts.ids[post]
            for actor in actors:
                at = min(posted + 1 + int(expovariate(mean_delay)), self.now_ms)
                rows.append((snowflakes.make(at)[0], users.ids[actor], post_id))
            if counter is not None:
                counter[post] += len(actors)
        rows.sort()
        return rows

    # text, entities, hashtags and mentions, made while the posts stream to the database

    def post_rows(
        self,
        users: _Users,
        posts: _Posts,
        mentions_out: list[tuple[int, int]],
        tags_out: list[tuple[int, str]],
    ) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        n = len(users.ids)
        tag_weights = _cumulative(1.0 / (rank + 1) for rank in range(len(HASHTAGS)))
        name_index = {name: i for i, name in enumerate(users.names)}
        random_, choices, randint = rng.random, rng.choices, rng.randint
        dumps = orjson.dumps
        # Text: slices of one long random word stream (much faster than choosing each word).
        stream = choices(WORDS, k=200_000)
        for i, post_id in enumerate(posts.ids):
            author = posts.author[i]
            kind = posts.visibility[i]
            length = randint(4, 26)
            offset = int(random_() * (len(stream) - length))
            words = stream[offset : offset + length]
            mentioned: list[int] = []
            if n > 1 and (kind == "direct" or random_() < 0.08):
                pool = users.followees[author]
                for _ in range(1 if random_() < 0.7 else 2):
                    other = (
                        pool[int(random_() * len(pool))]
                        if pool and random_() < 0.8
                        else (int(random_() * n))
                    )
                    if other != author and other not in mentioned:
                        mentioned.append(other)
                if kind == "direct" and not mentioned:
                    mentioned.append((author + 1) % n)
            parts = [f"@{users.names[u]}" for u in mentioned]
            parts.extend(words)
            if random_() < 0.3:
                for tag in choices(
                    HASHTAGS, cum_weights=tag_weights, k=1 if random_() < 0.7 else 2
                ):
                    parts.insert(randint(len(mentioned), len(parts)), f"#{tag}")
            if random_() < 0.05:
                parts.append(f"https://example.org/articles/{randint(1, 99_999)}")
            text = " ".join(parts)
            warning = (
                CONTENT_WARNINGS[int(random_() * len(CONTENT_WARNINGS))]
                if (random_() < 0.03)
                else ""
            )
            entities = parse_entities(text)
            tags: set[str] = set()
            mention_ids: set[int] = set()
            for entity in entities:
                if entity.kind == "hashtag":
                    tags.add(entity.value)
                elif entity.kind == "mention":
                    found = name_index.get(entity.value.lower())
                    if found is not None:
                        mention_ids.add(found)
            for tag in sorted(tags):
                tags_out.append((post_id, tag))
            for user in sorted(mention_ids):
                mentions_out.append((post_id, users.ids[user]))
            reply_to, quote_of = posts.reply_to[i], posts.quote_of[i]
            yield (
                post_id,
                users.ids[author],
                text,
                warning,
                kind,
                posts.ids[reply_to] if reply_to >= 0 else None,
                posts.ids[quote_of] if quote_of >= 0 else None,
                dumps([e.as_json() for e in entities]).decode(),
                posts.like_count[i],
                posts.repost_count[i],
                posts.reply_count[i],
                posts.quote_count[i],
                _at(posts.ms[i]),
            )


def _display_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


# --- loading -----------------------------------------------------------------------------

POST_COLUMNS = (
    "id",
    "author_id",
    "text",
    "content_warning",
    "visibility",
    "reply_to_id",
    "quote_of_id",
    "entities",
    "like_count",
    "repost_count",
    "reply_count",
    "quote_count",
    "created_at",
)
USER_COLUMNS = (
    "id",
    "username",
    "username_key",
    "email",
    "password_hash",
    "display_name",
    "display_name_key",
    "bio",
    "is_locked",
    "role",
    "follower_count",
    "following_count",
    "notifications_read_id",
    "created_at",
    "updated_at",
)

# The fan-out of `PostService._fan_out` and `InteractionService.repost`, for the accounts
# with ids in [:lo, :hi], keeping the newest :cap entries of each.
HOME_ENTRIES_SQL = """
INSERT INTO home_entries (owner_id, entry_id, post_id, reposter_id, source_id)
SELECT owner_id, entry_id, post_id, reposter_id, source_id FROM (
  SELECT c.owner_id, c.entry_id, c.post_id, c.reposter_id, c.source_id,
         ROW_NUMBER() OVER (PARTITION BY c.owner_id ORDER BY c.entry_id DESC) AS position
  FROM (
    -- every post is in its author's own timeline
    SELECT p.author_id AS owner_id, p.id AS entry_id, p.id AS post_id,
           CAST(NULL AS BIGINT) AS reposter_id, p.author_id AS source_id
    FROM posts p
    WHERE p.author_id BETWEEN {lo} AND {hi}
    UNION ALL
    -- public and followers-only posts of accounts small enough to fan out, to their
    -- followers; a reply to someone else only to those who also follow that someone
    SELECT f.follower_id, p.id, p.id, CAST(NULL AS BIGINT), p.author_id
    FROM follows f
    JOIN users a ON a.id = f.followee_id
    JOIN posts p ON p.author_id = f.followee_id
    LEFT JOIN posts parent ON parent.id = p.reply_to_id
    WHERE f.follower_id BETWEEN {lo} AND {hi}
      AND a.follower_count <= {big}
      AND p.visibility IN ('public', 'followers')
      AND (p.reply_to_id IS NULL OR parent.author_id = p.author_id OR EXISTS (
            SELECT 1 FROM follows f2
            WHERE f2.follower_id = f.follower_id AND f2.followee_id = parent.author_id))
    UNION ALL
    -- direct posts, to the accounts they mention
    SELECT m.user_id, p.id, p.id, CAST(NULL AS BIGINT), p.author_id
    FROM mentions m JOIN posts p ON p.id = m.post_id
    WHERE m.user_id BETWEEN {lo} AND {hi}
      AND p.visibility = 'direct' AND m.user_id <> p.author_id
    UNION ALL
    -- reposts, to the reposter's followers other than the post's author
    SELECT f.follower_id, r.id, r.post_id, r.user_id, r.user_id
    FROM follows f
    JOIN reposts r ON r.user_id = f.followee_id
    JOIN posts p ON p.id = r.post_id
    WHERE f.follower_id BETWEEN {lo} AND {hi} AND f.follower_id <> p.author_id
  ) c
) ranked
WHERE position <= {cap}
"""

# Candidate rows per home_entries statement on PostgreSQL: sorted in memory (work_mem).
HOME_CHUNK_ROWS = 2_000_000


def _owner_ranges(users: _Users, posts: _Posts, budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges of account ids, each with about `budget` fan-out candidates (the
    posts of the accounts they follow); one range for everything when budget is 0."""
    if not budget:
        return [(users.ids[0], users.ids[-1])]
    written = [0] * len(users.ids)
    for author in posts.author:
        written[author] += 1
    ranges: list[tuple[int, int]] = []
    first, load = 0, 0
    for user, followees in enumerate(users.followees):
        load += written[user] + sum(written[f] for f in followees)
        if load >= budget or user == len(users.ids) - 1:
            ranges.append((users.ids[first], users.ids[user]))
            first, load = user + 1, 0
    return ranges


SEEDED_TABLES = (
    "users",
    "follows",
    "posts",
    "post_tags",
    "mentions",
    "likes",
    "reposts",
    "bookmarks",
    "home_entries",
)


class _Loader:
    """Bulk loading for one dialect."""

    postgres: bool

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        raise NotImplementedError

    async def execute(self, statement: str) -> None:
        raise NotImplementedError

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        """Fill home_entries for the accounts with ids in each [lo, hi] range."""
        raise NotImplementedError


class _PostgresLoader(_Loader):
    postgres = True

    def __init__(self, client: BaseDBAsyncClient, raw: Any) -> None:
        self._client = client
        self._raw = raw

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        await self._raw.copy_records_to_table(table, records=rows, columns=list(columns))

    async def execute(self, statement: str) -> None:
        await self._raw.execute(statement)

    async def drop_secondary_indexes(self) -> list[str]:
        """Drop the seeded tables' plain (non-unique) indexes, returning their definitions:
        building them once after the load is much faster than keeping them up to date."""
        found = await self._raw.fetch(
            """
            SELECT i.indexrelid::regclass::text AS name,
                   pg_get_indexdef(i.indexrelid) AS definition
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY($1::text[])
              AND t.relnamespace = current_schema()::regnamespace
              AND NOT i.indisunique AND NOT i.indisprimary
            -- slowest first: GIN, then by table size
            ORDER BY (SELECT amname FROM pg_am WHERE oid = (
                        SELECT relam FROM pg_class WHERE oid = i.indexrelid)) = 'gin' DESC,
                     pg_relation_size(i.indrelid) DESC
            """,
            list(SEEDED_TABLES),
        )
        for row in found:
            await self._raw.execute(f"DROP INDEX {row['name']}")
        return [row["definition"] for row in found]

    async def create_indexes(self, definitions: list[str]) -> None:
        """Run CREATE INDEX statements, as many at a time as there are cores."""
        await self._parallel(definitions)

    async def _parallel(self, statements: list[str]) -> None:
        if not statements:
            return
        queue: asyncio.Queue[str] = asyncio.Queue()
        for statement in statements:
            queue.put_nowait(statement)

        async def worker() -> None:
            async with self._client.acquire_connection() as raw:
                await _tune_session(raw)
                try:
                    while not queue.empty():
                        await raw.execute(queue.get_nowait())
                finally:
                    await _reset_session(raw)

        workers = max(1, min(os.cpu_count() or 1, 4, len(statements)))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        # Ranges of owners, filled by as many connections as there are cores.
        await self._parallel(
            [HOME_ENTRIES_SQL.format(lo=lo, hi=hi, big=big, cap=cap) for lo, hi in ranges]
        )


class _SqliteLoader(_Loader):
    postgres = False

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    async def copy(
        self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 (our own names)
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, 20_000)):
            await self._raw.executemany(statement, batch)

    async def execute(self, statement: str) -> None:
        await self._raw.execute(statement)

    async def fill_home(self, ranges: list[tuple[int, int]], big: int, cap: int) -> None:
        for lo, hi in ranges:
            await self._raw.execute(HOME_ENTRIES_SQL.format(lo=lo, hi=hi, big=big, cap=cap))


_SESSION_SETTINGS = {
    "synchronous_commit": "off",
    "work_mem": "'256MB'",
    "maintenance_work_mem": "'512MB'",
}


async def _tune_session(raw: Any) -> None:
    """Session settings for a bulk load; foreign-key triggers off when the role may do that
    (the generated rows are consistent by construction)."""
    for name, value in _SESSION_SETTINGS.items():
        await raw.execute(f"SET {name} = {value}")
    try:
        await raw.execute("SET session_replication_role = replica")
    except Exception as exc:  # asyncpg.InsufficientPrivilegeError: not a superuser
        if type(exc).__name__ != "InsufficientPrivilegeError":
            raise


async def _reset_session(raw: Any) -> None:
    for name in (*_SESSION_SETTINGS, "session_replication_role"):
        await raw.execute(f"RESET {name}")


# --- the entry point ---------------------------------------------------------------------


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
    generator = _Generator(options, now_ms, held.node_id)
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
    _claim(held, generator.snowflakes.last_ms)
    phase("generate graph and interactions")

    postgres = client.capabilities.dialect == "postgres"
    async with client.acquire_connection() as raw:
        loader: _Loader
        if postgres:
            loader = _PostgresLoader(client, raw)
            await _tune_session(raw)
        else:
            loader = _SqliteLoader(raw)
            await raw.execute("PRAGMA foreign_keys = OFF")
            await raw.execute("BEGIN")
        deferred: list[str] = []
        try:
            if isinstance(loader, _PostgresLoader):
                deferred = await loader.drop_secondary_indexes()
            await _load(
                generator,
                loader,
                users,
                posts,
                follows,
                likes,
                reposts,
                bookmarks,
                password_hash,
                report,
                phase,
            )
            limits = settings.timelines
            await loader.fill_home(
                _owner_ranges(users, posts, HOME_CHUNK_ROWS if postgres else 0),
                limits.fanout_max_followers,
                limits.home_max_entries,
            )
            phase("home timelines")
            if isinstance(loader, _PostgresLoader):
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
            if isinstance(loader, _PostgresLoader):
                try:
                    await loader.create_indexes(deferred)  # put back what a failure left out
                finally:
                    await _reset_session(raw)
            else:
                await raw.execute("PRAGMA foreign_keys = ON")
    counted = await client.execute_query_dict("SELECT COUNT(*) AS n FROM home_entries")
    report.home_entries = int(counted[0]["n"])
    report.seconds = time.perf_counter() - started
    return report


async def _load(
    generator: _Generator,
    loader: _Loader,
    users: _Users,
    posts: _Posts,
    follows: list[tuple[Any, ...]],
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
            created = _at(users.created_ms[i])
            display_name = _display_name(rng)
            yield (
                user_id,
                name,
                name,
                f"{name}@example.org",
                password_hash,
                display_name,
                display_name.casefold(),
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

    mentions: list[tuple[int, int]] = []
    tags: list[tuple[int, str]] = []
    await loader.copy("posts", POST_COLUMNS, generator.post_rows(users, posts, mentions, tags))
    report.posts = len(posts.ids)
    report.replies = sum(1 for r in posts.reply_to if r >= 0)
    report.quotes = sum(1 for q in posts.quote_of if q >= 0)
    phase("posts")
    await loader.copy("post_tags", ("post_id", "tag"), tags)
    await loader.copy("mentions", ("post_id", "user_id"), mentions)
    report.tags, report.mentions = len(tags), len(mentions)
    phase("hashtags and mentions")
    for table, rows in (("likes", likes), ("reposts", reposts), ("bookmarks", bookmarks)):
        await loader.copy(table, ("id", "user_id", "post_id"), rows)
    report.likes, report.reposts, report.bookmarks = len(likes), len(reposts), len(bookmarks)
    phase("likes, reposts and bookmarks")
