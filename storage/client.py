"""The minio client, built lazily from settings (S3_*), and bucket bootstrap."""

from __future__ import annotations

import threading

from django.conf import settings
from minio import Minio

from storage.errors import StorageUnavailable

_lock = threading.Lock()
_client: Minio | None = None


def get_client() -> Minio:
    global _client
    with _lock:
        if _client is None:
            _client = Minio(
                settings.S3_ENDPOINT,
                access_key=settings.S3_ACCESS_KEY,
                secret_key=settings.S3_SECRET_KEY,
                secure=settings.S3_SECURE,
                region=settings.S3_REGION,
            )
        return _client


def reset_client() -> None:
    global _client
    with _lock:
        _client = None


def bucket_ensure() -> None:
    client = get_client()
    if not client.bucket_exists(settings.S3_BUCKET):
        client.make_bucket(settings.S3_BUCKET)


def ping(*, timeout: float = 2.0) -> None:
    try:
        exists = get_client().bucket_exists(settings.S3_BUCKET)
    except Exception as exc:
        raise StorageUnavailable(str(exc)) from exc
    if not exists:
        raise StorageUnavailable(f"bucket {settings.S3_BUCKET} does not exist")
