"""Staging objects of imports: keys and deletion, against the live S3 server."""

from __future__ import annotations

import pytest

from storage.keys import staging_key, staging_prefix
from storage.services import object_exists, object_put, staging_delete


def test_staging_keys():
    assert staging_prefix("42") == "staging/42/"
    assert staging_key("42", 7) == "staging/42/7"
    for bad in ("../x", "", "a/b"):
        with pytest.raises(ValueError, match="invalid import id"):
            staging_prefix(bad)
    for bad_seq in (-1, "3", True):
        with pytest.raises(ValueError, match="invalid staging sequence number"):
            staging_key("42", bad_seq)


def test_staging_delete_removes_only_that_import():
    for n in range(3):
        object_put(staging_key("1001", n), f"file {n}".encode())
    object_put(staging_key("1002", 0), b"other import")
    assert staging_delete(staging_prefix("1001")) == 3
    assert not any(object_exists(staging_key("1001", n)) for n in range(3))
    assert object_exists(staging_key("1002", 0))
    assert staging_delete(staging_prefix("1001")) == 0  # idempotent


@pytest.mark.parametrize("prefix", ["blobs/", "staging/1", "staging/../blobs/", "exports/x/"])
def test_staging_delete_refuses_other_prefixes(prefix):
    with pytest.raises(ValueError, match="is not a staging prefix"):
        staging_delete(prefix)
