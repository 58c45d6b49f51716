"""COCO instances: the export loads in pycocotools (no warnings) with the right images,
annotations and categories; the reader turns COCO JSON (bare or our zip) back into
records, reports bad rows by row/field/reason, and export -> import -> export gives the
same instances files."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from datasets.formats.base import InvalidLabelFile
from datasets.formats.coco import IMPORT
from tests.datasets.formats.conftest import (
    URL_BASE,
    export_bytes,
    label_file_import,
    problems_of,
    round_trip,
    version_of,
    without_lock,
    zip_files,
)

pytestmark = pytest.mark.django_db


def box(label, x=1, y=2, w=3, h=4, **extra):
    return {
        "id": extra.pop("region_id", "r1"),
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
        **extra,
    }


def polygon(label, points, region_id="p1"):
    return {
        "id": region_id,
        "type": "polygonlabels",
        "value": {"points": points, "polygonlabels": [label]},
    }


def keypoint(label, x, y, region_id="k1"):
    return {
        "id": region_id,
        "type": "keypointlabels",
        "value": {"x": x, "y": y, "keypointlabels": [label]},
    }


def choice(*labels):
    return {"id": "c1", "type": "choices", "value": {"choices": list(labels)}}


def load_coco(tmp_path, data: bytes, name: str) -> COCO:
    """pycocotools' loader on one instances file, with every warning an error."""
    path = tmp_path / name.replace("/", "_")
    path.write_bytes(data)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("error")
        return COCO(str(path))


def read_records(tmp_path, data: bytes, suffix: str = ".json"):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    return list(IMPORT.read(str(path)))


def coco_json(images, annotations, categories=None) -> bytes:
    categories = categories or [{"id": 1, "name": "car"}, {"id": 2, "name": "bus"}]
    return json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}
    ).encode()


# --- export -----------------------------------------------------------------------------


def test_coco_export_loads_in_pycocotools_with_the_right_annotations(ops, tmp_path):
    triangle = [[10, 10], [30, 10], [10, 40]]
    labels = [
        [box("car", 1, 2, 30, 40), box("bus", 5.5, 6.25, 10.5, 2, region_id="r2")],
        [polygon("car", triangle)],
        [],
        None,
        [keypoint("bus", 7, 8)],
    ]
    version = version_of(ops, labels=labels, splits=["train", "train", "val", "val", "train"])
    files = zip_files(export_bytes(version, "coco"))
    assert list(files) == [
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "labelvault.lock.json",
    ]
    item_ids = list(version.dataset.items.order_by("id").values_list("id", flat=True))

    train = load_coco(tmp_path, files["annotations/instances_train.json"], "train.json")
    assert [c["name"] for c in train.loadCats(train.getCatIds())] == ["bus", "car"]
    assert train.getCatIds(catNms=["car"]) == [2]
    assert sorted(train.getImgIds()) == [item_ids[0], item_ids[1], item_ids[4]]
    anns = train.loadAnns(train.getAnnIds())
    assert [a["id"] for a in anns] == [1, 2, 3, 4]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in anns] == [
        (item_ids[0], 2, [1, 2, 30, 40]),
        (item_ids[0], 1, [5.5, 6.25, 10.5, 2]),
        (item_ids[1], 2, [10, 10, 20, 30]),
        (item_ids[4], 1, [7, 8, 0, 0]),
    ]
    assert anns[0]["area"] == 1200 and anns[1]["area"] == 21.0
    assert anns[0]["segmentation"] == [] and anns[0]["iscrowd"] == 0
    assert anns[2]["segmentation"] == [[10, 10, 30, 10, 10, 40]] and anns[2]["area"] == 300
    with warnings.catch_warnings():
        # pycocotools' own mask decoding under numpy 2 (copy keyword), not our file.
        warnings.simplefilter("ignore", DeprecationWarning)
        assert train.annToMask(anns[2]).sum() > 250  # the polygon rasterises
    assert anns[3]["keypoints"] == [7, 8, 2] and anns[3]["num_keypoints"] == 1
    assert train.loadCats([1])[0]["keypoints"] == ["bus"]
    image = train.loadImgs([item_ids[0]])[0]
    assert (image["file_name"], image["width"], image["height"]) == ("image-000.png", 64, 48)
    assert image["labelvault"]["url"] == (
        f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{image['labelvault']['sha256']}"
    )

    val = load_coco(tmp_path, files["annotations/instances_val.json"], "val.json")
    assert sorted(val.getImgIds()) == [item_ids[2], item_ids[3]] and val.getAnnIds() == []
    flags = {i["id"]: i["labelvault"]["labelled"] for i in val.loadImgs(val.getImgIds())}
    assert flags == {item_ids[2]: True, item_ids[3]: False}

    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"] == {"items": 5, "labelled": 4, "regions": 4, "skipped": {}}


