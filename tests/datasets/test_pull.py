"""Pulling a version: every asset verified to DIR, the manifest whose hash is the id, the
lock file; an interrupted pull resumes with only what is missing; corrupt local files and
objects missing from storage are caught and reported by hash; the assets listing pages
and checks access; the command over HTTP against a live server."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from datasets.services import pull
from datasets.services.labels import label_publish
from datasets.services.pull import LocalSource, asset_path, version_pull
from datasets.services.versions import SnapshotRequest, version_snapshot
from storage.client import get_client
from storage.keys import blob_key
from tests.datasets.conftest import api_for
from tests.factories import dataset_with_items, png_bytes

pytestmark = pytest.mark.django_db

REQUEST = SnapshotRequest(code_commit="abc1234", code_repo="https://git.example/ml", message="")


def make_version(ops, colour: int, n: int = 5):
    """A version of n items (and assets), the first labelled."""
    contents = [png_bytes(8, 8, (colour, k, 7)) for k in range(n)]
    dataset, items = dataset_with_items(owner=ops, kind="image", contents=contents)
    label_publish(
        item=items[0],
        value=[{"id": "r", "type": "choices", "value": {"choices": ["cat"]}}],
        schema_hash="b" * 64,
        source="project:1",
        provenance={},
    )
    version, _ = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=ops.pk)
    return version, {hashlib.sha256(c).hexdigest(): c for c in contents}


def test_a_pull_writes_verified_assets_the_manifest_and_the_lock(ops, tmp_path):
    version, blobs = make_version(ops, 11)
    out, err = io.StringIO(), io.StringIO()
    call_command("pull", version.pk, str(tmp_path), stdout=out, stderr=err)
    manifest = (tmp_path / "manifest.jsonl").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == version.pk
    files = sorted(p for p in (tmp_path / "assets").rglob("*") if p.is_file())
    assert [p.name for p in files] == sorted(blobs)
    for sha256, content in blobs.items():
        assert asset_path(tmp_path, sha256).read_bytes() == content
    lock = json.loads((tmp_path / "labelvault.lock.json").read_text())
    assert lock == {
        "server": None,
        "dataset": version.dataset_id,
        "version": version.pk,
        "code_commit": "abc1234",
        "code_repo": "https://git.example/ml",
        "items": 5,
        "assets": 5,
    }
    assert (tmp_path / "labelvault.lock.json").read_text() == json.dumps(
        lock, sort_keys=True, indent=2
    ) + "\n"
    assert "5 downloaded" in err.getvalue()
    assert not list(tmp_path.rglob("*.part-*"))
    # Nothing to do the second time.
    result = version_pull(source=LocalSource(version.pk), directory=tmp_path)
    assert (result.downloaded, result.skipped, result.failures) == (0, 5, [])


class Interrupted(Exception):
    pass


def test_an_interrupted_pull_resumes_with_only_what_is_missing(ops, tmp_path):
    version, blobs = make_version(ops, 12)
    calls: list[str] = []

    def dies_after_two(url, *, sha256, size, dest):
        if len(calls) == 2:
            raise Interrupted
        calls.append(sha256)
        return pull.asset_download(url, sha256=sha256, size=size, dest=dest)

    with pytest.raises(Interrupted):
        version_pull(
            source=LocalSource(version.pk), directory=tmp_path, workers=1, download=dies_after_two
        )
    assert not (tmp_path / "labelvault.lock.json").exists()
    assert sorted(p.name for p in (tmp_path / "assets").rglob("*") if p.is_file()) == sorted(calls)

    again: list[str] = []

    def counting(url, *, sha256, size, dest):
        again.append(sha256)
        return pull.asset_download(url, sha256=sha256, size=size, dest=dest)

    result = version_pull(source=LocalSource(version.pk), directory=tmp_path, download=counting)
    assert result.ok and result.skipped == 2 and result.downloaded == 3
    assert sorted(again) == sorted(set(blobs) - set(calls))
    for sha256, content in blobs.items():
        assert asset_path(tmp_path, sha256).read_bytes() == content
    assert (tmp_path / "labelvault.lock.json").exists()


def test_a_corrupt_local_file_is_downloaded_again(ops, tmp_path):
    version, blobs = make_version(ops, 13)
    version_pull(source=LocalSource(version.pk), directory=tmp_path)
    first, second = sorted(blobs)[:2]
    # Written since it was verified (its mtime changed): rehashed and fetched again.
    path = asset_path(tmp_path, first)
    path.write_bytes(b"x" * len(blobs[first]))
    # Also a change that kept size and mtime: only --verify catches it.
    other = asset_path(tmp_path, second)
    stat = other.stat()
    other.write_bytes(b"y" * stat.st_size)
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    result = version_pull(source=LocalSource(version.pk), directory=tmp_path)
    assert result.ok and result.downloaded == 1 and result.skipped == 4
    assert path.read_bytes() == blobs[first]
    result = version_pull(source=LocalSource(version.pk), directory=tmp_path, verify=True)
    assert result.ok and result.downloaded == 1
    assert other.read_bytes() == blobs[second]


def test_an_object_missing_from_storage_is_reported_by_its_hash(ops, tmp_path):
    version, blobs = make_version(ops, 14)
    gone = sorted(blobs)[2]
    get_client().remove_object(settings.S3_BUCKET, blob_key(gone))
    with pytest.raises(CommandError) as caught:
        call_command("pull", version.pk, str(tmp_path), stdout=io.StringIO(), stderr=io.StringIO())
    message = str(caught.value)
    assert f"1 assets could not be pulled:\n  {gone}: missing from storage (404)" in message
    assert not (tmp_path / "labelvault.lock.json").exists()
    assert not asset_path(tmp_path, gone).exists()
    assert all(asset_path(tmp_path, s).exists() for s in blobs if s != gone)


def test_the_assets_listing_pages_through_distinct_assets_and_checks_access(ops, owner):
    version, blobs = make_version(ops, 15)
    api = api_for(ops)
    url = f"/api/v1/versions/{version.pk}/assets?limit=2"
    seen: list[dict] = []
    pages = 0
    while url:
        response = api.get(url)
        assert response.status_code == 200
        body = response.json()
        assert len(body["results"]) <= 2
        seen.extend(body["results"])
        url = body["next"]
        pages += 1
    assert pages == 3
    assert sorted(a["sha256"] for a in seen) == sorted(blobs)  # each once
    assert all(a["size"] == len(blobs[a["sha256"]]) for a in seen)
    assert all(a["media_type"] == "image/png" and a["url"].startswith("http") for a in seen)
    base = f"/api/v1/versions/{version.pk}/assets"
    assert api.get(base + "?cursor=x").status_code == 400
    assert api.get(base + "?limit=0").status_code == 400
    assert api_for(owner).get(base).status_code == 404  # not their dataset


@pytest.mark.django_db(transaction=True)
def test_the_command_pulls_over_http_with_a_token(ops, tmp_path, live_server):
    version, blobs = make_version(ops, 16)
    token = Token.objects.create(user=ops)
    call_command(
        "pull",
        version.pk,
        str(tmp_path),
        "--server",
        live_server.url,
        "--token",
        token.key,
        "--workers",
        "3",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    lock = json.loads((tmp_path / "labelvault.lock.json").read_text())
    assert lock["server"] == live_server.url and lock["version"] == version.pk
    assert hashlib.sha256((tmp_path / "manifest.jsonl").read_bytes()).hexdigest() == version.pk
    for sha256, content in blobs.items():
        assert asset_path(tmp_path, sha256).read_bytes() == content
    with pytest.raises(CommandError, match="check the token"):
        call_command(
            "pull",
            version.pk,
            str(tmp_path / "other"),
            "--server",
            live_server.url,
            "--token",
            "0" * 40,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
