"""Time-sortable 64-bit IDs (snowflake layout).

41 bits of milliseconds since 2026-01-01, 10 bits of node id, 12 bits of sequence: up to
4,096 IDs per millisecond per process, ordered by creation time, so cursors over IDs are
cursors over time.

Two processes with one node id would make the same ids in the same millisecond, so there is
no default node id: a process makes ids only once it holds one (`app.nodes.hold`, which
leases one or uses `HOLDFAST_NODE_ID`), and a leased node id comes with a window of
milliseconds, `start_ms` to `until_ms`, outside which this process never encodes an id.
"""

from __future__ import annotations

import threading
import time

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODE_BITS = 10
SEQUENCE_BITS = 12
NODE_COUNT = 1 << NODE_BITS
_MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class NodeIdUnavailable(RuntimeError):
    """No node id is held (none configured, or its lease ran out): making an id now could
    duplicate another process's."""


def now_ms() -> int:
    """Unix time in milliseconds, the clock ids and node leases are written in."""
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Ids for one node id, with milliseconds in [`start_ms`, `until_ms`) (Unix time; either
    end open when None)."""

    def __init__(
        self, node_id: int, *, start_ms: int | None = None, until_ms: int | None = None
    ) -> None:
        if not 0 <= node_id < NODE_COUNT:
            raise ValueError(f"node_id must be in 0..{NODE_COUNT - 1}")
        self.node_id = node_id
        # The last millisecond used (since EPOCH_MS) with its sequence spent, so that the
        # first id falls at `start_ms` or later.
        self._last_ms = -1 if start_ms is None else start_ms - EPOCH_MS - 1
        self._sequence = _MAX_SEQUENCE
        self._used = False
        self._until_ms = until_ms
        self._lock = threading.Lock()

    @property
    def until_ms(self) -> int | None:
        return self._until_ms

    @property
    def last_ms(self) -> int | None:
        """The latest millisecond (Unix) this generator encoded or covered; None if none."""
        with self._lock:
            return self._last_ms + EPOCH_MS if self._used else None

    def extend(self, until_ms: int) -> None:
        """Move the end of the window (a renewed lease); it never moves back."""
        with self._lock:
            if self._until_ms is not None and until_ms > self._until_ms:
                self._until_ms = until_ms

    def cover(self, through_ms: int) -> None:
        """Count every id up to `through_ms` as made (ids a bulk load encodes itself), so that
        later ids and the lease's release fall after them."""
        with self._lock:
            through = through_ms - EPOCH_MS
            if through >= self._last_ms:
                self._last_ms = through
                self._sequence = _MAX_SEQUENCE
            self._used = True

    def next_id(self) -> int:
        with self._lock:
            now = max(now_ms() - EPOCH_MS, self._last_ms)
            sequence = 0
            if now == self._last_ms:
                sequence = (self._sequence + 1) & _MAX_SEQUENCE
                if sequence == 0:
                    # Sequence exhausted within this millisecond: borrow the next one.
                    now += 1
            if self._until_ms is not None and now + EPOCH_MS >= self._until_ms:
                raise NodeIdUnavailable(
                    f"the lease of node id {self.node_id} ran out (not renewed in time); "
                    "no ids until it is renewed or another is leased"
                )
            self._last_ms, self._sequence, self._used = now, sequence, True
            return (now << (NODE_BITS + SEQUENCE_BITS)) | (self.node_id << SEQUENCE_BITS) | sequence


def id_floor_for_time(epoch_ms: int) -> int:
    """The smallest ID that can be generated at `epoch_ms` (for time-range queries)."""
    return (epoch_ms - EPOCH_MS) << (NODE_BITS + SEQUENCE_BITS)


def node_of(value: int) -> int:
    """The node id an id was made with."""
    return (value >> SEQUENCE_BITS) & (NODE_COUNT - 1)


def ms_of(value: int) -> int:
    """The millisecond (Unix) an id was made in."""
    return (value >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS


_generator: IdGenerator | None = None


def configure(node_id: int, *, start_ms: int | None = None, until_ms: int | None = None) -> None:
    """Make this process's ids with `node_id` from now on (see `IdGenerator`)."""
    global _generator
    _generator = IdGenerator(node_id, start_ms=start_ms, until_ms=until_ms)


def current() -> IdGenerator:
    """This process's generator; NodeIdUnavailable when no node id is held."""
    generator = _generator
    if generator is None:
        raise NodeIdUnavailable(
            "no node id is held: make ids inside app.nodes.hold(settings) (which leases one, "
            "or uses HOLDFAST_NODE_ID)"
        )
    return generator


def extend(node_id: int, until_ms: int) -> None:
    """Extend the window of this process's ids with `node_id` (its lease was renewed)."""
    generator = _generator
    if generator is not None and generator.node_id == node_id:
        generator.extend(until_ms)


def clear() -> IdGenerator | None:
    """Stop making ids (the node id is being given back); the generator that was in use."""
    global _generator
    generator, _generator = _generator, None
    return generator


def new_id() -> int:
    return current().next_id()


def parse_id(text: str) -> int | None:
    """The ID written in `text`, or None unless it is a positive 64-bit integer."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None
