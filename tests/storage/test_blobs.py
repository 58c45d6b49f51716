"""Content-addressed blobs against the session's real SeaweedFS server (no fakes)."""

from __future__ import annotations

import hashlib
import io
import secrets
import time
import tracemalloc

import pytest
import requests

from storage import services
from storage.client import get_client
from storage.errors import ContentMismatch, ObjectNotFound
from storage.keys import blob_key
from tests.storage.conftest import MIB, GeneratedStream, generated_sha256

BIG = 50 * 1024 * 1024  # the object size the memory tests stream


def test_put_stat_open_presign_round_trip():
    data = secrets.token_bytes(4096)
    sha = hashlib.sha256(data).hexdigest()

    result = services.blob_put_bytes(data, content_type="image/png")

    assert result.sha256 == sha
    assert result.key == blob_key(sha)
    assert result.size == len(data)
    assert result.created is True
    assert result.content_type == "image/png"
    assert services.blob_exists(sha)

    info = services.blob_stat(sha)
    assert info.key == blob_key(sha)
    assert info.size == len(data)
    assert info.content_type == "image/png"
    assert info.etag
    assert info.last_modified is not None

    with services.blob_open(sha) as stream:
        assert stream.read() == data

    url = services.presign_get(result.key, expires=60)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == "image/png"


def test_presign_sets_the_download_name_and_type():
    result = services.blob_put_bytes(secrets.token_bytes(100))

    url = services.presign_get(result.key, filename="cat 1.png", content_type="image/png")
    response = requests.get(url, timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="cat 1.png"'
    assert response.headers["Content-Type"] == "image/png"


def test_presigned_url_expires():
    result = services.blob_put_bytes(secrets.token_bytes(100))
    url = services.presign_get(result.key, expires=1)
    time.sleep(2.1)
    assert requests.get(url, timeout=10).status_code == 403


def test_presigned_url_is_refused_when_tampered_with():
    first = services.blob_put_bytes(secrets.token_bytes(100))
    second = services.blob_put_bytes(secrets.token_bytes(100))
    url = services.presign_get(first.key)
    assert requests.get(url.replace(first.sha256, second.sha256), timeout=10).status_code == 403


def test_presign_uses_the_public_endpoint(s3_settings, s3_server):
    result = services.blob_put_bytes(secrets.token_bytes(100))
    s3_settings.S3_PUBLIC_ENDPOINT = f"http://localhost:{s3_server.ports.s3}"

    url = services.presign_get(result.key)

    assert url.startswith(f"http://localhost:{s3_server.ports.s3}/")
    assert requests.get(url, timeout=10).status_code == 200


@pytest.mark.parametrize("expires", [0, -5, 7 * 24 * 3600 + 1])
def test_presign_rejects_expiry_out_of_range(expires):
    with pytest.raises(ValueError, match="expires"):
        services.presign_get(blob_key("0" * 64), expires=expires)


def test_put_of_an_existing_blob_writes_nothing():
    data = secrets.token_bytes(2048)
    first = services.blob_put_bytes(data, content_type="image/jpeg")
    before = services.blob_stat(first.sha256)
    time.sleep(1.1)  # Last-Modified has one-second resolution

    trace = io.StringIO()
    get_client().trace_on(trace)
    try:
        again_bytes = services.blob_put_bytes(data, content_type="text/plain")
        again_stream = services.blob_put_stream(io.BytesIO(data))
        again_declared = services.blob_put_stream(
            io.BytesIO(data), sha256=first.sha256, size=len(data)
        )
    finally:
        get_client().trace_off()

    for again in (again_bytes, again_stream, again_declared):
        assert again.created is False
        assert again.sha256 == first.sha256
        assert again.key == first.key
        assert again.size == len(data)
        assert again.content_type == "image/jpeg"  # what is stored, from the first put
    requests_made = [line for line in trace.getvalue().splitlines() if " HTTP/1.1" in line]
    assert requests_made, "the trace recorded nothing"
    assert all(line.startswith("HEAD ") for line in requests_made), requests_made
    after = services.blob_stat(first.sha256)
    assert (after.last_modified, after.etag) == (before.last_modified, before.etag)


def test_put_with_a_known_hash_does_not_read_the_stream_when_the_blob_exists():
    data = secrets.token_bytes(512)
    first = services.blob_put_bytes(data)
    stream = io.BytesIO(data)
    result = services.blob_put_stream(stream, sha256=first.sha256)
    assert result.created is False
    assert stream.tell() == 0


def test_empty_blob():
    result = services.blob_put_bytes(b"")
    assert result.sha256 == hashlib.sha256(b"").hexdigest()
    assert services.blob_stat(result.sha256).size == 0
    with services.blob_open(result.sha256) as stream:
        assert stream.read() == b""


def test_streaming_put_from_a_seekable_file_stores_from_its_position(tmp_path):
    data = secrets.token_bytes(300_000)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        fh.seek(1000)
        result = services.blob_put_stream(fh, content_type="application/x-test")
    assert result.sha256 == hashlib.sha256(data[1000:]).hexdigest()
    assert result.size == len(data) - 1000
    with services.blob_open(result.sha256) as stream:
        assert stream.read() == data[1000:]


def _put_big_measuring_memory(**kwargs):
    tracemalloc.start()
    try:
        result = services.blob_put_stream(**kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("hash_known", [False, True], ids=["hash-while-spooling", "hash-given"])
def test_streaming_put_of_50_mb_keeps_memory_bounded(s3_settings, seed, hash_known):
    s3_settings.S3_PART_SIZE = 5 * MIB  # S3's minimum part size; 10 parts for 50 MB
    expected_sha = generated_sha256(BIG, seed=seed)

    result, peak = _put_big_measuring_memory(
        fileobj=GeneratedStream(BIG, seed=seed),
        content_type="application/octet-stream",
        sha256=expected_sha if hash_known else None,
    )

    assert result.created is True
    assert result.sha256 == expected_sha
    assert result.size == BIG
    assert services.blob_stat(expected_sha).size == BIG
    # Multipart, one 5 MiB part in flight: a few parts' worth, far below the 50 MB.
    assert peak < 20 * MIB, f"peak {peak / MIB:.1f} MiB while streaming {BIG / MIB:.0f} MiB"

    tracemalloc.start()
    try:
        digest = hashlib.sha256()
        total = 0
        with services.blob_open(expected_sha) as stream:
            while chunk := stream.read(MIB):
                digest.update(chunk)
                total += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (digest.hexdigest(), total) == (expected_sha, BIG)
    assert read_peak < 8 * MIB, f"peak {read_peak / MIB:.1f} MiB while reading"


def _no_multipart_uploads_left() -> bool:
    from django.conf import settings

    result = get_client()._list_multipart_uploads(settings.S3_BUCKET)
    return not result.uploads


@pytest.mark.parametrize("declare_size", [False, True])
def test_wrong_declared_hash_stores_nothing(s3_settings, seed, declare_size):
    s3_settings.S3_PART_SIZE = 5 * MIB
    wrong = hashlib.sha256(b"something else").hexdigest()
    size = 12 * MIB  # three parts: the mismatch is caught before the last one

    with pytest.raises(ContentMismatch, match=wrong):
        services.blob_put_stream(
            GeneratedStream(size, seed=seed), sha256=wrong, size=size if declare_size else None
        )

    assert not services.blob_exists(wrong)
    assert _no_multipart_uploads_left()


def test_wrong_declared_hash_of_a_small_stream_stores_nothing():
    wrong = hashlib.sha256(b"not this").hexdigest()
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(b"this"), sha256=wrong)
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(b""), sha256=wrong, size=0)
    assert not services.blob_exists(wrong)


