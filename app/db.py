"""The Tortoise configuration shared by the app, migrations and tests."""

from __future__ import annotations

from typing import Any

from app.models import MODEL_MODULES
from app.settings import Settings

MIGRATIONS_MODULE = "app.migrations"


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.effective_database_url
    if url.startswith("sqlite://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(settings: Settings) -> None:
    """Apply every committed migration that the database lacks."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as apply_migrations

    try:
        await apply_migrations(config=tortoise_config(settings))
    finally:
        await Tortoise.close_connections()


def __getattr__(name: str) -> Any:
    # `tortoise -c app.db.TORTOISE_ORM makemigrations` during development reads this lazily,
    # so importing the module never reads settings.
    if name == "TORTOISE_ORM":
        from app.settings import load_settings

        return tortoise_config(load_settings())
    raise AttributeError(name)
