"""What `holdfast seed` is asked for and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

SEED_PASSWORD = "holdfast-seed-password"  # noqa: S105 (a published test password)


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
    subscribers_share: float = 0.05  # posts for premium accounts (visibility `subscribers`)
    direct_share: float = 0.02
    premium_share: float = 0.1  # accounts with premium access (a live subscription)
    likes_per_post: float = 2.0
    reposts_per_post: float = 0.05
    bookmarks_per_post: float = 0.1
    password: str = SEED_PASSWORD


@dataclass(slots=True)
class SeedReport:
    users: int = 0
    follows: int = 0
    posts: int = 0
    subscribers_posts: int = 0
    premium_users: int = 0  # one subscription each, to the one plan
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
            f"{self.users:,} users ({self.premium_users:,} premium), {self.follows:,} follows, "
            f"{self.posts:,} posts ({self.replies:,} replies, {self.quotes:,} quotes, "
            f"{self.subscribers_posts:,} for subscribers), {self.likes:,} likes, "
            f"{self.reposts:,} reposts, {self.bookmarks:,} bookmarks, {self.mentions:,} mentions, "
            f"{self.tags:,} hashtags, {self.home_entries:,} home timeline entries "
            f"in {self.seconds:.1f} s"
        )
