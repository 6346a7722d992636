"""Tortoise models, one module per aggregate. Listed in `MODEL_MODULES` for the ORM config."""

from __future__ import annotations

from app.models.account import RefreshToken, Role, Session, User
from app.models.billing import (
    LIVE_STATUSES,
    ActionRequired,
    Payment,
    PaymentEventRecord,
    PaymentFeed,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from app.models.fleet import FleetNode
from app.models.media import Media, MediaPurpose, MediaState
from app.models.operation import PersistedOperation
from app.models.post import Bookmark, Like, Mention, Post, PostEdit, PostTag, Repost, Visibility
from app.models.social import Block, Follow, FollowRequest, Mute
from app.models.storage import MoveState, StorageLease, StorageMove, StoredObject
from app.models.system import Job, JobState, NodeLease
from app.models.timeline import HomeEntry, Notification, NotificationKind

MODEL_MODULES = [
    "app.models.account",
    "app.models.post",
    "app.models.social",
    "app.models.timeline",
    "app.models.system",
    "app.models.storage",
    "app.models.media",
    "app.models.billing",
    "app.models.fleet",
    "app.models.operation",
]

__all__ = [
    "LIVE_STATUSES",
    "MODEL_MODULES",
    "ActionRequired",
    "Block",
    "Bookmark",
    "FleetNode",
    "Follow",
    "FollowRequest",
    "HomeEntry",
    "Job",
    "JobState",
    "Like",
    "Media",
    "MediaPurpose",
    "MediaState",
    "Mention",
    "MoveState",
    "Mute",
    "NodeLease",
    "Notification",
    "NotificationKind",
    "Payment",
    "PaymentEventRecord",
    "PaymentFeed",
    "PaymentStatus",
    "PersistedOperation",
    "Plan",
    "Post",
    "PostEdit",
    "PostTag",
    "RefreshToken",
    "Repost",
    "Role",
    "Session",
    "StorageLease",
    "StorageMove",
    "StoredObject",
    "Subscription",
    "SubscriptionStatus",
    "User",
    "Visibility",
]
