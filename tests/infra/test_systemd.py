"""The systemd units pass `systemd-analyze verify`, and each runs its role's command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.hosting.userdata import UNITS, VENV
from tests.infra.tools import INFRA, need_tool, run

COMMANDS = {
    "holdfast.service": "serve --workers 2 --no-migrate",
    "holdfast-worker.service": "worker",
    "holdfast-scheduler.service": "scheduler",
}


def verify(unit_text: str, name: str, tmp_path: Path) -> str:
    """systemd-analyze's findings on a unit (empty when clean), with the binary the unit runs
    placed under tmp_path: verify refuses a unit whose command does not exist."""
    analyze = need_tool("systemd-analyze")
    binary = tmp_path / "venv" / "bin" / "holdfast"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    path = tmp_path / name
    path.write_text(unit_text.replace(f"{VENV}/bin/holdfast", str(binary)))

    result = run(analyze, "verify", "--man=no", path)

    findings = (result.stdout + result.stderr).strip()
    if result.returncode != 0 and not findings:
        findings = f"exit {result.returncode}"
    return findings


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_unit_verifies_clean(name: str, tmp_path: Path) -> None:
    assert verify((INFRA / name).read_text(), name, tmp_path) == ""


@pytest.mark.parametrize(
    ("change", "finding"),
    [
        (("TimeoutStopSec=", "TimeoutStopSek="), "Unknown key"),
        (("Restart=on-failure", "Restart=sometimes"), "restart specifier"),
        ((f"{VENV}/bin/holdfast worker", "/nonexistent/holdfast worker"), "/nonexistent"),
    ],
)
def test_verify_reports_a_broken_unit(
    change: tuple[str, str], finding: str, tmp_path: Path
) -> None:
    text = (INFRA / "holdfast-worker.service").read_text()
    assert change[0] in text

    assert finding in verify(text.replace(*change), "holdfast-worker.service", tmp_path)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_unit_runs_its_role(name: str) -> None:
    text = (INFRA / name).read_text()

    assert re.search(rf"^ExecStart={VENV}/bin/holdfast {COMMANDS[name]}$", text, re.MULTILINE)
    assert "EnvironmentFile=/etc/holdfast/holdfast.env" in text
    assert "User=holdfast" in text


def test_web_unit_migrates_before_serving_and_the_others_do_not() -> None:
    pre = f"ExecStartPre={VENV}/bin/holdfast migrate"

    assert pre in (INFRA / "holdfast.service").read_text()
    assert pre not in (INFRA / "holdfast-worker.service").read_text()
    assert pre not in (INFRA / "holdfast-scheduler.service").read_text()


def test_infra_units_are_the_ones_nodes_install() -> None:
    """infra/ links to the packaged units that cloud-init writes: one file, no drift."""
    for name in UNITS.values():
        assert (INFRA / name).resolve() == (INFRA.parent / "app/hosting/files" / name).resolve()
