"""Helpers for the payments tests: accounts made straight in the database, for service-level
tests that need no sign-in."""

from __future__ import annotations

from app.models import Role, User
from app.services.accounts import Viewer


async def subscriber(name: str = "payer", *, role: Role = Role.USER) -> Viewer:
    """A new account, as the viewer of a service call."""
    user = await User.create(
        username=name,
        username_key=name,
        email=f"{name}@example.com",
        password_hash="x",
        display_name=name.title(),
        role=role,
    )
    return Viewer(user, session_id=0)


async def admin(name: str = "admin") -> Viewer:
    return await subscriber(name, role=Role.ADMIN)
