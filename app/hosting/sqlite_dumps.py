"""SQLite dumps and restores through its online backup API.

The backup API copies the database into a scratch file (a consistent copy even with writers),
the checks (app/hosting/tables.py) are read from that copy, and the copy is what is stored
(gzipped). A restore unpacks beside the target, checks the unpacked file, and only then moves
it into place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path

from app.hosting.dumps import CHUNK, Artifact, BackupError, HashingWriter, Snapshot, compare
from app.hosting.tables import (
    TableCheck,
    sqlite_checks,
    sqlite_migration_head,
    sqlite_nonempty,
)


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite://PATH` URL (and a SQLite library that can check its tables:
    an older one ignores `PRAGMA table_list`, and would find no table to check)."""
    if sqlite3.sqlite_version_info < (3, 37):
        raise BackupError(f"SQLite {sqlite3.sqlite_version} is too old for backups (3.37+)")
    path = url.removeprefix("sqlite://").partition("?")[0]
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(path)


def dump_sqlite(source: Path, out: Path) -> tuple[Artifact, Snapshot]:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    copy = out.with_name(out.name + ".sqlite3")
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
        with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as conn:
            snapshot = Snapshot(sqlite_checks(conn), sqlite_migration_head(conn))
        # The file compresses well (free pages, repeated keys) and is read whole anyway.
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip framing
        with copy.open("rb") as file, out.open("wb") as target:
            writer = HashingWriter(target)
            while chunk := file.read(CHUNK):
                writer.write(compressor.compress(chunk))
            writer.write(compressor.flush())
        return writer.artifact(out), snapshot
    except sqlite3.Error as exc:
        raise BackupError(f"reading the SQLite database {source} failed: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            copy.with_name(copy.name + suffix).unlink(missing_ok=True)


def sqlite_nonempty_at(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return sqlite_nonempty(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the target {path}: {exc}") from None


def restore_sqlite(artifact: Path, target: Path, expected: Mapping[str, TableCheck]) -> None:
    """Unpack beside the target, check the unpacked file, then move it into place: a failure
    at any step leaves the target as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
    try:
        decompressor = zlib.decompressobj(31)
        with artifact.open("rb") as file, staged.open("wb") as out:
            while chunk := file.read(CHUNK):
                out.write(decompressor.decompress(chunk))
            out.write(decompressor.flush())
        with contextlib.closing(sqlite3.connect(staged, isolation_level=None)) as conn:
            compare(expected, sqlite_checks(conn))
        table = sqlite_nonempty_at(target)
        if table is not None:
            raise BackupError(
                f"{target} is not empty (table {table!r} has rows): restore into an empty "
                "database (a freshly migrated one is fine)"
            )
        # The empty database's journal would otherwise be replayed over the restored file.
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(staged, target)
    except (zlib.error, sqlite3.Error) as exc:
        raise BackupError(f"restoring into {target} failed: {exc}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            staged.with_name(staged.name + suffix).unlink(missing_ok=True)


def sqlite_tables_of(path: Path) -> dict[str, TableCheck]:
    if not path.is_file():
        raise BackupError(f"no SQLite database at {path}")
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            return sqlite_checks(conn)
    except sqlite3.Error as exc:
        raise BackupError(f"reading the SQLite database {path} failed: {exc}") from None
