"""The one rule for which keys a storage provider accepts.

Every provider applies the same rule, even those whose vendor would take more (S3 stores
`a/../b` as a literal name): a key stored on one provider must be storable on any other, or
switching providers by configuration could strand an object. The rule is the local disk's:
a relative path of non-empty segments that cannot climb out of its root, each segment at most
`MAX_SEGMENT_LENGTH` bytes (the file-name limit of local filesystems: ext4, XFS, btrfs, APFS
and NTFS all stop at 255).
"""

from __future__ import annotations

from providers.errors import InvalidKey
from providers.storage.base import MAX_KEY_LENGTH

MAX_SEGMENT_LENGTH = 255
"""A segment (between `/`s) is at most this many UTF-8 bytes."""

RESERVED_SEGMENT = ".holdfast"
"""A first segment kept for the providers' own bookkeeping (sidecars, temporary files)."""

_CONTROL = frozenset(chr(code) for code in [*range(0x20), 0x7F])


def check_key(key: str) -> list[str]:
    """The key's `/`-separated segments; InvalidKey when the key breaks the rule."""
    if not key:
        raise InvalidKey("empty key")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey("key is not valid UTF-8") from None
    if len(encoded) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key longer than {MAX_KEY_LENGTH} bytes")
    if "\x00" in key:
        raise InvalidKey("key contains NUL")
    if not _CONTROL.isdisjoint(key):
        raise InvalidKey("key contains a control character")
    if "\\" in key:
        raise InvalidKey("key contains a backslash")
    if key.startswith("/"):
        raise InvalidKey("key is an absolute path")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKey(f"key has an empty, '.' or '..' segment: {key[:100]!r}")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH:
            raise InvalidKey(f"key has a segment longer than {MAX_SEGMENT_LENGTH} bytes")
    if segments[0] == RESERVED_SEGMENT:
        raise InvalidKey(f"keys under {RESERVED_SEGMENT}/ are reserved")
    return segments


def check_prefix(prefix: str) -> None:
    """A list prefix may end part-way through a segment but must not contain what no key
    can (NUL, backslash, control characters)."""
    if "\\" in prefix or not _CONTROL.isdisjoint(prefix):
        raise InvalidKey("prefix contains a character no key has")


def check_range(offset: int, length: int | None) -> None:
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("offset and length must not be negative")
