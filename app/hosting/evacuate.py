"""Leaving a hosting vendor: `holdfast evacuate --to NAME`, one resumable runbook that brings
the whole service up at another compute configuration, with its data, and points the domain
at it.

Steps, each recorded in the run's state file (app/hosting/runbook.py) and idempotent, so a
run stopped anywhere (a failing step, Ctrl-C, SIGKILL) resumes at the first step not done:

1. `backup`: when the current database answers, a fresh backup into the backup storage, so
   that nothing written since the last scheduled backup is lost; when it does not (the
   vendor took it with it), the step notes it and the run goes on from the latest backup.
2. `provision`: `fleet.apply` at the target configuration (converges; creates only what is
   missing).
3. `wait_healthy`: every node running and every web node answering the health URL.
4. `restore`: the backup of step 1, else the newest one, restored into the target's
   database and verified table by table. Which backup is recorded before restoring, so a
   rerun restores the same one. A restore is all or nothing (app/hosting/databases.py: one
   pg_restore transaction, or a verified SQLite file moved into place), so an interrupted
   one left the target empty or restored: a target that already verifies as the backup is
   done, an empty one is filled, and one holding anything else is refused (evacuate never
   overwrites data it did not write).
5. `record`: the new fleet's nodes recorded in the target database (`fleet.record`).
6. `media`: the storage migration (app/storage/move.py) to the target's storage backend, run
   against the target database (its restored rows say where each object is). An object that
   cannot be copied stops the run, naming how many and why: no file is left behind silently.
7. `dns`: the configured records pointed at the new web nodes' public addresses.
8. `retire`: `fleet.drain_seconds` after the DNS switch (counted from the `dns` step's
   recorded end, so a resumed run does not wait again), the old fleet is destroyed. An old
   vendor that cannot be reached, or refuses our credentials, is the case evacuation exists
   for: the step ends with a warning naming the nodes it could not destroy (from the target
   database's records), marks their rows `unknown`, and the run completes.

The state lives in a file (default `data_dir/evacuation-<to>.json`), not in a database: the
old database may be gone with the old vendor, and the new one is only filled during the run.
A finished run says so and changes nothing; `--restart` begins a new one. `--dry-run` prints
what each step would do and writes nothing, not even the state file.

Writes the old fleet accepts after step 1 are not in the backup restored at step 4: put the
service in maintenance (or stop its web nodes) before evacuating a vendor that still answers.

The new fleet is provisioned and healthy before the data arrives (a vendor that cannot run
the fleet is found out before anything is moved). Its processes must not write to the target
database before the restore, which refuses a database holding rows: give the target
configuration a `redis_url` (node ids are otherwise leased in the database) and let its nodes
migrate nothing (PostgreSQL nodes do not migrate unless told to).

Each database is opened only for the steps that use it, and never both at once (Tortoise
holds one set of connections per process): the old one only by the backup (its own
connection), the target through Tortoise for `record`, `media` and `retire`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.hosting import runbook
from app.hosting.runbook import Journal, Outcome, RunState, Step, StepFailed, StepRecord
from app.settings import ComputeProviderSettings, Settings
from providers.compute.base import ComputeProvider, Node, NodeState
from providers.errors import ConfigurationError, ProviderError, Unavailable

if TYPE_CHECKING:
    from app.hosting.backup import BackupInfo
    from providers.storage.base import StorageProvider

STEPS = ("backup", "provision", "wait_healthy", "restore", "record", "media", "dns", "retire")
PROBE_TIMEOUT = 10.0
"""Seconds the old database gets to answer before it counts as gone."""

_UNREACHABLE = (Unavailable, ProviderError, ConfigurationError)


class EvacuationError(Exception):
    """The evacuation cannot start: a configuration missing or wrong (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class Evacuation:
    """A checked request: move the service from `source` to `target`."""

    settings: Settings
    source: str
    target: str
    state_path: Path

    @property
    def target_config(self) -> ComputeProviderSettings:
        return self.settings.compute.providers[self.target]

    @property
    def target_database_url(self) -> str:
        url = self.target_config.database_url
        assert url is not None  # checked by prepare()
        return url.get_secret_value()


def prepare(
    settings: Settings, *, to: str, source: str | None = None, state_path: Path | None = None
) -> Evacuation:
    """Check the request against the settings before anything is touched."""
    configured = settings.compute.providers
    known = ", ".join(sorted(configured)) or "none"
    if to not in configured:
        raise EvacuationError(f"no compute configuration {to!r} (configured: {known})")
    source = source or settings.compute.active
    if source is None:
        raise EvacuationError(
            "which configuration is being left? pass --from NAME or set HOLDFAST_COMPUTE__ACTIVE"
        )
    if source not in configured:
        raise EvacuationError(
            f"no compute configuration {source!r} to leave (configured: {known}); keep the old "
            "configuration in the settings until the evacuation is done: its nodes are "
            "destroyed through it"
        )
    if source == to:
        raise EvacuationError(f"--to {to} is the configuration being left")
    target = configured[to]
    if not target.roles:
        raise EvacuationError(
            f"compute.providers.{to}.roles is empty: configure the fleet to run there "
            "(web, worker, one scheduler)"
        )
    if target.database_url is None:
        raise EvacuationError(
            f"compute.providers.{to}.database_url is not set: the database the backup is "
            "restored into"
        )
    if target.database_url.get_secret_value() == settings.effective_database_url:
        raise EvacuationError(
            f"compute.providers.{to}.database_url is the current database: evacuate restores "
            "into another, empty one"
        )
    web = target.roles.get("web")
    if settings.dns.active is not None and (web is None or web.count < 1):
        raise EvacuationError(
            f"compute.providers.{to}.roles has no web node for the DNS records to point at"
        )
    path = state_path or settings.data_dir / f"evacuation-{to}.json"
    return Evacuation(settings=settings, source=source, target=to, state_path=path)


@dataclass(frozen=True, slots=True)
class Result:
    state: RunState
    already_finished: bool


async def run(
    evacuation: Evacuation,
    *,
    restart: bool = False,
    on_step: Callable[[str, StepRecord], None] | None = None,
) -> Result:
    """Run (or resume) the evacuation. runbook.Stopped when a step fails (recorded; the next
    run resumes there), runbook.RunbookError when the state file cannot be used."""
    with runbook.locked(evacuation.state_path):
        state = None if restart else runbook.load(evacuation.state_path, STEPS)
        if state is not None and (
            state.source != evacuation.source or state.target != evacuation.target
        ):
            raise runbook.RunbookError(
                f"{evacuation.state_path} records an evacuation from {state.source} to "
                f"{state.target}, not from {evacuation.source}: finish that one, or pass "
                "--restart to begin a new run"
            )
        if state is not None and state.finished:
            return Result(state, already_finished=True)
        if state is None:
            state = RunState.new(evacuation.source, evacuation.target, STEPS)
        journal = Journal(evacuation.state_path, state)
        steps = _Steps(evacuation)
        await runbook.run(journal, steps.all(), on_step=on_step)
        return Result(state, already_finished=False)


class _Steps:
    def __init__(self, evacuation: Evacuation) -> None:
        self.evacuation = evacuation
        self.settings = evacuation.settings

    def all(self) -> list[Step]:
        return [Step(name, getattr(self, name)) for name in STEPS]

    async def backup(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting.backup import BackupError, backup_storage, create_backup

        settings = self.settings
        problem = await database_problem(settings.effective_database_url)
        if problem is not None:
            record.data["backup_id"] = None
            return Outcome(
                f"old database unreachable ({problem}), using the latest backup", skipped=True
            )
        storage = backup_storage(settings)
        try:
            info = await create_backup(settings, storage)
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
        async with _compute(self.settings, target) as provider:
            try:
                plan = await fleet.apply(self.settings, target, provider)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the fleet at {target} could not be created: {_reason(exc)}. Check "
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
        async with _compute(self.settings, target) as provider:
            try:
                nodes = await fleet.wait_healthy(self.settings, target, provider, timeout=timeout)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the fleet at {target} is not healthy after {timeout:g} s: "
                    f"{_reason(exc)}. Look at the nodes (cloud-init output, "
                    f"`journalctl -u holdfast`) and at fleet.health_url, then run again"
                ) from exc
        web = _web_addresses(nodes)
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
        from app.hosting import backup as backups

        wanted = record.data.get("backup_id") or journal.step("backup").data.get("backup_id")
        try:
            available = await backups.list_backups(self.settings, storage)
        except (backups.BackupError, ProviderError) as exc:
            where = self.settings.backup.storage or self.settings.storage.default
            raise StepFailed(
                f"the backups cannot be listed: {exc}. Make the backup storage ({where}) "
                "reachable and run again"
            ) from exc
        if wanted is not None:
            for info in available:
                if info.id == wanted:
                    return info
            raise StepFailed(
                f"backup {wanted}, chosen for this evacuation, is no longer in the backup "
                "storage (pruned or deleted?); pass --restart to start from the newest one"
            )
        if not available:
            raise StepFailed(
                "the old database is gone and the backup storage holds no backup: nothing to "
                "restore. Configure backup.storage where backups were kept and run again"
            )
        record.data["backup_id"] = available[0].id
        journal.save()
        return available[0]

    async def record(self, journal: Journal, record: StepRecord) -> Outcome:
        from app.hosting import fleet

        target = self.evacuation.target
        async with self._target_database(), _compute(self.settings, target) as provider:
            try:
                rows = await fleet.record(target, provider, self.settings.fleet.name)
            except (fleet.FleetError, ProviderError) as exc:
                raise StepFailed(
                    f"the nodes at {target} could not be listed to record them: "
                    f"{_reason(exc)}. Run again once the vendor answers"
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
                report = await move(storage, backend)
            except (MoveError, MoveAborted) as exc:
                raise StepFailed(
                    f"the media move to {backend} stopped: {exc}. Run again to resume it"
                ) from exc
            finally:
                await storage.close()
        if report.failed:
            first = report.failed[0]
            raise StepFailed(
                f"{len(report.failed)} stored objects could not be copied to {backend} (first: "
                f"{first.key} at {first.backend}: {first.reason}). They are still recorded "
                f"where they were and nothing was lost: once the cause is fixed ({backend} "
                "unreachable, or the objects unreadable where they are), run again to copy "
                "the rest"
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
        async with _compute(settings, target) as provider:
            try:
                nodes = await provider.list_nodes(tags=_tags(settings, target, role="web"))
            except ProviderError as exc:
                raise StepFailed(
                    f"the web nodes at {target} could not be listed: {_reason(exc)}. Run again"
                ) from exc
        addresses = _web_addresses([node for node in nodes if node.state is NodeState.RUNNING])
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
                f"the DNS records could not be switched: {_reason(exc)}. Check "
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
        switched = journal.step("dns").finished_time() or datetime.now(UTC)
        drained = switched + timedelta(seconds=settings.fleet.drain_seconds)
        wait = (drained - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            async with _compute(settings, source) as provider:
                destroyed = await fleet.destroy_all(settings, source, provider)
        except _UNREACHABLE as exc:
            async with self._target_database():
                left = await _mark_unknown(source)
            names = ", ".join(f"{name} ({external_id})" for name, external_id in left)
            warning = (
                f"the old configuration {source} cannot be reached ({_reason(exc)}): "
                f"{len(left)} recorded nodes were not destroyed"
                + (f": {names}" if names else "")
                + ". If the account still exists, destroy them at the vendor (they are marked "
                "`unknown` in fleet_nodes)"
            )
            return Outcome(f"old fleet at {source} not reachable", warnings=(warning,))
        async with self._target_database():
            await _mark_destroyed(source)
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
async def _compute(settings: Settings, name: str) -> AsyncIterator[ComputeProvider]:
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


def _web_addresses(nodes: list[Node]) -> list[str]:
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


async def _mark_destroyed(compute: str) -> None:
    from app.models import FleetNode

    await FleetNode.filter(compute=compute, destroyed_at=None).update(
        state=NodeState.TERMINATED.value, destroyed_at=datetime.now(UTC)
    )


async def database_problem(url: str) -> str | None:
    """Why the database at `url` does not answer, None when it does. Never creates anything
    (a SQLite file that does not exist is gone, not new)."""
    from app.hosting.databases import BackupError, PostgresTarget, engine_of, sqlite_path

    try:
        if engine_of(url) == "sqlite":
            return await asyncio.to_thread(_sqlite_problem, str(sqlite_path(url)))
        async with asyncio.timeout(PROBE_TIMEOUT):
            connection = await PostgresTarget.parse(url).connect()
            try:
                await connection.fetchval("SELECT 1")
            finally:
                await connection.close()
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
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
                would = f"cannot tell now: {_reason(exc)}"
        planned.append(PlannedStep(name, status, would))
    return state, planned


class _Planner:
    def __init__(self, evacuation: Evacuation, state: RunState | None) -> None:
        self.evacuation = evacuation
        self.settings = evacuation.settings
        self.state = state
        self.old_problem: str | None = None
        self.kept_web: list[str] = []

    async def backup(self) -> str:
        from app.hosting.databases import display_url

        self.old_problem = await database_problem(self.settings.effective_database_url)
        if self.old_problem is not None:
            return f"none: the old database is unreachable ({self.old_problem})"
        where = self.settings.backup.storage or self.settings.storage.default
        return (
            f"take a fresh backup of {display_url(self.settings.effective_database_url)} into "
            f"storage backend {where}"
        )

    async def provision(self) -> str:
        from app.hosting import fleet

        target = self.evacuation.target
        async with _compute(self.settings, target) as provider:
            plan = await fleet.plan(self.settings, target, provider)
        self.kept_web = _web_addresses(list(plan.keep))
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
        if recorded is not None:
            which = f"backup {recorded} (chosen by this run)"
        elif self.old_problem is None:
            which = "the backup taken by the first step"
        elif available:
            newest = available[0]
            which = (
                f"the newest backup, {newest.id} of {newest.created_at:%Y-%m-%d %H:%M} UTC "
                f"({newest.size:,} bytes)"
            )
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
            return f"move every stored object to {backend} (how many: known once restored)"
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
        try:
            async with _compute(self.settings, source) as provider:
                nodes = await provider.list_nodes(
                    tags={"holdfast-fleet": self.settings.fleet.name, "holdfast-compute": source}
                )
        except _UNREACHABLE as exc:
            return (
                f"{source} cannot be reached ({_reason(exc)}): its recorded nodes would be "
                "marked unknown"
            )
        names = ", ".join(sorted(node.name for node in nodes)) or "none"
        return f"{drain:g} s after the DNS switch, destroy the nodes at {source}: {names}"


def next_steps(evacuation: Evacuation) -> list[str]:
    """What the operator changes once the run is done, so the service runs from the target
    configuration (the settings are theirs: evacuate never edits them)."""
    target = evacuation.target
    config = evacuation.target_config
    lines = [
        f"HOLDFAST_COMPUTE__ACTIVE={target}",
        f"HOLDFAST_DATABASE_URL=<compute.providers.{target}.database_url>",
    ]
    if config.redis_url is not None:
        lines.append(f"HOLDFAST_REDIS_URL=<compute.providers.{target}.redis_url>")
    if config.storage is not None and config.storage != evacuation.settings.storage.default:
        lines.append(
            f"HOLDFAST_STORAGE__DEFAULT={config.storage} (then `holdfast storage migrate --to "
            f"{config.storage}` once more, after storage.move_settle_seconds, finishes the move)"
        )
    return lines
