"""Tortoise models, one module per aggregate. Listed in `MODEL_MODULES` for the ORM config."""

from __future__ import annotations

from app.models.account import RefreshToken, Role, Session, User

MODEL_MODULES = ["app.models.account"]

__all__ = ["MODEL_MODULES", "RefreshToken", "Role", "Session", "User"]
