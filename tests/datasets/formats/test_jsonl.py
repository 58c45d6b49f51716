"""The native JSON Lines export: lossless, deterministic, filtered by split and class."""

from __future__ import annotations

import json

import pytest

from tests.datasets.formats.conftest import URL_BASE, export_bytes, version_of, zip_files

pytestmark = pytest.mark.django_db


def box(label, x=1, region_id="r1"):
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
    }


def test_jsonl_export_is_lossless_and_deterministic(ops):
    labels = [[box("car"), box("שלום", x=5, region_id="r2")], None, []]
    version = version_of(ops, labels=labels, splits=["train", "val", "train"])
    first = export_bytes(version, "jsonl")
    assert export_bytes(version, "jsonl") == first
    files = zip_files(first)
    assert list(files) == ["data.jsonl", "labelvault.lock.json"]
    lines = [json.loads(line) for line in files["data.jsonl"].decode().splitlines()]
    assert [line["label"] for line in lines] == labels
    assert [line["split"] for line in lines] == ["train", "val", "train"]
    assert lines[0]["width"] == 64 and lines[0]["height"] == 48
    assert lines[0]["url"] == f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{lines[0]['sha256']}"
    assert "שלום" in files["data.jsonl"].decode("utf-8")  # UTF-8, not \\u escapes
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["version"] == version.pk and lock["code_commit"] == "abc1234"
    assert lock["counts"] == {"items": 3, "labelled": 2, "regions": 2, "skipped": {}}
    assert lock["classes"] == ["car", "שלום"]


def test_jsonl_export_filters_splits_and_classes_and_embeds_files(ops):
    labels = [[box("car"), box("bus", region_id="r2")], [box("bus")]]
    version = version_of(ops, labels=labels, splits=["train", "val"])
    files = zip_files(
        export_bytes(version, "jsonl", splits=["train"], classes=["car"], images=True)
    )
    lines = [json.loads(line) for line in files["data.jsonl"].decode().splitlines()]
    assert len(lines) == 1 and lines[0]["label"] == [box("car")]
    assert lines[0]["file"] == "images/image-000.png" and "url" not in lines[0]
    assert files["images/image-000.png"].startswith(b"\x89PNG")
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}


def test_jsonl_of_texts_carries_the_text(ops):
    span = {
        "id": "s1",
        "type": "labels",
        "value": {"start": 0, "end": 4, "text": "text", "labels": ["PER"]},
    }
    version = version_of(ops, kind="text", labels=[[span]])
    files = zip_files(export_bytes(version, "jsonl"))
    line = json.loads(files["data.jsonl"])
    assert line["text"] == "text 0" and line["label"] == [span]
