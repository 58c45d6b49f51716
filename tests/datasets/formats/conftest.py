"""Helpers for the format tests: a version built from given labels (stored in the
session's S3 server, snapshotted as a user would), and the bytes of its export."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from datasets.formats import export_format
from datasets.formats.base import export_options_check
from datasets.models import Version
from datasets.services.exports import export_build
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot
from tests.factories import UserFactory, dataset_with_items, png_bytes

SCHEMA_HASH = "b" * 64
URL_BASE = "https://labelvault.example"


@pytest.fixture
def ops():
    return UserFactory(roles=["ops"])


def version_of(
    owner: Any,
    *,
    kind: str = "image",
    contents: list[bytes] | None = None,
    labels: list[list[dict[str, Any]] | None],
    external_ids: list[str] | None = None,
    splits: list[str] | None = None,
    commit: str = "abc1234",
) -> Version:
    """A dataset with one item per label (PNGs of distinct colours, 64x48, unless
    `contents` says otherwise), each label published as ground truth (None: unlabelled),
    snapshotted. Returns the version."""
    if contents is None:
        contents = [
            png_bytes(64, 48, (n % 256, n // 256 % 256, 7))
            if kind == "image"
            else f"text {n}".encode()
            for n in range(len(labels))
        ]
    dataset, items = dataset_with_items(
        owner=owner, kind=kind, contents=contents, external_ids=external_ids, splits=splits
    )
    for item, label in zip(items, labels, strict=True):
        if label is not None:
            label_publish(
                item=item, value=label, schema_hash=SCHEMA_HASH, source="test", provenance={}
            )
    version, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(code_commit=commit, code_repo="", message=""),
        created_by_id=owner.pk,
    )
    return version


def export_bytes(version: Version, fmt: str, **options: Any) -> bytes:
    """The export of `version` in `fmt` with `options`, built in this process."""
    out = io.BytesIO()
    export_build(
        version=version,
        fmt=export_format(fmt),
        options=export_options_check(options),
        out=out,
        url_base=URL_BASE,
    )
    return out.getvalue()


def zip_files(data: bytes) -> dict[str, bytes]:
    """The entries of a zip export, by name, in the order they were written."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}
