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

Here: the request (`prepare`, typed errors before anything is touched) and the run; the
steps in `steps.py`; the dry run in `plan.py`.

Each database is opened only for the steps that use it, and never both at once (Tortoise
holds one set of connections per process): the old one only by the backup (its own
connection), the target through Tortoise for `record`, `media` and `retire`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
        steps = Steps(evacuation)
        await runbook.run(journal, steps.all(), on_step=on_step)
        return Result(state, already_finished=False)


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
