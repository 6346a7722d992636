"""The Tortoise configuration shared by the app, migrations and tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url

from app.models import MODEL_MODULES
from app.settings import Settings

MIGRATIONS_MODULE = "app.migrations"


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled PostgreSQL connection that is not reset when returned to the pool.

    asyncpg resets every released connection (advisory unlocks, CLOSE ALL, UNLISTEN, RESET ALL):
    a round trip after every statement Tortoise runs outside a transaction. We take no advisory
    locks on pooled connections (the migration lock has a connection of its own), declare no
    cursors, LISTEN nowhere and SET nothing per session, so there is nothing to reset.
    """

    def get_reset_query(self) -> str:
        return ""


# Per-connection PostgreSQL settings. Our statements are all parameterised OLTP queries: plan
# them once per connection (re-planning the timeline statement cost 1.1 ms of database CPU a
# call, ../shared/PERFORMANCE.md) and never JIT-compile them (75 ms a call for a generic plan).
POSTGRES_SERVER_SETTINGS = {
    "plan_cache_mode": "force_generic_plan",
    "jit": "off",
    "application_name": "holdfast",
}


POSTGRES_SCHEMES = ("postgres", "postgresql", "asyncpg")
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
_SSL_FLAGS = {"true": "require", "1": "require", "false": "disable", "0": "disable"}


def is_postgres(url: str) -> bool:
    return url.partition("://")[0] in POSTGRES_SCHEMES


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A PostgreSQL URL's connection parameters, read one way for every connection Holdfast
    makes (the app's pool, the migration lock, pg_dump/pg_restore/psql for backups): in
    particular `?sslmode=` and `?ssl=` (libpq's modes, or true/false) mean the same TLS mode
    everywhere, where each used to honour one of them and silently drop the other."""

    host: str
    port: int
    user: str | None
    database: str
    sslmode: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Self:
        """ValueError (without the password) for a URL that is not a usable PostgreSQL one."""
        parts = urlsplit(url)
        if parts.scheme not in POSTGRES_SCHEMES:
            raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r})")
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise ValueError("the PostgreSQL URL names no database")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        modes = {query[key].lower() for key in ("ssl", "sslmode") if key in query}
        modes = {_SSL_FLAGS.get(mode, mode) for mode in modes}
        if len(modes) > 1:
            raise ValueError(f"the PostgreSQL URL sets ssl and sslmode apart: {sorted(modes)}")
        sslmode = modes.pop() if modes else None
        if sslmode is not None and sslmode not in _SSLMODES:
            raise ValueError(f"unknown sslmode {sslmode!r} ({', '.join(sorted(_SSLMODES))})")
        try:
            port = parts.port or 5432
        except ValueError:
            raise ValueError("the PostgreSQL URL's port is not a number") from None
        return cls(
            host=parts.hostname or "localhost",
            port=port,
            user=unquote(parts.username) if parts.username else None,
            database=database,
            sslmode=sslmode,
            password=unquote(parts.password) if parts.password else None,
        )

    @property
    def display(self) -> str:
        """The URL for messages: the password masked."""
        user = f"{self.user}{':***' if self.password else ''}@" if self.user else ""
        return f"postgres://{user}{self.host}:{self.port}/{self.database}"

    def asyncpg_options(self) -> dict[str, Any]:
        """asyncpg.connect's keyword arguments (its `ssl` takes libpq's mode names)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "ssl": self.sslmode,
        }

    def libpq_environment(self, application_name: str) -> dict[str, str]:
        """The environment for libpq's tools (pg_dump, pg_restore, psql): the password in
        PGPASSWORD, never on a command line (`ps` shows those)."""
        env = dict(os.environ)
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGDATABASE=self.database)
        env["PGAPPNAME"] = application_name
        for name, value in (
            ("PGUSER", self.user),
            ("PGPASSWORD", self.password),
            ("PGSSLMODE", self.sslmode),
        ):
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


def connection_config(url: str) -> str | dict[str, Any]:
    if not is_postgres(url):
        return url
    parsed = PostgresURL.parse(url)
    config = expand_db_url(url)  # the pool's own options (minsize, maxsize, ...)
    credentials = config["credentials"]
    credentials.pop("sslmode", None)  # asyncpg has no such argument: `ssl` takes the mode
    credentials.update(parsed.asyncpg_options())
    credentials["server_settings"] = {
        **POSTGRES_SERVER_SETTINGS,
        **credentials.get("server_settings", {}),
    }
    credentials["connection_class"] = PooledConnection
    return config


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.effective_database_url
    if url.startswith("sqlite://"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": connection_config(url)},
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


# The PostgreSQL advisory lock `holdfast migrate` holds while it migrates (any constant no
# other code uses: "Hold" in ASCII).
MIGRATION_LOCK_KEY = 0x486F6C64


async def migrate(settings: Settings) -> None:
    """Apply every committed migration that the database lacks.

    On PostgreSQL it first takes a session advisory lock: migrators started together (every
    web node's ExecStartPre on a fresh fleet, a Kubernetes Job beside the pods' init
    containers) run one after another, and each after the first finds nothing left to do.
    Without it two would apply one migration side by side (Tortoise records a migration only
    after applying it), and a data migration would run twice."""
    from tortoise import Tortoise
    from tortoise.migrations.api import migrate as apply_migrations

    async with _migration_lock(settings.effective_database_url):
        try:
            await apply_migrations(config=tortoise_config(settings))
        finally:
            await Tortoise.close_connections()


@asynccontextmanager
async def _migration_lock(url: str) -> AsyncIterator[None]:
    """Held on a connection of its own, so that the lock lasts exactly as long as its session:
    a migrator that dies releases it with its connection."""
    if not is_postgres(url):
        yield  # SQLite: one file on one machine, written one transaction at a time
        return
    connection = await asyncpg.connect(
        **PostgresURL.parse(url).asyncpg_options(),
        server_settings={"application_name": "holdfast migrate"},
    )
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        yield
    finally:
        await connection.close()


def __getattr__(name: str) -> Any:
    # `tortoise -c app.db.TORTOISE_ORM makemigrations` during development reads this lazily,
    # so importing the module never reads settings.
    if name == "TORTOISE_ORM":
        from app.settings import load_settings

        return tortoise_config(load_settings())
    raise AttributeError(name)
