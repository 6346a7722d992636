"""PLACEHOLDER until the infra helper's module lands on main (the merge takes theirs): the
cloud-init user-data a fleet node boots with."""

from __future__ import annotations

from app.settings import Role, Settings


def render_user_data(settings: Settings, compute: str, role: Role) -> str:
    """A `#cloud-config` document for a node of `role` at compute configuration `compute`."""
    return (
        "#cloud-config\n"
        f"# holdfast fleet {settings.fleet.name}, compute {compute}, role {role}\n"
        "package_update: true\n"
    )
