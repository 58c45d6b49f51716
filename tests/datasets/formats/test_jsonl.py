"""The native JSON Lines export: lossless, deterministic, filtered by split and class."""

from __future__ import annotations

import json

import pytest

from datasets.models import Label
from tests.datasets.formats.conftest import (
    URL_BASE,
    export_bytes,
    label_file_import,
    problems_of,
    round_trip,
    version_of,
    zip_files,
)

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


BOX_SCHEMA = {"type": "bbox", "labels": [{"name": "car"}, {"name": "שלום"}]}


def test_jsonl_round_trip_restores_the_same_version(ops):
    labels = [[box("car"), box("שלום", x=5, region_id="r2")], None, []]
    version = version_of(ops, labels=labels, splits=["train", "val", "train"])
    first, second = round_trip(version, "jsonl", schema={**BOX_SCHEMA, "allow_empty": True})
    assert first == second


def test_jsonl_import_reports_every_bad_line_and_stores_nothing(ops):
    version = version_of(ops, labels=[[box("car")], [box("car")]])
    lines = [
        json.dumps({"external_id": "image-000.png", "label": [box("truck")]}),
        json.dumps({"external_id": "nope.png", "label": [box("car")]}),
        '{"external_id": "image-001.png", "label": [',
        json.dumps({"external_id": "image-001.png", "label": [box("car", x=70)]}),
    ]
    data = ("\n".join(lines) + "\n").encode()
    result = label_file_import(version, data, "jsonl", schema=BOX_SCHEMA, suffix=".jsonl")
    assert result.state == "failed" and result.imported == 0 and result.rejected == 4
    found = problems_of(result)
    assert found[0][0] == "1" and "truck" in found[0][2]
    assert found[1][0] == "2" and "nope.png" in found[1][2]
    assert found[2][0] == "3" and "truncated" in found[2][2]
    assert found[3][0] == "4" and found[3][1].startswith("result[0].value")
    assert Label.objects.filter(value__0__value__rectanglelabels=["truck"]).count() == 0
    assert not Label.objects.filter(source__startswith="import:").exists()


def test_jsonl_import_of_valid_rows_only(ops):
    version = version_of(ops, labels=[None, None])
    lines = [
        json.dumps({"external_id": "image-000.png", "label": [box("car", region_id="")]}),
        json.dumps({"external_id": "image-001.png", "label": [box("bus")]}),
    ]
    data = ("\n".join(lines) + "\n").encode()
    result = label_file_import(
        version, data, "jsonl", schema=BOX_SCHEMA, suffix=".jsonl", valid_only=True
    )
    assert (result.state, result.imported, result.rejected) == ("done", 1, 1)
    label = Label.objects.get(item__external_id="image-000.png")
    assert label.value[0]["id"] == "r1" and label.source == f"import:{result.pk}"
    assert label.provenance == {
        "import": result.pk,
        "format": "jsonl",
        "file": "labels.jsonl",
        "row": 1,
    }
