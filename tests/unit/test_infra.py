"""The systemd units give a clean stop, with the default settings, the time it can take; the
environment example lists every setting, and all of it loads."""

from __future__ import annotations

import importlib.util
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from app.jobs.worker import CANCEL_WAIT_SECONDS
from app.settings import HttpSettings, JobSettings, Settings, load_settings

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


def test_the_scheduler_runs_no_jobs_and_says_so() -> None:
    """The scheduler only enqueues backup jobs (app/hosting/schedule.py): its stop is giving
    its lease back, and its unit claims no other periodic work."""
    text = (INFRA / "holdfast-scheduler.service").read_text()

    assert (
        MARGIN <= stop_timeout("holdfast-scheduler.service") < JobSettings().shutdown_grace_seconds
    )
    for claim in ("renewals", "reminders", "trims"):
        assert claim not in text
    assert "backup" in text


def test_serve_unit_lets_migrate_wait_for_the_migration_lock() -> None:
    """`holdfast migrate` (ExecStartPre) waits while another node holds the migration lock:
    systemd's default start timeout (90 s) would kill it mid-wait."""
    text = (INFRA / "holdfast.service").read_text()

    assert re.search(r"^ExecStartPre=\S+ migrate$", text, re.MULTILINE)
    assert re.search(r"^TimeoutStartSec=infinity$", text, re.MULTILINE)


def example_settings() -> list[tuple[str, str]]:
    """Every `KEY=value` of the example, commented or not."""
    lines = (INFRA / "holdfast.env.example").read_text().splitlines()
    return [
        (key, value)
        for key, value in (
            line.removeprefix("# ").split("=", 1)
            for line in lines
            if line.removeprefix("# ").startswith("HOLDFAST_")
        )
    ]


def test_every_setting_in_the_environment_example_loads(
    monkeypatch_env: pytest.MonkeyPatch,
) -> None:
    """The example, its commented alternatives switched on too, is a valid configuration."""
    settings = example_settings()
    assert len(settings) > 10
    for key, value in settings:
        monkeypatch_env.setenv(key, value)

    # Where the compute and DNS providers are not in this checkout yet, their options
    # cannot be checked: the settings model still is, whole.
    providers = ("providers.compute.libcloud", "providers.dns.libcloud")
    if all(importlib.util.find_spec(module) for module in providers):
        loaded = load_settings()
    else:
        loaded = Settings()

    assert loaded.storage.default == "media"
    assert loaded.storage.backends["media"].provider == "s3"
    assert loaded.media.base_url == "https://media.example.org"
    assert loaded.compute.providers["aws"].roles["scheduler"].count == 1
    assert loaded.payments.plans["supporter"].prices == {"eur": 500}
    assert loaded.dns.records == ("@", "www")


# Free mappings: keys chosen by the operator or the provider, shown by at least one example.
_FREE = object()


def _sections(annotation: Any) -> type[BaseModel] | object | None:
    """A nested section's model, `_FREE` for a mapping of plain values, None for a value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is dict:
        return _FREE
    return None


def expected_keys(model: type[BaseModel], prefix: str, example: set[str]) -> set[str]:
    """The environment names of every setting under `model`. A mapping of sections
    (`storage.backends`, `payments.plans`, ...) expands for each entry the example names
    (there must be one), with every setting of that entry; a mapping of plain values
    (provider options, prices, a node's `env`) takes the example's keys (at least one)."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if typing.get_origin(annotation) in (types.UnionType, typing.Union):  # `X | None`
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        kind = _sections(annotation)
        if isinstance(kind, type):
            keys |= expected_keys(kind, key + "__", example)
        elif kind is _FREE:
            value = typing.get_args(annotation)[1]
            under = {other for other in example if other.startswith(key + "__")}
            assert under, f"the example names no entry of {key}"
            if isinstance(value, type) and issubclass(value, BaseModel):
                entries = {other[len(key) + 2 :].split("__", 1)[0] for other in under}
                for entry in entries:
                    keys |= expected_keys(value, f"{key}__{entry}__", example)
            else:
                keys |= under
        else:
            keys.add(key)
    return keys


def test_the_environment_example_lists_every_setting() -> None:
    example = [key for key, _ in example_settings()]
    assert len(example) == len(set(example)), "a key is listed twice"

    expected = expected_keys(Settings, "HOLDFAST_", set(example))

    assert sorted(expected - set(example)) == [], "settings missing from the example"
    assert sorted(set(example) - expected) == [], "keys in the example that are no setting"
