"""One reading of a PostgreSQL URL (app/db.py's PostgresURL) for the app's pool, the
migration lock and the backup tools: `ssl` and `sslmode` name the same TLS mode everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from app.db import PostgresURL, connection_config
from app.hosting.databases import BackupError, PostgresTarget


@pytest.mark.parametrize(
    ("query", "mode"),
    [
        ("sslmode=verify-full", "verify-full"),
        ("ssl=verify-full", "verify-full"),
        ("ssl=true", "require"),
        ("sslmode=require&ssl=true", "require"),
        ("", None),
    ],
)
def test_ssl_and_sslmode_mean_one_mode_for_every_connection(query: str, mode: str | None) -> None:
    url = f"postgres://holdfast:p%40ss@db.example.org:6432/holdfast?{query}"

    parsed = PostgresURL.parse(url)
    assert (parsed.host, parsed.port, parsed.user, parsed.password, parsed.database) == (
        "db.example.org",
        6432,
        "holdfast",
        "p@ss",
        "holdfast",
    )
    assert parsed.sslmode == mode
    # The app's pool: asyncpg's `ssl` takes the mode; no `sslmode` argument (asyncpg has none).
    config = connection_config(url)
    assert isinstance(config, dict)
    credentials: dict[str, Any] = config["credentials"]
    assert credentials["ssl"] == mode
    assert "sslmode" not in credentials
    # The migration lock connects with the same options.
    assert parsed.asyncpg_options()["ssl"] == mode
    # pg_dump, pg_restore, psql: libpq's environment.
    env = PostgresTarget.parse(url).environment()
    assert env.get("PGSSLMODE") == mode
    assert env["PGPASSWORD"] == "p@ss"
    assert "p@ss" not in repr(parsed)
    assert "p@ss" not in parsed.display


def test_pool_options_in_the_url_still_reach_the_pool() -> None:
    config = connection_config("postgres://h/db?minsize=2&maxsize=9&sslmode=disable")
    assert isinstance(config, dict)
    assert config["credentials"]["minsize"] == "2"
    assert config["credentials"]["ssl"] == "disable"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://h/db?sslmode=bogus", "unknown sslmode 'bogus'"),
        ("postgres://h/db?sslmode=disable&ssl=require", "sets ssl and sslmode apart"),
        ("postgres://h/", "names no database"),
        ("mysql://h/db", "not a PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_by_name(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresURL.parse(url)
    with pytest.raises(BackupError, match=message):
        PostgresTarget.parse(url)
