"""Session-wide test infrastructure: a real SeaweedFS S3 server on free ports.

The database is whatever DATABASE_URL names (PostgreSQL in CI, SQLite otherwise; see
the Makefile), the broker whatever CELERY_BROKER_URL names. The S3 server is always
real: started here once per session on free ports and stopped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from storage.embedded import SeaweedServer


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A live SeaweedFS S3 gateway with fresh credentials, for the whole session."""
    data_dir = Path(tmp_path_factory.mktemp("seaweedfs"))
    server = SeaweedServer(
        data_dir=data_dir,
        access_key="lv-test-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(24),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _s3_settings(s3_server: SeaweedServer) -> Iterator[None]:
    """Point settings (and any process a test starts) at the session's S3 server."""
    values = {
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "S3_BUCKET": "lv-test-" + secrets.token_hex(4),
        "S3_SECURE": False,
        "S3_PUBLIC_ENDPOINT": "",
    }
    saved_settings = {name: getattr(settings, name) for name in values}
    saved_env = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
        os.environ[name] = "1" if value is True else "0" if value is False else str(value)
    from storage import client as storage_client

    storage_client.reset_client()
    storage_client.bucket_ensure()
    try:
        yield
    finally:
        for name, value in saved_settings.items():
            setattr(settings, name, value)
        for name, env_value in saved_env.items():
            if env_value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = env_value
        storage_client.reset_client()