@pytest.mark.parametrize("declared_size", [99, 101])
def test_wrong_declared_size_stores_nothing(declared_size):
    data = secrets.token_bytes(100)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(data), size=declared_size)
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(data), size=declared_size, sha256=sha)
    assert not services.blob_exists(sha)


def test_declared_size_that_disagrees_with_the_stored_blob():
    data = secrets.token_bytes(100)
    stored = services.blob_put_bytes(data)
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(data), sha256=stored.sha256, size=5)


def test_malformed_hash_is_a_value_error():
    for call in (services.blob_exists, services.blob_stat):
        with pytest.raises(ValueError, match="sha256"):
            call("not-a-hash")
    with pytest.raises(ValueError, match="sha256"):
        services.blob_put_stream(io.BytesIO(b"x"), sha256="ABC")


def test_missing_blob():
    missing = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
    assert services.blob_exists(missing) is False
    with pytest.raises(ObjectNotFound):
        services.blob_stat(missing)
    with pytest.raises(ObjectNotFound), services.blob_open(missing):
        pass


def test_open_stream_releases_its_connection_when_left_early(seed):
    result = services.blob_put_stream(GeneratedStream(3 * MIB, seed=seed))
    with services.blob_open(result.sha256) as stream:
        assert len(stream.read(10)) == 10
    assert stream.closed
    with pytest.raises(ValueError):
        stream.read(1)
    # The pool still serves requests afterwards.
    for _ in range(20):
        with services.blob_open(result.sha256) as stream:
            stream.read(10)
    assert services.blob_exists(result.sha256)


class DisconnectingStream:
    """A client upload that drops after `after` bytes."""

    def __init__(self, inner: GeneratedStream, after: int) -> None:
        self._inner = inner
        self._left = after

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0:
            raise ConnectionResetError("client went away")
        data = self._inner.read(min(size if size >= 0 else self._left, self._left))
        self._left -= len(data)
        return data


def test_a_failing_source_stream_is_not_blamed_on_the_store(s3_settings, seed):
    s3_settings.S3_PART_SIZE = 5 * MIB
    sha = generated_sha256(12 * MIB, seed=seed)
    source = DisconnectingStream(GeneratedStream(12 * MIB, seed=seed), after=7 * MIB)

    with pytest.raises(ConnectionResetError, match="client went away"):
        services.blob_put_stream(source, sha256=sha)

    assert not services.blob_exists(sha)
    assert _no_multipart_uploads_left()


def test_blob_put_stream_without_the_existence_check_needs_the_hash_and_rewrites_harmlessly():
    data = b"known missing " + secrets.token_bytes(16)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError, match="needs the sha256"):
        services.blob_put_stream(io.BytesIO(data), check_existing=False)
    first = services.blob_put_stream(io.BytesIO(data), sha256=sha, check_existing=False)
    again = services.blob_put_stream(io.BytesIO(data), sha256=sha, check_existing=False)
    assert first.created and again.created  # sent twice: no HEAD asked whether it existed
    with services.blob_open(sha) as fh:
        assert fh.read() == data
    # The bytes are still verified against the hash before anything is stored.
    with pytest.raises(ContentMismatch):
        services.blob_put_stream(io.BytesIO(b"other"), sha256=sha, check_existing=False)
