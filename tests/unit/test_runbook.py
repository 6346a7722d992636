"""The resumable runbook (app/hosting/runbook.py): steps run in order and recorded after every
transition; a failing or interrupted step is where the next run resumes; the state file is
never seen half-written, even by a process killed while writing it; one run at a time."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.hosting import runbook
from app.hosting.runbook import (
    Journal,
    Outcome,
    RunbookError,
    RunState,
    Step,
    StepFailed,
    StepRecord,
    StepStatus,
    Stopped,
)

NAMES = ("one", "two", "three")


class Recorder:
    """Steps that note each call; `two` fails while `fail` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: BaseException | None = None

    def steps(self) -> list[Step]:
        return [Step(name, self._step(name)) for name in NAMES]

    def _step(self, name: str) -> runbook.StepRun:
        async def run(journal: Journal, record: StepRecord) -> Outcome:
            self.calls.append(name)
            if name == "two" and self.fail is not None:
                raise self.fail
            if name == "two":
                record.data["seen_one"] = journal.step("one").data["value"]
                return Outcome("nothing to do", skipped=True)
            record.data["value"] = f"{name}-value"
            return Outcome(f"{name} done", warnings=("careful",) if name == "three" else ())

        return run


def journal_at(path: Path) -> Journal:
    state = runbook.load(path, NAMES) or RunState.new("old", "new", NAMES)
    return Journal(path, state)


