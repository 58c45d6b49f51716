"""Label Studio JSON import: a realistic export (boxes, polygons, keypoints, choices, NER)
to exact pixel regions and keys; problems per task; unreadable files; an import through
the label-import service."""

from __future__ import annotations

import hashlib
import json

import pytest

from datasets.formats import import_format
from datasets.formats.base import InvalidLabelFile
from datasets.models import Label
from tests.datasets.formats.conftest import label_file_import, problems_of, version_of
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db

NER_TEXT = "Alice 🙂 met Bob in Paris"


def result(kind, value, *, size=(640, 480), **extra):
    """One result as Label Studio exports it (its own id, tag names, origin)."""
    item = {
        "id": "Xy12AbCd",
        "type": kind,
        "value": value,
        "origin": "manual",
        "to_name": "image",
        "from_name": "label",
        **extra,
    }
    if size is not None:
        item["original_width"], item["original_height"] = size
        item["image_rotation"] = 0
    return item


def annotation(results, *, cancelled=False):
    return {
        "id": 17,
        "completed_by": 1,
        "result": results,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2024-05-02T10:11:12.000000Z",
        "lead_time": 12.5,
        "result_count": 0,
    }


def task(task_id, data, annotations=(), **extra):
    return {
        "id": task_id,
        "data": data,
        "annotations": list(annotations),
        "predictions": [{"id": 3, "model_version": "yolo-v8", "score": 0.5, "result": []}],
        "meta": {},
        "created_at": "2024-05-02T10:00:00.000000Z",
        "inner_id": task_id,
        "total_annotations": len(annotations),
        "project": 1,
        **extra,
    }


def box_value(x, y, w, h, label="car", rotation=0):
    return {
        "x": x,
        "y": y,
        "width": w,
        "height": h,
        "rotation": rotation,
        "rectanglelabels": [label],
    }


EXPORT = [
    task(
        1,
        {"image": "/data/upload/3/0f3a2b1c-cat.png"},
        [
            annotation([result("rectanglelabels", box_value(0, 0, 1, 1, "road"))], cancelled=True),
            annotation(
                [
                    result("rectanglelabels", box_value(10, 20, 30.5, 12.5)),
                    result(
                        "polygonlabels",
                        {"points": [[10, 10], [50.5, 10], [50.5, 60]], "closed": True, "polygonlabels": ["road"]},
                    ),
                    result("keypointlabels", {"x": 25, "y": 50, "width": 0.78, "keypointlabels": ["nose"]}),
                    # As Label Studio computes them: px / size * 100, float noise and all.
                    result("rectanglelabels", box_value(100 / 640 * 100, 100 / 480 * 100, 50 / 640 * 100, 1e-5)),
                ]
            ),
        ],
        file_upload="0f3a2b1c-cat.png",
    ),
    task(2, {"image": "https://cdn.example.com/set/dog.jpg?token=abc"}),
    task(
        3,
        {"image": "s3://bucket/dir/3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b.jpg"},
        [annotation([result("choices", {"choices": ["dog"]}, size=None)])],
    ),
    task(
        4,
        {"image": "/data/local-files/?d=photos%2Fbird.png"},
        [annotation([result("rectanglelabels", box_value(1, 2, 3, 4, rotation=15))])],
    ),
    task(
        5,
        {"text": NER_TEXT},
        [
            annotation(
                [
                    result("labels", {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}, size=None),
                    # Counted in UTF-16 units by the browser: the emoji is two.
                    result("labels", {"start": 13, "end": 16, "text": "Bob", "labels": ["PER"]}, size=None),
                    result("labels", {"start": 20, "end": 25, "text": "Paris", "labels": ["LOC"]}, size=None),
                ]
            )
        ],
    ),
    task(
        6,
        {"text": "great film", "external_id": "reviews/6.txt"},
        [annotation([result("choices", {"choices": ["positive"]}, size=None)])],
    ),
    task(
        7,
        {"text": "hello"},
        [annotation([result("choices", {"choices": ["greeting"]}, size=None)])],
        file_upload="a1b2c3d4-doc1.txt",
    ),
    task(
        8,
        {"image": "/data/upload/3/cafe0123-x.jpg"},
        [annotation([result("textarea", {"text": ["blurry"]})])],
    ),
    task(9, "not an object", [annotation([])]),
    task(
        10,
        {"image": "https://cdn.example.com/y.jpg"},
        [
            annotation(
                [
                    result("rectanglelabels", box_value(1, 2, 3, 4)),
                    result("rectanglelabels", box_value(1, 2, 3, 4), size=(1280, 960)),
                    result("rectanglelabels", {"x": "1", "y": 2, "width": 3, "height": 4, "rectanglelabels": ["car"]}),
                ]
            )
        ],
    ),
]  # fmt: skip


def read(tmp_path, data: bytes):
    path = tmp_path / "export.json"
    path.write_bytes(data)
    return list(import_format("labelstudio").read(str(path)))


