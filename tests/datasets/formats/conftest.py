"""Helpers for the format tests: a version built from given labels (stored in the
session's S3 server, snapshotted as a user would), and the bytes of its export."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
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


def export_bytes(version: Version, fmt: str, *, url_base: str = URL_BASE, **options: Any) -> bytes:
    """The export of `version` in `fmt` with `options`, built in this process."""
    out = io.BytesIO()
    export_build(
        version=version,
        fmt=export_format(fmt),
        options=export_options_check(options),
        out=out,
        url_base=url_base,
    )
    return out.getvalue()


def zip_files(data: bytes) -> dict[str, bytes]:
    """The entries of a zip export, by name, in the order they were written."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def label_file_import(
    version: Version,
    data: bytes,
    fmt: str,
    *,
    schema: dict[str, Any],
    mode: str = "ground_truth",
    match: str = "file_name",
    valid_only: bool = False,
    suffix: str = ".zip",
    project: Any = None,
    file_name: str | None = None,
):
    """Import `data` (a label file) into a project on the version's dataset with `schema`
    (created unless given) through the label-import service, run in this process.
    Returns the LabelImport row (state, counts; .problems the rows)."""
    import tempfile

    from labeling.models import LabelImport
    from labeling.services.label_imports import label_import_execute
    from labeling.services.projects import project_create, project_tasks_create

    if project is None:
        project = project_create(
            created_by=version.created_by,
            name=f"import into {version.pk[:8]}",
            dataset=version.dataset,
            label_schema=schema,
        )
        project_tasks_create(project=project)
        project.refresh_from_db()
    label_import = LabelImport.objects.create(
        project=project,
        format=fmt,
        mode=mode,
        match=match,
        valid_only=valid_only,
        model_name="import" if mode == "predictions" else "",
        file_name=file_name or f"labels{suffix}",
        file_size=len(data),
        created_by=version.created_by,
    )
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / label_import.file_name
        local.write_bytes(data)
        return label_import_execute(label_import, path=str(local))


def problems_of(label_import: Any) -> list[tuple[str, str, str]]:
    return [(p.row, p.field, p.reason) for p in label_import.problems.order_by("seq")]


def round_trip(
    version: Version, fmt: str, *, schema: dict[str, Any], suffix: str = ".zip", **options: Any
) -> tuple[bytes, bytes]:
    """Export the version, import that export as ground truth into a project on its
    dataset (every record must import), snapshot, export again: (first, second)."""
    first = export_bytes(version, fmt, **options)
    label_import = label_file_import(version, first, fmt, schema=schema, suffix=suffix)
    assert label_import.state == "done", (label_import.error, problems_of(label_import)[:10])
    again, _ = version_snapshot(
        dataset=version.dataset,
        request=SnapshotRequest(code_commit=version.code_commit, code_repo="", message=""),
        created_by_id=version.created_by_id,
    )
    return first, export_bytes(again, fmt, **options)


def without_lock(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name != "labelvault.lock.json"}
