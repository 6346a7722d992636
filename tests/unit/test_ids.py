from __future__ import annotations

import time

import pytest

from app.ids import EPOCH_MS, IdGenerator, id_floor_for_time


def test_ids_are_unique_and_increasing() -> None:
    generator = IdGenerator(node_id=7)

    ids = [generator.next_id() for _ in range(20_000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)


def test_ids_carry_their_time_and_node() -> None:
    before = int(time.time() * 1000)
    new = IdGenerator(node_id=513).next_id()

    assert (new >> 12) & 0x3FF == 513
    assert new >= id_floor_for_time(before)
    assert (new >> 22) + EPOCH_MS <= int(time.time() * 1000) + 1


def test_node_id_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="node_id"):
        IdGenerator(node_id=1024)
