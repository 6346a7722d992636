"""S3 and the S3-compatibles (R2, B2, MinIO, Wasabi, ...) through boto3.

The only module that imports boto3 or botocore. boto3 is synchronous: every call runs in a
worker thread, bounded by one `CapacityLimiter`, on one client (boto3 clients are
thread-safe; sessions are not, so the session is used only here, once). Work that goes with
a call (hashing the bytes it sends, reading the first chunk of a GET) runs in the same
thread hand-off as the call.

Uploads carry their SHA-256 (`x-amz-checksum-sha256`, option `send_checksums`): S3 checks
the bytes it receives against it and refuses them (BadDigest) when they differ, so a `put`
knows the stored bytes are the ones it streamed without reading them back
(`ObjectInfo.checksum_confirmed`). A single PutObject sends the whole object's SHA-256; a
multipart upload sends each part's, and CompleteMultipartUpload lists them.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal, TypeVar

import anyio
import anyio.to_thread
import boto3
import botocore.config
import botocore.exceptions
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from providers.errors import (
    ConfigurationError,
    DigestMismatch,
    NotFound,
    ProviderError,
    Unavailable,
)
from providers.storage.base import CHUNK_SIZE, ObjectInfo, ObjectPage, PresignedUpload
from providers.storage.keys import check_key, check_prefix, check_range

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_COPY_SIZE = 5 * 1024**3
"""CopyObject's limit; beyond it S3 needs UploadPartCopy, which this provider does not do."""
DEFAULT_CONTENT_TYPE = "application/octet-stream"
SHA256_META = "sha256"

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_BAD_DIGEST = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "InternalError",
        "503",
        "500",
    }
)

T = TypeVar("T")