def test_coco_boxes_evaluate_with_cocoeval(ops, tmp_path):
    labels = [[box("car", 1, 2, 30, 40), box("car", 20, 5, 10, 10, region_id="r2")]]
    version = version_of(ops, labels=labels, splits=["train"])
    data = zip_files(export_bytes(version, "coco"))["annotations/instances_train.json"]
    gt = load_coco(tmp_path, data, "gt.json")
    detections = [{**a, "score": 1.0} for a in gt.loadAnns(gt.getAnnIds())]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("error")
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95] of the truth itself


def test_coco_export_of_unicode_and_right_to_left_class_names(ops, tmp_path):
    labels = [[box("שלום"), box("猫", region_id="r2")]]
    version = version_of(ops, labels=labels, splits=["val"], external_ids=["ktz/猫.png"])
    files = zip_files(export_bytes(version, "coco"))
    raw = files["annotations/instances_val.json"]
    assert "שלום".encode() in raw and "猫".encode() in raw  # UTF-8, not \\u escapes
    coco = load_coco(tmp_path, raw, "val.json")
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["שלום", "猫"]
    assert [a["category_id"] for a in coco.loadAnns(coco.getAnnIds())] == [1, 2]
    assert coco.loadImgs(coco.getImgIds())[0]["file_name"] == "ktz/猫.png"


def test_coco_export_of_an_image_with_a_thousand_boxes(ops, tmp_path):
    boxes = [box("car", x=n % 60, y=n % 40, w=2, h=3, region_id=f"r{n}") for n in range(1000)]
    version = version_of(ops, labels=[boxes], splits=["test"])
    first = export_bytes(version, "coco")
    assert export_bytes(version, "coco") == first  # the same bytes every time
    coco = load_coco(tmp_path, zip_files(first)["annotations/instances_test.json"], "t.json")
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 1000 and [a["id"] for a in anns] == list(range(1, 1001))
    assert anns[999]["bbox"] == [999 % 60, 999 % 40, 2, 3]


def test_coco_export_is_byte_identical_when_rebuilt(ops):
    labels = [[box("car"), polygon("bus", [[1.5, 1], [30, 1], [1, 40.25]])], None, []]
    version = version_of(ops, labels=labels, splits=["train", "val", "test"])
    first = export_bytes(version, "coco")
    assert export_bytes(version, "coco") == first
    text = zip_files(first)["annotations/instances_train.json"].decode()
    assert text.startswith('{"info":{"description":"Labelvault dataset ')
    assert '"licenses":[],"images":[{"id":' in text and " " not in text.split('"info"')[0]


def test_coco_export_filters_splits_and_classes_and_embeds_images(ops, tmp_path):
    labels = [[box("car"), box("bus", region_id="r2")], [box("bus")], [box("car")]]
    version = version_of(ops, labels=labels, splits=["train", "val", "test"])
    files = zip_files(
        export_bytes(version, "coco", splits=["test", "train"], classes=["car"], images=True)
    )
    assert list(files) == [
        "annotations/instances_train.json",
        "annotations/instances_test.json",
        "images/image-000.png",
        "images/image-002.png",
        "labelvault.lock.json",
    ]
    train = load_coco(tmp_path, files["annotations/instances_train.json"], "train.json")
    assert train.loadCats(train.getCatIds()) == [{"id": 1, "name": "car", "supercategory": ""}]
    assert [a["category_id"] for a in train.loadAnns(train.getAnnIds())] == [1]
    image = train.loadImgs(train.getImgIds())[0]
    assert "url" not in image["labelvault"]
    assert files["images/" + image["file_name"]].startswith(b"\x89PNG")
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}
    assert lock["counts"]["regions"] == 2


def test_coco_export_of_classifications_and_attributes(ops, tmp_path):
    occluded = box("car", attributes={"occluded": True, "note": "half"})
    labels = [[choice("cat", "dog")], [occluded], [{"id": "s", "type": "labels", "value": {}}]]
    version = version_of(ops, labels=labels, splits=["train", "train", "train"])
    files = zip_files(export_bytes(version, "coco"))
    coco = load_coco(tmp_path, files["annotations/instances_train.json"], "train.json")
    ids = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    images = coco.loadImgs(sorted(coco.getImgIds()))
    assert images[0]["category_ids"] == [ids["cat"], ids["dog"]]
    assert "category_ids" not in images[1]
    (ann,) = coco.loadAnns(coco.getAnnIds())
    assert ann["attributes"] == {"note": "half", "occluded": True}
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"labels not in coco": 1}


