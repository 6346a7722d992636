"""A resumable runbook: named steps run in order, each step's progress recorded in a JSON
state file after every transition, so a run interrupted at any instant (an error, Ctrl-C,
SIGKILL, a lost machine) resumes at the first step not done.

The record is a file, not a database table, on purpose: the evacuation it was written for
(app/hosting/evacuate.py) leaves one database that may be gone and fills another during the
run, so neither can hold the record of the run itself.

Writes are atomic (a temporary file in the same directory, fsync, `os.replace`, then fsync of
the directory): a reader sees the state before or after a transition, never half of one. A
step is `running` in the file while it runs; a run killed then leaves it `running`, and the
next run starts it again, so every step must be idempotent. A step keeps what a later step
or its own rerun needs in its `data` (ids, addresses), saved with `Journal.save`.

One run at a time: a run holds an exclusive `flock` on `<state>.lock` while it runs (the
kernel releases it when the process dies, so a killed run never blocks the next one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

STATE_VERSION = 1


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # finished with nothing to do (the note says why)


FINISHED = (StepStatus.DONE, StepStatus.SKIPPED)


class RunbookError(Exception):
    """The state file cannot be used: unreadable, not a state of this runbook, or another run
    holds it."""


class StepFailed(Exception):
    """A step cannot finish: the message says why and what to fix (it is shown as is)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a step finished: `detail` is a one-line note for the operator; `skipped` when it
    had nothing to do; `warnings` are shown, and the run goes on."""

    detail: str
    skipped: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(slots=True)
class StepRecord:
    """One step as recorded in the state file."""

    status: StepStatus = StepStatus.PENDING
    started_at: str | None = None
    finished_at: str | None = None
    detail: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def finished_time(self) -> datetime | None:
        return datetime.fromisoformat(self.finished_at) if self.finished_at else None


@dataclass(slots=True)
class RunState:
    """A run's record: which run, from where to where, and each step."""

    run_id: str
    source: str
    target: str
    started_at: str
    steps: dict[str, StepRecord]
    finished_at: str | None = None
    version: int = STATE_VERSION
    options: dict[str, Any] = field(default_factory=dict)
    """What the run was started with and a rerun must agree with (the caller's to define)."""

    @classmethod
    def new(cls, source: str, target: str, steps: Sequence[str]) -> RunState:
        return cls(
            run_id=secrets.token_hex(8),
            source=source,
            target=target,
            started_at=_now(),
            steps={name: StepRecord() for name in steps},
        )

    @property
    def finished(self) -> bool:
        return all(step.finished for step in self.steps.values())

    def next_step(self) -> str | None:
        """The first step not done (where a run resumes)."""
        return next((name for name, step in self.steps.items() if not step.finished), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("source")
        data["to"] = data.pop("target")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], steps: Sequence[str]) -> RunState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        recorded = data["steps"]
        if list(recorded) != list(steps):
            raise ValueError(f"steps {list(recorded)} are not this runbook's {list(steps)}")
        return cls(
            run_id=str(data["run_id"]),
            source=str(data["from"]),
            target=str(data["to"]),
            started_at=str(data["started_at"]),
            finished_at=data.get("finished_at"),
            options=dict(data.get("options", {})),
            steps={
                name: StepRecord(
                    status=StepStatus(step["status"]),
                    started_at=step.get("started_at"),
                    finished_at=step.get("finished_at"),
                    detail=step.get("detail"),
                    error=step.get("error"),
                    warnings=list(step.get("warnings", [])),
                    data=dict(step.get("data", {})),
                )
                for name, step in recorded.items()
            },
        )


def load(path: Path, steps: Sequence[str]) -> RunState | None:
    """The state recorded at `path`, None when there is none. RunbookError for a file that
    is not one (it is never overwritten: the operator decides, with --restart or by hand)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunbookError(f"cannot read the state file {path}: {exc.strerror}") from None
    try:
        return RunState.from_json(json.loads(text), steps)
    except (ValueError, KeyError, TypeError) as exc:
        raise RunbookError(
            f"{path} is not a state file of this runbook ({exc}); move it away or pass "
            "--restart to start a new run over it"
        ) from None


def save(path: Path, state: RunState) -> None:
    """Write the state atomically: the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(state.to_json(), indent=2, sort_keys=False) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` exclusively; RunbookError when another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunbookError(
                f"another run holds {lock_path}: wait for it to end (a killed run's lock is "
                "released with its process)"
            ) from None
        clean_temporaries(path)
        yield
    finally:
        os.close(fd)


def clean_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files of writes killed before their `os.replace` (`.<name>.*`
    beside the state file). Only under the lock: another run's write could be in flight."""
    removed = []
    for stale in path.parent.glob(f".{path.name}.*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


class Journal:
    """The state of one run and where it is written; steps save their `data` through it."""

    def __init__(self, path: Path, state: RunState) -> None:
        self.path = path
        self.state = state

    def step(self, name: str) -> StepRecord:
        return self.state.steps[name]

    def save(self) -> None:
        save(self.path, self.state)


StepRun = Callable[[Journal, StepRecord], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    run: StepRun


class Stopped(Exception):
    """The run stopped at `step`: its message is the step's error."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


async def run(
    journal: Journal,
    steps: Sequence[Step],
    *,
    on_step: Callable[[str, StepRecord], None] | None = None,
    describe_error: Callable[[BaseException], str] | None = None,
) -> RunState:
    """Run every step not finished yet, in order, recording each transition. A step raising
    StepFailed (or any Exception) is recorded `failed` with the message and the run stops
    (`Stopped`); the next run starts it again. BaseExceptions (Ctrl-C, cancellation) leave
    the step `running` and propagate. `on_step` sees each step when it starts and ends."""
    state = journal.state
    for step in steps:
        record = state.steps[step.name]
        if record.finished:
            continue
        record.status = StepStatus.RUNNING
        record.started_at = _now()
        record.finished_at = None
        record.error = None
        journal.save()
        if on_step is not None:
            on_step(step.name, record)
        try:
            outcome = await step.run(journal, record)
        except Exception as exc:
            message = mask_secrets(
                str(exc) if isinstance(exc, StepFailed) else _unexpected(exc, describe_error)
            )
            record.status = StepStatus.FAILED
            record.error = message
            record.finished_at = _now()
            journal.save()
            if on_step is not None:
                on_step(step.name, record)
            raise Stopped(step.name, message) from exc
        record.status = StepStatus.SKIPPED if outcome.skipped else StepStatus.DONE
        record.detail = outcome.detail
        record.warnings = list(outcome.warnings)
        record.finished_at = _now()
        if state.finished:
            state.finished_at = record.finished_at
        journal.save()
        if on_step is not None:
            on_step(step.name, record)
    return state


_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")


def mask_secrets(text: str) -> str:
    """`text` with the password of every URL in it masked (`scheme://user:***@host`): an
    error from a database driver may quote the URL it was given, and messages are printed
    and saved in the state file."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _unexpected(exc: BaseException, describe: Callable[[BaseException], str] | None) -> str:
    if describe is not None:
        return describe(exc)
    return f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
