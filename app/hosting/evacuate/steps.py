"""The evacuation's steps (app/hosting/evacuate/__init__.py says what each does and why it
is safe to repeat), and what they share with the dry run."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.hosting.runbook import Journal, Outcome, Step, StepFailed, StepRecord, StepStatus
from app.settings import Settings
from providers.compute.base import ComputeProvider, Node, NodeState
from providers.errors import ConfigurationError, ProviderError, Unavailable

if TYPE_CHECKING:
    from app.hosting.backup import BackupInfo
    from app.hosting.evacuate import Evacuation
    from providers.storage.base import StorageProvider

STEPS = ("backup", "restore", "provision", "wait_healthy", "record", "media", "dns", "retire")
"""In this order because the new fleet writes to the target database as soon as it boots
(migrations, leases, jobs) and the restore fills only an empty one."""
PROBE_TIMEOUT = 10.0
"""Seconds the old database gets to answer before it counts as gone."""

UNREACHABLE = (Unavailable, ConfigurationError)
"""What an old vendor that is gone, or has closed the account, raises."""


def age(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def describe_backup(backup: BackupInfo) -> str:
    return (
        f"backup {backup.id}, taken at {backup.created_at:%Y-%m-%d %H:%M} UTC "
        f"({age(backup.created_at)} ago)"
    )


class Steps:
    """The steps of one evacuation, each a coroutine the runbook runs."""

    def __init__(self, evacuation: Evacuation, options: Mapping[str, Any]) -> None:
        self.evacuation = evacuation
        self.settings = evacuation.settings
        self.old_gone = bool(options.get("old_gone"))
        self.dns_switched = bool(options.get("dns_switched"))
        self.chosen_backup: str | None = options.get("backup_id")

    def all(self) -> list[Step]:
        return [Step(name, getattr(self, name)) for name in STEPS]

    async def backup(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting.backup import BackupError, NoUserData, backup_storage, create_backup

        settings = self.settings
        if self.chosen_backup is not None:
            return Outcome(
                f"backup {self.chosen_backup} chosen by --backup: no new backup taken",
                skipped=True,
            )
        problem = await database_problem(settings.effective_database_url)
        if problem is not None:
            storage = backup_storage(settings)
            try:
                latest = await self._eligible_backup(journal, storage, taken=None)
            finally:
                await storage.close()
            if not self.old_gone:
                raise StepFailed(
                    f"the old database does not answer ({problem}). If it is only down, "
                    "bring it back and run again; if it is gone for good, rerun with "
                    f"--old-gone to restore the latest {describe_backup(latest)}"
                )
            record.data["backup_id"] = latest.id
            journal.save()
            return Outcome(
                f"old database gone ({problem}): restoring the latest {describe_backup(latest)}",
                warnings=(
                    "everything written to the old database after "
                    f"{latest.created_at:%Y-%m-%d %H:%M} UTC ({age(latest.created_at)} ago) "
                    "is not in the restored data",
                ),
            )
        storage = backup_storage(settings)
        try:
            info = await create_backup(settings, storage, require_user_data=True)
        except NoUserData as exc:
            # Restoring it would bring up an empty service, then retire the real one.
            raise StepFailed(
                f"{exc}: the database this run backs up has no account, so it is not the "
                "service's (is HOLDFAST_DATABASE_URL the old fleet's database?). Fix the "
                "settings and run again, or pass --restart --backup ID to restore a chosen "
                "backup (`holdfast backup list`)"
            ) from exc
        except (BackupError, ProviderError) as exc:
            raise StepFailed(
                f"the old database answers but no backup could be taken: {exc}. Fix the "
                f"backup storage ({settings.backup.storage or settings.storage.default}) or "
                "the database, then run again"
            ) from exc
        finally:
            await storage.close()
        record.data["backup_id"] = info.id
        return Outcome(f"backup {info.id} taken ({info.size:,} bytes, {info.engine})")

    async def provision(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import fleet

        target = self.evacuation.target
        async with opened_compute(self.settings, target) as provider:
            try:
                plan = await fleet.apply(self.settings, target, provider)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the fleet at {target} could not be created: {reason(exc)}. Check "
                    f"compute.providers.{target} (credentials, sizes, images, quotas) and run "
                    "again: nodes already created are kept"
                ) from exc
        return Outcome(
            f"{len(plan.create)} nodes created, {len(plan.keep)} kept, "
            f"{len(plan.destroy)} destroyed at {target}"
        )

    async def wait_healthy(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import fleet

        target = self.evacuation.target
        timeout = self.settings.fleet.health_timeout_seconds
        async with opened_compute(self.settings, target) as provider:
            try:
                nodes = await fleet.wait_healthy(self.settings, target, provider, timeout=timeout)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the fleet at {target} is not healthy after {timeout:g} s: "
                    f"{reason(exc)}. Look at the nodes (cloud-init output, "
                    f"`journalctl -u holdfast`) and at fleet.health_url, then run again"
                ) from exc
        web = web_addresses(nodes)
        record.data["web_ips"] = web
        return Outcome(f"{len(nodes)} nodes running; web nodes at {', '.join(web) or 'none'}")

    async def restore(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import backup as backups
        from app.hosting.databases import display_url

        settings = self.settings
        url = self.evacuation.target_database_url
        storage = backups.backup_storage(settings)
        try:
            chosen = await self._backup_to_restore(journal, record, storage)
            if await _holds(url, chosen):
                # Restored by an earlier attempt interrupted before it was recorded.
                return Outcome(f"{display_url(url)} already holds backup {chosen.id} (verified)")
            try:
                await backups.restore_backup(settings, storage, chosen, database_url=url)
            except (backups.BackupError, ProviderError) as exc:
                if await _holds(url, chosen):
                    # The restore of a killed earlier attempt (its pg_restore outlived it)
                    # finished meanwhile.
                    return Outcome(f"{display_url(url)} holds backup {chosen.id} (verified)")
                raise StepFailed(
                    f"backup {chosen.id} could not be restored into the target database "
                    f"(compute.providers.{self.evacuation.target}.database_url): {exc}. Fix "
                    "the cause and run again (a restore is all or nothing)"
                ) from exc
        finally:
            await storage.close()
        return Outcome(f"backup {chosen.id} restored into {display_url(url)} and verified")

    async def _backup_to_restore(
        self, journal: Journal, record: StepRecord, storage: StorageProvider
    ) -> BackupInfo:
        taken = journal.step("backup").data.get("backup_id")
        wanted = record.data.get("backup_id") or self.chosen_backup
        chosen = await self._eligible_backup(journal, storage, taken=taken, wanted=wanted)
        if record.data.get("backup_id") != chosen.id:
            record.data["backup_id"] = chosen.id
            journal.save()
        return chosen

    async def _eligible_backup(
        self,
        journal: Journal,
        storage: StorageProvider,
        *,
        taken: str | None,
        wanted: str | None = None,
    ) -> BackupInfo:
        """The backup this run restores: `wanted` (recorded, or `--backup ID`), else the one
        the backup step took, else the newest taken before the run started (never one of
        the new fleet's own) that holds an account (StepFailed when there is none)."""
        from app.hosting import backup as backups

        try:
            available = await backups.list_backups(self.settings, storage)
        except (backups.BackupError, ProviderError) as exc:
            where = self.settings.backup.storage or self.settings.storage.default
            raise StepFailed(
                f"the backups cannot be listed: {exc}. Make the backup storage ({where}) "
                "reachable and run again"
            ) from exc
        by_id = {info.id: info for info in available}
        for name in (wanted, taken):
            if name is None:
                continue
            if name in by_id:
                return by_id[name]
            raise StepFailed(
                f"backup {name}, chosen for this evacuation, is not in the backup storage "
                "(pruned or deleted?); pass --restart (and --backup ID) to choose another"
            )
        started = datetime.fromisoformat(journal.state.started_at)
        before = [info for info in available if info.created_at < started]
        if not before:
            raise StepFailed(
                "the old database is gone and the backup storage holds no backup taken before "
                "this run: nothing to restore. Configure backup.storage where backups were "
                "kept and run again"
            )
        newest = before[0]
        if not newest.user_data:
            raise StepFailed(
                f"the newest backup, {newest.id} ({age(newest.created_at)} old), holds no "
                "account: it is not a backup of the service. "
                "Pass --backup ID to restore a chosen one (`holdfast backup list`)"
            )
        return newest

    async def record(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import fleet

        target = self.evacuation.target
        async with self._target_database(), opened_compute(self.settings, target) as provider:
            try:
                rows = await fleet.record(target, provider, self.settings.fleet.name)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the nodes at {target} could not be listed to record them: "
                    f"{reason(exc)}. Run again once the vendor answers"
                ) from exc
        return Outcome(f"{len(rows)} nodes at {target} recorded")

    async def media(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.storage import Storage
        from app.storage.move import MoveAborted, MoveError, move

        backend = self.evacuation.target_config.storage
        if backend is None:
            return Outcome(
                f"compute.providers.{self.evacuation.target}.storage is not set: media stay "
                f"where they are ({self.settings.storage.default})",
                skipped=True,
            )
        async with self._target_database():
            storage = Storage(self.settings.storage)
            try:
                if self.evacuation.move_retry_delays is None:
                    report = await move(storage, backend)
                else:
                    report = await move(
                        storage, backend, retry_delays=self.evacuation.move_retry_delays
                    )
            except (MoveError, MoveAborted) as exc:
                raise StepFailed(
                    f"the media move to {backend} stopped: {exc}. Run again to resume it"
                ) from exc
            finally:
                await storage.close()
        warnings: tuple[str, ...] = ()
        if report.failed:
            first = report.failed[0]
            if not self.old_gone:
                raise StepFailed(
                    f"{len(report.failed)} stored objects could not be copied to {backend} "
                    f"(first: {first.key} at {first.backend}: {first.reason}). Their rows still "
                    f"name their old backend, where they are the only copies: fix the cause "
                    f"({backend} unreachable, or the objects unreadable there) and run again. "
                    "If the old storage is gone for good, rerun with --old-gone to go on "
                    "without them"
                )
            lost = lost_media_path(self.evacuation.state_path)
            lost.write_text(
                "".join(f"{item.key}\t{item.backend}\t{item.reason}\n" for item in report.failed)
            )
            record.data["lost_media"] = str(lost)
            record.data["lost_count"] = len(report.failed)
            warnings = (
                f"{len(report.failed)} stored objects could not be copied to {backend} (first: "
                f"{first.key} at {first.backend}: {first.reason}); their keys are in {lost}. "
                "They are lost unless the old storage comes back: if it does, `holdfast "
                f"storage migrate --to {backend}` copies them",
            )
            if report.remaining > len(report.failed):
                raise StepFailed(
                    f"{report.remaining - len(report.failed)} stored objects are still recorded "
                    f"outside {backend} (written while the move ran): run again"
                )
            return Outcome(
                f"{report.copied:,} objects ({report.copied_bytes:,} bytes) copied to {backend}, "
                f"{report.skipped:,} were there already, {len(report.failed)} lost",
                warnings=warnings,
            )
        if report.remaining:
            raise StepFailed(
                f"{report.remaining} stored objects are still recorded outside {backend} "
                "(written while the move ran): run again"
            )
        return Outcome(
            f"{report.copied:,} objects ({report.copied_bytes:,} bytes) copied to {backend}, "
            f"{report.skipped:,} were there already"
        )

    async def dns(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting.dns import open_dns, point_records

        settings = self.settings
        if settings.dns.active is None:
            return Outcome("no DNS configured (dns.active): point the domain yourself", True)
        target = self.evacuation.target
        async with opened_compute(settings, target) as provider:
            try:
                nodes = await provider.list_nodes(tags=_tags(settings, target, role="web"))
            except ProviderError as exc:
                raise StepFailed(
                    f"the web nodes at {target} could not be listed: {reason(exc)}. Run again"
                ) from exc
        addresses = web_addresses([node for node in nodes if node.state is NodeState.RUNNING])
        if not addresses:
            raise StepFailed(
                f"no running web node at {target} has a public address: the DNS records "
                f"were left as they are. Check the fleet (`holdfast fleet status`) and run again"
            )
        provider_dns = open_dns(settings, settings.dns.active)
        try:
            await point_records(settings, provider_dns, addresses)
        except ProviderError as exc:
            raise StepFailed(
                f"the DNS records could not be switched: {reason(exc)}. Check "
                f"dns.providers.{settings.dns.active} and run again"
            ) from exc
        finally:
            await provider_dns.close()
        record.data["addresses"] = addresses
        names = ", ".join(settings.dns.records)
        return Outcome(f"{names} in {settings.dns.zone} -> {', '.join(addresses)}")

    async def retire(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import fleet

        settings = self.settings
        source = self.evacuation.source
        dns = journal.step("dns")
        if dns.status is StepStatus.SKIPPED and not self.dns_switched:
            web = journal.step("wait_healthy").data.get("web_ips") or []
            raise StepFailed(
                "no DNS is configured, so the domain still points at the old fleet: point the "
                f"domain at {', '.join(web) or 'the new web nodes'}, then rerun with "
                "--dns-switched (the old fleet is destroyed only then)"
            )
        switched = dns.finished_time() or datetime.now(UTC)
        drained = switched + timedelta(seconds=settings.fleet.drain_seconds)
        wait = (drained - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            async with opened_compute(settings, source) as provider:
                try:
                    destroyed = await fleet.destroy_all(settings, source, provider)
                finally:
                    # Rows of nodes the vendor no longer lists are gone, whatever happened.
                    with contextlib.suppress(ProviderError):
                        listed = await provider.list_nodes(tags=_fleet_tags(settings, source))
                        alive = {n.id for n in listed if n.state is not NodeState.TERMINATED}
                        async with self._target_database():
                            await _mark_destroyed(source, keep=alive)
        except UNREACHABLE as exc:
            if not self.old_gone:
                raise StepFailed(
                    f"the old fleet at {source} could not be destroyed: {reason(exc)}. Run "
                    "again once the vendor answers; if it is gone for good, rerun with "
                    "--old-gone"
                ) from exc
            async with self._target_database():
                left = await _mark_unknown(source)
            names = ", ".join(f"{name} ({external_id})" for name, external_id in left)
            warning = (
                f"the old configuration {source} cannot be reached ({reason(exc)}): "
                f"{len(left)} recorded nodes were not destroyed"
                + (f": {names}" if names else "")
                + ". If the account still exists, destroy them at the vendor (they are marked "
                "`unknown` in fleet_nodes)"
            )
            return Outcome(f"old fleet at {source} not reachable", warnings=(warning,))
        except ProviderError as exc:
            raise StepFailed(
                f"the old fleet at {source} could not be destroyed: {reason(exc)}. Run again "
                "(nodes destroyed so far are recorded as such)"
            ) from exc
        return Outcome(f"{len(destroyed)} nodes destroyed at {source}")

    @asynccontextmanager
    async def _target_database(self) -> AsyncIterator[None]:
        """Tortoise open on the target database, with a node id held there (rows written by
        these steps get ids)."""
        from tortoise import Tortoise

        from app import nodes
        from app.db import tortoise_config

        config = self.evacuation.target_config
        target = self.settings.model_copy(
            update={
                "database_url": self.evacuation.target_database_url,
                "redis_url": config.redis_url.get_secret_value() if config.redis_url else None,
            }
        )
        await Tortoise.init(config=tortoise_config(target))
        try:
            async with nodes.hold(target, role="evacuate"):
                yield
        finally:
            await Tortoise.close_connections()


@asynccontextmanager
async def opened_compute(settings: Settings, name: str) -> AsyncIterator[ComputeProvider]:
    """The provider of compute configuration `name`, closed afterwards."""
    from app.hosting.fleet import open_compute

    provider = open_compute(settings, name)
    try:
        yield provider
    finally:
        await provider.close()


def _tags(settings: Settings, compute: str, *, role: str) -> dict[str, str]:
    return {
        "holdfast-fleet": settings.fleet.name,
        "holdfast-compute": compute,
        "holdfast-role": role,
    }


def _fleet_tags(settings: Settings, compute: str) -> dict[str, str]:
    return {"holdfast-fleet": settings.fleet.name, "holdfast-compute": compute}


def lost_media_path(state_path: Path) -> Path:
    """Where a run with --old-gone lists the objects it could not copy (beside the state)."""
    return state_path.with_name(state_path.name + ".lost-media.txt")


def web_addresses(nodes: list[Node]) -> list[str]:
    return sorted(
        {
            node.public_ips[0]
            for node in nodes
            if node.tags.get("holdfast-role") == "web" and node.public_ips
        }
    )


async def _holds(url: str, backup: BackupInfo) -> bool:
    """Whether the database at `url` verifies as `backup` (every table's rows and checksum)."""
    from app.hosting.backup import BackupError, verify_backup

    try:
        await verify_backup(backup, database_url=url)
    except BackupError:
        return False
    return True


async def _mark_unknown(compute: str) -> list[tuple[str, str]]:
    from app.models import FleetNode

    rows = FleetNode.filter(compute=compute, destroyed_at=None)
    left = [(row.name, row.external_id) for row in await rows.order_by("name")]
    await rows.update(state=NodeState.UNKNOWN.value)
    return left


async def _mark_destroyed(compute: str, *, keep: set[str]) -> None:
    """Mark destroyed the rows of `compute`'s nodes except those still listed (`keep`)."""
    from app.models import FleetNode

    await (
        FleetNode.filter(compute=compute, destroyed_at=None)
        .exclude(external_id__in=list(keep))
        .update(state=NodeState.TERMINATED.value, destroyed_at=datetime.now(UTC))
    )


MIGRATIONS_TABLE = "tortoise_migrations"


async def database_problem(url: str) -> str | None:
    """Why the database at `url` does not answer, None when it does. Never creates or writes
    anything (a SQLite file that does not exist is gone, not new; it is opened read-only). A
    database without the migrations table was never Holdfast's, or was emptied: gone too."""
    from app.hosting.databases import (
        BackupError,
        PostgresTarget,
        display_url,
        engine_of,
        sqlite_path,
    )

    try:
        if engine_of(url) == "sqlite":
            return await asyncio.to_thread(_sqlite_problem, str(sqlite_path(url)))
        async with asyncio.timeout(PROBE_TIMEOUT):
            connection = await PostgresTarget.parse(url).connect()
            try:
                found = await connection.fetchval(
                    "SELECT to_regclass($1) IS NOT NULL", MIGRATIONS_TABLE
                )
            finally:
                await connection.close()
        if not found:
            return f"{display_url(url)} has no {MIGRATIONS_TABLE} table"
    except BackupError as exc:
        return str(exc)
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g} s"
    return None


def _sqlite_problem(path: str) -> str | None:
    if not Path(path).is_file():
        return f"no SQLite file {path}"
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=PROBE_TIMEOUT)
        try:
            found = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                (MIGRATIONS_TABLE,),
            ).fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    if not found:
        return f"{path} has no {MIGRATIONS_TABLE} table"
    return None


def reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
