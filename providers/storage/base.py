"""The storage provider interface: objects under string keys, streamed in and out.

Every implementation (local disk, S3-compatibles through boto3, any apache-libcloud driver)
passes the one contract suite in `tests/contract/test_storage_contract.py` against a real
local server, so the operator can switch between them by configuration.

Rules every implementation keeps:
- Memory is bounded whatever the object's size: `put` consumes its chunks as they come and
  `get` yields chunks (at most `CHUNK_SIZE` bytes each, beyond a vendor's own part buffers).
- Size and SHA-256 are computed by the provider while it streams (`put`) and kept with the
  object (in vendor metadata where there is such a thing), so `head` returns them without
  reading the bytes. A vendor checksum (a multipart ETag, a composite checksum) is never
  taken for the file's SHA-256.
- Only `providers.errors` cross this interface: `NotFound` for a missing key, `InvalidKey`
  for a key the provider refuses, `Unavailable` for a transient failure, `ProviderError`
  otherwise. No vendor type or exception is ever returned or raised.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

CHUNK_SIZE = 1024 * 1024
"""The largest chunk `get` yields."""

MAX_KEY_LENGTH = 512
"""Keys are at most this many UTF-8 bytes (every provider accepts this much)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object."""

    key: str
    size: int
    sha256: str | None
    """Lower-case hex SHA-256 of the whole object, as recorded at `put`; None for an object
    this interface did not write (no metadata to read it from)."""
    content_type: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Vendor detail (ETag, last modified, storage class): for logs, never for decisions."""
    checksum_confirmed: bool = field(default=False, compare=False)
    """True when the vendor itself checked the stored bytes against the SHA-256 sent with
    them (S3's `x-amz-checksum-sha256`, which S3 refuses with BadDigest when the bytes it
    received differ), so they are known to equal what was streamed without reading them back.
    Only `put` sets it; it says how this put was checked, not what the object is, so it takes
    no part in comparing infos."""


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """A page of `list`: objects in key order, and the token to pass for the next page."""

    objects: tuple[ObjectInfo, ...]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    """How a client sends an object straight to the vendor, without passing through us.

    `method` is `PUT` (send the bytes as the body with `headers`) or `POST` (an HTML form:
    `fields`, then the file in a part named `file`). The vendor enforces `content_type` and,
    for POST, the size limit; `put`'s SHA-256 is not recorded for such an object, so it is
    read and checked (and re-stored) by whoever takes it over.
    """

    url: str
    method: str
    expires_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class StorageProvider(Protocol):
    """An object store. Methods are coroutines; none blocks the event loop."""

    kind: ClassVar[str]
    """The registry name of the implementation (`local`, `s3`, `libcloud`)."""

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> ObjectInfo:
        """Store the bytes of `chunks` under `key`, replacing any object there, and return
        its info (size and SHA-256 computed while streaming). The object appears whole or
        not at all: a failure part-way leaves no partial object under `key`.

        `sha256` is the SHA-256 (lower-case hex) the bytes must have, when the caller knows
        it: the provider may record it before streaming, and the put fails (DigestMismatch)
        if the streamed bytes differ, as any failed put does: nothing of those bytes is left
        under the key."""
        ...

    def get(self, key: str, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The object's bytes from `offset` (`length` of them, or to the end), in chunks of
        at most CHUNK_SIZE. Raises NotFound (on the first iteration) for a missing key."""
        ...

    async def head(self, key: str) -> ObjectInfo:
        """The object's info without its bytes; NotFound for a missing key."""
        ...

    async def delete(self, key: str) -> None:
        """Delete the object; deleting a missing key is not an error."""
        ...

    async def list(
        self, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ObjectPage:
        """Objects whose keys start with `prefix`, in key order, at most `limit` (1..1000)
        per page; pass the returned `next_token` to continue. `sha256` may be None and
        `content_type` the generic `application/octet-stream` here (vendors do not list
        metadata): `head` has them."""
        ...

    async def copy(self, source_key: str, dest_key: str) -> ObjectInfo:
        """Copy an object within this provider (server-side where the vendor can);
        NotFound when the source is missing."""
        ...

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> PresignedUpload | None:
        """A way for a client to upload `key` directly, valid `expires_in` seconds; None
        when the vendor has none (the client uploads through the application)."""
        ...

    async def presigned_download(
        self, key: str, *, expires_in: int, content_type: str | None = None
    ) -> str | None:
        """A URL that serves the object for `expires_in` seconds; None when the vendor has
        none (the application serves it)."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the provider is not used afterwards."""
        ...
