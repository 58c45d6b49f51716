"""The minio clients, built lazily from settings (S3_*), bucket bootstrap, the readiness
ping, and the translation of minio/urllib3 failures into storage errors.

Clients are cached per process (minio's client is thread-safe but must not cross a
fork, so a child process builds its own) and dropped by `reset_client()`, which runs by
itself whenever a test or `override_settings` changes an S3_* setting.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from storage.errors import ObjectNotFound, StorageError, StorageUnavailable

# Two retries (three attempts; urllib3 waits 0 s then 0.4 s) for refused connections,
# timeouts and 5xx answers: a blip is absorbed, while a dead endpoint fails in about a
# second instead of minio's default of 5 retries with 5-minute timeouts.
RETRIES = 2
RETRY_BACKOFF_FACTOR = 0.2
RETRY_STATUSES = (500, 502, 503, 504)
# Connections kept open per host, minio's default.
POOL_MAXSIZE = 10
DEFAULT_PING_TIMEOUT = 2.0

# S3 error codes that mean "we may not use this store as configured".
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
    }
)
# S3 error codes that mean "the store is struggling; try again later".
TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
)

_lock = threading.Lock()
_clients: dict[str, Minio] = {}
_clients_pid = os.getpid()


def _build_client(*, endpoint: str, secure: bool, timeout: float, retries: int) -> Minio:
    """Build a minio client whose HTTP pool has our timeouts and retries.

    The pool uses the system trust store (and SSL_CERT_FILE, which OpenSSL honours) so a
    private CA installed on the host works for TLS endpoints.
    """
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        maxsize=POOL_MAXSIZE,
        cert_reqs="CERT_REQUIRED",
        retries=urllib3.Retry(
            total=retries,
            backoff_factor=RETRY_BACKOFF_FACTOR,
            status_forcelist=RETRY_STATUSES,
            # Hand the last 5xx answer to minio, which parses the S3 error code from it.
            raise_on_status=False,
        ),
    )
    return Minio(
        endpoint,
        access_key=settings.S3_ACCESS_KEY,
        secret_key=settings.S3_SECRET_KEY,
        secure=secure,
        # With the region known, minio never asks the server for a bucket's location, so
        # presigning stays an offline computation.
        region=settings.S3_REGION,
        http_client=http,
    )


def _cached(name: str, build: Callable[[], Minio]) -> Minio:
    global _clients_pid
    client = _clients.get(name)
    if client is not None and _clients_pid == os.getpid():
        return client
    with _lock:
        if _clients_pid != os.getpid():
            # Forked (a Celery prefork child): the parent's sockets are not ours to use.
            _clients.clear()
            _clients_pid = os.getpid()
        client = _clients.get(name)
        if client is None:
            client = build()
            _clients[name] = client
        return client


def get_client() -> Minio:
    """Return the process's client for S3_ENDPOINT, building it on first use.

    Thread-safe; makes no network call.
    """
    return _cached(
        "default",
        lambda: _build_client(
            endpoint=settings.S3_ENDPOINT,
            secure=settings.S3_SECURE,
            timeout=settings.S3_TIMEOUT,
            retries=RETRIES,
        ),
    )


def _public_endpoint() -> tuple[str, bool]:
    """Parse S3_PUBLIC_ENDPOINT: "host:port" (scheme from S3_SECURE) or an http(s) URL."""
    value = settings.S3_PUBLIC_ENDPOINT.strip()
    if "://" not in value:
        return value, settings.S3_SECURE
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
        raise ImproperlyConfigured(
            f"S3_PUBLIC_ENDPOINT must be host:port or http(s)://host:port, not {value!r}"
        )
    return parts.netloc, parts.scheme == "https"


def get_presign_client() -> Minio:
    """Return the client that signs URLs for browsers and API clients.

    The one for S3_PUBLIC_ENDPOINT when that is set (the address outside a container
    network), else the ordinary client. Signing needs no network call.
    """
    if not settings.S3_PUBLIC_ENDPOINT.strip():
        return get_client()

    def build() -> Minio:
        endpoint, secure = _public_endpoint()
        return _build_client(
            endpoint=endpoint, secure=secure, timeout=settings.S3_TIMEOUT, retries=RETRIES
        )

    return _cached("presign", build)


def reset_client() -> None:
    """Drop every cached client, so the next call builds new ones from current settings."""
    with _lock:
        _clients.clear()


@receiver(setting_changed)
def _reset_on_s3_setting(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("S3_"):
        reset_client()


def endpoint_label() -> str:
    """Return how messages name the store: "object store at host:port"."""
    return f"object store at {settings.S3_ENDPOINT}"


def _bucket_missing_message() -> str:
    return (
        f"bucket {settings.S3_BUCKET!r} does not exist at the {endpoint_label()} "
        "(create it with `python manage.py storage_bootstrap`)"
    )


def _network_reason(exc: BaseException) -> str:
    """Say in a few words why a request got no answer."""
    reason: BaseException | None = exc.reason if isinstance(exc, MaxRetryError) else exc
    if isinstance(reason, NameResolutionError):
        return "cannot resolve its host name"
    # NewConnectionError subclasses ConnectTimeoutError, so it goes first.
    if isinstance(reason, NewConnectionError):
        cause: BaseException | None = reason
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect: {reason}"
    if isinstance(reason, ConnectTimeoutError):
        return "timed out connecting"
    if isinstance(reason, ReadTimeoutError | TimeoutError):
        return "timed out waiting for an answer"
    if isinstance(reason, ProtocolError | ConnectionError):
        return "connection dropped"
    return str(reason)


def _from_s3_error(exc: S3Error, key: str | None) -> StorageError:
    code = exc.code or "unknown"
    if code == "NoSuchKey":
        return ObjectNotFound(f"no object at {key or exc.object_name!r} in {settings.S3_BUCKET!r}")
    if code == "NoSuchBucket":
        return StorageUnavailable(_bucket_missing_message())
    if code in CREDENTIAL_CODES:
        return StorageUnavailable(f"{endpoint_label()} refused the credentials ({code})")
    if code in TRANSIENT_CODES:
        return StorageUnavailable(f"{endpoint_label()} is unavailable ({code}: {exc.message})")
    target = f"{key!r}" if key else f"bucket {settings.S3_BUCKET!r}"
    return StorageError(
        f"{endpoint_label()} rejected a request on {target} ({code}: {exc.message})"
    )


@contextmanager
def translate_errors(*, key: str | None = None) -> Iterator[None]:
    """Turn minio and urllib3 failures inside the block into storage errors.

    Unreachable endpoint, timeouts, refused credentials, a missing bucket, 5xx answers
    and non-S3 answers become StorageUnavailable; NoSuchKey becomes ObjectNotFound; any
    other S3 error becomes StorageError. `key` names the object in messages.
    """
    try:
        yield
    except StorageError:
        raise
    except S3Error as exc:
        raise _from_s3_error(exc, key) from exc
    except ServerError as exc:
        raise StorageUnavailable(
            f"{endpoint_label()} failed with HTTP status {exc.status_code}"
        ) from exc
    except InvalidResponseError as exc:
        status = getattr(exc, "_code", None)  # minio keeps the HTTP status private
        answered = f"answered HTTP {status}" if status else "answered"
        raise StorageUnavailable(
            f"{endpoint_label()} {answered} without an S3 error (is S3_ENDPOINT right?)"
        ) from exc
    except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(
            f"{endpoint_label()} is unreachable ({_network_reason(exc)})"
        ) from exc


def bucket_ensure() -> bool:
    """Create the bucket S3_BUCKET if it is missing; return whether it was created.

    Idempotent, and safe when several processes race to create it. For start-up and the
    `storage_bootstrap` command only, never the request path. Raises StorageUnavailable
    when the store is unreachable or refuses the credentials.
    """
    client = get_client()
    bucket = settings.S3_BUCKET
    with translate_errors():
        if client.bucket_exists(bucket):
            return False
        try:
            client.make_bucket(bucket)
        except S3Error as exc:
            already = exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
            if already and client.bucket_exists(bucket):  # another process won the race
                return False
            raise
    return True


def ping(*, timeout: float = DEFAULT_PING_TIMEOUT) -> None:
    """Check that the store answers within `timeout` seconds and the bucket exists.

    One request (HEAD bucket) without retries, for readiness probes. Returns None when
    all is well; raises StorageUnavailable with a clear message otherwise.
    """
    client = _cached(
        f"ping:{timeout!r}",
        lambda: _build_client(
            endpoint=settings.S3_ENDPOINT, secure=settings.S3_SECURE, timeout=timeout, retries=0
        ),
    )
    with translate_errors():
        exists = client.bucket_exists(settings.S3_BUCKET)
    if not exists:
        raise StorageUnavailable(_bucket_missing_message())
