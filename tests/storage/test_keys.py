"""Key builders are pure: no settings, no server, no database."""

from __future__ import annotations

import hashlib

import pytest

from storage.keys import blob_key, derived_key, export_key, is_sha256, manifest_key

SHA = hashlib.sha256(b"labelvault").hexdigest()

BAD_HASHES = [
    "",
    SHA[:-1],  # 63 characters
    SHA + "0",  # 65 characters
    SHA.upper(),  # one spelling per hash
    "g" * 64,
    "../" + SHA[3:],
    SHA[:32] + "/" + SHA[33:],
    None,
    123,
]


def test_blob_key_fans_out_on_the_first_two_bytes():
    assert blob_key(SHA) == f"blobs/sha256/{SHA[:2]}/{SHA[2:4]}/{SHA}"


@pytest.mark.parametrize("bad", BAD_HASHES)
def test_blob_key_rejects_malformed_hashes(bad):
    with pytest.raises(ValueError, match="sha256"):
        blob_key(bad)


@pytest.mark.parametrize("bad", BAD_HASHES)
def test_derived_key_rejects_malformed_hashes(bad):
    with pytest.raises(ValueError, match="sha256"):
        derived_key("thumbnail", bad)


def test_is_sha256():
    assert is_sha256(SHA)
    assert not any(is_sha256(bad) for bad in BAD_HASHES)


def test_derived_key():
    assert derived_key("thumbnail", SHA) == f"derived/thumbnail/{SHA}"
    assert derived_key("preview-512", SHA) == f"derived/preview-512/{SHA}"


@pytest.mark.parametrize("kind", ["", "Thumbnail", "a/b", "..", "-x", "x" * 65, "thumb nail"])
def test_derived_key_rejects_malformed_kinds(kind):
    with pytest.raises(ValueError, match="derived kind"):
        derived_key(kind, SHA)


def test_manifest_key():
    assert manifest_key(SHA, "jsonl.gz") == f"manifests/{SHA}.jsonl.gz"
    assert manifest_key("v_42", "parquet") == "manifests/v_42.parquet"


@pytest.mark.parametrize("version_id", ["", "../etc", "a/b", ".hidden", "x" * 129, "a b"])
def test_manifest_key_rejects_malformed_ids(version_id):
    with pytest.raises(ValueError, match="version id"):
        manifest_key(version_id, "jsonl.gz")


@pytest.mark.parametrize("ext", ["", ".jsonl.gz", "jsonl/gz", "jsonl..gz", "JSONL", "gz."])
def test_manifest_key_rejects_malformed_extensions(ext):
    with pytest.raises(ValueError, match="extension"):
        manifest_key(SHA, ext)


def test_export_key():
    options = hashlib.sha256(b"{}").hexdigest()
    assert export_key(SHA, "coco", options) == f"exports/{SHA}/coco/{options}"
    assert export_key(SHA, "yolo", options[:12]) == f"exports/{SHA}/yolo/{options[:12]}"


@pytest.mark.parametrize(
    ("version_id", "fmt", "options_hash", "what"),
    [
        ("../x", "coco", "abcdef12", "version id"),
        (SHA, "COCO", "abcdef12", "export format"),
        (SHA, "co/co", "abcdef12", "export format"),
        (SHA, "coco", "abc", "options hash"),  # too short to be a digest
        (SHA, "coco", "ABCDEF12", "options hash"),
        (SHA, "coco", "xyz12345", "options hash"),
        (SHA, "coco", "a" * 65, "options hash"),
    ],
)
def test_export_key_rejects_malformed_parts(version_id, fmt, options_hash, what):
    with pytest.raises(ValueError, match=what):
        export_key(version_id, fmt, options_hash)
