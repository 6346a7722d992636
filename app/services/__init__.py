"""Business logic, one module per domain. Services raise `DomainError` for expected failures
and never import the API layer."""

from __future__ import annotations

from dataclasses import dataclass

from app.changes import Changes
from app.pubsub import PubSub, pubsub_from_url
from app.ratelimit import RateLimiter
from app.services.accounts import AccountService
from app.services.graph import GraphService
from app.services.interactions import InteractionService
from app.services.posts import PostService
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    limiter: RateLimiter
    pubsub: PubSub
    changes: Changes
    accounts: AccountService
    posts: PostService
    interactions: InteractionService
    graph: GraphService

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        limiter = RateLimiter.from_settings(settings)
        pubsub = pubsub_from_url(settings.redis_url)
        changes = Changes(pubsub)
        posts = PostService(settings, changes)
        return cls(
            settings=settings,
            limiter=limiter,
            pubsub=pubsub,
            changes=changes,
            accounts=AccountService(settings, limiter),
            posts=posts,
            interactions=InteractionService(settings, posts, changes),
            graph=GraphService(settings, changes),
        )