# --- reading ------------------------------------------------------------------------------


def test_coco_reader_turns_hand_written_json_into_records(tmp_path):
    data = coco_json(
        images=[
            {"id": 10, "file_name": "a/one.jpg", "width": 640, "height": 480},
            {"id": 11, "file_name": "two.jpg", "width": 100, "height": 50},
            {"id": 12, "file_name": "three.jpg", "category_ids": [2]},
        ],
        annotations=[
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [10, 20, 30, 40]},
            {
                "id": 2,
                "image_id": 10,
                "category_id": 2,
                "bbox": [0, 0, 1, 1],
                "segmentation": [[1.5, 2, 30, 2, 30, 40.25]],
                "attributes": {"occluded": False},
            },
            {"id": 3, "image_id": 10, "category_id": 1, "bbox": [1.0, 2.5, 3, 4]},
            {"id": 4, "image_id": 12, "category_id": 1, "keypoints": [5, 6, 2], "num_keypoints": 1},
        ],
    )
    records = read_records(tmp_path, data)
    assert [(r.row, r.key, r.width, r.height) for r in records] == [
        ("images[0]", "a/one.jpg", 640, 480),
        ("images[1]", "two.jpg", 100, 50),
        ("images[2]", "three.jpg", None, None),
    ]
    assert all(not r.problems for r in records)
    first = records[0].regions
    assert first[0] == {
        "type": "rectanglelabels",
        "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["car"]},
    }
    assert all(type(v) is int for v in list(first[0]["value"].values())[:4])  # ints stay ints
    assert first[1] == {
        "type": "polygonlabels",
        "value": {"points": [[1.5, 2], [30, 2], [30, 40.25]], "polygonlabels": ["bus"]},
        "attributes": {"occluded": False},
    }
    assert first[2]["value"]["x"] == 1.0 and type(first[2]["value"]["x"]) is float
    assert records[1].regions == []  # an image with nothing on it
    assert records[2].regions == [
        {"type": "choices", "value": {"choices": ["bus"]}},
        {"type": "keypointlabels", "value": {"x": 5, "y": 6, "keypointlabels": ["car"]}},
    ]


def test_coco_reader_names_keypoints_from_the_category(tmp_path):
    person = {"id": 1, "name": "person", "keypoints": ["nose", "left_eye", "right_eye"]}
    data = coco_json(
        images=[{"id": 1, "file_name": "p.jpg", "width": 10, "height": 10}],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1, 2, 2, 0, 0, 0, 5, 6, 1]},
            # No visible keypoint (num_keypoints 0): its box is read instead.
            {"id": 2, "image_id": 1, "category_id": 1, "keypoints": [0] * 9, "bbox": [1, 1, 2, 2]},
        ],
        categories=[person],
    )
    (record,) = read_records(tmp_path, data)
    assert [(r["type"], r["value"]) for r in record.regions] == [
        ("keypointlabels", {"x": 1, "y": 2, "keypointlabels": ["nose"]}),
        ("keypointlabels", {"x": 5, "y": 6, "keypointlabels": ["right_eye"]}),
        (
            "rectanglelabels",
            {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["person"]},
        ),
    ]


def test_coco_reader_reports_bad_rows_by_row_field_and_reason(tmp_path):
    data = coco_json(
        images=[
            {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
            {"id": 2, "file_name": "b.jpg", "width": "wide", "height": 10},
            {"id": 1, "file_name": "c.jpg"},
        ],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]},
            {"id": 4, "image_id": 1, "category_id": 1, "bbox": [1, 2, -3, 4]},
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, "2", 3, 4]},
            {
                "id": 6,
                "image_id": 2,
                "category_id": 1,
                "segmentation": {"size": [10, 10], "counts": "abc"},
                "iscrowd": 1,
            },
            {"id": 7, "image_id": 2, "category_id": 1, "segmentation": [[1, 2, 3]]},
            {"id": 8, "image_id": 2, "category_id": 1},
        ],
    )
    records = read_records(tmp_path, data)
    found = [(p.row, p.field, p.reason) for r in records for p in r.problems]
    assert found[0] == (
        "annotations[0]",
        "category_id",
        "unknown category id 7 (not in categories)",
    )
    assert found[1][:2] == ("annotations[2]", "bbox") and "4 numbers" in found[1][2]
    assert found[2] == ("annotations[3]", "bbox", "the box has no area (width -3, height 4)")
    assert found[3][:2] == ("annotations[4]", "bbox") and "'2'" in found[3][2]
    assert found[4][:2] == ("images[1]", "width")
    assert found[5] == (
        "annotations[5]",
        "segmentation",
        "RLE masks are not supported (only polygons)",
    )
    assert found[6][:2] == ("annotations[6]", "segmentation[0]")
    assert found[7][:2] == ("annotations[7]", "bbox") and "needs a bbox" in found[7][2]
    assert found[8] == ("images[2]", "id", "image id 1 is also the id of images[0]")
    assert found[9] == (
        "annotations[1]",
        "image_id",
        "image_id 99 is not the id of any image in images",
    )
    assert len(found) == 10
    assert records[0].regions == [] and records[0].key == "a.jpg"  # rejected as a whole


