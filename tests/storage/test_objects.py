"""Write-once objects (derived files, manifests, exports) against the real server."""

from __future__ import annotations

import hashlib
import io
import secrets

import pytest
import requests

from storage import services
from storage.errors import ContentMismatch, ObjectNotFound
from storage.keys import derived_key, export_key, manifest_key
from tests.storage.conftest import MIB, GeneratedStream, generated_sha256


def _version_id() -> str:
    return hashlib.sha256(secrets.token_bytes(16)).hexdigest()


def test_object_put_bytes_records_the_hash_and_is_write_once():
    key = manifest_key(_version_id(), "jsonl.gz")
    first = b'{"item": 1}\n'

    created = services.object_put(
        key, first, content_type="application/gzip", metadata={"rows": "1"}
    )
    again = services.object_put(key, b"different bytes", content_type="text/plain")

    sha = hashlib.sha256(first).hexdigest()
    assert (created.created, created.sha256, created.size, created.key) == (True, sha, 12, key)
    assert (again.created, again.sha256, again.size) == (False, sha, 12)
    assert again.content_type == "application/gzip"
    info = services.object_stat(key)
    assert info.metadata == {"sha256": sha, "rows": "1"}
    assert info.content_type == "application/gzip"
    with services.object_open(key) as stream:
        assert stream.read() == first


def test_object_put_streams_a_big_export_in_parts(s3_settings, seed):
    s3_settings.S3_PART_SIZE = 5 * MIB
    size = 12 * MIB
    key = export_key(_version_id(), "coco", "0123abcd")

    result = services.object_put(key, GeneratedStream(size, seed=seed), size=size)

    assert result.created is True
    assert result.size == size
    assert result.sha256 == generated_sha256(size, seed=seed)
    assert services.object_stat(key).metadata["sha256"] == result.sha256
    response = requests.get(services.presign_get(key, filename="export.zip"), timeout=30)
    assert hashlib.sha256(response.content).hexdigest() == result.sha256


def test_object_put_rejects_a_stream_of_the_wrong_size():
    key = derived_key("thumbnail", _version_id())
    with pytest.raises(ContentMismatch):
        services.object_put(key, io.BytesIO(b"12345"), size=4)
    assert not services.object_exists(key)


def test_object_open_reads_a_range():
    key = derived_key("preview", _version_id())
    data = bytes(range(256)) * 4
    services.object_put(key, data)
    with services.object_open(key, offset=10, length=20) as stream:
        assert stream.read() == data[10:30]
    with services.object_open(key, offset=1000) as stream:
        assert stream.read() == data[1000:]


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "a/../b", "./a", "x" * 1025, f"blobs/sha256/{'0' * 64}"]
)
def test_object_put_rejects_bad_keys(key):
    with pytest.raises(ValueError):
        services.object_put(key, b"x")


def test_object_put_rejects_bad_metadata():
    key = derived_key("thumbnail", _version_id())
    for metadata in ({"Rows": "1"}, {"sha256": "x"}, {"rows": "é"}, {"rows": "a\nb"}):
        with pytest.raises(ValueError, match="metadata"):
            services.object_put(key, b"x", metadata=metadata)
    assert not services.object_exists(key)


def test_missing_object():
    key = manifest_key(_version_id(), "parquet")
    assert services.object_exists(key) is False
    with pytest.raises(ObjectNotFound, match=key):
        services.object_stat(key)
    with pytest.raises(ObjectNotFound), services.object_open(key):
        pass
    # Presigning is offline: the URL is made, and the holder gets 404.
    assert requests.get(services.presign_get(key), timeout=10).status_code == 404
