"""Objects as files under one directory: the embedded default.

Layout under `root`:
- `<key>`: the object's bytes, at the key's path.
- `.holdfast/meta/<key>`: a small JSON sidecar (SHA-256, content type, and the object file's
  inode and size, so that a sidecar left behind by an interrupted replace is recognised as
  stale rather than believed).
- `.holdfast/tmp/`: files being written; each is renamed into place (`os.replace`, atomic on
  one filesystem) only once it is whole.

Every path is walked from the root one segment at a time with directory file descriptors and
`O_NOFOLLOW`, so a symbolic link anywhere under the root (planted by whoever can write there)
is refused rather than followed, and a swapped directory cannot redirect a write either.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict

from providers.errors import ConfigurationError, InvalidKey, NotFound, ProviderError
from providers.storage.base import CHUNK_SIZE, ObjectInfo, ObjectPage, PresignedUpload
from providers.storage.keys import RESERVED_SEGMENT, check_key, check_prefix, check_range

DEFAULT_CONTENT_TYPE = "application/octet-stream"

T = TypeVar("T")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
"""O_NONBLOCK: opening a FIFO planted under the root returns at once (a blocking open would
wait for a writer forever, holding its worker thread); the type is then checked with fstat
before any read, and on regular files O_NONBLOCK changes nothing."""
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalStorage:
    """A `StorageProvider` on a local directory."""

    kind: ClassVar[str] = "local"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        root: Path
        """The directory holding the objects; created if missing."""

    def __init__(self, options: LocalStorage.Options) -> None:
        self.options = options
        root = options.root.expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.root = root.resolve()
            for sub in ("meta", "tmp"):
                (self.root / RESERVED_SEGMENT / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"local storage root {str(root)[:200]!r} cannot be used: {exc.strerror}"
            ) from None

    # -- the interface ------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes], *, content_type: str) -> ObjectInfo:
        segments = check_key(key)
        hasher = hashlib.sha256()
        size = 0
        tmp_dir = await _in_thread("put", self._open_tmp_dir)
        tmp_name = f"{secrets.token_hex(16)}.part"
        fd: int | None = None
        try:
            fd = file = await _in_thread("put", _create, tmp_name, tmp_dir)

            def write(data: bytes) -> None:
                # Hashed here too, in the worker thread: not on the event loop.
                hasher.update(data)
                _write_all(file, data)

            async for chunk in chunks:
                if chunk:
                    size += len(chunk)
                    await _in_thread("put", write, chunk)
            inode = await _in_thread("put", _finish, file)
            info = ObjectInfo(key, size, hasher.hexdigest(), content_type)
            meta = json.dumps(
                {
                    "sha256": info.sha256,
                    "content_type": content_type,
                    "size": size,
                    "inode": inode,
                }
            ).encode()
            await _in_thread("put", self._install, segments, tmp_dir, tmp_name, meta, inode)
            return info
        finally:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp_name, dir_fd=tmp_dir)
            with contextlib.suppress(OSError):
                os.close(tmp_dir)

    async def get(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        segments = check_key(key)
        check_range(offset, length)
        fd = await _in_thread("get", self._open_object, segments, key)
        try:
            remaining = length
            if offset:
                await _in_thread("get", os.lseek, fd, offset, os.SEEK_SET)
            while remaining is None or remaining > 0:
                want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                data = await _in_thread("get", os.read, fd, want)
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    async def head(self, key: str) -> ObjectInfo:
        segments = check_key(key)
        return await _in_thread("head", self._head, segments, key)

    async def delete(self, key: str) -> None:
        segments = check_key(key)
        await _in_thread("delete", self._delete, segments)

    async def list(
        self, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ObjectPage:
        check_prefix(prefix)
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        return await _in_thread("list", self._list, prefix, token, limit)

    async def copy(self, source_key: str, dest_key: str) -> ObjectInfo:
        check_key(dest_key)
        source = await self.head(source_key)
        return await self.put(dest_key, self.get(source_key), content_type=source.content_type)

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> PresignedUpload | None:
        check_key(key)
        return None

    async def presigned_download(
        self, key: str, *, expires_in: int, content_type: str | None = None
    ) -> str | None:
        check_key(key)
        return None

    async def close(self) -> None:
        return None

    # -- paths, walked without following links ------------------------------------------

    def _open_dir(self, base: Path, parts: Sequence[str], *, create: bool) -> int:
        """A descriptor of `base/parts...`, each segment opened with O_NOFOLLOW (and made
        first when `create`). InvalidKey for a link on the way or a file where a directory
        should be; NotFound for a missing directory when not creating."""
        fd = os.open(base, _DIR_FLAGS)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    raise NotFound("no such object") from None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    raise _not_a_directory(fd, part) from None
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_object(self, segments: Sequence[str], key: str) -> int:
        try:
            parent = self._open_dir(self.root, segments[:-1], create=False)
        except (NotFound, _SegmentIsObject):
            raise NotFound(f"no object {key!r}") from None
        try:
            fd = os.open(segments[-1], _READ_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            raise NotFound(f"no object {key!r}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InvalidKey("key names a symbolic link") from None
            raise ProviderError(f"local: cannot open object: {exc.strerror}") from None
        finally:
            os.close(parent)
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except BaseException:
            os.close(fd)
            raise
        if not regular:
            # A directory (a prefix of other keys), a FIFO, a device: no object.
            os.close(fd)
            raise NotFound(f"no object {key!r}")
        return fd

    def _open_tmp_dir(self) -> int:
        try:
            return self._open_dir(self.root, [RESERVED_SEGMENT, "tmp"], create=True)
        except InvalidKey:
            # Not the key's fault: the provider's own directory is broken.
            raise ProviderError("local: the temporary files directory is not a directory") from None

    def _install(
        self, segments: Sequence[str], tmp_dir: int, tmp_name: str, meta: bytes, inode: int
    ) -> None:
        """Rename the finished temporary file onto the key, then write its sidecar. When
        the sidecar cannot be written, the object just installed is removed again (the put
        fails as a whole, rather than leave an object its caller believes unwritten)."""
        parent = self._open_dir(self.root, segments[:-1], create=True)
        try:
            try:
                os.replace(tmp_name, segments[-1], src_dir_fd=tmp_dir, dst_dir_fd=parent)
            except IsADirectoryError:
                raise InvalidKey("key is a prefix of other keys on this disk") from None
            try:
                self._write_meta(segments, tmp_dir, meta)
            except BaseException:
                with contextlib.suppress(OSError):
                    st = os.stat(segments[-1], dir_fd=parent, follow_symlinks=False)
                    if st.st_ino == inode:  # still ours, not a concurrent writer's
                        os.unlink(segments[-1], dir_fd=parent)
                raise
        finally:
            os.close(parent)

    def _write_meta(self, segments: Sequence[str], tmp_dir: int, meta: bytes) -> None:
        try:
            meta_parent = self._open_dir(
                self.root, [RESERVED_SEGMENT, "meta", *segments[:-1]], create=True
            )
        except InvalidKey:
            raise ProviderError("local: the sidecar's directory is not a directory") from None
        name = f"{secrets.token_hex(16)}.meta"
        try:
            fd = _create(name, tmp_dir)
            try:
                _write_all(fd, meta)
            finally:
                os.close(fd)
            try:
                os.replace(name, segments[-1], src_dir_fd=tmp_dir, dst_dir_fd=meta_parent)
            except IsADirectoryError:
                raise ProviderError("local: a directory is where the sidecar goes") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=tmp_dir)
            os.close(meta_parent)

    def _read_meta(self, segments: Sequence[str], st: os.stat_result) -> dict[str, Any]:
        """The sidecar of the file `st` describes, or {} when missing or stale."""
        try:
            parent = self._open_dir(
                self.root, [RESERVED_SEGMENT, "meta", *segments[:-1]], create=False
            )
        except (NotFound, InvalidKey):
            return {}
        try:
            fd = os.open(segments[-1], _READ_FLAGS, dir_fd=parent)
        except OSError:
            return {}
        finally:
            os.close(parent)
        try:
            with os.fdopen(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    return {}
                meta = json.loads(file.read(4096))
        except (OSError, ValueError):
            return {}
        if not isinstance(meta, dict):
            return {}
        if meta.get("inode") != st.st_ino or meta.get("size") != st.st_size:
            return {}
        return meta

    def _info(self, key: str, segments: Sequence[str], st: os.stat_result) -> ObjectInfo:
        meta = self._read_meta(segments, st)
        sha256 = meta.get("sha256")
        content_type = meta.get("content_type")
        return ObjectInfo(
            key=key,
            size=st.st_size,
            sha256=sha256 if isinstance(sha256, str) else None,
            content_type=content_type if isinstance(content_type, str) else DEFAULT_CONTENT_TYPE,
            extra={"modified": st.st_mtime},
        )

    def _head(self, segments: Sequence[str], key: str) -> ObjectInfo:
        fd = self._open_object(segments, key)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return self._info(key, segments, st)

    def _delete(self, segments: Sequence[str]) -> None:
        for base in ([], [RESERVED_SEGMENT, "meta"]):
            try:
                parent = self._open_dir(self.root, [*base, *segments[:-1]], create=False)
            except (NotFound, _SegmentIsObject):
                continue
            try:
                os.unlink(segments[-1], dir_fd=parent)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                pass  # a prefix of other keys, not an object
            finally:
                os.close(parent)

    # -- listing -------------------------------------------------------------------------

    def _list(self, prefix: str, token: str | None, limit: int) -> ObjectPage:
        found: builtins.list[ObjectInfo] = []
        for key, st in self._walk(self.root, "", prefix, token):
            if len(found) == limit:
                return ObjectPage(tuple(found), found[-1].key)
            found.append(self._info(key, key.split("/"), st))
        return ObjectPage(tuple(found), None)

    def _walk(
        self, directory: Path, path: str, prefix: str, token: str | None
    ) -> Iterator[tuple[str, os.stat_result]]:
        """Files under `directory` (whose keys start with `path`) in key order.

        Sorting a directory's entries by name, with `/` appended to subdirectories, yields
        the keys of the whole tree in string order, so pages need no global sort.
        """
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        ordered = []
        for entry in entries:
            if not path and entry.name == RESERVED_SEGMENT:
                continue
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                ordered.append((path + entry.name + "/", entry, True))
            elif entry.is_file(follow_symlinks=False):
                ordered.append((path + entry.name, entry, False))
        ordered.sort(key=lambda item: item[0])
        for name, entry, is_dir in ordered:
            if is_dir:
                if not (name.startswith(prefix) or prefix.startswith(name)):
                    continue
                if token is not None and name < token and not token.startswith(name):
                    continue
                yield from self._walk(Path(entry.path), name, prefix, token)
            else:
                if not name.startswith(prefix) or (token is not None and name <= token):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since the directory was read
                yield name, st


async def _in_thread(operation: str, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread, its OSError turned into ours: a raw OSError
    (a full disk, a refused permission, an I/O error) never crosses the interface."""
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except OSError as exc:
        raise _os_error(operation, exc) from None


def _os_error(operation: str, exc: OSError) -> ProviderError:
    """Ours for an OSError, named by its errno only (its message could quote a path)."""
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidKey(f"local {operation}: a name is too long for this filesystem")
    reason = exc.strerror or type(exc).__name__
    return ProviderError(f"local {operation}: {reason} (errno {exc.errno})")


def _create(name: str, directory: int) -> int:
    """A new file `name` in `directory`, opened for writing."""
    return os.open(name, _WRITE_FLAGS, 0o644, dir_fd=directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _finish(fd: int) -> int:
    """Flush the written file to disk; its inode number."""
    os.fsync(fd)
    return os.fstat(fd).st_ino


class _SegmentIsObject(InvalidKey):
    """A segment of the key names an object file (`a` when asked for `a/b`): no object can
    be stored there, and none is there to read."""


def _not_a_directory(parent: int, name: str) -> InvalidKey:
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return InvalidKey("key passes through a symbolic link")
    return _SegmentIsObject("a segment of the key is an object, not a prefix")