class S3Storage:
    """A `StorageProvider` on one S3 bucket."""

    kind: ClassVar[str] = "s3"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        bucket: str
        endpoint_url: str | None = None
        """For S3-compatibles, e.g. `https://<account>.r2.cloudflarestorage.com`."""
        region: str = "us-east-1"
        addressing_style: Literal["auto", "path", "virtual"] = "auto"
        access_key_id: SecretStr | None = None
        """With `secret_access_key`; both unset: boto3's default chain (environment,
        profile, instance role)."""
        secret_access_key: SecretStr | None = None
        session_token: SecretStr | None = None
        checksum_when_required: bool = True
        """Send and check botocore's CRC checksums only where S3 requires them: R2, B2 and
        MinIO reject the default ones."""
        send_checksums: bool = True
        """Send each upload's SHA-256 with it (`x-amz-checksum-sha256`), for the vendor to
        check the bytes it stores against (`ObjectInfo.checksum_confirmed`). Off for the
        S3-compatibles that reject checksum headers: callers then read back what they must
        confirm."""
        part_size: int = Field(default=8 * 1024 * 1024, ge=MIN_PART_SIZE)
        max_concurrency: int = Field(default=16, ge=1)
        """Worker threads in use at once for this provider's calls."""
        create_bucket: bool = False
        """Create the bucket at first use when missing (development and tests)."""
        direct_upload: Literal["post", "put", "off"] = "post"
        """How clients upload straight to the bucket (`presigned_upload`): `post`, a
        presigned POST policy binding the content type and the size limit (AWS, MinIO);
        `put`, a presigned PUT URL binding the content type only, for vendors without POST
        policies (Cloudflare R2, Backblaze B2); `off`, none (clients upload through the
        application)."""

    def __init__(self, options: S3Storage.Options) -> None:
        if (options.access_key_id is None) != (options.secret_access_key is None):
            raise ConfigurationError(
                "access_key_id and secret_access_key are given together or not at all"
            )
        self.options = options
        self._bucket = options.bucket
        s3_config: dict[str, Any] = {"addressing_style": options.addressing_style}
        config = botocore.config.Config(
            region_name=options.region,
            signature_version="s3v4",
            s3=s3_config,
            max_pool_connections=options.max_concurrency,
            retries={"mode": "standard", "max_attempts": 3},
            **(
                {
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                }
                if options.checksum_when_required
                else {}
            ),
        )
        session = boto3.session.Session(
            aws_access_key_id=_reveal(options.access_key_id),
            aws_secret_access_key=_reveal(options.secret_access_key),
            aws_session_token=_reveal(options.session_token),
            region_name=options.region,
        )
        self._client: Any = session.client("s3", endpoint_url=options.endpoint_url, config=config)
        self._limiter = anyio.CapacityLimiter(options.max_concurrency)
        self._bucket_ready = not options.create_bucket

    # -- the interface ------------------------------------------------------------------

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        await self._ensure_bucket()
        part_size = self.options.part_size
        # Each part is hashed when it leaves the buffer, in the worker thread that sends it
        # (hashing 8 MiB takes 10-15 ms: not on the event loop); parts leave in order, so
        # the hash is the whole object's.
        hasher = hashlib.sha256()
        size = 0
        buffer = _Buffer()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        # Whether the vendor echoed back each checksum sent: a vendor that ignores them
        # answers without one, and then nothing was checked at its end.
        echoes: list[bool] = []

        async def send(chunks: builtins.list[bytes]) -> dict[str, Any]:
            assert upload_id is not None
            number = len(parts) + 1
            return await self._run(
                "put", key, self._upload_part, key, upload_id, number, chunks, hasher, echoes
            )

        try:
            async for chunk in chunks:
                size += len(chunk)
                buffer.add(chunk)
                while buffer.size >= part_size:
                    if upload_id is None:
                        upload_id = await self._create_multipart(key, content_type, sha256)
                    part = buffer.take(part_size)
                    parts.append(await send(part))
            body = buffer.take(buffer.size)
            if upload_id is None:
                digest = await self._run(
                    "put", key, self._put_object, key, body, content_type, hasher, sha256, echoes
                )
            else:
                if body:
                    parts.append(await send(body))
                digest = hasher.hexdigest()
                _check_digest(key, sha256, digest)
                etag = await self._run("put", key, self._complete_multipart, key, upload_id, parts)
                finished, upload_id = upload_id, None
                await self._abort_abandoned(key, finished)
        except BaseException:
            if upload_id is not None:
                with anyio.CancelScope(shield=True):
                    await self._abort_multipart(key, upload_id)
            raise
        if parts and sha256 is None and size <= MAX_COPY_SIZE:
            # Without `sha256` given, the multipart object's metadata could not carry it.
            await self._record_sha256(key, etag, content_type, digest)
            # Larger objects keep no `sha256` in S3 (head says None); the caller's own
            # record of the returned info is the one that counts anyway.
        return ObjectInfo(
            key=key,
            size=size,
            sha256=digest,
            content_type=content_type,
            checksum_confirmed=self.options.send_checksums and bool(echoes) and all(echoes),
        )

    async def get(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        check_key(key)
        check_range(offset, length)
        await self._ensure_bucket()
        if length == 0:
            await self.head(key)
            return
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            arguments["Range"] = f"bytes={offset}-{end}"
        try:
            body, data, left = await self._run("get", key, self._open, arguments)
        except _RangeNotSatisfiable:
            return  # an offset at or past the end: no bytes, like a read past a file's end
        try:
            while data:
                yield data
                if left <= 0:
                    # The read of the body's end is where botocore validates a response
                    # checksum (when it asked for one): never skipped.
                    await self._run("get", key, body.read, CHUNK_SIZE)
                    return
                data = await self._run("get", key, body.read, CHUNK_SIZE)
                left -= len(data)
        finally:
            body.close()

    async def head(self, key: str) -> ObjectInfo:
        check_key(key)
        await self._ensure_bucket()
        response = await self._call(
            "head", key, self._client.head_object, Bucket=self._bucket, Key=key
        )
        sha256 = response.get("Metadata", {}).get(SHA256_META)
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            sha256=sha256 or None,
            content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            extra=_extra(response),
        )

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._ensure_bucket()
        await self._call("delete", key, self._client.delete_object, Bucket=self._bucket, Key=key)

    async def list(
        self, prefix: str = "", *, token: str | None = None, limit: int = 1000
    ) -> ObjectPage:
        check_prefix(prefix)
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        await self._ensure_bucket()
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": limit}
        if token is not None:
            arguments["ContinuationToken"] = token
        response = await self._call("list", prefix, self._client.list_objects_v2, **arguments)
        objects = tuple(
            ObjectInfo(
                key=item["Key"],
                size=item["Size"],
                sha256=None,
                content_type=DEFAULT_CONTENT_TYPE,
                extra=_extra(item),
            )
            for item in response.get("Contents", [])
        )
        next_token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return ObjectPage(objects, next_token)

    async def copy(self, source_key: str, dest_key: str) -> ObjectInfo:
        """A server-side CopyObject, which S3 limits to 5 GB sources (larger ones would need
        UploadPartCopy: not supported here)."""
        check_key(source_key)
        check_key(dest_key)
        await self._ensure_bucket()
        await self._call(
            "copy",
            source_key,
            self._client.copy_object,
            Bucket=self._bucket,
            Key=dest_key,
            CopySource={"Bucket": self._bucket, "Key": source_key},
            MetadataDirective="COPY",
        )
        info = await self.head(dest_key)
        return ObjectInfo(dest_key, info.size, info.sha256, info.content_type, info.extra)

    async def presigned_upload(
        self, key: str, *, content_type: str, max_size: int, expires_in: int
    ) -> PresignedUpload | None:
        """Per the `direct_upload` option: a POST form whose policy binds the content type
        and `max_size`; a PUT URL binding the content type (the client must send the
        `Content-Type` header given) but no size, which a presigned PUT cannot bound, so
        the application checks the stored object's size when the upload is finalized and
        its processing caps what it reads; or None."""
        check_key(key)
        mode = self.options.direct_upload
        if mode == "off":
            return None
        await self._ensure_bucket()
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        if mode == "put":
            url: str = await self._run(
                "presign",
                key,
                partial(
                    self._client.generate_presigned_url,
                    "put_object",
                    Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type},
                    ExpiresIn=expires_in,
                ),
            )
            return PresignedUpload(
                url=url,
                method="PUT",
                expires_at=expires_at,
                headers={"Content-Type": content_type},
            )
        post = await self._run(
            "presign",
            key,
            partial(
                self._client.generate_presigned_post,
                Bucket=self._bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", 0, max_size],
                ],
                ExpiresIn=expires_in,
            ),
        )
        return PresignedUpload(
            url=post["url"],
            method="POST",
            expires_at=expires_at,
            fields=dict(post["fields"]),
        )

    async def presigned_download(
        self, key: str, *, expires_in: int, content_type: str | None = None
    ) -> str | None:
        check_key(key)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        url: str = await self._run(
            "presign",
            key,
            partial(
                self._client.generate_presigned_url,
                "get_object",
                Params=params,
                ExpiresIn=expires_in,
            ),
        )
        return url

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._client.close)

    # -- in worker threads ------------------------------------------------------------------

    def _open(self, arguments: dict[str, Any]) -> tuple[Any, bytes, int]:
        """GetObject and the body's first chunk, in one hand-off (all of a small object);
        the body, that chunk and how many bytes are left after it."""
        response = self._client.get_object(**arguments)
        body = response["Body"]
        try:
            first: bytes = body.read(CHUNK_SIZE)
        except BaseException:
            body.close()
            raise
        return body, first, int(response["ContentLength"]) - len(first)

    def _put_object(
        self,
        key: str,
        chunks: builtins.list[bytes],
        content_type: str,
        hasher: Any,
        expected: str | None,
        echoes: builtins.list[bool],
    ) -> str:
        """Hash `body` (the whole object: a single PutObject), check it against `expected`
        and send it with its SHA-256 as its checksum; the hex SHA-256. The checksum the
        vendor echoes must be the one sent."""
        body = _join(chunks)
        hasher.update(body)
        digest: str = hasher.hexdigest()
        _check_digest(key, expected, digest)
        arguments: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "Metadata": {SHA256_META: digest},
        }
        checksum = _base64(digest)
        if self.options.send_checksums:
            arguments["ChecksumAlgorithm"] = "SHA256"
            arguments["ChecksumSHA256"] = checksum
        response = self._client.put_object(**arguments)
        echoed = response.get("ChecksumSHA256")
        echoes.append(echoed is not None and echoed == checksum)
        if self.options.send_checksums and echoed is not None and echoed != checksum:
            # The vendor says it stored other bytes than those sent: no object to keep.
            with contextlib.suppress(
                botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            ):
                self._client.delete_object(Bucket=self._bucket, Key=key)
            raise DigestMismatch(
                f"s3 put {key[:200]!r}: the stored object's SHA-256 checksum is not the one sent"
            )
        return digest

    async def _create_multipart(self, key: str, content_type: str, sha256: str | None) -> str:
        """With `sha256` known, the metadata records it from the start (the put fails and
        aborts before completing if the bytes do not match it)."""
        arguments: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "ContentType": content_type,
        }
        if sha256 is not None:
            arguments["Metadata"] = {SHA256_META: sha256}
        if self.options.send_checksums:
            arguments["ChecksumAlgorithm"] = "SHA256"
        response = await self._call("put", key, self._client.create_multipart_upload, **arguments)
        upload_id: str = response["UploadId"]
        return upload_id

    def _upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        chunks: builtins.list[bytes],
        hasher: Any,
        echoes: builtins.list[bool],
    ) -> dict[str, Any]:
        """Add `chunks` to the whole object's `hasher` and send them as part `number` (with
        its own SHA-256); the part's entry for CompleteMultipartUpload."""
        data = _join(chunks)
        hasher.update(data)
        arguments: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
            "Body": data,
        }
        part: dict[str, Any] = {"PartNumber": number}
        if self.options.send_checksums:
            part_hasher = hashlib.sha256()
            part_hasher.update(data)
            part["ChecksumSHA256"] = arguments["ChecksumSHA256"] = _base64(part_hasher.hexdigest())
            arguments["ChecksumAlgorithm"] = "SHA256"
        response = self._client.upload_part(**arguments)
        echoed = response.get("ChecksumSHA256")
        echoes.append(echoed is not None and echoed == part.get("ChecksumSHA256"))
        if "ChecksumSHA256" in part and echoed is not None and echoed != part["ChecksumSHA256"]:
            # Raised to the put, which aborts the upload.
            raise DigestMismatch(
                f"s3 put {key[:200]!r}: part {number}'s stored checksum is not the one sent"
            )
        part["ETag"] = response["ETag"]
        return part

    def _complete_multipart(self, key: str, upload_id: str, parts: Sequence[dict[str, Any]]) -> str:
        """Complete the upload (its part list carries each part's checksum); its ETag."""
        response = self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        etag: str = response["ETag"]
        return etag

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        # On failure, the bucket's lifecycle rule for incomplete uploads is the backstop.
        with contextlib.suppress(ProviderError):
            await self._call(
                "abort",
                key,
                self._client.abort_multipart_upload,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
            )

    async def _abort_abandoned(self, key: str, finished: str) -> None:
        """Abort the other unfinished multipart uploads of `key`: those a put that died left
        (a killed process cannot abort its own), which S3 keeps, and bills, until aborted. A
        put of the same key running right now loses its upload and fails (retried by its
        caller): the object is this put's anyway, the later one."""
        with contextlib.suppress(ProviderError):
            response = await self._call(
                "list uploads",
                key,
                self._client.list_multipart_uploads,
                Bucket=self._bucket,
                Prefix=key,
            )
            for upload in response.get("Uploads", []):
                if upload.get("Key") == key and upload.get("UploadId") != finished:
                    await self._abort_multipart(key, upload["UploadId"])

    async def _record_sha256(self, key: str, etag: str, content_type: str, sha256: str) -> None:
        """Add the SHA-256 to a finished multipart object's metadata.

        CreateMultipartUpload takes the metadata before the first byte, when the hash is not
        known yet, and S3 has no full-object SHA-256 of its own for multipart uploads (its
        SHA-256 checksums are composites of the parts). So the object is copied onto itself
        with the metadata replaced: a server-side copy, no bytes through us, but S3 rewrites
        the object once more (time in proportion to its size, and CopyObject's 5 GB limit).
        Until the copy lands, `head` shows the object with `sha256` None, never a wrong
        hash. `CopySourceIfMatch` makes the copy apply only to the object this upload made:
        if another writer replaced the key meanwhile, theirs stands untouched and this put
        fails (ProviderError): the object under the key is not the one it wrote, so it
        cannot report that object's size and hash.

        `MetadataDirective=REPLACE` resets everything the copy is not given again: so the
        content type is passed again, with the metadata. Nothing else is kept: this put sets
        no Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires,
        storage class, ACL or SSE settings, and whoever adds one to `_create_multipart`
        must pass it here too. (Tags are kept: TaggingDirective defaults to COPY.)
        """
        try:
            await self._call(
                "put",
                key,
                self._client.copy_object,
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                CopySourceIfMatch=etag,
                MetadataDirective="REPLACE",
                ContentType=content_type,
                Metadata={SHA256_META: sha256},
            )
        except _PreconditionFailed:
            raise ProviderError(
                f"s3 put {key[:200]!r}: another writer replaced the object during the upload"
            ) from None
        except BaseException:
            # The put fails as a whole: leave no object that the caller believes unwritten.
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(ProviderError):
                    await self.delete(key)
            raise

    # -- calls in threads ------------------------------------------------------------------

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            await self._call("create bucket", "", self._client.head_bucket, Bucket=self._bucket)
        except NotFound:
            try:
                await self._call(
                    "create bucket", "", self._client.create_bucket, Bucket=self._bucket
                )
            except ProviderError as exc:
                if "BucketAlreadyOwnedByYou" not in str(exc):
                    raise
        self._bucket_ready = True

    async def _call(self, operation: str, key: str, method: Callable[..., T], **kwargs: Any) -> T:
        return await self._run(operation, key, partial(method, **kwargs))

    async def _run(self, operation: str, key: str, function: Callable[..., T], *args: Any) -> T:
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._limiter)
        except botocore.exceptions.ClientError as exc:
            raise _client_error(operation, key, exc) from None
        except (
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
        ) as exc:
            raise Unavailable(
                f"s3 {operation}: cannot reach the endpoint ({type(exc).__name__})"
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise ConfigurationError(f"s3 {operation}: no credentials found") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderError(f"s3 {operation}: {type(exc).__name__}") from None


class _Buffer:
    """Chunks waiting to be sent, taken a part at a time as a list of chunks, which the
    worker thread sending them joins (`_join`): a part made of whole chunks (1 MiB reads
    fill 8 MiB parts exactly) costs one copy, made off the event loop, or none for a single
    chunk, where a bytearray would copy every byte in and out again on the loop."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append(bytes(chunk))
            self.size += len(chunk)

    def take(self, size: int) -> list[bytes]:
        """The chunks of the first `size` bytes (at most what is held)."""
        taken: list[bytes] = []
        wanted = size
        while wanted and self.chunks:
            chunk = self.chunks.popleft()
            if len(chunk) > wanted:
                self.chunks.appendleft(chunk[wanted:])
                chunk = chunk[:wanted]
            taken.append(chunk)
            wanted -= len(chunk)
        self.size -= size - wanted
        return taken


def _join(chunks: list[bytes]) -> bytes:
    """One bytes of `chunks`, which it empties (their memory goes now, not once the upload
    is done); in a worker thread: joining megabytes releases the GIL."""
    joined = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    chunks.clear()
    return joined


class _RangeNotSatisfiable(ProviderError):
    pass


class _PreconditionFailed(ProviderError):
    pass


def _client_error(operation: str, key: str, exc: botocore.exceptions.ClientError) -> ProviderError:
    """Our error for an S3 error response, named by its code and status only: S3's messages
    may quote request details, never worth the risk of a credential in a log."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    where = f"s3 {operation} {key[:200]!r}: {code or 'error'} (HTTP {status})"
    if code == "NoSuchUpload":
        # Our own multipart upload was aborted under us (a later put of the same key ended
        # it): the object is not missing, the put is worth retrying.
        return Unavailable(where)
    if code in _NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
        return NotFound(where)
    if code in _BAD_DIGEST:
        return DigestMismatch(where)
    if code == "InvalidRange" or status == 416:
        return _RangeNotSatisfiable(where)
    if code == "PreconditionFailed" or status == 412:
        return _PreconditionFailed(where)
    if code in _TRANSIENT or status >= 500 or status == 429:
        return Unavailable(where)
    return ProviderError(where)


def _check_digest(key: str, expected: str | None, digest: str) -> None:
    if expected is not None and digest != expected:
        raise DigestMismatch(
            f"s3 put {key[:200]!r}: the bytes have SHA-256 {digest}, not {expected}"
        )


def _base64(hex_digest: str) -> str:
    """A hex digest as S3's checksum headers carry it (base64 of the raw bytes)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _extra(response: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "ETag" in response:
        extra["etag"] = response["ETag"]
    modified = response.get("LastModified")
    if modified is not None:
        extra["last_modified"] = modified
    if "StorageClass" in response:
        extra["storage_class"] = response["StorageClass"]
    return extra


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
