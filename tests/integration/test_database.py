"""How the app talks to its database."""

from __future__ import annotations

from app import sql
from app.db import PooledConnection, connection_config
from tests.conftest import BACKEND


def test_postgres_urls_get_plan_settings_and_a_pool_without_resets() -> None:
    config = connection_config("postgres://u:p@db.example:5433/holdfast?minsize=2")

    assert isinstance(config, dict)
    credentials = config["credentials"]
    assert credentials["host"] == "db.example"
    assert credentials["port"] == 5433
    assert credentials["minsize"] == "2"
    assert credentials["server_settings"]["plan_cache_mode"] == "force_generic_plan"
    assert credentials["server_settings"]["jit"] == "off"
    assert credentials["connection_class"] is PooledConnection
    assert connection_config("sqlite://data/x.sqlite3") == "sqlite://data/x.sqlite3"


async def test_the_running_database_uses_those_settings(app: object) -> None:
    if BACKEND == "postgres":
        rows = await sql.fetch("SELECT current_setting('plan_cache_mode') AS mode")
        assert [dict(r) for r in rows] == [{"mode": "force_generic_plan"}]
        assert PooledConnection.get_reset_query(None) == ""  # type: ignore[arg-type]
    else:
        assert sql.dialect() == "sqlite"


async def test_named_parameters_repeat_and_expand_lists(app: object) -> None:
    rows = await sql.fetch(
        "SELECT CAST(:a AS INTEGER) * 2 AS doubled, CAST(:b AS TEXT) AS b, :a = :a AS same "
        "WHERE 3 IN (:ids)",
        {"a": 2, "b": "x", "ids": [1, 3]},
    )
    none = await sql.fetch("SELECT 1 AS one WHERE 1 IN (:ids)", {"ids": []})

    assert [dict(r) for r in rows] in (
        [{"doubled": 4, "b": "x", "same": True}],
        [{"doubled": 4, "b": "x", "same": 1}],
    )
    assert none == []
