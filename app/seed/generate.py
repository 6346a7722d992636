"""The data set, generated in memory: accounts, the follow graph, posts without their text,
and likes, reposts and bookmarks, each with a snowflake id made from its time."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS
from app.models.billing import SubscriptionStatus
from app.payments import COMPLIMENTARY
from app.seed.options import SeedError, SeedOptions
from app.services.billing_ledger import add_interval

_MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


class Snowflakes:
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


def moment(ms: int) -> datetime:
    return _UNIX_EPOCH + timedelta(milliseconds=ms)


def cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


# --- the data set, in memory -------------------------------------------------------------


@dataclass(slots=True)
class Users:
    ids: list[int]
    names: list[str]
    created_ms: list[int]
    followees: list[list[int]]  # indexes, per follower
    follower_count: list[int]
    followers: list[list[int]]  # indexes, per followee
    follow_keys: set[int]  # follower * n + followee
    premium: list[int]  # indexes of the accounts with premium access, ascending


@dataclass(slots=True)
class Posts:
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


class Generator:
    def __init__(self, options: SeedOptions, now_ms: int, node: int) -> None:
        self.o = options
        # One sequence per millisecond for every table: the ids are unique across all of them
        # (posts and reposts share the home timeline's `entry_id` space).
        self.snowflakes = Snowflakes(node)
        self.rng = random.Random(options.seed)  # noqa: S311 (synthetic data, not secrets)
        self.now_ms = now_ms
        # Posts fall in [window_start, now); accounts are older. Snowflakes start at EPOCH_MS.
        self.window_start = max(now_ms - options.days * _DAY_MS, EPOCH_MS + _DAY_MS)
        if self.window_start >= now_ms:
            raise SeedError("the clock is before the id epoch plus a day")
        self._appeal: list[float] | None = None
        self._engagement: list[float] = []

    # accounts and the follow graph

    def users(self) -> Users:
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
        weights = cumulative(popularity)
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
                for other in rng.choices(population, cum_weights=weights, k=want * 2):
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
        # Who has premium access: drawn from a random stream of its own, so the share changes
        # neither the follow graph nor the posts (only who may like a subscribers post).
        chooser = random.Random(f"premium {o.seed}")  # noqa: S311 (synthetic data)
        premium = sorted(chooser.sample(range(n), round(n * o.premium_share)))
        return Users(
            ids=ids,
            names=names,
            created_ms=created_ms,
            followees=followees,
            follower_count=[len(f) for f in followers],
            followers=followers,
            follow_keys=follow_keys,
            premium=premium,
        )

    def follow_rows(self, users: Users) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        snowflakes = self.snowflakes
        for follower, theirs in enumerate(users.followees):
            for followee in theirs:
                since = max(users.created_ms[follower], users.created_ms[followee])
                follow_id, _ = snowflakes.make(rng.randrange(since, self.now_ms))
                yield (follow_id, users.ids[follower], users.ids[followee])

    # posts, without their text

    def posts(self, users: Users) -> Posts:
        o, rng = self.o, self.rng
        n, m = o.users, o.posts
        times = sorted(rng.randrange(self.window_start, self.now_ms) for _ in range(m))
        snowflakes = self.snowflakes
        ids, ms = [], []
        for t in times:
            post_id, at = snowflakes.make(t)
            ids.append(post_id)
            ms.append(at)
        activity = cumulative(rng.lognormvariate(0, 1.0) for _ in range(n))
        author = rng.choices(range(n), cum_weights=activity, k=m)
        visibility: list[str] = []
        reply_to = [-1] * m
        quote_of = [-1] * m
        reply_count = [0] * m
        quote_count = [0] * m
        public_so_far: list[int] = []
        # Subscribers posts take the top of the public range: raising their share turns public
        # posts into subscribers posts and leaves the other kinds where they were.
        followers_cut = 1.0 - o.direct_share - o.followers_only_share
        subscribers_cut = followers_cut - o.subscribers_share
        direct_cut = 1.0 - o.direct_share
        random_ = rng.random
        for i in range(m):
            r = random_()
            kind = (
                "public"
                if r < subscribers_cut
                else "subscribers"
                if r < followers_cut
                else "followers"
                if r < direct_cut
                else "direct"
            )
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
        return Posts(
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
        users: Users,
        posts: Posts,
        per_post: float,
        *,
        public_only: bool,
        counter: list[int] | None,
    ) -> list[tuple[int, int, int]]:
        """(id, user_id, post_id) rows, about `per_post` per post: power-law over posts (the
        author's audience times a heavy-tailed appeal, at most a third of the accounts on one
        post), each by an account that may see the post (a follower for a followers-only
        post, a premium account for a subscribers post), some time after it."""
        rng = self.rng
        n, m = len(users.ids), len(posts.ids)
        wanted = m * per_post
        if not wanted or n < 2:
            return []
        if self._appeal is None:
            audience = [(count + 1) ** 0.7 for count in users.follower_count]
            self._appeal = [audience[author] * rng.paretovariate(1.5) for author in posts.author]
            self._engagement = cumulative(rng.lognormvariate(0, 1.0) for _ in range(n))
        allowed = ("public",) if public_only else ("public", "followers", "subscribers")
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
            if kind == "followers" or kind == "subscribers":
                pool = followers[author] if kind == "followers" else users.premium
                actors = [a for a in sample(pool, min(count, cap, len(pool))) if a != author]
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


# --- premium access ------------------------------------------------------------------------

PLAN_CODE = "supporter"
PLAN_INTERVAL = "month"
PLAN_CURRENCY = "usd"
PLAN_COLUMNS = (
    "id",
    "code",
    "name",
    "description",
    "interval",
    "prices",
    "perks",
    "vendor_ids",
    "active",
    "updated_at",
)
SUBSCRIPTION_COLUMNS = (
    "id",
    "user_id",
    "plan_id",
    "provider",
    "currency",
    "amount",
    "interval",
    "status",
    "current_period_start",
    "current_period_end",
    "access_until",
    "cancel_at_period_end",
    "renewal_failures",
    "complimentary",
    "created_at",
    "updated_at",
)


def premium_rows(
    generator: Generator, users: Users
) -> tuple[tuple[Any, ...] | None, list[tuple[Any, ...]]]:
    """The plan (one, `supporter`, monthly) and one subscription per premium account: ACTIVE
    and complimentary (the ledger's kind that needs no processor: `grant_complimentary`),
    started some time before now, in the monthly period that contains now, access until its
    end. Nothing renews them: the access of a data set seeded more than a month ago lapses."""
    if not users.premium:
        return None, []
    rng = random.Random(f"subscriptions {generator.o.seed}")  # noqa: S311 (synthetic data)
    snowflakes, now_ms = generator.snowflakes, generator.now_ms
    now = moment(now_ms)
    earliest = max(EPOCH_MS, generator.window_start - 180 * _DAY_MS)
    plan_id, plan_ms = snowflakes.make(earliest)
    plan = (
        plan_id,
        PLAN_CODE,
        "Supporter",
        "",
        PLAN_INTERVAL,
        f'{{"{PLAN_CURRENCY}": 500}}',
        "{}",
        "{}",
        True,
        moment(plan_ms),
    )
    rows: list[tuple[Any, ...]] = []
    for user in users.premium:
        since = max(users.created_ms[user], plan_ms + 1)
        latest = max(since + 1, now_ms - 3_600_000)
        subscription_id, at = snowflakes.make(rng.randrange(since, latest))
        started = moment(at)
        start, end = started, add_interval(started, PLAN_INTERVAL)
        while end <= now:
            start, end = end, add_interval(end, PLAN_INTERVAL)
        rows.append(
            (
                subscription_id,
                users.ids[user],
                plan_id,
                COMPLIMENTARY,
                PLAN_CURRENCY,
                0,
                PLAN_INTERVAL,
                SubscriptionStatus.ACTIVE.value,
                start,
                end,
                end,
                False,
                0,
                True,
                started,
                start,
            )
        )
    rows.sort()
    return plan, rows
