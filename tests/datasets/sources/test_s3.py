"""S3 prefix imports against the session's live SeaweedFS, in a bucket of their own."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.s3 import S3Source, s3_fetch, s3_plan
from datasets.sources.types import ImportLimits, Rejection, SourceEntry, parse_networks
from storage.client import get_client
from storage.errors import StorageUnavailable

OBJECTS = {
    "set/a.jpg": b"a" * 10,
    "set/sub/b.png": b"b" * 20,
    "set/.DS_Store": b"finder",
    "set/big.bin": b"x" * 2000,
    "set/folder/": b"",
    "set2/c.jpg": b"c",
    "top.txt": b"t",
}
LOOPBACK = ImportLimits(allowed_networks=parse_networks(["127.0.0.0/8"]), max_file_bytes=1000)


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> Iterator[str]:
    client = get_client()
    name = "lv-s3src-" + secrets.token_hex(4)
    client.make_bucket(name)
    for key, data in OBJECTS.items():
        client.put_object(name, key, io.BytesIO(data), len(data))
    yield name


@pytest.fixture
def source(bucket: str, s3_server: Any) -> S3Source:
    """Our endpoint, with credentials given as an import gives them."""
    return S3Source(
        bucket=bucket,
        prefix="set",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )


def test_plan_names_are_relative_to_the_prefix(source: S3Source) -> None:
    planned = list(s3_plan(source, limits=LOOPBACK))
    assert planned == [
        SourceEntry(name="a.jpg", ref="set/a.jpg"),
        Rejection("big.bin", "file is 0.0 MB, over the per-file limit of 0.0 MB"),
        SourceEntry(name="sub/b.png", ref="set/sub/b.png"),
    ]  # "set2/" is not inside the folder "set/"; .DS_Store and the marker are skipped


def test_fetch(source: S3Source, tmp_path: Path) -> None:
    dest = tmp_path / "b.png"
    assert s3_fetch(source, "set/sub/b.png", dest, limits=LOOPBACK) == 20
    assert dest.read_bytes() == b"b" * 20
    with pytest.raises(FileRejected, match="over the per-file limit"):
        s3_fetch(source, "set/big.bin", dest, limits=LOOPBACK)
    assert not dest.exists()
    with pytest.raises(FileRejected, match="no longer exists"):
        s3_fetch(source, "set/gone.jpg", dest, limits=LOOPBACK)


def test_explicit_endpoint_is_checked_like_a_url(
    source: S3Source, s3_server: Any, tmp_path: Path
) -> None:
    other = S3Source(
        bucket=source.bucket,
        prefix="set2/",
        endpoint=f"http://{s3_server.endpoint}",
        region="us-east-1",
        access_key=source.access_key,
        secret_key=source.secret_key,
    )
    # The session's server is on 127.0.0.1: refused unless allow-listed.
    with pytest.raises(InvalidImport, match="S3 endpoint: refused to connect to loopback address"):
        list(s3_plan(other, limits=ImportLimits()))
    with pytest.raises(FileRejected, match="loopback address"):
        s3_fetch(other, "set2/c.jpg", tmp_path / "c", limits=ImportLimits())
    # Allow-listed: listed and fetched through a connection pinned to the checked address.
    assert list(s3_plan(other, limits=LOOPBACK)) == [SourceEntry(name="c.jpg", ref="set2/c.jpg")]
    assert s3_fetch(other, "set2/c.jpg", tmp_path / "c", limits=LOOPBACK) == 1
    # By name: resolved once, connected to 127.0.0.1, signed and sent for "localhost".
    port = s3_server.endpoint.rsplit(":", 1)[1]
    named = S3Source(
        bucket=source.bucket,
        prefix="set2/",
        endpoint=f"localhost:{port}",
        secure=False,
        region="us-east-1",
        access_key=source.access_key,
        secret_key=source.secret_key,
    )
    assert list(s3_plan(named, limits=LOOPBACK)) == [SourceEntry(name="c.jpg", ref="set2/c.jpg")]


def test_metadata_endpoint_is_refused(bucket: str) -> None:
    source = S3Source(bucket=bucket, endpoint="169.254.169.254", access_key="a", secret_key="b")
    with pytest.raises(InvalidImport, match="cloud metadata address 169.254.169.254"):
        list(s3_plan(source, limits=LOOPBACK))


def test_wrong_credentials_and_missing_bucket_are_invalid_imports(
    source: S3Source, tmp_path: Path
) -> None:
    wrong = S3Source(bucket=source.bucket, access_key="nobody", secret_key="not-the-secret-x")
    with pytest.raises(InvalidImport, match="refused the credentials") as info:
        list(s3_plan(wrong, limits=LOOPBACK))
    assert "not-the-secret" not in str(info.value)
    with pytest.raises(StorageUnavailable):  # while fetching: transient, retried
        s3_fetch(wrong, "set/a.jpg", tmp_path / "a", limits=LOOPBACK)
    assert not (tmp_path / "a").exists()
    missing = S3Source(
        bucket="lv-missing-" + secrets.token_hex(3),
        access_key=source.access_key,
        secret_key=source.secret_key,
    )
    with pytest.raises(InvalidImport, match="does not exist") as info:
        list(s3_plan(missing, limits=LOOPBACK))
    assert info.value.field == "bucket"


def test_malformed_endpoint(bucket: str) -> None:
    with pytest.raises(InvalidImport, match="must be host:port") as info:
        list(
            s3_plan(
                S3Source(bucket=bucket, endpoint="https://s3.example.com/bucket"), limits=LOOPBACK
            )
        )
    assert info.value.field == "endpoint"


def test_from_options_keeps_secrets_out_of_repr() -> None:
    source = S3Source.from_options(
        {"bucket": " b1 ", "prefix": "p/", "endpoint": "", "secure": True},
        {"access_key": "AKIA-visible", "secret_key": "s3cr3t"},
    )
    assert source == S3Source(
        bucket="b1",
        prefix="p/",
        endpoint=None,
        secure=True,
        access_key="AKIA-visible",
        secret_key="s3cr3t",
    )
    assert "s3cr3t" not in repr(source) and "AKIA" not in repr(source)
    with pytest.raises(InvalidImport, match="needs a bucket"):
        S3Source.from_options({"prefix": "x"})
    with pytest.raises(InvalidImport, match="secure must be true or false"):
        S3Source.from_options({"bucket": "b", "secure": "yes"})
