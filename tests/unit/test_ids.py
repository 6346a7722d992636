from __future__ import annotations

import time

import pytest

from app import ids
from app.ids import (
    EPOCH_MS,
    IdGenerator,
    NodeIdUnavailable,
    id_floor_for_time,
    ms_of,
    new_id,
    node_of,
)


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


def test_no_id_without_a_node_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_generator", None)

    with pytest.raises(NodeIdUnavailable, match="no node id"):
        new_id()


def test_configured_node_id_is_in_every_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_generator", None)
    ids.configure(901)

    made = [new_id() for _ in range(100)]

    assert {node_of(i) for i in made} == {901}


def _same_millisecond_pairs(a: IdGenerator, b: IdGenerator) -> tuple[set[int], int]:
    made: set[int] = set()
    shared = 0
    for _ in range(2_000):
        first, second = a.next_id(), b.next_id()
        made.update((first, second))
        shared += ms_of(first) == ms_of(second)
    return made, shared


def test_two_node_ids_in_one_millisecond_never_collide() -> None:
    made, shared = _same_millisecond_pairs(IdGenerator(node_id=3), IdGenerator(node_id=4))

    assert shared > 0  # the two made ids in the same milliseconds, often
    assert len(made) == 4_000


def test_one_node_id_in_two_processes_collides() -> None:
    # What pid & 1023 allowed: two generators with one node id repeat each other's ids.
    made, shared = _same_millisecond_pairs(IdGenerator(node_id=3), IdGenerator(node_id=3))

    assert shared > 0
    assert len(made) < 4_000


def test_ids_stay_in_the_leased_window() -> None:
    now = ids.now_ms()
    later = IdGenerator(node_id=9, start_ms=now + 50, until_ms=now + 60_000)
    ended = IdGenerator(node_id=9, start_ms=now - 1_000, until_ms=now - 1)

    assert ms_of(later.next_id()) >= now + 50
    with pytest.raises(NodeIdUnavailable, match="node id 9"):
        ended.next_id()
    ended.extend(now + 60_000)
    assert node_of(ended.next_id()) == 9


def test_a_window_ends_even_within_a_burst() -> None:
    now = ids.now_ms()
    generator = IdGenerator(node_id=9, start_ms=now + 1_000, until_ms=now + 1_002)

    made = [generator.next_id() for _ in range(2 * 4_096)]

    # Two milliseconds of sequence, and not one id in the third.
    assert {ms_of(i) for i in made} == {now + 1_000, now + 1_001}
    assert len(set(made)) == 2 * 4_096
    with pytest.raises(NodeIdUnavailable):
        generator.next_id()


def test_covered_milliseconds_are_not_reused() -> None:
    generator = IdGenerator(node_id=9)
    ahead = ids.now_ms() + 20

    generator.cover(ahead)

    assert ms_of(generator.next_id()) == ahead + 1
    assert generator.last_ms == ahead + 1
