"""`holdfast evacuate` checks its request against the settings before touching anything
(app/hosting/evacuate.py `prepare`): each mistake is a typed error naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.hosting.evacuate import EvacuationError, next_steps, prepare
from app.settings import Settings

ROLES = {
    "web": {"count": 1, "size": "s", "image": "i"},
    "worker": {"count": 1, "size": "s", "image": "i"},
    "scheduler": {"count": 1, "size": "s", "image": "i"},
}


def settings(tmp_path: Path, **new: Any) -> Settings:
    target: dict[str, Any] = {
        "provider": "libcloud",
        "options": {"driver": "dummy"},
        "roles": ROLES,
        "database_url": f"sqlite://{tmp_path / 'new.sqlite3'}",
        "storage": "local",
    }
    target.update(new)
    target = {key: value for key, value in target.items() if value is not None}
    return Settings(
        data_dir=tmp_path,
        compute={
            "active": "old",
            "providers": {
                "old": {"provider": "libcloud", "options": {"driver": "dummy"}, "roles": ROLES},
                "new": target,
            },
        },
    )


def test_a_good_request(tmp_path: Path) -> None:
    request = prepare(settings(tmp_path), to="new")
    assert (request.source, request.target) == ("old", "new")
    assert request.state_path == tmp_path / "evacuation-new.json"
    assert request.target_database_url == f"sqlite://{tmp_path / 'new.sqlite3'}"
    custom = prepare(settings(tmp_path), to="new", state_path=tmp_path / "run.json")
    assert custom.state_path == tmp_path / "run.json"
    steps = next_steps(request)
    assert steps[0] == "HOLDFAST_COMPUTE__ACTIVE=new"
    assert all("sqlite://" not in line for line in steps)  # URLs may hold passwords


@pytest.mark.parametrize(
    ("arguments", "changes", "message"),
    [
        ({"to": "elsewhere"}, {}, "no compute configuration 'elsewhere' (configured: new, old)"),
        ({"to": "new", "source": "gone"}, {}, "no compute configuration 'gone' to leave"),
        ({"to": "old"}, {}, "--to old is the configuration being left"),
        ({"to": "new"}, {"roles": {}}, "compute.providers.new.roles is empty"),
        ({"to": "new"}, {"database_url": None}, "compute.providers.new.database_url is not set"),
    ],
)
def test_bad_requests_are_refused(
    tmp_path: Path, arguments: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(EvacuationError) as refused:
        prepare(settings(tmp_path, **changes), **arguments)
    assert str(refused.value).startswith(message)
    assert not (tmp_path / "evacuation-new.json").exists()


def test_the_current_database_is_not_a_target(tmp_path: Path) -> None:
    current = f"sqlite://{tmp_path / 'holdfast.sqlite3'}"
    with pytest.raises(EvacuationError, match="is the current database"):
        prepare(settings(tmp_path, database_url=current), to="new")


def test_no_source_known(tmp_path: Path) -> None:
    base = settings(tmp_path)
    unset = base.model_copy(update={"compute": base.compute.model_copy(update={"active": None})})
    with pytest.raises(EvacuationError, match="pass --from NAME"):
        prepare(unset, to="new")
    assert prepare(unset, to="new", source="old").source == "old"


def test_a_rerun_with_another_target_is_refused(tmp_path: Path) -> None:
    """The state binds a run to its target: resuming it against another database, storage
    backend or fleet name would mix two evacuations."""
    from app.hosting import runbook
    from app.hosting.evacuate import STEPS, merge_options

    first = prepare(settings(tmp_path), to="new", old_gone=True)
    state = runbook.RunState.new("old", "new", STEPS)
    merge_options(first, state)
    assert state.options["old_gone"] is True
    assert state.options["target_storage"] == "local"
    again = prepare(settings(tmp_path), to="new")  # the flag stays recorded
    merge_options(again, state)
    assert state.options["old_gone"] is True
    moved = prepare(settings(tmp_path, storage=None), to="new")
    with pytest.raises(runbook.RunbookError) as refused:
        merge_options(moved, state)
    assert "the target's storage backend was 'local', now None" in str(refused.value)
    assert state.options["target_storage"] == "local"
