"""Business logic, one module per domain. Services raise `DomainError` for expected failures
and never import the API layer."""

from __future__ import annotations

from dataclasses import dataclass

from app.changes import Changes
from app.hosting.schedule import BackupJob
from app.jobs import JobQueue
from app.payments import Payments
from app.pubsub import PubSub, pubsub_from_url
from app.ratelimit import RateLimiter
from app.services.accounts import AccountService
from app.services.billing import BillingService
from app.services.fanout import FanOutService
from app.services.graph import GraphService
from app.services.interactions import InteractionService
from app.services.live import LiveService
from app.services.media import PROCESS_MEDIA, MediaService
from app.services.media_processing import MediaProcessor
from app.services.media_purge import DELETE_OBJECTS, EXPIRE_MEDIA, MediaPurger
from app.services.notifications import NOTIFY, NotificationService, create_notifications
from app.services.operations import OperationService
from app.services.posts import PostService
from app.services.rebuilds import REBUILD_HOME, RebuildService
from app.services.search import SearchService
from app.services.timelines import TimelineService
from app.settings import Settings
from app.storage import Storage


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    limiter: RateLimiter
    pubsub: PubSub
    changes: Changes
    jobs: JobQueue
    accounts: AccountService
    posts: PostService
    interactions: InteractionService
    graph: GraphService
    timelines: TimelineService
    notifications: NotificationService
    search: SearchService
    live: LiveService
    rebuilds: RebuildService
    storage: Storage
    media: MediaService
    payments: Payments
    billing: BillingService
    operations: OperationService

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        limiter = RateLimiter.from_settings(settings)
        pubsub = pubsub_from_url(settings.redis_url)
        jobs = JobQueue(settings.jobs, pubsub)
        changes = Changes(pubsub, jobs)
        storage = Storage(settings.storage)
        payments = Payments(settings.payments)
        billing = BillingService(settings, changes, payments)
        posts = PostService(settings, changes, perks=billing.perks)
        rebuilds = RebuildService(settings, changes)
        notifications = NotificationService()
        # Every job kind and its handler, here and nowhere else.
        jobs.register(REBUILD_HOME, rebuilds.rebuild_home)
        FanOutService(settings).register(jobs)
        jobs.register(NOTIFY, create_notifications)
        jobs.register_staged(PROCESS_MEDIA, MediaProcessor(settings.media, storage).stage)
        purger = MediaPurger(storage, settings.media)
        jobs.register_staged(DELETE_OBJECTS, purger.delete_objects)
        jobs.register(EXPIRE_MEDIA, purger.expire)
        billing.ledger.register(jobs)
        BackupJob(settings).register(jobs)
        return cls(
            settings=settings,
            limiter=limiter,
            pubsub=pubsub,
            changes=changes,
            jobs=jobs,
            accounts=AccountService(settings, limiter, changes),
            posts=posts,
            interactions=InteractionService(posts, changes),
            graph=GraphService(changes),
            timelines=TimelineService(settings),
            notifications=notifications,
            search=SearchService(),
            live=LiveService(settings, pubsub, notifications),
            rebuilds=rebuilds,
            storage=storage,
            media=MediaService(settings, changes, storage),
            payments=payments,
            billing=billing,
            operations=OperationService(),
        )

    async def close(self) -> None:
        """Release what the services hold open (pub/sub, rate-limit storage, storage
        backends, payment providers)."""
        await self.pubsub.close()
        await self.limiter.close()
        await self.storage.close()
        await self.payments.close()