def test_labelstudio_import_of_a_realistic_export(tmp_path):
    records = read(tmp_path, json.dumps(EXPORT, indent=2, ensure_ascii=False).encode())
    by_row = {r.row: r for r in records}
    # tasks[1] has no annotation: nothing to import (its prediction is not imported).
    assert list(by_row) == [f"tasks[{n}]" for n in (0, 2, 3, 4, 5, 6, 7, 8, 9)]

    cat = by_row["tasks[0]"]
    assert (cat.key, cat.sha256, cat.problems, cat.normalized) == ("cat.png", None, [], False)
    assert cat.regions == [
        {
            "type": "rectanglelabels",
            "value": {"x": 64, "y": 96, "width": 195.2, "height": 60, "rectanglelabels": ["car"]},
        },
        {
            "type": "polygonlabels",
            "value": {"points": [[64, 48], [323.2, 48], [323.2, 288]], "polygonlabels": ["road"]},
        },
        {"type": "keypointlabels", "value": {"x": 160, "y": 240, "keypointlabels": ["nose"]}},
        {
            # 20.833333333333336 % of 480 is 100.00000000000001: an integer within 1e-6.
            "type": "rectanglelabels",
            "value": {"x": 100, "y": 100, "width": 50, "height": 4.8e-05, "rectanglelabels": ["car"]},
        },
    ]  # fmt: skip
    assert all(isinstance(cat.regions[0]["value"][k], int) for k in ("x", "y", "height"))
    assert (cat.width, cat.height) == (640, 480)  # the size its results agree on

    uuid = by_row["tasks[2]"]
    assert uuid.key == "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b.jpg"  # not an upload: kept
    assert uuid.regions == [{"type": "choices", "value": {"choices": ["dog"]}}]

    bird = by_row["tasks[3]"]
    assert bird.key == "bird.png"
    assert [(p.row, p.field, p.reason) for p in bird.problems] == [
        ("tasks[3]", "annotations[0].result[0].value.rotation", "rotated boxes are not supported (rotation = 15)")
    ]  # fmt: skip

    ner = by_row["tasks[4]"]
    assert ner.key == "" and ner.sha256 == hashlib.sha256(NER_TEXT.encode()).hexdigest()
    assert [r["value"] for r in ner.regions] == [
        {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]},
        {"start": 12, "end": 15, "text": "Bob", "labels": ["PER"]},
        {"start": 19, "end": 24, "text": "Paris", "labels": ["LOC"]},
    ]
    assert [NER_TEXT[v["start"] : v["end"]] for v in (r["value"] for r in ner.regions)] == [
        "Alice",
        "Bob",
        "Paris",
    ]

    assert by_row["tasks[5]"].key == "reviews/6.txt"
    assert by_row["tasks[6]"].key == "doc1.txt"  # the upload's name, without its prefix

    assert [(p.field, p.reason) for p in by_row["tasks[7]"].problems] == [
        (
            "annotations[0].result[0].type",
            "result type 'textarea' is not supported (supported: rectanglelabels, "
            "polygonlabels, keypointlabels, choices, labels)",
        )
    ]
    assert [(p.field, p.reason) for p in by_row["tasks[8]"].problems] == [
        ("data", "a task has a `data` object (its image or text)")
    ]
    assert [(p.field, p.reason) for p in by_row["tasks[9]"].problems] == [
        ("annotations[0].result[2].value.x", "x is required: a number (a percentage)"),
        ("annotations[0].result", "the results disagree on the image size (1280x960, 640x480)"),
    ]


def test_labelstudio_declares_the_image_size_its_results_agree_on(tmp_path):
    export = [
        task(
            1,
            {"image": "/data/upload/1/deadbeef-a.png", "external_id": "a.png"},
            [annotation([result("rectanglelabels", box_value(50, 50, 50, 50))])],
        )
    ]
    (record,) = read(tmp_path, b"\xef\xbb\xbf" + json.dumps(export).encode())  # with a BOM
    assert (record.key, record.width, record.height) == ("a.png", 640, 480)
    assert record.regions[0]["value"] == {
        "x": 320,
        "y": 240,
        "width": 320,
        "height": 240,
        "rectanglelabels": ["car"],
    }


def test_labelstudio_refuses_what_is_not_a_list_of_tasks(tmp_path):
    with pytest.raises(InvalidLabelFile, match="a JSON list of tasks"):
        read(tmp_path, json.dumps({"tasks": []}).encode())
    with pytest.raises(InvalidLabelFile, match="a JSON list of tasks"):
        read(tmp_path, b"")
    data = json.dumps(EXPORT).encode()
    with pytest.raises(InvalidLabelFile, match=r"not valid JSON \(truncated\?\): parse error"):
        read(tmp_path, data[: data.index(b'{"id": 3,') + 40])
    assert read(tmp_path, b" [ ] ") == []


def test_labelstudio_import_through_the_service(ops):
    version = version_of(
        ops,
        labels=[None, None],
        contents=[png_bytes(640, 480), png_bytes(640, 480, (9, 9, 9))],
        external_ids=["cat.png", "dog.png"],
    )
    export = [
        task(
            1,
            {"image": "/data/upload/3/0f3a2b1c-cat.png"},
            [
                annotation(
                    [
                        result("rectanglelabels", box_value(10, 20, 30.5, 12.5)),
                        result("rectanglelabels", box_value(0, 0, 100, 100, "road")),
                    ]
                )
            ],
        ),
        task(2, {"image": "http://localhost:8080/data/upload/3/12ab34cd-dog.png"}),
    ]
    schema = {"type": "bbox", "labels": [{"name": "car"}, {"name": "road"}]}
    done = label_file_import(
        version, json.dumps(export).encode(), "labelstudio", schema=schema, suffix=".json"
    )
    assert done.state == "done", problems_of(done)
    assert (done.records, done.imported) == (1, 1)
    label = Label.objects.get(item__external_id="cat.png")
    assert label.value == [
        {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {"x": 64, "y": 96, "width": 195.2, "height": 60, "rectanglelabels": ["car"]},
        },
        {
            "id": "r2",
            "type": "rectanglelabels",
            "value": {"x": 0, "y": 0, "width": 640, "height": 480, "rectanglelabels": ["road"]},
        },
    ]