async def test_a_run_records_each_step_in_order(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    steps = Recorder()
    seen: list[tuple[str, str]] = []
    state = await runbook.run(
        journal_at(path), steps.steps(), on_step=lambda n, r: seen.append((n, r.status.value))
    )
    assert steps.calls == ["one", "two", "three"]
    assert state.finished
    assert state.finished_at is not None
    assert seen == [
        ("one", "running"),
        ("one", "done"),
        ("two", "running"),
        ("two", "skipped"),
        ("three", "running"),
        ("three", "done"),
    ]
    recorded = json.loads(path.read_text())
    assert recorded["from"] == "old"
    assert recorded["to"] == "new"
    assert recorded["run_id"]
    assert [step["status"] for step in recorded["steps"].values()] == ["done", "skipped", "done"]
    assert recorded["steps"]["two"]["data"] == {"seen_one": "one-value"}
    assert recorded["steps"]["three"]["warnings"] == ["careful"]
    for step in recorded["steps"].values():
        assert step["started_at"] <= step["finished_at"]


async def test_a_failed_step_stops_the_run_and_the_next_resumes_there(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    steps = Recorder()
    steps.fail = StepFailed("the vendor is down: fix it")
    with pytest.raises(Stopped) as stopped:
        await runbook.run(journal_at(path), steps.steps())
    assert stopped.value.step == "two"
    assert stopped.value.message == "the vendor is down: fix it"
    state = runbook.load(path, NAMES)
    assert state is not None
    assert state.next_step() == "two"
    assert state.steps["two"].status is StepStatus.FAILED
    assert state.steps["two"].error == "the vendor is down: fix it"
    assert state.steps["three"].status is StepStatus.PENDING

    steps.calls.clear()
    steps.fail = None
    resumed = await runbook.run(journal_at(path), steps.steps())
    assert steps.calls == ["two", "three"]  # `one` is not run again
    assert resumed.finished
    assert resumed.run_id == state.run_id
    assert resumed.steps["two"].error is None


async def test_an_unexpected_error_is_recorded_with_its_type(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    steps = Recorder()
    steps.fail = RuntimeError("boom")
    with pytest.raises(Stopped, match="two: RuntimeError: boom"):
        await runbook.run(journal_at(path), steps.steps())
    state = runbook.load(path, NAMES)
    assert state is not None
    assert state.steps["two"].error == "RuntimeError: boom"


async def test_an_interrupted_step_stays_running_and_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    steps = Recorder()
    steps.fail = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await runbook.run(journal_at(path), steps.steps())
    state = runbook.load(path, NAMES)
    assert state is not None
    assert state.steps["two"].status is StepStatus.RUNNING
    steps.fail = None
    steps.calls.clear()
    await runbook.run(journal_at(path), steps.steps())
    assert steps.calls == ["two", "three"]


_KILLED_RUN = """
import asyncio, sys, time
from pathlib import Path
from app.hosting import runbook
from app.hosting.runbook import Journal, Outcome, RunState, Step

path = Path(sys.argv[1])
names = ("one", "two", "three")

async def quick(journal, record):
    record.data["pid"] = __import__("os").getpid()
    return Outcome("quick")

async def slow(journal, record):
    print("in two", flush=True)
    await asyncio.sleep(60)
    return Outcome("slow")

async def main():
    with runbook.locked(path):
        state = runbook.load(path, names) or RunState.new("a", "b", names)
        await runbook.run(Journal(path, state), [Step("one", quick), Step("two", slow),
                                                 Step("three", quick)])

asyncio.run(main())
"""


def test_a_killed_run_leaves_a_readable_state_and_releases_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "in two"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    state = runbook.load(path, NAMES)
    assert state is not None
    assert [step.status for step in state.steps.values()] == [
        StepStatus.DONE,
        StepStatus.RUNNING,
        StepStatus.PENDING,
    ]
    assert state.next_step() == "two"
    with runbook.locked(path):  # the kernel released the dead run's lock
        pass


_WRITER = """
import sys
from pathlib import Path
from app.hosting import runbook
from app.hosting.runbook import RunState

path = Path(sys.argv[1])
names = tuple(f"step{i}" for i in range(200))
state = RunState.new("a", "b", names)
print("ready", flush=True)
n = 0
while True:
    n += 1
    for step in state.steps.values():
        step.detail = "x" * (n % 500)
    runbook.save(path, state)
"""


def test_a_process_killed_while_saving_never_leaves_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    names = tuple(f"step{i}" for i in range(200))
    for attempt in range(8):
        process = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.03 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        state = runbook.load(path, names)  # parses: the old file or the new one
        assert state is not None
        assert len(state.steps) == 200
        details = {step.detail for step in state.steps.values()}
        assert len(details) == 1  # one save's content, not a mix of two


def test_one_run_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with (
        runbook.locked(path),
        pytest.raises(RunbookError, match="another run holds"),
        runbook.locked(path),
    ):
        pass
    with runbook.locked(path):
        pass


def test_a_file_that_is_not_a_state_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(RunbookError, match="not a state file"):
        runbook.load(path, NAMES)
    other = RunState.new("a", "b", ("x", "y"))
    runbook.save(path, other)
    with pytest.raises(RunbookError, match="not this runbook"):
        runbook.load(path, NAMES)
    assert json.loads(path.read_text())["run_id"] == other.run_id
    assert runbook.load(tmp_path / "missing.json", NAMES) is None


def test_stale_temporaries_are_removed_under_the_lock(tmp_path: Path) -> None:
    """A write killed before its `os.replace` leaves `.state.json.XXXX`; the next run, once
    it holds the lock, removes those and nothing else."""
    path = tmp_path / "state.json"
    runbook.save(path, RunState.new("old", "new", NAMES))
    stale = [tmp_path / ".state.json.k2j4x", tmp_path / ".state.json.abc"]
    for each in stale:
        each.write_text("{half")
    other = tmp_path / ".other.json.abc"
    other.write_text("kept")
    with runbook.locked(path):
        assert not any(each.exists() for each in stale)
    assert other.exists()
    assert runbook.load(path, NAMES) is not None


async def test_error_messages_have_url_passwords_masked(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    steps = Recorder()
    steps.fail = RuntimeError("cannot connect to postgres://holdfast:s3cret@db:5432/app")
    with pytest.raises(Stopped) as stopped:
        await runbook.run(journal_at(path), steps.steps())
    assert "postgres://holdfast:***@db:5432/app" in stopped.value.message
    steps.fail = StepFailed("restore into postgresql://u:p%40ss@h/x failed")
    with pytest.raises(Stopped) as failed:
        await runbook.run(journal_at(path), steps.steps())
    assert "postgresql://u:***@h/x" in failed.value.message
    assert "s3cret" not in path.read_text()
    assert "p%40ss" not in path.read_text()


def test_options_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = RunState.new("old", "new", NAMES)
    state.options.update({"old_gone": True, "fleet": "hf"})
    runbook.save(path, state)
    loaded = runbook.load(path, NAMES)
    assert loaded is not None
    assert loaded.options == {"old_gone": True, "fleet": "hf"}
