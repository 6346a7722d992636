"""Whether a backup holds user data: an account, whatever the service wrote by itself."""

from __future__ import annotations

from app.hosting.tables import TableCheck, holds_user_data


def check(rows: int) -> TableCheck:
    return TableCheck(rows=rows, checksum="0" * 64)


def test_a_fresh_fleets_own_rows_are_not_user_data() -> None:
    # What web nodes, workers and the scheduler write into an empty database by themselves:
    # migrations, jobs, leases, their fleet records, and the configured plans.
    fresh = {
        "tortoise_migrations": check(14),
        "jobs": check(3),
        "node_leases": check(2),
        "storage_leases": check(1),
        "storage_moves": check(1),
        "fleet_nodes": check(4),
        "plans": check(2),
        "users": check(0),
        "posts": check(0),
    }

    assert not holds_user_data(fresh)
    assert not holds_user_data({"plans": check(2)})


def test_one_account_is_user_data() -> None:
    assert holds_user_data({"users": check(1), "posts": check(0)})