def test_coco_reader_accepts_a_byte_order_mark(tmp_path):
    data = coco_json(
        images=[{"id": 1, "file_name": "a.jpg"}],
        annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}],
    )
    (record,) = read_records(tmp_path, b"\xef\xbb\xbf" + data)
    assert record.key == "a.jpg" and record.regions[0]["value"]["x"] == 1


@pytest.mark.parametrize(
    "data",
    [b'{"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"id"', b"not json", b""],
)
def test_coco_reader_refuses_a_truncated_or_non_json_file(tmp_path, data):
    with pytest.raises(InvalidLabelFile, match="is not a COCO JSON file"):
        read_records(tmp_path, data)


def test_coco_reader_refuses_a_broken_zip(tmp_path):
    with pytest.raises(InvalidLabelFile, match="cannot be read"):
        read_records(tmp_path, b"PK\x03\x04 truncated", suffix=".zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("readme.txt", "no json here")
    with pytest.raises(InvalidLabelFile, match="annotations/"):
        read_records(tmp_path, buffer.getvalue(), suffix=".zip")


def test_coco_reader_reads_every_split_of_our_zip(ops, tmp_path):
    labels = [[box("car")], None, [], [box("bus", 5, 6, 7, 8)]]
    version = version_of(ops, labels=labels, splits=["train", "val", "test", "val"])
    records = read_records(tmp_path, export_bytes(version, "coco"), suffix=".zip")
    # The unlabelled image (None) gives no record: it stays unlabelled.
    assert [(r.row, r.key) for r in records] == [
        ("annotations/instances_train.json:images[0]", "image-000.png"),
        ("annotations/instances_val.json:images[1]", "image-003.png"),
        ("annotations/instances_test.json:images[0]", "image-002.png"),
    ]
    assert [len(r.regions) for r in records] == [1, 1, 0]
    assert records[0].sha256 and len(records[0].sha256) == 64


def test_coco_reader_keeps_the_files_of_a_zip_apart(tmp_path):
    """Image ids are a file's own: instances_val's image 1 is not instances_train's."""
    train = coco_json(
        images=[{"id": 1, "file_name": "t.jpg"}],
        annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
    )
    val = coco_json(
        images=[{"id": 1, "file_name": "v.jpg"}],
        annotations=[{"id": 1, "image_id": 1, "category_id": 2, "bbox": [3, 3, 4, 4]}],
        categories=[{"id": 2, "name": "bus"}],
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("annotations/instances_train.json", train)
        zf.writestr("annotations/instances_val.json", val)
        zf.writestr("images/t.jpg", b"not read")
    records = read_records(tmp_path, buffer.getvalue(), suffix=".zip")
    assert [(r.key, [g["value"]["rectanglelabels"] for g in r.regions]) for r in records] == [
        ("t.jpg", [["car"]]),
        ("v.jpg", [["bus"]]),
    ]


# --- through the label import service ------------------------------------------------------


BOX_SCHEMA = {"type": "bbox", "labels": [{"name": "car"}, {"name": "猫"}], "allow_empty": True}


def test_coco_round_trip_of_boxes_and_empty_images(ops):
    labels = [
        [box("car", 1, 2, 30, 40), box("猫", 5.5, 6.25, 10.5, 2.0, region_id="r2")],
        [],
        None,
        [box("car", 0, 0, 64, 48)],
    ]
    version = version_of(ops, labels=labels, splits=["train", "val", "val", "test"])
    first, second = round_trip(version, "coco", schema=BOX_SCHEMA, images=True)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))
    lock = json.loads(zip_files(second)["labelvault.lock.json"])
    assert lock["counts"]["labelled"] == 3  # the unlabelled image stayed unlabelled


