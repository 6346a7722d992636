"""The storage lease: `holdfast storage migrate` and `holdfast storage orphans --delete` run one
at a time.

Two moves at once would copy every object twice, and one could discard a copy the other had
just recorded; an orphan deletion beside a move could delete a copy the move is about to
record. So each of them holds the lease `storage` (a row of `storage_leases`) while it runs:
taken only when free or run out, renewed every third of `storage.move_lease_seconds`, given
back at the end. A killed holder's lease runs out after `move_lease_seconds`, and a rerun
takes it over. A holder checks `Lease.check()` before each step that must not happen twice
(a copy, a switch, a deletion): a holder that could not renew in time (paused, cut off from
the database) stops instead of acting beside the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import BaseORMException, IntegrityError

from app.models import StorageLease

log = logging.getLogger("holdfast.storage")

NAME = "storage"
_RETRY_SECONDS = 0.5  # after a failed renewal


class LeaseHeld(Exception):
    """Another live process holds the lease."""

    def __init__(self, holder: str, expires_at: datetime) -> None:
        super().__init__(f"held by {holder} until {expires_at:%Y-%m-%d %H:%M:%S} UTC")
        self.holder = holder
        self.expires_at = expires_at


class LeaseLost(Exception):
    """This process's lease ran out before it could renew it: another may hold it now."""


class Lease:
    """A held lease: `check()` before every step that must not run beside another holder."""

    def __init__(self, holder: str, seconds: float, *, name: str = NAME) -> None:
        self.name = name
        self.holder = holder
        self.seconds = seconds
        self._until = 0.0  # time.monotonic() at which the lease ends unless renewed
        self._lost = False

    @property
    def lost(self) -> bool:
        """A renewal found the lease taken, or came too late."""
        return self._lost

    @property
    def held(self) -> bool:
        # A margin of a tenth: never act in the last moments of a lease.
        return not self._lost and time.monotonic() < self._until - self.seconds / 10

    def check(self) -> None:
        if not self.held:
            raise LeaseLost(
                f"the {self.name} lease ran out before it was renewed (was this process paused, "
                "or the database unreachable?); another run may have taken over"
            )

    async def acquire(self) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.seconds)
        if not await StorageLease.exists(name=self.name):
            try:
                await StorageLease.create(name=self.name, holder=self.holder, expires_at=until)
            except IntegrityError:
                pass  # another process recorded it first: it holds it unless it ran out
            else:
                self._until = started + self.seconds
                return
        # The UPDATE checks again: of the processes that found it run out, one takes it.
        if await StorageLease.filter(name=self.name, expires_at__lte=now).update(
            holder=self.holder, expires_at=until
        ):
            self._until = started + self.seconds
            return
        current = await StorageLease.get_or_none(name=self.name)
        if current is None:  # given back meanwhile
            return await self.acquire()
        raise LeaseHeld(current.holder, current.expires_at)

    async def renew(self) -> None:
        started = time.monotonic()
        until = datetime.now(UTC) + timedelta(seconds=self.seconds)
        if self._lost or not await StorageLease.filter(name=self.name, holder=self.holder).update(
            expires_at=until
        ):
            self._lost = True
            return
        if started < self._until:
            self._until = started + self.seconds
        else:
            self._lost = True  # ran out before this renewal: someone may have acted since

    async def release(self) -> None:
        await StorageLease.filter(name=self.name, holder=self.holder).delete()


async def holder(name: str = NAME) -> tuple[str, datetime] | None:
    """Who holds the lease `name` now, and until when (None: nobody)."""
    current = await StorageLease.get_or_none(name=name)
    if current is None or current.expires_at <= datetime.now(UTC):
        return None
    return current.holder, current.expires_at


@asynccontextmanager
async def hold(seconds: float, *, role: str, name: str = NAME) -> AsyncIterator[Lease]:
    """Hold the lease `name` (default: the storage lease) while inside, renewing it;
    LeaseHeld when another live process holds it."""
    from app.nodes import process_name

    lease = Lease(process_name(role), seconds, name=name)
    await lease.acquire()
    keeper = asyncio.create_task(_keep(lease), name=f"holdfast-{name}-lease")
    try:
        yield lease
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        try:
            await lease.release()
        except (BaseORMException, OSError):
            log.warning("could not give back the %s lease (it runs out)", name, exc_info=True)


async def _keep(lease: Lease) -> None:
    every = lease.seconds / 3
    delay = every
    while not lease.lost:
        await asyncio.sleep(delay)
        try:
            await lease.renew()
            delay = every
        except Exception:
            log.warning("could not renew the %s lease; retrying", lease.name, exc_info=True)
            delay = min(every, _RETRY_SECONDS)
    log.error("the %s lease was lost: this run stops", lease.name)
