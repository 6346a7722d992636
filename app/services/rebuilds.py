"""Rebuilding home timelines as background jobs: `timelines.rebuild` with `{"owner": id}`.

The rebuild rewrites the whole timeline from the follow graph (app/services/fanout.py), so
running it twice gives the same rows: safe for a job that runs at least once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.changes import Change, Changes
from app.jobs import DeadJob
from app.services import fanout
from app.settings import Settings

REBUILD_HOME = "timelines.rebuild"


class RebuildService:
    def __init__(self, settings: Settings, changes: Changes) -> None:
        self._limits = settings.timelines
        self._changes = changes

    async def enqueue_home_rebuilds(self, owner_ids: Sequence[int]) -> list[int]:
        """Record one rebuild job per account, in one transaction; returns the job ids."""
        async with self._changes.begin() as change:
            return [await change.enqueue(REBUILD_HOME, {"owner": owner}) for owner in owner_ids]

    async def rebuild_home(self, change: Change, payload: dict[str, Any]) -> None:
        """The `timelines.rebuild` handler. It runs in the job's transaction (`change`):
        `fanout.rebuild_home` nests in it as a savepoint, so the new timeline and the job's
        completion commit together."""
        owner = payload.get("owner")
        if not isinstance(owner, int) or isinstance(owner, bool) or owner <= 0:
            raise DeadJob(f"{REBUILD_HOME} needs a positive integer owner, not {owner!r}")
        await fanout.rebuild_home(
            owner,
            max_entries=self._limits.home_max_entries,
            big_account=self._limits.fanout_max_followers,
        )
