"""Read another S3 bucket, on our endpoint or any other, with credentials given for one
call (an import's): list a prefix and download objects to local files.

Nothing here is cached: a client is built per call from the arguments, never from the
S3_* credentials, and dropped after it. Failures arrive as storage.errors, with messages
naming the endpoint and bucket, never the credentials:
- RemoteAccessDenied (a StorageUnavailable): the endpoint refused the credentials;
- StorageUnavailable: unreachable, timed out, answering 5xx or not speaking S3;
- ObjectNotFound: no such bucket, or no such key;
- ObjectTooLarge: a download passed its byte limit (nothing is left on disk);
- StorageError: any other S3 error (an invalid bucket name ...).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.connectionpool import HTTPConnectionPool

from storage.client import (
    CREDENTIAL_CODES,
    POOL_MAXSIZE,
    RETRIES,
    RETRY_BACKOFF_FACTOR,
    RETRY_STATUSES,
    TRANSIENT_CODES,
    _network_reason,
)
from storage.errors import ObjectNotFound, StorageError, StorageUnavailable

# Read size of downloads: few system calls, no memory worth counting.
CHUNK_SIZE = 1024 * 1024

PoolClasses = Mapping[str, type[HTTPConnectionPool]]


class RemoteAccessDenied(StorageUnavailable):
    """The endpoint refused the credentials given (wrong keys, or no right to the bucket).

    A StorageUnavailable like our own store's refusals; callers planning an import turn
    it into a message for the user, since retrying will not help.
    """

    code = "remote_access_denied"


class ObjectTooLarge(StorageError):
    """A download passed the byte limit it was given; nothing was kept."""

    code = "object_too_large"


def parse_endpoint(endpoint: str | None, *, secure: bool | None = None) -> tuple[str, bool]:
    """Return (host:port, secure) for an endpoint given as "host[:port]" or
    "http(s)://host[:port]"; None means S3_ENDPOINT and S3_SECURE.

    Without a scheme, `secure` decides (default: True, HTTPS, for an endpoint other than
    ours). Raises ValueError for anything else (a path, another scheme, no host).
    """
    if endpoint is None:
        return settings.S3_ENDPOINT, settings.S3_SECURE if secure is None else secure
    value = endpoint.strip()
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"S3 endpoint must be http(s)://host:port, not {endpoint!r}")
        if parts.path.strip("/") or parts.query or parts.username:
            raise ValueError(f"S3 endpoint must be host:port without path or user: {endpoint!r}")
        value, scheme_secure = parts.netloc, parts.scheme == "https"
        secure = scheme_secure if secure is None else secure
    if not value or "/" in value or "@" in value:
        raise ValueError(f"S3 endpoint must be host:port, not {endpoint!r}")
    try:
        port = urlsplit(f"//{value}").port
    except ValueError:
        raise ValueError(f"S3 endpoint has an invalid port: {endpoint!r}") from None
    if port == 0:
        raise ValueError(f"S3 endpoint has an invalid port: {endpoint!r}")
    return value, True if secure is None else secure


def _label(endpoint: str) -> str:
    return f"object store at {endpoint}"


def _client(
    *,
    endpoint: str | None,
    access_key: str,
    secret_key: str,
    secure: bool | None,
    region: str | None,
    pool_classes: PoolClasses | None,
) -> tuple[Minio, str]:
    netloc, use_tls = parse_endpoint(endpoint, secure=secure)
    if endpoint is None and region is None:
        region = settings.S3_REGION
    timeout = float(settings.S3_TIMEOUT)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        maxsize=POOL_MAXSIZE,
        cert_reqs="CERT_REQUIRED",
        retries=urllib3.Retry(
            total=RETRIES,
            backoff_factor=RETRY_BACKOFF_FACTOR,
            status_forcelist=RETRY_STATUSES,
            raise_on_status=False,
            # An S3 endpoint answers a wrong region with an error, not a redirect: a 3xx
            # goes back to minio as it is, never followed to another host.
            redirect=0,
            raise_on_redirect=False,
        ),
    )
    if pool_classes is not None:
        # The caller's connection classes (e.g. pinned to a checked address).
        http.pool_classes_by_scheme = dict(pool_classes)  # type: ignore[assignment]
    client = Minio(
        netloc,
        access_key=access_key or None,  # both empty: anonymous requests (public buckets)
        secret_key=secret_key or None,
        secure=use_tls,
        region=region or None,
        http_client=http,
    )
    return client, netloc


@contextlib.contextmanager
def _translate(endpoint: str, bucket: str, key: str | None = None) -> Iterator[None]:
    """Turn minio and urllib3 failures into storage errors naming endpoint and bucket."""
    label = _label(endpoint)
    try:
        yield
    except StorageError:
        raise
    except S3Error as exc:
        code = exc.code or "unknown"
        if code == "NoSuchBucket":
            raise ObjectNotFound(f"bucket {bucket!r} does not exist at the {label}") from exc
        if code == "NoSuchKey":
            raise ObjectNotFound(f"no object {key!r} in bucket {bucket!r} at the {label}") from exc
        if code in CREDENTIAL_CODES:
            raise RemoteAccessDenied(
                f"the {label} refused the credentials for bucket {bucket!r} ({code})"
            ) from exc
        if code in TRANSIENT_CODES:
            raise StorageUnavailable(f"the {label} is unavailable ({code})") from exc
        raise StorageError(
            f"the {label} rejected a request on bucket {bucket!r} ({code}: {exc.message})"
        ) from exc
    except ServerError as exc:
        raise StorageUnavailable(f"the {label} failed with HTTP status {exc.status_code}") from exc
    except InvalidResponseError as exc:
        raise StorageUnavailable(f"the {label} answered without an S3 error body") from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(f"the {label} is unreachable ({_network_reason(exc)})") from exc


def remote_list(
    *,
    endpoint: str | None,
    access_key: str,
    secret_key: str,
    bucket: str,
    prefix: str = "",
    secure: bool | None = None,
    region: str | None = None,
    pool_classes: PoolClasses | None = None,
) -> Iterator[tuple[str, int]]:
    """Yield (key, size) for every object under `prefix` in `bucket`, in key order.

    `endpoint` None means ours (S3_ENDPOINT, S3_SECURE, S3_REGION), still with the
    credentials given; empty credentials make anonymous requests. Pages through the
    listing (1,000 keys a request) as the caller consumes it, so memory is one page
    whatever the bucket holds. Folder markers (keys ending in "/") are left out.
    `pool_classes` replaces urllib3's pool classes per scheme (connection pinning).
    Raises (possibly mid-iteration) the errors of the module docstring, and ValueError
    for a malformed endpoint or bucket name.
    """
    client, netloc = _client(
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        pool_classes=pool_classes,
    )
    with _translate(netloc, bucket):
        for obj in client.list_objects(bucket, prefix=prefix or None, recursive=True):
            name = obj.object_name
            if not name or obj.is_dir or name.endswith("/"):
                continue
            yield name, int(obj.size or 0)


def remote_download(
    *,
    endpoint: str | None,
    access_key: str,
    secret_key: str,
    bucket: str,
    key: str,
    dest_path: Path,
    max_bytes: int,
    secure: bool | None = None,
    region: str | None = None,
    pool_classes: PoolClasses | None = None,
) -> int:
    """Stream the object `key` of `bucket` to `dest_path`; return the bytes written.

    Reads 1 MiB at a time and stops as soon as more than `max_bytes` arrived (or the
    declared length is over it), raising ObjectTooLarge. On any error `dest_path` is
    removed: nothing partial is left. Other errors as in the module docstring; ValueError
    for a malformed endpoint, bucket name or key.
    """
    client, netloc = _client(
        endpoint=endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=secure,
        region=region,
        pool_classes=pool_classes,
    )
    too_large = f"object {key!r} is over the limit of {max_bytes:,} bytes"
    with _translate(netloc, bucket, key):
        response: Any = client.get_object(bucket, key)
    try:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise ObjectTooLarge(too_large)
        written = 0
        with open(dest_path, "wb") as out:
            while True:
                with _translate(netloc, bucket, key):
                    chunk = response.read(CHUNK_SIZE)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise ObjectTooLarge(too_large)
                out.write(chunk)
        return written
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest_path)
        raise
    finally:
        response.close()
        response.release_conn()
