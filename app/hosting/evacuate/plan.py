"""`holdfast evacuate --dry-run`: what each step would do, read from the vendors and the
databases without changing anything (not even the state file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.hosting import runbook
from app.hosting.evacuate.steps import (
    STEPS,
    UNREACHABLE,
    database_problem,
    describe_backup,
    lost_media_path,
    opened_compute,
    reason,
    web_addresses,
)
from app.hosting.runbook import RunState

if TYPE_CHECKING:
    from app.hosting.evacuate import Evacuation


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """What a step would do (`--dry-run`), and what the state file says of it."""

    name: str
    status: str
    would: str


async def dry_run(evacuation: Evacuation) -> tuple[RunState | None, list[PlannedStep]]:
    """What a run would do, step by step; reads the vendors and databases, writes nothing
    (not even the state file). A question a vendor cannot answer now is reported as such."""
    state = runbook.load(evacuation.state_path, STEPS)
    if state is not None and (
        state.source != evacuation.source or state.target != evacuation.target
    ):
        state = None  # a run would refuse it; show the plan of a new one
    planner = _Planner(evacuation, state)
    # First, and whatever the state says: every later question that would open the old
    # database asks only when it answers (opening a missing SQLite file would create it).
    planner.old_problem = await database_problem(evacuation.settings.effective_database_url)
    planned = []
    for name in STEPS:
        record = state.steps[name] if state is not None else None
        status = record.status.value if record is not None else "pending"
        if record is not None and record.finished:
            would = f"nothing: {status} ({record.detail})"
        else:
            try:
                would = await getattr(planner, name)()
            except Exception as exc:  # a plan shows what it cannot tell
                would = f"cannot tell now: {reason(exc)}"
        planned.append(PlannedStep(name, status, would))
    return state, planned


class _Planner:
    def __init__(self, evacuation: Evacuation, state: RunState | None) -> None:
        self.evacuation = evacuation
        self.settings = evacuation.settings
        self.state = state
        options = state.options if state is not None else {}
        self.old_gone = bool(options.get("old_gone")) or evacuation.old_gone
        self.dns_switched = bool(options.get("dns_switched")) or evacuation.dns_switched
        self.backup_id = options.get("backup_id") or evacuation.backup_id
        self.old_problem: str | None = None
        self.kept_web: list[str] = []

    async def _latest(self) -> str:
        from app.hosting import backup as backups

        storage = backups.backup_storage(self.settings)
        try:
            available = await backups.list_backups(self.settings, storage)
        finally:
            await storage.close()
        if not available:
            return "no backup in the backup storage"
        latest = available[0]
        empty = "" if latest.user_data else " (holding no account: refused)"
        return f"the latest {describe_backup(latest)}{empty}"

    async def backup(self) -> str:
        from app.hosting.databases import display_url

        if self.backup_id is not None:
            return f"nothing: backup {self.backup_id} chosen by --backup"
        if self.old_problem is not None:
            latest = await self._latest()
            if self.old_gone:
                return f"none: the old database is gone ({self.old_problem}); use {latest}"
            return (
                f"stop: the old database does not answer ({self.old_problem}); if it is gone "
                f"for good, rerun with --old-gone to restore {latest}"
            )
        where = self.settings.backup.storage or self.settings.storage.default
        return (
            f"take a fresh backup of {display_url(self.settings.effective_database_url)} into "
            f"storage backend {where}"
        )

    async def provision(self) -> str:
        from app.hosting import fleet

        target = self.evacuation.target
        async with opened_compute(self.settings, target) as provider:
            plan = await fleet.plan(self.settings, target, provider)
        self.kept_web = web_addresses(list(plan.keep))
        create = ", ".join(spec.name for spec in plan.create) or "nothing"
        destroy = ", ".join(node.name for node in plan.destroy)
        return f"at {target}: create {create}; keep {len(plan.keep)}" + (
            f"; destroy {destroy}" if destroy else ""
        )

    async def wait_healthy(self) -> str:
        fleet = self.settings.fleet
        return (
            f"wait up to {fleet.health_timeout_seconds:g} s for every node to run and every "
            f"web node to answer {fleet.health_url}"
        )

    async def restore(self) -> str:
        from app.hosting import backup as backups
        from app.hosting.databases import display_url, refuse_nonempty

        url = self.evacuation.target_database_url
        recorded = None
        if self.state is not None:
            recorded = self.state.steps["restore"].data.get("backup_id") or self.state.steps[
                "backup"
            ].data.get("backup_id")
        storage = backups.backup_storage(self.settings)
        try:
            available = await backups.list_backups(self.settings, storage)
        finally:
            await storage.close()
        if recorded is None:
            recorded = self.backup_id
        if recorded is not None:
            which = f"backup {recorded} (chosen for this run)"
        elif self.old_problem is None:
            which = "the backup taken by the first step"
        elif available:
            which = await self._latest()
        else:
            return "nothing: no backup in the backup storage and the old database is gone"
        try:
            await refuse_nonempty(url)
            into = "empty"
        except backups.BackupError as exc:
            into = f"the restore would be refused: {exc}"
        return f"restore {which} into {display_url(url)} ({into}) and verify it"

    async def record(self) -> str:
        return f"record the nodes at {self.evacuation.target} in the target database"

    async def media(self) -> str:
        backend = self.evacuation.target_config.storage
        if backend is None:
            return (
                f"nothing: compute.providers.{self.evacuation.target}.storage is not set "
                f"(media stay at {self.settings.storage.default})"
            )
        if self.old_problem is not None:
            lost = (
                f"; objects that cannot be copied are listed in "
                f"{lost_media_path(self.evacuation.state_path)} and the run goes on"
                if self.old_gone
                else "; an object that cannot be copied stops the run"
            )
            return f"move every stored object to {backend} (how many: known once restored){lost}"
        from tortoise import Tortoise

        from app.db import tortoise_config
        from app.storage import Storage
        from app.storage.move import move

        await Tortoise.init(config=tortoise_config(self.settings))
        storage = Storage(self.settings.storage)
        try:
            report = await move(storage, backend, dry_run=True)
        finally:
            await storage.close()
            await Tortoise.close_connections()
        return (
            f"move {report.remaining:,} stored objects ({report.remaining_bytes:,} bytes) to "
            f"{backend} ({report.skipped:,} are there already; as of the old database now)"
        )

    async def dns(self) -> str:
        from app.hosting.dns import open_dns
        from providers.dns.base import RecordType
        from providers.errors import NotFound

        settings = self.settings.dns
        if settings.active is None:
            return "nothing: no DNS configured (dns.active)"
        assert settings.zone is not None  # checked by the settings
        new = ", ".join(self.kept_web) if self.kept_web else "the new web nodes' addresses"
        provider = open_dns(self.settings, settings.active)
        lines = []
        try:
            for name in settings.records:
                try:
                    current = await provider.get_record(settings.zone, name, RecordType.A)
                    now = ", ".join(current.values)
                except NotFound:
                    now = "no A record"
                host = settings.zone if name == "@" else f"{name}.{settings.zone}"
                lines.append(f"{host} A: {now} -> {new}")
        finally:
            await provider.close()
        return "; ".join(lines)

    async def retire(self) -> str:
        source = self.evacuation.source
        drain = self.settings.fleet.drain_seconds
        dns_skipped = self.settings.dns.active is None or (
            self.state is not None and self.state.steps["dns"].status.value == "skipped"
        )
        if dns_skipped and not self.dns_switched:
            return (
                "stop: no DNS configured; the old fleet is destroyed only once you point the "
                "domain at the new web nodes and rerun with --dns-switched"
            )
        try:
            async with opened_compute(self.settings, source) as provider:
                nodes = await provider.list_nodes(
                    tags={"holdfast-fleet": self.settings.fleet.name, "holdfast-compute": source}
                )
        except UNREACHABLE as exc:
            if self.old_gone:
                return (
                    f"{source} cannot be reached ({reason(exc)}): its recorded nodes would be "
                    "marked unknown (--old-gone)"
                )
            return (
                f"stop: {source} cannot be reached ({reason(exc)}); rerun with --old-gone if "
                "it is gone for good"
            )
        names = ", ".join(sorted(node.name for node in nodes)) or "none"
        return f"{drain:g} s after the DNS switch, destroy the nodes at {source}: {names}"
