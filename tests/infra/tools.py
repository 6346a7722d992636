"""The deployment files' own checkers (cloud-init, systemd-analyze, nginx), found on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
INFRA = REPO / "infra"
REQUIRE_SERVICES = os.environ.get("TEST_REQUIRE_SERVICES") == "1"


def need_tool(name: str) -> str:
    """The path of a checking tool, or skip (fail in CI, whose .ci/run installs it)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if REQUIRE_SERVICES:
            pytest.fail(message + " but TEST_REQUIRE_SERVICES=1")
        pytest.skip(message)
    return path


def run(*command: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a checker; its output comes back for the assertion message."""
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
