"""Database backups in any storage provider (README: Backups).

A backup is two objects under `backup.prefix` + its id (the UTC time it was taken, so ids
sort by time): the dump (`database.dump`, PostgreSQL's custom format; or
`database.sqlite3.gz`) and, written last, `manifest.json` saying what the dump is: engine,
size, SHA-256, the row count and checksum of every table, the application version and the
newest migration. A dump without its manifest is not a backup (its upload or the manifest's
failed): listing ignores it and `prune` removes it once it is a day old. Everything about a
backup is read from the storage alone, so the backups can be listed and restored when the
database they came from is gone.

Restoring downloads the dump (checked against the manifest's SHA-256 before anything is
touched), refuses a target holding rows (a freshly migrated database is empty: its schema is
replaced by the dump's), restores, then checks every table's rows against the manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio

from app.hosting.databases import (
    CHUNK,
    BackupError,
    display_url,
    dump,
    engine_of,
    refuse_nonempty,
    restore,
    verify,
)
from app.hosting.tables import TableCheck, holds_user_data
from app.settings import Settings
from providers import registry
from providers.errors import NotFound, ProviderError
from providers.storage.base import ObjectInfo, StorageProvider

__all__ = [
    "BackupError",
    "BackupInfo",
    "NoUserData",
    "RestoreReport",
    "TableCheck",
    "backup_storage",
    "create_backup",
    "latest_backup",
    "list_backups",
    "prune",
    "restore_backup",
    "verify_backup",
]

log = logging.getLogger("holdfast.backup")

MANIFEST = "manifest.json"
_FORMAT = 1
_ID_FORMAT = "%Y%m%dT%H%M%S%fZ"
_STRAY_AGE = timedelta(days=1)  # longer than any upload: an older dump without manifest failed
_MANIFEST_LIMIT = 16 * 1024 * 1024
_DUMP_NAMES = {"postgres": "database.dump", "sqlite": "database.sqlite3.gz"}
_CONTENT_TYPES = {"postgres": "application/octet-stream", "sqlite": "application/gzip"}


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup, as its manifest describes it."""

    id: str
    key: str
    """The dump's key; the manifest is `manifest_key` beside it."""
    created_at: datetime
    engine: str
    """`postgres` or `sqlite`: a backup restores into a database of the same engine."""
    size: int
    sha256: str
    tables: Mapping[str, TableCheck]
    app_version: str = ""
    migration_head: str | None = None
    """The newest migration applied to the database when it was dumped."""

    @property
    def manifest_key(self) -> str:
        return f"{self.key.rpartition('/')[0]}/{MANIFEST}"

    @property
    def rows(self) -> int:
        return sum(check.rows for check in self.tables.values())

    @property
    def user_data(self) -> bool:
        """Whether it holds any account (app/hosting/tables.py `holds_user_data`): the backup
        of a fresh fleet's database has none, and restores nothing."""
        return holds_user_data(self.tables)


class NoUserData(BackupError):
    """`create_backup(..., require_user_data=True)` found a database without accounts."""


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """A restore that was verified: every table's rows equal the backup's."""

    backup: BackupInfo
    database: str
    """The target, its password masked."""
    tables: Mapping[str, TableCheck]


def backup_storage(settings: Settings) -> StorageProvider:
    """The storage backups go to: `backup.storage`, else the default storage backend."""
    name = settings.backup.storage or settings.storage.default
    configured = settings.storage.backends.get(name)
    if configured is None:
        raise BackupError(f"backups go to storage backend {name!r}, which is not configured")
    try:
        provider: StorageProvider = registry.load(
            "storage", configured.provider, configured.options, where=f"storage.backends.{name}"
        )
    except ProviderError as exc:
        raise BackupError(f"cannot open the backup storage {name!r}: {exc}") from None
    return provider


def _scratch(settings: Settings) -> Path:
    """Where a dump is spooled: under the data directory, on disk. Not TMPDIR, often a tmpfs
    (systemd's PrivateTmp, a container's /tmp) whose size is memory: a dump as large as the
    database would exhaust it."""
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _app_version() -> str:
    try:
        return metadata.version("holdfast")
    except metadata.PackageNotFoundError:
        return "unknown"


