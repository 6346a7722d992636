"""The systemd units give a clean stop, with the default settings, the time it can take."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.jobs.worker import CANCEL_WAIT_SECONDS
from app.settings import HttpSettings, JobSettings, load_settings

INFRA = Path(__file__).parents[2] / "infra"
MARGIN = 5  # seconds to close pub/sub, give the node id back and close the database


def stop_timeout(unit: str) -> int:
    match = re.search(r"^TimeoutStopSec=(\d+)$", (INFRA / unit).read_text(), re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def test_serve_unit_outlasts_the_http_and_job_grace_periods() -> None:
    longest = (
        HttpSettings().graceful_shutdown_seconds
        + JobSettings().shutdown_grace_seconds
        + CANCEL_WAIT_SECONDS
    )

    assert stop_timeout("holdfast.service") >= longest + MARGIN


def test_worker_unit_outlasts_the_job_grace_period() -> None:
    longest = JobSettings().shutdown_grace_seconds + CANCEL_WAIT_SECONDS

    assert stop_timeout("holdfast-worker.service") >= longest + MARGIN


def test_every_setting_in_the_environment_example_loads(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    """The example, its commented alternatives switched on too, is a valid configuration."""
    lines = (INFRA / "holdfast.env.example").read_text().splitlines()
    settings = [
        line.removeprefix("# ").split("=", 1)
        for line in lines
        if line.removeprefix("# ").startswith("HOLDFAST_")
    ]
    assert len(settings) > 10
    for key, value in settings:
        monkeypatch_env.setenv(key, value)

    loaded = load_settings()

    assert loaded.storage.default == "media"
    assert loaded.storage.backends["media"].provider == "s3"
    assert loaded.media.base_url == "https://media.example.org"
