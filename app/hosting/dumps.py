"""What dumping and restoring share across engines (app/hosting/databases.py dispatches to
app/hosting/pg_dumps.py and app/hosting/sqlite_dumps.py): the error, what a dump is, and the
table-by-table comparison a restore ends with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from app.hosting.tables import TableCheck

CHUNK = 1024 * 1024
STDERR_LIMIT = 2_000  # characters of a failed tool's output quoted in the error


class BackupError(Exception):
    """A backup could not be made, listed, restored or verified; the message says why."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a dump holds, table by table, and the newest migration applied to it."""

    tables: dict[str, TableCheck]
    migration_head: str | None


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file written while hashing it: what is stored."""

    path: Path
    size: int
    sha256: str


def compare(expected: Mapping[str, TableCheck], actual: Mapping[str, TableCheck]) -> None:
    """BackupError naming the first table (by name) whose rows differ from the backup's."""
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want == got:
            continue
        if want is None:
            problem = "is not in the backup"
        elif got is None:
            problem = "is missing"
        elif want.rows != got.rows:
            problem = f"has {got.rows} rows, the backup {want.rows}"
        else:
            problem = "has rows that differ from the backup's (checksum mismatch)"
        raise BackupError(f"verification failed: table {table!r} {problem}")


class HashingWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def artifact(self, path: Path) -> Artifact:
        return Artifact(path, self.size, self._hash.hexdigest())