async def create_backup(
    settings: Settings,
    storage: StorageProvider,
    *,
    database_url: str | None = None,
    require_user_data: bool = False,
) -> BackupInfo:
    """Dump the database (default: the configured one) into `storage` with its manifest.
    `require_user_data` (the scheduler's backups): NoUserData, and nothing stored, when the
    database holds no account (a fresh fleet's), so that such a backup never
    becomes the newest."""
    url = database_url or settings.effective_database_url
    engine = engine_of(url)
    created_at = datetime.now(UTC)
    backup_id = created_at.strftime(_ID_FORMAT)
    base = f"{settings.backup.prefix}{backup_id}"
    key = f"{base}/{_DUMP_NAMES[engine]}"
    with tempfile.TemporaryDirectory(prefix="backup-", dir=_scratch(settings)) as scratch:
        artifact, snapshot = await dump(url, Path(scratch) / "dump")
        info = BackupInfo(
            id=backup_id,
            key=key,
            created_at=created_at,
            engine=engine,
            size=artifact.size,
            sha256=artifact.sha256,
            tables=snapshot.tables,
            app_version=_app_version(),
            migration_head=snapshot.migration_head,
        )
        if require_user_data and not info.user_data:
            raise NoUserData(f"{display_url(url)} holds no user data (no accounts): not backed up")
        try:
            stored = await storage.put(
                key,
                _file_chunks(artifact.path),
                content_type=_CONTENT_TYPES[engine],
                sha256=artifact.sha256,
            )
            if stored.size != artifact.size or stored.sha256 not in (None, artifact.sha256):
                raise BackupError(
                    f"the storage recorded {stored.size} bytes with SHA-256 {stored.sha256} "
                    f"for the dump of {artifact.size} bytes with SHA-256 {artifact.sha256}"
                )
            manifest = json.dumps(_manifest(info), indent=2, sort_keys=True).encode()
            await storage.put(info.manifest_key, _chunks(manifest), content_type="application/json")
        except (ProviderError, BackupError) as exc:
            # Not a backup without its manifest; what is left is a stray for `prune`.
            with contextlib.suppress(ProviderError):
                await storage.delete(key)
            if isinstance(exc, BackupError):
                raise
            raise BackupError(f"storing backup {backup_id} failed: {exc}") from None
    log.info(
        "backup %s: %d tables, %d rows, %d bytes", backup_id, len(info.tables), info.rows, info.size
    )
    return info


async def list_backups(settings: Settings, storage: StorageProvider) -> list[BackupInfo]:
    """Every backup with a readable manifest, newest first (the database is not needed)."""
    catalogue = await _catalogue(settings, storage)
    backups: list[BackupInfo] = []
    for backup_id, objects in catalogue.items():
        keys = {obj.key.rpartition("/")[2] for obj in objects}
        if MANIFEST not in keys:
            continue
        manifest_key = f"{settings.backup.prefix}{backup_id}/{MANIFEST}"
        try:
            backup = _parse_manifest(await _read(storage, manifest_key))
            # A manifest speaks only for the dump beside it.
            if backup.id != backup_id or backup.manifest_key != manifest_key:
                raise ValueError(f"it describes {backup.key}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring backup %s: unreadable manifest (%s)", backup_id, exc)
            continue
        backups.append(backup)
    backups.sort(key=lambda backup: (backup.created_at, backup.id), reverse=True)
    return backups


async def latest_backup(settings: Settings, storage: StorageProvider) -> BackupInfo | None:
    """The newest backup holding user data (what `restore latest` restores): a backup of an
    empty database, newer than every real one, would restore nothing."""
    return next((b for b in await list_backups(settings, storage) if b.user_data), None)


async def restore_backup(
    settings: Settings, storage: StorageProvider, backup: BackupInfo, *, database_url: str
) -> RestoreReport:
    """Restore `backup` into the empty database at `database_url` and verify every table;
    BackupError (the target unchanged unless the restore itself failed) otherwise."""
    engine = engine_of(database_url)
    if engine != backup.engine:
        raise BackupError(
            f"backup {backup.id} is a {backup.engine} dump; {display_url(database_url)} is {engine}"
        )
    await refuse_nonempty(database_url)  # before a long download
    with tempfile.TemporaryDirectory(prefix="restore-", dir=_scratch(settings)) as scratch:
        path = Path(scratch) / "dump"
        await _download(storage, backup, path)
        await restore(path, database_url, backup.tables)
    log.info("restored backup %s into %s", backup.id, display_url(database_url))
    return RestoreReport(backup, display_url(database_url), dict(backup.tables))


async def verify_backup(backup: BackupInfo, *, database_url: str) -> Mapping[str, TableCheck]:
    """Check the database's tables against the backup's manifest (after a restore, or later);
    BackupError naming the first table that differs."""
    return await verify(database_url, backup.tables)


