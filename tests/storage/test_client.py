"""The client: settings, bootstrap, readiness, and StorageUnavailable (never a minio or
urllib3 error) when the store is down, silent or refuses us, quickly."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from storage import client as storage_client
from storage import services
from storage.errors import StorageUnavailable
from storage.keys import blob_key, derived_key

SHA = hashlib.sha256(b"labelvault").hexdigest()
# A dead endpoint must fail this fast (three quick attempts), not after minutes.
QUICK_SECONDS = 5.0


def every_operation():
    """One call of each public function that talks to the store."""
    return {
        "blob_put_bytes": lambda: services.blob_put_bytes(b"payload"),
        "blob_put_stream": lambda: services.blob_put_stream(io.BytesIO(b"payload")),
        "blob_exists": lambda: services.blob_exists(SHA),
        "blob_stat": lambda: services.blob_stat(SHA),
        "blob_open": lambda: services.blob_open(SHA).__enter__(),
        "object_put": lambda: services.object_put(derived_key("thumbnail", SHA), b"x"),
        "ping": lambda: storage_client.ping(),
        "bucket_ensure": storage_client.bucket_ensure,
    }


def assert_unavailable_quickly(call, match: str) -> StorageUnavailable:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=match) as caught:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < QUICK_SECONDS, f"took {elapsed:.1f}s"
    return caught.value


@pytest.mark.parametrize("operation", list(every_operation()))
def test_stopped_endpoint_is_unavailable_quickly(s3_settings, closed_port, operation):
    s3_settings.S3_ENDPOINT = f"127.0.0.1:{closed_port}"
    storage_client.reset_client()

    error = assert_unavailable_quickly(every_operation()[operation], "unreachable")

    assert str(error) == (
        f"object store at 127.0.0.1:{closed_port} is unreachable (connection refused)"
    )
    assert isinstance(error, ConnectionError)  # job runners retry it as transient


@pytest.mark.parametrize("operation", ["blob_put_bytes", "blob_stat", "ping"])
def test_silent_endpoint_times_out_quickly(s3_settings, silent_port, operation):
    s3_settings.S3_ENDPOINT = f"127.0.0.1:{silent_port}"
    s3_settings.S3_TIMEOUT = 0.5
    storage_client.reset_client()

    error = assert_unavailable_quickly(every_operation()[operation], "timed out")

    assert f"127.0.0.1:{silent_port}" in str(error)


def test_ping_has_its_own_timeout(s3_settings, silent_port):
    s3_settings.S3_ENDPOINT = f"127.0.0.1:{silent_port}"
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="timed out"):
        storage_client.ping(timeout=0.3)
    assert time.monotonic() - started < 1.5  # one attempt, no retries


@pytest.mark.parametrize("operation", list(every_operation()))
@pytest.mark.parametrize(
    ("setting", "codes"),
    [
        ("S3_ACCESS_KEY", "InvalidAccessKeyId|AccessDenied"),
        ("S3_SECRET_KEY", "SignatureDoesNotMatch|AccessDenied"),
    ],
)
def test_wrong_credentials_are_unavailable_quickly(s3_settings, setting, codes, operation):
    setattr(s3_settings, setting, "wrong-" + secrets.token_hex(8))
    storage_client.reset_client()

    error = assert_unavailable_quickly(every_operation()[operation], "refused the credentials")

    assert str(error).startswith(
        f"object store at {settings.S3_ENDPOINT} refused the credentials ("
    )
    assert re.search(codes, str(error))
    assert settings.S3_SECRET_KEY not in str(error)


def test_missing_bucket_is_unavailable_with_a_hint(s3_settings):
    # Reads only: SeaweedFS (unlike MinIO) creates a missing bucket on the first PUT.
    s3_settings.S3_BUCKET = "lv-missing-" + secrets.token_hex(4)
    for call in (lambda: services.blob_open(SHA).__enter__(), storage_client.ping):
        error = assert_unavailable_quickly(call, "does not exist")
        assert repr(s3_settings.S3_BUCKET) in str(error)
        assert "storage_bootstrap" in str(error)


class BadGatewayHandler(http.server.BaseHTTPRequestHandler):
    """What a proxy in front of a dead store answers: 502 with an HTML page."""

    def _answer(self, body: bool) -> None:
        page = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if body:
            self.wfile.write(page)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def bad_gateway() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadGatewayHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("operation", ["blob_stat", "blob_open", "ping"])
def test_a_failing_proxy_is_unavailable(s3_settings, bad_gateway, operation):
    s3_settings.S3_ENDPOINT = bad_gateway
    error = assert_unavailable_quickly(every_operation()[operation], bad_gateway)
    assert "502" in str(error) or "did not answer like an S3 server" in str(error)


def test_changing_an_s3_setting_drops_the_cached_client(s3_settings, closed_port):
    before = storage_client.get_client()
    assert storage_client.get_client() is before
    s3_settings.S3_ENDPOINT = f"127.0.0.1:{closed_port}"  # no explicit reset_client()
    assert storage_client.get_client() is not before
    with pytest.raises(StorageUnavailable):
        services.blob_exists(SHA)


def test_get_client_builds_one_client_across_threads():
    storage_client.reset_client()
    seen = []
    barrier = threading.Barrier(16)

    def grab():
        barrier.wait()
        seen.append(storage_client.get_client())

    threads = [threading.Thread(target=grab) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in seen}) == 1


def test_client_has_timeouts_and_few_retries():
    pool = storage_client.get_client()._http
    timeout = pool.connection_pool_kw["timeout"]
    assert timeout.connect_timeout == settings.S3_TIMEOUT
    assert timeout.read_timeout == settings.S3_TIMEOUT
    assert pool.connection_pool_kw["retries"].total == storage_client.RETRIES


def test_ping_succeeds_against_the_live_server():
    storage_client.ping()


def test_storage_bootstrap_creates_the_bucket_once(s3_settings):
    s3_settings.S3_BUCKET = "lv-boot-" + secrets.token_hex(4)
    try:
        out = io.StringIO()
        call_command("storage_bootstrap", stdout=out)
        assert f"created bucket '{s3_settings.S3_BUCKET}'" in out.getvalue()

        out = io.StringIO()
        call_command("storage_bootstrap", stdout=out)
        assert "already exists" in out.getvalue()

        storage_client.ping()
        assert services.blob_put_bytes(b"in the new bucket").created
        assert storage_client.bucket_ensure() is False
    finally:
        client = storage_client.get_client()
        for obj in client.list_objects(s3_settings.S3_BUCKET, recursive=True):
            client.remove_object(s3_settings.S3_BUCKET, obj.object_name)
        client.remove_bucket(s3_settings.S3_BUCKET)


def test_storage_bootstrap_fails_clearly_when_unreachable(s3_settings, closed_port):
    s3_settings.S3_ENDPOINT = f"127.0.0.1:{closed_port}"
    with pytest.raises(CommandError, match=f"127.0.0.1:{closed_port} is unreachable"):
        call_command("storage_bootstrap")


def test_storage_bootstrap_exits_non_zero_from_the_shell(closed_port):
    env = {**os.environ, "S3_ENDPOINT": f"127.0.0.1:{closed_port}"}
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    completed = subprocess.run(
        [sys.executable, str(manage), "storage_bootstrap"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert f"object store at 127.0.0.1:{closed_port} is unreachable" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_blob_key_matches_the_layout():
    assert services.blob_put_bytes(b"layout").key == blob_key(hashlib.sha256(b"layout").hexdigest())
