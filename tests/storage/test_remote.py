"""storage.remote against the session's live SeaweedFS: another bucket, read with
credentials given per call."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from storage.client import get_client
from storage.errors import ObjectNotFound, StorageUnavailable
from storage.remote import (
    ObjectTooLarge,
    RemoteAccessDenied,
    parse_endpoint,
    remote_download,
    remote_list,
)

OBJECTS = {
    "photos/a.jpg": b"a" * 10,
    "photos/sub/b.png": b"bb" * 10,
    "photos/empty/": b"",  # a folder marker, as consoles create them
    "photos2/c.jpg": b"c",
    "other.txt": b"o",
}


@pytest.fixture(scope="module")
def other_bucket(s3_server: Any) -> Iterator[str]:
    """A second bucket on the session's server, with OBJECTS in it."""
    client = get_client()
    bucket = "lv-remote-" + secrets.token_hex(4)
    client.make_bucket(bucket)
    for key, data in OBJECTS.items():
        client.put_object(bucket, key, io.BytesIO(data), len(data))
    yield bucket


@pytest.fixture
def creds(s3_server: Any) -> dict[str, Any]:
    """The server's credentials, passed explicitly as an import would."""
    return {"access_key": s3_server.access_key, "secret_key": s3_server.secret_key}


def test_list_our_endpoint_with_given_credentials(other_bucket: str, creds: dict[str, Any]) -> None:
    listed = list(remote_list(endpoint=None, bucket=other_bucket, prefix="photos/", **creds))
    assert listed == [("photos/a.jpg", 10), ("photos/sub/b.png", 20)]
    everything = [key for key, _ in remote_list(endpoint=None, bucket=other_bucket, **creds)]
    assert everything == ["other.txt", "photos/a.jpg", "photos/sub/b.png", "photos2/c.jpg"]


def test_list_an_explicit_endpoint(
    other_bucket: str, creds: dict[str, Any], s3_server: Any
) -> None:
    listed = remote_list(
        endpoint=f"http://{s3_server.endpoint}",
        bucket=other_bucket,
        prefix="photos2/",
        region="us-east-1",
        **creds,
    )
    assert list(listed) == [("photos2/c.jpg", 1)]


def test_listing_pages_through_more_than_1000_keys(s3_server: Any, creds: dict[str, Any]) -> None:
    client = get_client()
    bucket = "lv-many-" + secrets.token_hex(4)
    client.make_bucket(bucket)
    keys = [f"k/{i:05d}" for i in range(1003)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.put_object(bucket, key, io.BytesIO(b"x"), 1), keys))
    listing = remote_list(endpoint=None, bucket=bucket, prefix="k/", **creds)
    assert next(listing) == ("k/00000", 1)  # the first page arrives before the rest is asked
    assert [key for key, _ in listing] == keys[1:]


def test_download(other_bucket: str, creds: dict[str, Any], tmp_path: Path) -> None:
    dest = tmp_path / "b.png"
    size = remote_download(
        endpoint=None,
        bucket=other_bucket,
        key="photos/sub/b.png",
        dest_path=dest,
        max_bytes=100,
        **creds,
    )
    assert size == 20 and dest.read_bytes() == b"bb" * 10


def test_download_over_the_limit_leaves_nothing(
    other_bucket: str, creds: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "b.png"
    with pytest.raises(ObjectTooLarge):
        remote_download(
            endpoint=None,
            bucket=other_bucket,
            key="photos/sub/b.png",
            dest_path=dest,
            max_bytes=19,
            **creds,
        )
    assert not dest.exists()


def test_missing_key_and_bucket(other_bucket: str, creds: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match="no object 'nope.jpg'"):
        remote_download(
            endpoint=None,
            bucket=other_bucket,
            key="nope.jpg",
            dest_path=tmp_path / "x",
            max_bytes=9,
            **creds,
        )
    assert not (tmp_path / "x").exists()
    with pytest.raises(ObjectNotFound, match="does not exist"):
        list(
            remote_list(endpoint=None, bucket="lv-no-such-bucket-" + secrets.token_hex(3), **creds)
        )


def test_wrong_credentials_are_storage_unavailable(other_bucket: str, tmp_path: Path) -> None:
    wrong = {"access_key": "nobody", "secret_key": "wrong-secret-wrong-secret"}
    with pytest.raises(StorageUnavailable) as info:
        list(remote_list(endpoint=None, bucket=other_bucket, **wrong))
    assert isinstance(info.value, RemoteAccessDenied)
    assert "refused the credentials" in str(info.value)
    assert "wrong-secret" not in str(info.value)
    with pytest.raises(RemoteAccessDenied):
        remote_download(
            endpoint=None,
            bucket=other_bucket,
            key="photos/a.jpg",
            dest_path=tmp_path / "x",
            max_bytes=99,
            **wrong,
        )


def test_unreachable_endpoint(creds: dict[str, Any], closed_port: int, settings: Any) -> None:
    settings.S3_TIMEOUT = 1.0
    with pytest.raises(
        StorageUnavailable, match=f"object store at 127.0.0.1:{closed_port} is unreachable"
    ):
        list(
            remote_list(
                endpoint=f"127.0.0.1:{closed_port}",
                secure=False,
                bucket="bbb",
                region="us-east-1",
                **creds,
            )
        )


def test_malformed_bucket_name_is_a_value_error(creds: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid bucket name"):
        list(remote_list(endpoint=None, bucket="Invalid_Bucket_Name!", **creds))


def test_parse_endpoint() -> None:
    assert parse_endpoint("s3.example.com") == ("s3.example.com", True)
    assert parse_endpoint("s3.example.com:9000", secure=False) == ("s3.example.com:9000", False)
    assert parse_endpoint("http://minio.local:9000") == ("minio.local:9000", False)
    assert parse_endpoint("https://minio.local/") == ("minio.local", True)
    assert parse_endpoint(None) == (settings.S3_ENDPOINT, settings.S3_SECURE)
    for bad in ("ftp://x", "https://x/bucket", "user@host", "host:99999", "https://u:p@host", ""):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
