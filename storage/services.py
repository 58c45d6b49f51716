"""Verbs over the object store: content-addressed blobs, write-once objects, reads and
presigned URLs. Other packages call these (with storage.keys, storage.types and
storage.errors), never minio.

What every function here guarantees:
- failures arrive as storage.errors (StorageUnavailable, ObjectNotFound, ContentMismatch,
  StorageError), never as minio or urllib3 exceptions, and never as HTTP errors;
- nothing is overwritten: a blob lives at the key of its SHA-256 and putting it again is
  a no-op; other objects are write-once;
- memory stays bounded by a few multipart parts (S3_PART_SIZE) whatever the object
  size: streams are read in 1 MiB chunks, spooled to disk when they cannot be re-read,
  and uploaded one part at a time.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import IO, Any, BinaryIO, cast

from django.conf import settings
from django.utils.http import content_disposition_header
from minio.datatypes import Object
from minio.deleteobjects import DeleteObject

from storage.client import get_client, get_presign_client, translate_errors
from storage.errors import ContentMismatch, ObjectNotFound, StorageError
from storage.keys import BLOBS_ROOT, STAGING_PREFIX, blob_key
from storage.types import ObjectInfo, PutResult, Readable

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# Read size when hashing and spooling: large enough for few system calls, small enough
# not to matter for memory.
CHUNK_SIZE = 1024 * 1024
# S3 rules: every part but the last is at least 5 MiB, and an upload has at most 10,000.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
# Presigned URLs live between 1 second and 7 days (the SigV4 limit).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# S3 object keys are at most 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
# The user-metadata entry in which object_put records the SHA-256 of what it stored.
SHA256_METADATA = "sha256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_USER_METADATA_PREFIX = "x-amz-meta-"

BytesLike = bytes | bytearray | memoryview


# --- helpers --------------------------------------------------------------------------


def _bucket() -> str:
    return cast(str, settings.S3_BUCKET)


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or key.startswith("/") or "\x00" in key:
        raise ValueError(f"invalid object key: {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"object key longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key (empty, '.' or '..' segment): {key!r}")
    return key


def _object_info(key: str, obj: Object) -> ObjectInfo:
    metadata: dict[str, str] = {}
    for name, value in (obj.metadata or {}).items():
        lower = str(name).lower()
        if lower.startswith(_USER_METADATA_PREFIX):
            metadata[lower[len(_USER_METADATA_PREFIX) :]] = str(value)
    return ObjectInfo(
        key=key,
        size=obj.size or 0,
        etag=obj.etag or "",
        content_type=obj.content_type or DEFAULT_CONTENT_TYPE,
        last_modified=obj.last_modified,
        metadata=metadata,
    )


def _stat(key: str) -> ObjectInfo:
    with translate_errors(key=key):
        obj = get_client().stat_object(_bucket(), key)
    return _object_info(key, obj)


def _stat_or_none(key: str) -> ObjectInfo | None:
    try:
        return _stat(key)
    except ObjectNotFound:
        return None


def _seekable(fileobj: Readable) -> bool:
    seekable = getattr(fileobj, "seekable", None)
    if not callable(seekable):
        return False
    try:
        return bool(seekable())
    except (OSError, ValueError):  # a closed file, or a wrapper that cannot tell
        return False


def _copy_hashing(source: Readable, sink: IO[bytes] | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK_SIZE):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


@contextmanager
def _hashed(fileobj: Readable) -> Iterator[tuple[Readable, str, int]]:
    """Hash `fileobj` to its end; yield a stream positioned at the same start, the
    SHA-256 and the size.

    A seekable stream is read twice (hash, then upload); any other is copied to a
    temporary file (in FILE_UPLOAD_TEMP_DIR, in memory below FILE_UPLOAD_MAX_MEMORY_SIZE)
    while hashing, and the copy is uploaded and deleted.
    """
    if _seekable(fileobj):
        seekable = cast(IO[bytes], fileobj)
        start = seekable.tell()
        digest, size = _copy_hashing(seekable, None)
        seekable.seek(start)
        yield seekable, digest, size
        return
    with tempfile.SpooledTemporaryFile(
        max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as spool:
        digest, size = _copy_hashing(fileobj, spool)
        spool.seek(0)
        yield cast(Readable, spool), digest, size


class _SourceReadError(Exception):
    """Carries an error raised by the caller's stream through minio, so that a client
    disconnect (a ConnectionError) is not mistaken for the object store being down."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class _VerifyingReader:
    """Feed `source` to minio's put_object while hashing it, and raise ContentMismatch
    before handing over the last bytes if they do not hash to `sha256` (or do not add up
    to `size`). minio learns that the stream ended only from the read that returns the
    last bytes or an empty one, so a mismatch is raised before the single PUT is sent or
    the multipart upload completed, and minio aborts the upload: nothing is stored.
    """

    def __init__(self, source: Readable, *, key: str, sha256: str, size: int | None) -> None:
        self._source = source
        self._key = key
        self._expected_sha256 = sha256
        self._expected_size = size
        self._digest = hashlib.sha256()
        self.consumed = 0
        self.verified = False

    def read(self, size: int = -1, /) -> bytes:
        if self.verified:
            return b""
        remaining = None if self._expected_size is None else self._expected_size - self.consumed
        want = size if size >= 0 else (remaining if remaining is not None else -1)
        if remaining is not None and want > remaining:
            want = remaining
        data = self._read_fully(want)
        self._digest.update(data)
        self.consumed += len(data)
        ended = (want < 0 or len(data) < want) or (
            self._expected_size is not None and self.consumed == self._expected_size
        )
        if ended:
            self._verify()
        return data

    def _read_source(self, size: int) -> bytes:
        try:
            return self._source.read(size)
        except Exception as exc:
            raise _SourceReadError(exc) from exc

    def _read_fully(self, want: int) -> bytes:
        if want < 0:
            return self._read_source(-1)
        chunks: list[bytes] = []
        got = 0
        while got < want:
            chunk = self._read_source(want - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _verify(self) -> None:
        if self._expected_size is not None:
            if self.consumed < self._expected_size:
                raise ContentMismatch(
                    f"stream for {self._key!r} ended after {self.consumed} bytes; "
                    f"{self._expected_size} were declared"
                )
            if self._read_source(1):
                raise ContentMismatch(
                    f"stream for {self._key!r} is longer than the {self._expected_size} "
                    "bytes declared"
                )
        actual = self._digest.hexdigest()
        if actual != self._expected_sha256:
            raise ContentMismatch(
                f"content hashes to sha256 {actual}, not the declared {self._expected_sha256}"
            )
        self.verified = True


def _part_size(size: int | None) -> int:
    part = max(int(settings.S3_PART_SIZE), MIN_PART_SIZE)
    if size is not None and size > part * MAX_PARTS:
        # Grow parts (in whole MiB) so the object fits in 10,000 of them.
        mib = 1024 * 1024
        per_part = -(-size // MAX_PARTS)
        part = -(-per_part // mib) * mib
    return part


def _upload(
    key: str,
    source: Readable,
    *,
    sha256: str,
    size: int | None,
    content_type: str,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Upload `source` to `key`, verifying it hashes to `sha256`; return the bytes sent."""
    if size == 0 and sha256 != EMPTY_SHA256:
        # minio reads nothing for an empty object, so the reader could not check it.
        raise ContentMismatch(f"empty content hashes to sha256 {EMPTY_SHA256}, not {sha256}")
    reader = _VerifyingReader(source, key=key, sha256=sha256, size=size)
    try:
        with translate_errors(key=key):
            _put_object(key, reader, size=size, content_type=content_type, metadata=metadata)
    except _SourceReadError as exc:
        raise exc.original from None
    return reader.consumed


def _put_object(
    key: str,
    reader: _VerifyingReader,
    *,
    size: int | None,
    content_type: str,
    metadata: Mapping[str, str] | None,
) -> None:
    get_client().put_object(
        _bucket(),
        key,
        cast(BinaryIO, reader),
        length=-1 if size is None else size,
        content_type=content_type or DEFAULT_CONTENT_TYPE,
        metadata=cast(Any, dict(metadata)) if metadata else None,
        part_size=_part_size(size),
        # One part in flight: minio's parallel mode queues parts in memory, which
        # would let memory grow with the object instead of staying at a few parts.
        num_parallel_uploads=1,
    )


def _as_bytes(data: BytesLike) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    return bytes(data)


def _user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if _METADATA_NAME.fullmatch(name) is None or name == SHA256_METADATA:
            raise ValueError(
                f"invalid metadata name {name!r} (lower-case letters, digits and '-'; "
                f"{SHA256_METADATA!r} is reserved)"
            )
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise ValueError(f"metadata {name!r} must be printable ASCII, not {value!r}")
        result[name] = value
    return result


# --- blobs: content-addressed, at blobs/sha256/ab/cd/<sha256> ---------------------------


def _blob_existing(info: ObjectInfo, *, sha256: str, size: int | None, declared: bool) -> PutResult:
    if size is not None and info.size != size:
        message = f"blob {sha256} is stored with {info.size} bytes, not {size}"
        if declared:
            raise ContentMismatch(message + ": the declared size or sha256 is wrong")
        raise StorageError(message + ": the stored object is corrupt")
    return PutResult(
        sha256=sha256, size=info.size, key=info.key, created=False, content_type=info.content_type
    )


def blob_put_bytes(data: BytesLike, *, content_type: str = DEFAULT_CONTENT_TYPE) -> PutResult:
    """Store `data` at the key of its SHA-256 unless a blob with that hash exists.

    Idempotent: when the blob exists nothing is written and the result says
    created=False (with the stored content type). Concurrent puts of the same bytes are
    harmless (same key, same content). Raises StorageUnavailable when the store cannot
    be used, StorageError on other store failures.
    """
    payload = _as_bytes(data)
    sha256 = hashlib.sha256(payload).hexdigest()
    key = blob_key(sha256)
    existing = _stat_or_none(key)
    if existing is not None:
        return _blob_existing(existing, sha256=sha256, size=len(payload), declared=False)
    _upload(key, io.BytesIO(payload), sha256=sha256, size=len(payload), content_type=content_type)
    return PutResult(
        sha256=sha256, size=len(payload), key=key, created=True, content_type=content_type
    )


def blob_put_stream(
    fileobj: Readable,
    *,
    content_type: str = DEFAULT_CONTENT_TYPE,
    size: int | None = None,
    sha256: str | None = None,
    check_existing: bool = True,
) -> PutResult:
    """Store the rest of `fileobj` at the key of its SHA-256 unless that blob exists.

    Without `sha256`, hash the stream first (re-reading it when seekable, else through a
    temporary file), then upload only if the blob is missing. With `sha256`, check for
    the blob first (and do not read the stream at all when it exists), else upload while
    hashing. Either way the bytes are verified against the hash (and `size`, when given)
    before the upload completes, so a blob is never stored under a wrong hash. Big
    streams go up in multipart parts of S3_PART_SIZE; memory stays at a few parts
    (15 MiB measured for 5 MiB parts), whatever the size.

    Idempotent: an existing blob is left alone and the result says created=False.
    `check_existing=False` (only with `sha256`) skips that check, one HEAD request, for
    a caller that knows the blob is almost surely missing (no Asset row has it): the
    bytes are then sent in any case, which for a blob that did exist rewrites the same
    verified bytes under the same key, harmless; created=True then means "written".
    Raises ValueError on a malformed `sha256` or negative `size`; ContentMismatch when the
    bytes do not match the declared `sha256`/`size` (nothing is stored);
    StorageUnavailable when the store cannot be used; StorageError on other failures.
    """
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    if not check_existing and sha256 is None:
        raise ValueError("check_existing=False needs the sha256 of the content")
    if sha256 is not None:
        key = blob_key(sha256)
        existing = _stat_or_none(key) if check_existing else None
        if existing is not None:
            return _blob_existing(existing, sha256=sha256, size=size, declared=True)
        sent = _upload(key, fileobj, sha256=sha256, size=size, content_type=content_type)
        return PutResult(sha256=sha256, size=sent, key=key, created=True, content_type=content_type)

    with _hashed(fileobj) as (source, digest, actual_size):
        if size is not None and actual_size != size:
            raise ContentMismatch(f"stream has {actual_size} bytes; {size} were declared")
        key = blob_key(digest)
        existing = _stat_or_none(key)
        if existing is not None:
            return _blob_existing(existing, sha256=digest, size=actual_size, declared=False)
        _upload(key, source, sha256=digest, size=actual_size, content_type=content_type)
    return PutResult(
        sha256=digest, size=actual_size, key=key, created=True, content_type=content_type
    )


def blob_exists(sha256: str) -> bool:
    """Return whether the blob with this SHA-256 is stored.

    Raises ValueError on a malformed hash, StorageUnavailable when the store cannot be used.
    """
    return object_exists(blob_key(sha256))


def blob_stat(sha256: str) -> ObjectInfo:
    """Return size, etag, content type and date of the blob with this SHA-256.

    Raises ObjectNotFound when it is not stored, StorageUnavailable when the store
    cannot be used, ValueError on a malformed hash.
    """
    return object_stat(blob_key(sha256))


@contextmanager
def blob_open(sha256: str) -> Iterator[BinaryIO]:
    """Open the blob with this SHA-256 for reading, as a context manager.

    Yields a buffered binary stream read straight from the store (nothing is loaded
    up front); leaving the block closes it and frees the connection. Raises ObjectNotFound
    when it is not stored, StorageUnavailable when the store cannot be used (on open or
    while reading), ValueError on a malformed hash.
    """
    with object_open(blob_key(sha256)) as stream:
        yield stream


# --- other objects: derived files, manifests, exports (write-once) ---------------------


def object_put(
    key: str,
    data: BytesLike | Readable,
    *,
    content_type: str = DEFAULT_CONTENT_TYPE,
    size: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> PutResult:
    """Write `data` (bytes or a readable stream) at `key` unless an object is there.

    For keys from storage.keys other than blobs (derived/, manifests/, exports/), whose
    content is fixed by the key. Write-once: when the object exists nothing is read or
    written and the result (created=False) describes the stored object; its sha256 is
    the one recorded at write time ("" for an object this module did not write). Two
    writers racing on a missing key may both write; the last complete write wins.

    The SHA-256 of the content is recorded in the object's metadata ("sha256", see
    object_stat) and verified during the upload, like `size` when given. `metadata` adds
    user metadata (names of lower-case letters, digits and '-'; printable ASCII values).
    Raises ValueError on a malformed or blobs/ key or bad metadata; ContentMismatch when
    the stream does not match `size`; StorageUnavailable when the store cannot be used;
    StorageError on other failures.
    """
    _check_key(key)
    if key.startswith(BLOBS_ROOT):
        raise ValueError(f"{key!r} is a blob key: store blobs with blob_put_bytes/blob_put_stream")
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    user_metadata = _user_metadata(metadata)
    existing = _stat_or_none(key)
    if existing is not None:
        return PutResult(
            sha256=existing.metadata.get(SHA256_METADATA, ""),
            size=existing.size,
            key=key,
            created=False,
            content_type=existing.content_type,
        )

    def upload(source: Readable, digest: str, actual_size: int) -> PutResult:
        if size is not None and actual_size != size:
            raise ContentMismatch(f"content has {actual_size} bytes; {size} were declared")
        _upload(
            key,
            source,
            sha256=digest,
            size=actual_size,
            content_type=content_type,
            metadata={**user_metadata, SHA256_METADATA: digest},
        )
        return PutResult(
            sha256=digest, size=actual_size, key=key, created=True, content_type=content_type
        )

    if isinstance(data, bytes | bytearray | memoryview):
        payload = _as_bytes(data)
        return upload(io.BytesIO(payload), hashlib.sha256(payload).hexdigest(), len(payload))
    with _hashed(data) as (source, digest, actual_size):
        return upload(source, digest, actual_size)


def object_exists(key: str) -> bool:
    """Return whether an object is stored at `key`.

    Raises StorageUnavailable when the store cannot be used, ValueError on a malformed key.
    """
    return _stat_or_none(_check_key(key)) is not None


def object_stat(key: str) -> ObjectInfo:
    """Return what the store knows about the object at `key` (size, etag, type, date,
    user metadata).

    Raises ObjectNotFound when nothing is there, StorageUnavailable when the store cannot
    be used, ValueError on a malformed key.
    """
    return _stat(_check_key(key))


class _ResponseStream(io.RawIOBase):
    """The body of a GET, as a raw stream whose read errors are storage errors."""

    def __init__(self, response: Any, key: str) -> None:
        super().__init__()
        self._response = response
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with translate_errors(key=self._key):
            return int(self._response.readinto(buffer))


@contextmanager
def object_open(key: str, *, offset: int = 0, length: int | None = None) -> Iterator[BinaryIO]:
    """Open the object at `key` for reading, as a context manager.

    Yields a buffered binary stream of the whole object, or of `length` bytes from
    `offset`, read straight from the store; leaving the block closes it and frees the
    connection. Raises ObjectNotFound when nothing is there, StorageUnavailable when the
    store cannot be used (on open or while reading), ValueError on a malformed key or
    range.
    """
    _check_key(key)
    if offset < 0 or (length is not None and length <= 0):
        raise ValueError(f"invalid range: offset={offset}, length={length}")
    with translate_errors(key=key):
        response = get_client().get_object(_bucket(), key, offset=offset, length=length or 0)
    stream = io.BufferedReader(_ResponseStream(response, key), buffer_size=CHUNK_SIZE)
    try:
        yield cast(BinaryIO, stream)
    finally:
        stream.close()
        # A body left unread cannot share its connection: close() drops it, and
        # release_conn() hands the pool slot back either way.
        response.close()
        response.release_conn()


# --- presigned URLs ---------------------------------------------------------------------


def object_chunks(key: str, *, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The object's bytes in chunks of at most `chunk` bytes, read as they are consumed
    (a streaming response). Raises like object_open, at the first chunk."""
    with object_open(key) as stream:
        while block := stream.read(chunk):
            yield block


def presign_get(
    key: str,
    *,
    expires: int | timedelta | None = None,
    filename: str | None = None,
    content_type: str | None = None,
) -> str:
    """Return a URL that lets its holder GET the object at `key` until it expires.

    `expires` is seconds or a timedelta (default S3_PRESIGN_EXPIRY, 1 s to 7 days). With
    `filename` the download is served as an attachment of that name; with `content_type`
    under that type. The URL points at S3_PUBLIC_ENDPOINT when set. Signing is offline:
    no request is made and the object's existence is not checked (the holder gets 404).
    A hash is not a permission: check access to the item or task before calling this.
    Raises ValueError on a malformed key or an expiry out of range.
    """
    _check_key(key)
    if expires is None:
        expires = int(settings.S3_PRESIGN_EXPIRY)
    seconds = expires.total_seconds() if isinstance(expires, timedelta) else expires
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"expires must be 1 s to 7 days, not {seconds} s")
    response_headers: dict[str, str] = {}
    if filename:
        disposition = content_disposition_header(as_attachment=True, filename=filename)
        if disposition:
            response_headers["response-content-disposition"] = disposition
    if content_type:
        response_headers["response-content-type"] = content_type
    with translate_errors(key=key):
        return get_presign_client().presigned_get_object(
            _bucket(),
            key,
            expires=timedelta(seconds=seconds),
            response_headers=cast(Any, response_headers) or None,
        )


def staging_delete(prefix: str) -> int:
    """Delete every object under a staging prefix (storage.keys.staging_prefix); return
    how many were deleted.

    Only staging/ may be deleted: blobs, manifests and exports are never removed here.
    Idempotent (an empty prefix deletes nothing). Lists page by page, so memory does not
    grow with the number of objects. Raises ValueError for any other prefix and
    StorageUnavailable when the store cannot be used.
    """
    if not prefix.startswith(STAGING_PREFIX) or not prefix.endswith("/") or ".." in prefix:
        raise ValueError(f"{prefix!r} is not a staging prefix")
    client = get_client()
    deleted = 0

    def names() -> Iterator[DeleteObject]:
        nonlocal deleted
        for obj in client.list_objects(_bucket(), prefix=prefix, recursive=True):
            deleted += 1
            yield DeleteObject(obj.object_name)

    with translate_errors(key=prefix):
        # remove_objects is lazy (batches of 1,000) and yields only the failures.
        for error in client.remove_objects(_bucket(), names()):
            raise StorageError(f"could not delete {error.name}: {error.message}")
    return deleted