def test_coco_round_trip_of_polygons_with_attributes(ops):
    schema = {
        "type": "polygon",
        "labels": [{"name": "road"}, {"name": "שלום"}],
        "attributes": [{"name": "occluded", "type": "bool", "default": False}],
    }
    labels = [
        [
            {**polygon("road", [[1, 2], [30, 4], [5, 40]]), "attributes": {"occluded": True}},
            {
                **polygon("שלום", [[1.5, 2.25], [60.5, 2], [33, 47.75], [2, 40]], "p2"),
                "attributes": {"occluded": False},
            },
        ],
        [{**polygon("road", [[0, 0], [64, 0], [64, 48]]), "attributes": {"occluded": False}}],
    ]
    version = version_of(ops, labels=labels, splits=["train", "val"])
    first, second = round_trip(version, "coco", schema=schema, images=True)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))


def test_coco_round_trip_of_keypoints_and_classifications(ops):
    keypoints = version_of(
        ops,
        labels=[[keypoint("nose", 7, 8), keypoint("eye", 9.5, 10, "k2")]],
        splits=["train"],
    )
    schema = {"type": "keypoint", "labels": [{"name": "eye"}, {"name": "nose"}]}
    first, second = round_trip(keypoints, "coco", schema=schema, images=True)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))

    classes = version_of(ops, labels=[[choice("cat", "dog")], [choice("dog")]])
    schema = {"type": "image_class", "multiple": True, "labels": [{"name": "cat"}, {"name": "dog"}]}
    first, second = round_trip(classes, "coco", schema=schema, images=True)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))


def test_coco_round_trip_differs_only_by_the_urls_of_the_new_version(ops):
    version = version_of(ops, labels=[[box("car")]], splits=["train"])
    first, second = round_trip(version, "coco", schema=BOX_SCHEMA)
    a = zip_files(first)["annotations/instances_train.json"].decode()
    b = zip_files(second)["annotations/instances_train.json"].decode()
    assert a != b and a.replace(version.pk, "<v>").count("<v>") == 1
    new = json.loads(zip_files(second)["labelvault.lock.json"])["version"]
    assert a.replace(version.pk, new) == b


def test_coco_import_of_a_bare_json_reports_problems_and_stores_nothing(ops):
    version = version_of(ops, labels=[None, None])
    data = coco_json(
        images=[
            {"id": 1, "file_name": "image-000.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "image-001.png", "width": 64, "height": 48},
        ],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 2, "category_id": 9, "bbox": [1, 2, 3, 4]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [60, 2, 30, 4]},
        ],
    )
    result = label_file_import(version, data, "coco", schema=BOX_SCHEMA, suffix=".json")
    assert result.state == "failed" and result.imported == 0
    found = problems_of(result)
    assert ("annotations[1]", "category_id", "unknown category id 9 (not in categories)") in found
    assert not version.dataset.items.filter(label__isnull=False).exists()

    result = label_file_import(
        version, data, "coco", schema=BOX_SCHEMA, suffix=".json", valid_only=True
    )
    assert (result.state, result.imported, result.rejected) == ("done", 1, 1)
    item = version.dataset.items.get(external_id="image-000.png")
    assert item.label.value == [
        {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["car"]},
        }
    ]


def test_coco_import_drops_attributes_the_schema_does_not_define(ops):
    """CVAT's COCO writes `occluded` (and its own keys) on every annotation: a project
    without those attributes takes the boxes, not the foreign attributes."""
    from datasets.models import Label

    version = version_of(ops, labels=[None])
    data = coco_json(
        [{"id": 1, "file_name": "image-000.png", "width": 64, "height": 48}],
        [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [1, 2, 3, 4],
                "area": 12,
                "iscrowd": 0,
                "attributes": {"occluded": False, "track_id": 3},
            }
        ],
    )
    schema = {"type": "bbox", "labels": [{"name": "car"}, {"name": "bus"}]}
    result = label_file_import(version, data, "coco", schema=schema, suffix=".json")
    assert result.state == "done", problems_of(result)
    value = Label.objects.get().value
    assert value == [
        {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["car"]},
        }
    ]


def test_coco_import_lists_every_problem_of_a_record(ops):
    """An unknown category and a box outside the image in one image: both reported."""
    version = version_of(ops, labels=[None])
    data = coco_json(
        [{"id": 1, "file_name": "image-000.png", "width": 64, "height": 48}],
        [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [60, 2, 30, 4]},
        ],
    )
    schema = {"type": "bbox", "labels": [{"name": "car"}, {"name": "bus"}]}
    result = label_file_import(version, data, "coco", schema=schema, suffix=".json")
    assert result.state == "failed" and result.imported == 0 and result.rejected == 1
    found = problems_of(result)
    assert any(field == "category_id" and "9" in reason for _, field, reason in found)
    assert any(field.startswith("result[0].value") for _, field, _ in found), found