async def prune(
    settings: Settings, storage: StorageProvider, *, now: datetime | None = None
) -> list[BackupInfo]:
    """Delete the backups the retention policy lets go (all but the newest `backup.keep`,
    except those younger than `backup.keep_days`) and dumps left without a manifest for over
    a day; the pruned backups, newest first."""
    now = now or datetime.now(UTC)
    policy = settings.backup
    backups = await list_backups(settings, storage)
    cutoff = now - timedelta(days=policy.keep_days)
    pruned = [
        backup
        for index, backup in enumerate(backups)
        if index >= policy.keep and backup.created_at < cutoff
    ]
    catalogue = await _catalogue(settings, storage)
    try:
        for backup in pruned:
            # The manifest first: interrupted here, what is left is a stray, never a backup
            # that lists but cannot be restored.
            await storage.delete(backup.manifest_key)
            for obj in catalogue.get(backup.id, ()):
                await storage.delete(obj.key)
            log.info("pruned backup %s", backup.id)
        listed = {backup.id for backup in backups}
        for backup_id, objects in catalogue.items():
            taken = _parse_id(backup_id)
            if backup_id in listed or taken is None or now - taken < _STRAY_AGE:
                continue
            if any(obj.key.endswith(f"/{MANIFEST}") for obj in objects):
                continue  # an unreadable manifest: for an operator to look at
            for obj in objects:
                await storage.delete(obj.key)
            log.info("removed %s: a dump without manifest (a failed backup)", backup_id)
    except ProviderError as exc:
        raise BackupError(f"pruning backups failed: {exc}") from None
    return pruned


# Storage


async def _catalogue(settings: Settings, storage: StorageProvider) -> dict[str, list[ObjectInfo]]:
    """The objects under the backup prefix, by backup id."""
    prefix = settings.backup.prefix
    found: dict[str, list[ObjectInfo]] = {}
    token: str | None = None
    try:
        while True:
            page = await storage.list(prefix, token=token)
            for obj in page.objects:
                backup_id, slash, _ = obj.key.removeprefix(prefix).partition("/")
                if slash:
                    found.setdefault(backup_id, []).append(obj)
            token = page.next_token
            if token is None:
                return found
    except ProviderError as exc:
        raise BackupError(f"listing backups failed: {exc}") from None


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await anyio.to_thread.run_sync(file.read, CHUNK):
            yield chunk


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _read(storage: StorageProvider, key: str) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in storage.get(key):
            size += len(chunk)
            if size > _MANIFEST_LIMIT:
                raise ValueError(f"{key} is larger than a manifest can be")
            parts.append(chunk)
    except ProviderError as exc:
        raise BackupError(f"reading {key} failed: {exc}") from None
    return b"".join(parts)


async def _download(storage: StorageProvider, backup: BackupInfo, path: Path) -> None:
    """The dump into `path`, refused unless its size and SHA-256 are the manifest's."""
    hasher = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as file:
            async for chunk in storage.get(backup.key):
                hasher.update(chunk)
                size += len(chunk)
                await anyio.to_thread.run_sync(file.write, chunk)
    except NotFound:
        raise BackupError(f"backup {backup.id}: the dump {backup.key} is missing") from None
    except ProviderError as exc:
        raise BackupError(f"downloading backup {backup.id} failed: {exc}") from None
    if size != backup.size or hasher.hexdigest() != backup.sha256:
        raise BackupError(
            f"backup {backup.id} is corrupt: the dump has {size} bytes with SHA-256 "
            f"{hasher.hexdigest()}, its manifest says {backup.size} bytes with SHA-256 "
            f"{backup.sha256} (checksum mismatch); nothing was restored"
        )


# Manifests


def _manifest(info: BackupInfo) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "id": info.id,
        "key": info.key,
        "created_at": info.created_at.isoformat(),
        "engine": info.engine,
        "size": info.size,
        "sha256": info.sha256,
        "app_version": info.app_version,
        "migration_head": info.migration_head,
        "user_data": info.user_data,
        "tables": {
            name: {"rows": check.rows, "checksum": check.checksum}
            for name, check in sorted(info.tables.items())
        },
    }


def _parse_manifest(data: bytes) -> BackupInfo:
    raw = json.loads(data)
    if raw.get("format") != _FORMAT:
        raise ValueError(f"manifest format {raw.get('format')!r}, not {_FORMAT}")
    if raw.get("engine") not in _DUMP_NAMES:
        raise ValueError(f"unknown engine {raw.get('engine')!r}")
    created_at = datetime.fromisoformat(raw["created_at"])
    if created_at.tzinfo is None:
        raise ValueError("created_at has no time zone")
    return BackupInfo(
        id=str(raw["id"]),
        key=str(raw["key"]),
        created_at=created_at,
        engine=str(raw["engine"]),
        size=int(raw["size"]),
        sha256=str(raw["sha256"]),
        tables={
            str(name): TableCheck(int(check["rows"]), str(check["checksum"]))
            for name, check in raw["tables"].items()
        },
        app_version=str(raw.get("app_version", "")),
        migration_head=raw.get("migration_head"),
    )


def _parse_id(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id, _ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
