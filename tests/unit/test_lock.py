"""requirements.lock (what `make run` and `make test` install) agrees with pyproject.toml: every
dependency named there, the dev tools included, is pinned at a release inside its range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _entries() -> dict[str, tuple[Version, str]]:
    """Each pinned distribution: its version and its lines (the pin, hashes and comments)."""
    entries: dict[str, tuple[Version, str]] = {}
    name = None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match[1])
            entries[name] = (Version(match[2]), line)
        elif name is not None:
            entries[name] = (entries[name][0], entries[name][1] + "\n" + line)
    return entries


def _pins() -> dict[str, Version]:
    return {name: version for name, (version, _) in _entries().items()}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"])
    ]


def test_the_lock_pins_every_dependency_inside_its_range() -> None:
    pins = _pins()
    outside = []
    for requirement in _declared():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "dev"}):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None or not requirement.specifier.contains(pinned, prereleases=True):
            outside.append(f"{requirement} (locked: {pinned})")
    assert outside == []


def test_every_pin_is_hashed() -> None:
    # pip's hash-checking mode (which `make` asks for) refuses a lock with any entry unhashed.
    entries = _entries()
    assert [name for name, (_, lines) in entries.items() if "--hash=sha256:" not in lines] == []
    assert len(entries) > len(_declared())


def test_the_executor_s_libraries_are_pinned_to_the_tested_releases() -> None:
    # schema/executor.py re-implements private methods of these exact releases.
    ranges = {canonicalize_name(r.name): r.specifier for r in _declared()}
    graphql_core, strawberry = (
        canonicalize_name("graphql-core"),
        canonicalize_name("strawberry-graphql"),
    )
    assert not ranges[graphql_core].contains("3.3.3")
    assert not ranges[strawberry].contains("0.342.0")
    assert _pins()[graphql_core] == Version("3.3.2")
    assert _pins()[strawberry] == Version("0.341.2")
