"""Leaving a hosting vendor: `holdfast evacuate --to NAME`, one resumable runbook that brings
the whole service up at another compute configuration, with its data, and points the domain
at it.

Steps, each recorded in the run's state file (app/hosting/runbook.py) and idempotent, so a
run stopped anywhere (a failing step, Ctrl-C, SIGKILL) resumes at the first step not done.
Nothing touches the target (its database, its vendor) before the data is restored there:
the new fleet's nodes migrate their database at boot and their scheduler and workers write
to it (leases, jobs), and the restore only fills an empty database.

1. `backup`: a fresh backup of the current database into the backup storage, so that
   nothing written since the last scheduled backup is lost. An old database that does not
   answer stops the run, naming the latest backup and its age: when it is gone for good
   (the vendor took it with it), rerun with `--old-gone` and that backup is used.
2. `restore`: the backup of step 1 (or the one chosen by `--backup ID`) restored into the
   target's database and verified table by table. Without step 1's backup, only a backup
   taken before the run started qualifies, and one holding no account is refused unless
   named by `--backup`; step 1 refuses to take a backup of a database without an account
   (it would restore an empty service, then retire the real one). Which backup is recorded
   before restoring, so a rerun restores the same one. A restore is all or nothing
   (app/hosting/databases.py: one pg_restore transaction, or a verified SQLite file moved
   into place), so an interrupted one left the target empty or restored: a target that
   already verifies as the backup is done, an empty one is filled, and one holding anything
   else is refused (evacuate never overwrites data it did not write).
3. `provision`: `fleet.apply` at the target configuration (converges; creates only what is
   missing). Its nodes migrate the restored database at boot, and start writing to it.
4. `wait_healthy`: every node running and every web node answering the health URL.
5. `record`: the new fleet's nodes recorded in the target database (`fleet.record`).
6. `media`: the storage migration (app/storage/move.py) to the target's storage backend, run
   against the target database (its restored rows say where each object is). An object that
   cannot be copied stops the run, naming how many and why. With `--old-gone`, the keys of
   the objects that cannot be copied are written beside the state file
   (`<state>.lost-media.txt`) and the run goes on with a warning: they are lost unless the
   old storage comes back (then `holdfast storage migrate` copies them).
7. `dns`: the configured records pointed at the new web nodes' public addresses. Without DNS
   configured, `retire` waits for `--dns-switched` (the operator pointed the domain).
8. `retire`: `fleet.drain_seconds` after the DNS switch (counted from the `dns` step's
   recorded end, so a resumed run does not wait again), the old fleet is destroyed and its
   rows marked. A vendor error stops the step (rerun to resume). With `--old-gone`, an old
   vendor that cannot be reached or refuses our credentials ends the step with a warning
   naming the nodes not destroyed, whose rows are marked `unknown`.

The state lives in a file (default `data_dir/evacuation-<to>.json`), not in a database: the
old database may be gone with the old vendor, and the new one is only filled during the run.
It records the flags (`--old-gone`, `--dns-switched`, `--backup`) and the target (its
database URL, password masked; its storage backend; the fleet name): a rerun with other
target settings is refused, naming what changed. A finished run says so and changes
nothing; `--restart` begins a new one. `--dry-run` prints what each step would do and writes
nothing, not even the state file.

Writes the old fleet accepts after step 1 are not in the backup restored at step 2: put the
service in maintenance (or stop its web nodes) before evacuating a vendor that still answers.

Here: the request (`prepare`, typed errors before anything is touched) and the run; the
steps in `steps.py`; the dry run in `plan.py`.

Each database is opened only for the steps that use it, and never both at once (Tortoise
holds one set of connections per process): the old one only by the backup (its own
connection), the target through Tortoise for `record`, `media` and `retire`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.hosting import runbook
from app.hosting.evacuate.plan import PlannedStep, dry_run
from app.hosting.evacuate.steps import STEPS, Steps, database_problem
from app.hosting.runbook import Journal, RunState, StepRecord
from app.settings import ComputeProviderSettings, Settings

__all__ = [
    "STEPS",
    "Evacuation",
    "EvacuationError",
    "PlannedStep",
    "Result",
    "database_problem",
    "dry_run",
    "next_steps",
    "prepare",
    "run",
]


class EvacuationError(Exception):
    """The evacuation cannot start: a configuration missing or wrong (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class Evacuation:
    """A checked request: move the service from `source` to `target`."""

    settings: Settings
    source: str
    target: str
    state_path: Path
    old_gone: bool = False
    """The old vendor (database, media, compute) is gone for good: go on without it."""
    dns_switched: bool = False
    """The operator pointed the domain at the new web nodes (no DNS configured)."""
    backup_id: str | None = None
    """The backup to restore, chosen by the operator (`--backup ID`)."""
    move_retry_delays: Sequence[float] | None = None
    """The media move's retry delays (app/storage/move.py's default when None)."""

    @property
    def target_config(self) -> ComputeProviderSettings:
        return self.settings.compute.providers[self.target]

    @property
    def target_database_url(self) -> str:
        url = self.target_config.database_url
        assert url is not None  # checked by prepare()
        return url.get_secret_value()


def prepare(
    settings: Settings,
    *,
    to: str,
    source: str | None = None,
    state_path: Path | None = None,
    old_gone: bool = False,
    dns_switched: bool = False,
    backup_id: str | None = None,
    move_retry_delays: Sequence[float] | None = None,
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
    return Evacuation(
        settings=settings,
        source=source,
        target=to,
        state_path=path,
        old_gone=old_gone,
        dns_switched=dns_switched,
        backup_id=backup_id,
        move_retry_delays=move_retry_delays,
    )


TARGET_KEYS = {
    "target_database": "the target's database URL",
    "target_storage": "the target's storage backend",
    "fleet": "fleet.name",
}


def target_options(evacuation: Evacuation) -> dict[str, Any]:
    """What a run is bound to: a rerun with other values would mix two evacuations."""
    from app.hosting.databases import display_url

    return {
        "target_database": display_url(evacuation.target_database_url),
        "target_storage": evacuation.target_config.storage,
        "fleet": evacuation.settings.fleet.name,
    }


def merge_options(evacuation: Evacuation, state: RunState) -> None:
    """Check the recorded target against this request's (RunbookError naming what changed)
    and record the flags (once given, a flag stays: a resumed run goes on as it began)."""
    current = target_options(evacuation)
    changed = [
        f"{TARGET_KEYS[key]} was {state.options[key]!r}, now {value!r}"
        for key, value in current.items()
        if key in state.options and state.options[key] != value
    ]
    if changed:
        raise runbook.RunbookError(
            f"{evacuation.state_path} records a run with other settings: {'; '.join(changed)}. "
            "Restore those settings to resume it, or pass --restart to begin a new run"
        )
    recorded_backup = state.options.get("backup_id")
    if evacuation.backup_id and recorded_backup and evacuation.backup_id != recorded_backup:
        raise runbook.RunbookError(
            f"{evacuation.state_path} records a run restoring backup {recorded_backup}, not "
            f"{evacuation.backup_id}: pass --restart to begin a new run"
        )
    state.options.update(current)
    state.options["old_gone"] = bool(state.options.get("old_gone")) or evacuation.old_gone
    state.options["dns_switched"] = (
        bool(state.options.get("dns_switched")) or evacuation.dns_switched
    )
    state.options["backup_id"] = recorded_backup or evacuation.backup_id


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
        merge_options(evacuation, state)
        journal = Journal(evacuation.state_path, state)
        journal.save()
        steps = Steps(evacuation, state.options)
        await runbook.run(journal, steps.all(), on_step=on_step, describe_error=describe_error)
        return Result(state, already_finished=False)


def describe_error(exc: BaseException) -> str:
    """An unexpected error for the operator and the state file, URL passwords masked."""
    return runbook.mask_secrets(f"{type(exc).__name__}: {exc}")


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
