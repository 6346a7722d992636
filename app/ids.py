"""Time-sortable 64-bit IDs (snowflake layout).

41 bits of milliseconds since 2026-01-01, 10 bits of node id, 12 bits of sequence: up to
4,096 IDs per millisecond per process, ordered by creation time, so cursors over IDs are
cursors over time.
"""

from __future__ import annotations

import os
import threading
import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_NODE_BITS = 10
_SEQUENCE_BITS = 12
_MAX_SEQUENCE = (1 << _SEQUENCE_BITS) - 1


class IdGenerator:
    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id < (1 << _NODE_BITS):
            raise ValueError(f"node_id must be in 0..{(1 << _NODE_BITS) - 1}")
        self._node_id = node_id
        self._last_ms = -1
        self._sequence = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & _MAX_SEQUENCE
                if self._sequence == 0:
                    # Sequence exhausted within this millisecond: borrow the next one.
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                (now << (_NODE_BITS + _SEQUENCE_BITS))
                | (self._node_id << _SEQUENCE_BITS)
                | self._sequence
            )


def id_floor_for_time(epoch_ms: int) -> int:
    """The smallest ID that can be generated at `epoch_ms` (for time-range queries)."""
    return (epoch_ms - EPOCH_MS) << (_NODE_BITS + _SEQUENCE_BITS)


_generator = IdGenerator(os.getpid() & ((1 << _NODE_BITS) - 1))


def configure(node_id: int | None) -> None:
    """Use a configured node id instead of the default derived from the process id."""
    global _generator
    if node_id is not None:
        _generator = IdGenerator(node_id)


def new_id() -> int:
    return _generator.next_id()


def parse_id(text: str) -> int | None:
    """The ID written in `text`, or None unless it is a positive 64-bit integer."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None
