"""S3 imports: every object under a bucket prefix, on our endpoint or another one, read
with credentials given for the import (through storage.remote; datasets never imports
minio).

An endpoint other than ours is a user-chosen address, so it gets the URL imports'
policy: its host is resolved here, refused when not public unless inside
IMPORT_URL_ALLOWED_NETWORKS, and every connection goes to the checked address.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.files import removed_on_error
from datasets.sources.net import AddressRefused, pinned_pool_classes, resolve_checked
from datasets.sources.types import (
    ImportLimits,
    PlannedEntry,
    Rejection,
    SourceEntry,
    format_bytes,
    is_os_junk,
    name_problem,
)
from storage.errors import ObjectNotFound, StorageError, StorageUnavailable
from storage.remote import (
    ObjectTooLarge,
    PoolClasses,
    RemoteAccessDenied,
    parse_endpoint,
    remote_download,
    remote_list,
)

# Seconds to resolve an endpoint's host name.
RESOLVE_TIMEOUT = 10.0


@dataclass(frozen=True)
class S3Source:
    """Where an S3 import reads: endpoint (None: ours), bucket, prefix, and the
    credentials given for it (never in repr; store them with datasets.secrets)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    secure: bool | None = None
    region: str | None = None
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], credentials: Mapping[str, str] | None = None
    ) -> S3Source:
        """Build from Import.options (bucket, prefix, endpoint, secure, region) and the
        decrypted Import.secret (access_key, secret_key). Raises InvalidImport on a
        missing bucket or a value of the wrong type."""
        bucket = options.get("bucket")
        if not isinstance(bucket, str) or not bucket.strip():
            raise InvalidImport("an S3 import needs a bucket", field="bucket")
        values: dict[str, Any] = {}
        for name in ("prefix", "endpoint", "region"):
            value = options.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidImport(f"{name} must be a string", field=name)
            values[name] = value.strip() if isinstance(value, str) and value.strip() else None
        secure = options.get("secure")
        if secure is not None and not isinstance(secure, bool):
            raise InvalidImport("secure must be true or false", field="secure")
        credentials = credentials or {}
        return cls(
            bucket=bucket.strip(),
            prefix=values["prefix"] or "",
            endpoint=values["endpoint"],
            secure=secure,
            region=values["region"],
            access_key=str(credentials.get("access_key", "")),
            secret_key=str(credentials.get("secret_key", "")),
        )

    @property
    def folder(self) -> str:
        """The prefix as a folder: no leading "/", one trailing "/" ("" for the bucket).

        A prefix names a folder here, so "photos" does not also take "photos2/".
        """
        prefix = self.prefix.strip().lstrip("/")
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def is_ours(self) -> bool:
        """Whether the endpoint is our configured one (None, or S3_ENDPOINT spelled out)."""
        return self.endpoint is None or self.endpoint == settings.S3_ENDPOINT


def _remote_args(source: S3Source, *, limits: ImportLimits) -> dict[str, Any]:
    """The keyword arguments of storage.remote for `source`; for an endpoint other than
    ours, with connections pinned to its checked address.

    Raises ValueError (malformed endpoint), AddressRefused.
    """
    pool_classes: PoolClasses | None = None
    endpoint = None if source.is_ours() else source.endpoint
    netloc, secure = parse_endpoint(endpoint, secure=source.secure)
    if endpoint is not None:
        parts = urllib.parse.urlsplit(f"//{netloc}")
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        address = resolve_checked(
            host, port, allowed=limits.allowed_networks, timeout=RESOLVE_TIMEOUT
        )[0]
        pool_classes = pinned_pool_classes(address)
    return {
        "endpoint": None if endpoint is None else netloc,
        "secure": secure,
        "region": source.region,
        "access_key": source.access_key,
        "secret_key": source.secret_key,
        "bucket": source.bucket,
        "pool_classes": pool_classes,
    }


def s3_plan(source: S3Source, *, limits: ImportLimits | None = None) -> Iterator[PlannedEntry]:
    """Yield a SourceEntry (name: the key relative to the prefix; ref: the key) or a
    Rejection per object under the prefix, in key order.

    Lists page by page as it is consumed: memory is one page of keys. Objects over
    IMPORT_MAX_FILE_BYTES (by the listed size) are refused; folder markers and macOS
    clutter are skipped. Raises InvalidImport when the endpoint is malformed or refused,
    the bucket does not exist, or the credentials are refused; StorageUnavailable when
    the endpoint is unreachable (transient: retry the planning).
    """
    limits = limits or ImportLimits.from_settings()
    folder = source.folder
    try:
        args = _remote_args(source, limits=limits)
        for key, size in remote_list(prefix=folder, **args):
            entry = _plan_key(key, size, folder=folder, limits=limits)
            if entry is not None:
                yield entry
    except ValueError as exc:
        raise InvalidImport(str(exc), field="endpoint") from None
    except AddressRefused as exc:
        raise InvalidImport(f"S3 endpoint: {exc}", field="endpoint") from None
    except RemoteAccessDenied as exc:
        raise InvalidImport(str(exc)) from None
    except ObjectNotFound as exc:
        raise InvalidImport(str(exc), field="bucket") from None
    except StorageUnavailable:
        raise
    except StorageError as exc:
        raise InvalidImport(str(exc)) from None


def _plan_key(key: str, size: int, *, folder: str, limits: ImportLimits) -> PlannedEntry | None:
    name = key[len(folder) :] if key.startswith(folder) else key
    if is_os_junk(name.rsplit("/", 1)[-1]):
        return None
    problem = name_problem(name)
    if problem:
        return Rejection(name, problem)
    if size > limits.max_file_bytes:
        return Rejection(
            name,
            f"file is {format_bytes(size)}, over the per-file limit of "
            f"{format_bytes(limits.max_file_bytes)}",
        )
    return SourceEntry(name=name, ref=key)


def s3_fetch(
    source: S3Source, key: str, dest_path: Path, *, limits: ImportLimits | None = None
) -> int:
    """Download the object `key` (an entry's ref) to `dest_path`; return the bytes written.

    Streams 1 MiB at a time and stops past IMPORT_MAX_FILE_BYTES. Raises FileRejected
    when the object is gone, over the limit, or refused by the store, or when the
    endpoint now resolves to a refused address; StorageUnavailable when the store is
    unreachable or refuses the credentials (transient: the chunk is retried).
    `dest_path` is absent after any error.
    """
    limits = limits or ImportLimits.from_settings()
    with removed_on_error(dest_path):
        return _download(source, key, dest_path, limits=limits)


def _download(source: S3Source, key: str, dest_path: Path, *, limits: ImportLimits) -> int:
    try:
        args = _remote_args(source, limits=limits)
        return remote_download(
            key=key, dest_path=dest_path, max_bytes=limits.max_file_bytes, **args
        )
    except (ValueError, AddressRefused) as exc:
        raise FileRejected(f"S3 endpoint: {exc}") from None
    except ObjectTooLarge:
        raise FileRejected(
            f"file is over the per-file limit of {format_bytes(limits.max_file_bytes)}"
        ) from None
    except ObjectNotFound:
        raise FileRejected("the object no longer exists in the bucket") from None
    except StorageUnavailable:
        raise
    except StorageError as exc:
        raise FileRejected(str(exc)) from None
