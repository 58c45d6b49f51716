"""YOLO (Ultralytics layout): exact label files and data.yaml, empty label files for
background images, unicode names, determinism, splits/classes; the reader on our export
and on hand-written Ultralytics/Roboflow zips; malformed files; round trips."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import pytest
import yaml

from datasets.formats import export_format, import_format
from datasets.formats.base import (
    ExportContext,
    InvalidLabelFile,
    export_file_name,
    export_options_check,
)
from datasets.formats.yolo import data_yaml, yaml_quoted
from tests.datasets.formats.conftest import (
    URL_BASE,
    export_bytes,
    round_trip,
    version_of,
    without_lock,
    zip_files,
)
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db

BBOX_SCHEMA = {"type": "bbox", "allow_empty": True, "labels": [{"name": "car"}, {"name": "road"}]}


def box(label, x, y, w, h, region_id="r1"):
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
    }


def polygon(label, points, region_id="r1"):
    return {
        "id": region_id,
        "type": "polygonlabels",
        "value": {"points": points, "polygonlabels": [label]},
    }


def keypoint(label, x, y, region_id="r9"):
    return {
        "id": region_id,
        "type": "keypointlabels",
        "value": {"x": x, "y": y, "keypointlabels": [label]},
    }


def read(tmp_path, files: dict[str, bytes] | bytes, *, name="labels.zip", classes=None):
    """The records the YOLO reader gives for a zip of `files` (or these bytes as is)."""
    path = tmp_path / name
    if isinstance(files, bytes):
        path.write_bytes(files)
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for entry, data in files.items():
                zf.writestr(entry, data)
        path.write_bytes(buffer.getvalue())
    return list(import_format("yolo").read(str(path), classes=classes))


def problems(records) -> list[tuple[Any, str, str]]:
    return [(p.row, p.field, p.reason) for r in records for p in r.problems]


# --- export -------------------------------------------------------------------------------


def test_yolo_export_hand_checked(ops):
    labels = [
        [box("car", 10, 5, 20, 10), polygon("road", [[0, 0], [50, 0], [50, 25]], "r2")],
        [box("road", 16, 12, 32, 24), keypoint("car", 3, 4)],
        None,
    ]
    version = version_of(
        ops,
        labels=labels,
        contents=[png_bytes(100, 50), png_bytes(64, 48), png_bytes(64, 48, (1, 2, 3))],
        external_ids=["a.png", "b.png", "c.png"],
        splits=["train", "val", "train"],
    )
    data = export_bytes(version, "yolo")
    files = zip_files(data)
    assert list(files) == [
        "data.yaml",
        "train.txt",
        "val.txt",
        "labels/train/a.txt",
        "labels/val/b.txt",
        "labels/train/c.txt",
        "sources.csv",
        "labelvault.lock.json",
    ]
    assert files["data.yaml"] == (
        b'path: .\ntrain: train.txt\nval: val.txt\nnc: 2\nnames:\n  0: "car"\n  1: "road"\n'
    )
    assert files["train.txt"] == b"./images/train/a.png\n./images/train/c.png\n"
    assert files["val.txt"] == b"./images/val/b.png\n"
    # 100x50: the box's centre (20, 10) and size (20, 10); the polygon's points / size.
    assert files["labels/train/a.txt"] == (
        b"0 0.200000 0.200000 0.200000 0.200000\n"
        b"1 0.000000 0.000000 0.500000 0.000000 0.500000 0.500000\n"
    )
    assert files["labels/val/b.txt"] == b"1 0.500000 0.500000 0.500000 0.500000\n"
    assert files["labels/train/c.txt"] == b""  # a background image: an empty label file
    sources = list(csv.reader(io.StringIO(files["sources.csv"].decode())))
    assert sources[0] == ["path", "url", "sha256"]
    assert [s[0] for s in sources[1:]] == [
        "images/train/a.png",
        "images/val/b.png",
        "images/train/c.png",
    ]
    for _, url, sha256 in sources[1:]:
        assert url == f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{sha256}"
        assert len(sha256) == 64
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["format"] == "yolo" and lock["classes"] == ["car", "road"]
    assert lock["counts"] == {
        "items": 3,
        "labelled": 2,
        "regions": 3,
        "skipped": {"keypointlabels not in yolo": 1},
    }
    assert export_bytes(version, "yolo") == data  # rebuilt: the same bytes


def test_yolo_export_embeds_images_and_filters_splits_and_classes(ops):
    labels = [
        [box("car", 1, 2, 3, 4), polygon("road", [[0, 0], [8, 0], [8, 8]], "r2")],
        [box("road", 1, 1, 2, 2)],
    ]
    version = version_of(ops, labels=labels, splits=["train", "val"])
    files = zip_files(
        export_bytes(version, "yolo", images=True, splits=["train"], classes=["road"])
    )
    assert list(files) == [
        "data.yaml",
        "train.txt",
        "labels/train/image-000.txt",
        "images/train/image-000.png",
        "labelvault.lock.json",
    ]
    assert yaml.safe_load(files["data.yaml"]) == {
        "path": ".",
        "train": "train.txt",
        "nc": 1,
        "names": {0: "road"},
    }
    assert files["labels/train/image-000.txt"] == (
        b"0 0.000000 0.000000 0.125000 0.000000 0.125000 0.166667\n"
    )
    assert files["images/train/image-000.png"] == png_bytes(64, 48, (0, 0, 7))
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}
    assert lock["counts"]["regions"] == 1


def test_yolo_data_yaml_names_read_back_as_written():
    names = [
        "car",
        "שלום עולם",  # RTL
        "مرحبا",
        'say "hi"',
        "back\\slash",
        "yes",
        "null",
        "1",
        "- dash",
        "key: value",
        "# hash",
        "tab\there",
        "line\nbreak",
        "nel\x85ls\u2028ps\u2029",
        "del\x7f bom\ufeff",
        "emoji 🚗",
        "  spaces  ",
    ]
    text = data_yaml(["train", "val"], names)
    assert yaml.safe_load(text) == {
        "path": ".",
        "train": "train.txt",
        "val": "val.txt",
        "nc": len(names),
        "names": dict(enumerate(names)),
    }
    assert "שלום עולם".encode() in text  # UTF-8, not escapes
    assert yaml_quoted("a\u2028b") == '"a\\u2028b"'
    assert data_yaml([], []) == b"path: .\nnc: 0\nnames: {}\n"


def test_yolo_export_of_unicode_names(ops, tmp_path):
    labels = [[box("שלום", 0, 0, 8, 8), box('a "b"', 8, 8, 8, 8, "r2")]]
    version = version_of(ops, labels=labels, splits=["test"])
    data = export_bytes(version, "yolo")
    files = zip_files(data)
    assert yaml.safe_load(files["data.yaml"])["names"] == {0: 'a "b"', 1: "שלום"}
    assert files["test.txt"] == b"./images/test/image-000.png\n"
    records = read(tmp_path, data)
    names = [r["value"]["rectanglelabels"][0] for r in records[0].regions]
    assert names == ["שלום", 'a "b"']


def test_yolo_export_of_1000_boxes_is_deterministic(ops, tmp_path):
    boxes = [
        box(
            "car" if n % 3 else "road",
            (n * 7) % 600,
            (n * 13) % 440,
            1 + n % 40,
            1 + n % 39,
            f"r{n}",
        )
        for n in range(1000)
    ]
    version = version_of(ops, labels=[boxes], contents=[png_bytes(640, 480)], splits=["train"])
    data = export_bytes(version, "yolo")
    assert export_bytes(version, "yolo") == data
    text = zip_files(data)["labels/train/image-000.txt"].decode()
    lines = text.splitlines()
    assert len(lines) == 1000 and text.endswith("\n")
    assert lines[0] == "1 0.000781 0.001042 0.001563 0.002083"  # (0, 0, 1, 1) in 640x480
    assert lines[1] == "0 0.012500 0.029167 0.003125 0.004167"  # (7, 13, 2, 2)
    for n, line in enumerate(lines):
        fields = line.split()
        assert len(fields) == 5 and all(len(f.split(".")[1]) == 6 for f in fields[1:])
        w = float(fields[3]) * 640
        assert abs(w - (1 + n % 40)) < 1e-3
    (record,) = read(tmp_path, data)
    assert len(record.regions) == 1000 and record.key == "image-000.png"
    assert json.loads(zip_files(data)["labelvault.lock.json"])["counts"]["regions"] == 1000


def test_yolo_export_leaves_out_an_image_whose_label_file_name_is_taken(ops):
    version = version_of(
        ops,
        labels=[[box("car", 1, 1, 2, 2)], [box("car", 2, 2, 2, 2)], [box("car", 3, 3, 2, 2)]],
        external_ids=["x/a.png", "x/a.jpg", "x/a.jpg.png"],
        splits=["train", "train", "val"],
    )
    files = zip_files(export_bytes(version, "yolo", images=True))
    assert files["train.txt"] == b"./images/train/x/a.png\n"
    assert "labels/train/x/a.txt" in files and "images/train/x/a.png" in files
    assert "images/train/x/a.jpg" not in files
    assert files["val.txt"] == b"./images/val/x/a.jpg.png\n"
    assert "labels/val/x/a.jpg.txt" in files
    lock = json.loads(files["labelvault.lock.json"])
    # Counted once, though the clash made the rows go through twice.
    assert lock["counts"] == {
        "items": 3,
        "labelled": 3,
        "regions": 2,
        "skipped": {"label file name taken": 1},
    }


def test_yolo_export_is_the_same_when_label_paths_only_share_a_hash(ops, monkeypatch):
    """hash() of a name differs from process to process: a repeat of hashes only makes
    the names be compared, it never changes the output."""
    from datasets.formats import yolo

    version = version_of(ops, labels=[[box("car", 1, 1, 2, 2)], None], splits=["train", "val"])
    expected = export_bytes(version, "yolo")
    suspects = {hash("labels/train/image-000.txt"), hash("labels/val/image-001.txt")}
    monkeypatch.setattr(yolo, "_repeated", lambda hashes: suspects)
    assert export_bytes(version, "yolo") == expected


def test_yolo_repeated_hashes_are_found():
    from array import array

    from datasets.formats.yolo import _repeated

    assert _repeated(array("q", [3, -1, 3, 2, -1, 3])) == {3, -1}
    assert _repeated(array("q", [5, 4])) == set() and _repeated(array("q")) == set()


class MemorySource:
    """Rows from memory (an image whose size is unknown cannot come from a real asset)."""

    def __init__(self, rows):
        self._rows = rows

    def rows(self):
        yield from (dict(row) for row in self._rows)

    def content(self, sha256):
        return b"image " + sha256.encode()

    def open(self, sha256):
        return io.BytesIO(self.content(sha256))


def memory_row(n: int, *, width, height, label) -> dict[str, Any]:
    sha256 = f"{n:064x}"
    return {
        "id": n,
        "external_id": f"img{n}.jpg",
        "sha256": sha256,
        "size": 10,
        "media_type": "image/jpeg",
        "metadata": {},
        "tags": [],
        "split": "train",
        "label": label,
        "provenance": None,
        "width": width,
        "height": height,
        "file_name": export_file_name(f"img{n}.jpg", sha256, "image/jpeg"),
    }


def memory_export(rows, **options) -> tuple[dict[str, bytes], ExportContext]:
    ctx = ExportContext(
        version_id="v" * 64,
        dataset_id=1,
        dataset_kind="image",
        code_commit="abc",
        code_repo="",
        fmt="yolo",
        options=export_options_check(options),
        class_counts={"car": 1},
        source=MemorySource(rows),
        url_base=URL_BASE,
    )
    out = io.BytesIO()
    export_format("yolo").write(ctx, out)
    return zip_files(out.getvalue()), ctx


def test_yolo_export_leaves_out_images_of_unknown_size():
    rows = [
        memory_row(1, width=None, height=None, label=[box("car", 1, 1, 2, 2)]),
        memory_row(2, width=10, height=10, label=[box("car", 0, 0, 10, 5)]),
    ]
    files, ctx = memory_export(rows, images=True)
    assert files["train.txt"] == b"./images/train/img2.jpg\n"
    assert files["labels/train/img2.txt"] == b"0 0.500000 0.250000 1.000000 0.500000\n"
    assert "images/train/img1.jpg" not in files and "labels/train/img1.txt" not in files
    assert files["images/train/img2.jpg"] == b"image " + f"{2:064x}".encode()
    assert ctx.counts.skipped == {"image size unknown": 1}
    assert ctx.counts.regions == 1


# --- import: readers on hand-written files ------------------------------------------------


def test_yolo_reader_on_an_ultralytics_dataset(tmp_path):
    records = read(
        tmp_path,
        {
            "coco8/data.yaml": b"path: ../datasets/coco8\ntrain: images/train\nval: images/val\n"
            b"names:\n  0: person\n  1: bicycle\n  2: car\n",
            "coco8/images/train/000009.jpg": b"jpeg",
            "coco8/labels/train/000009.txt": b"2 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n",
            "coco8/labels/val/000042.txt": b"",  # a background image, no image in the zip
            "coco8/labels/train.cache": b"\x00binary",
        },
    )
    assert [(r.row, r.key, r.normalized, r.problems) for r in records] == [
        ("coco8/labels/train/000009.txt", "000009.jpg", True, []),
        ("coco8/labels/val/000042.txt", "000042", True, []),
    ]
    car, person = records[0].regions
    assert car["type"] == "rectanglelabels"
    value = car["value"]
    assert value["rectanglelabels"] == ["car"]
    assert value["x"] == pytest.approx(0.4) and value["y"] == pytest.approx(0.3)
    assert value["width"] == pytest.approx(0.2) and value["height"] == pytest.approx(0.4)
    assert person == {
        "type": "polygonlabels",
        "value": {
            "points": [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]],
            "polygonlabels": ["person"],
        },
    }
    assert records[1].regions == []


def test_yolo_reader_on_a_roboflow_layout_with_a_names_list(tmp_path):
    records = read(
        tmp_path,
        {
            "data.yaml": b"train: ../train/images\nnc: 2\nnames: ['cat', 'dog']\n",
            "train/images/pic_1.png": b"png",
            "train/labels/pic_1.txt": b"1 0.5 0.5 1 1\n",
            "valid/labels/pic_2.txt": b"0 0.25 0.25 0.5 0.5",
        },
    )
    assert [(r.key, r.regions[0]["value"]["rectanglelabels"]) for r in records] == [
        ("pic_1.png", ["dog"]),
        ("pic_2", ["cat"]),
    ]
    assert records[0].regions[0]["value"] == {
        "x": 0.0,
        "y": 0.0,
        "width": 1.0,
        "height": 1.0,
        "rectanglelabels": ["dog"],
    }


def test_yolo_reader_takes_names_from_classes_txt_or_the_project(tmp_path):
    (record,) = read(
        tmp_path, {"classes.txt": b"zebra\nlion\n", "labels/a.txt": b"1 0.5 0.5 0.1 0.1\n"}
    )
    assert record.key == "a" and record.regions[0]["value"]["rectanglelabels"] == ["lion"]
    (record,) = read(tmp_path, {"labels/a.txt": b"1 0.5 0.5 0.1 0.1\n"}, classes=["x", "y"])
    assert record.regions[0]["value"]["rectanglelabels"] == ["y"]


def test_yolo_reader_of_a_single_label_file(tmp_path):
    (record,) = read(tmp_path, b"0 0.5 0.5 0.5 0.5\r\n", name="img_7.txt", classes=["car"])
    assert record.key == "img_7" and record.row == "img_7.txt" and record.normalized
    assert record.regions[0]["value"]["rectanglelabels"] == ["car"]


def test_yolo_reader_maps_our_export_to_file_names(ops, tmp_path):
    version = version_of(
        ops,
        labels=[[box("car", 1, 1, 2, 2)], None],
        external_ids=["dir/a.png", "b"],
        splits=["val", "train"],
    )
    records = read(tmp_path, export_bytes(version, "yolo"))
    # Without images the split lists give each label file its image's extension.
    assert [r.key for r in records] == ["dir/a.png", "b.png"]
    assert [len(r.regions) for r in records] == [1, 0]


# --- import: malformed files --------------------------------------------------------------


def test_yolo_reader_reports_bad_lines(tmp_path):
    records = read(
        tmp_path,
        {
            "data.yaml": b"names: [a, b]\n",
            "labels/train/x.txt": b"0 0.5 0.5 0.1 0.1\n"
            b"2 0.5 0.5 0.1 0.1\n"
            b"0 0.5 0.5 0.1\n"
            b"0 0.5 1.5 0.1 0.1\n"
            b"0 0.5 zero 0.1 0.1\n"
            b"cat 0.5 0.5 0.1 0.1\n"
            b"0 0.1 0.1 0.2 0.2 0.3\n"
            b"0 0.1 0.1\n"
            b"0 0.5 0.5 0 0.1\n"
            b"1 0.05 0.5 0.2 0.1\n"
            b"-1 0.5 0.5 0.1 0.1\n"
            b"0 0.5 0.5 0.1 nan\n",
            "labels/train/y.txt": b"1 0.5 0.5 0.2 0.2\n",
        },
    )
    assert problems(records) == [
        ("labels/train/x.txt:2", "class", "class index 2 is out of range (data.yaml names: 2 classes, 0-1)"),
        ("labels/train/x.txt:3", "line", "4 fields; a box is 'class cx cy w h' (5), a polygon 'class x1 y1 x2 y2 x3 y3 ...' (7 or more, odd)"),
        ("labels/train/x.txt:4", "cy", "1.5 is outside [0, 1] (YOLO coordinates are fractions)"),
        ("labels/train/x.txt:5", "cy", "'zero' is not a number"),
        ("labels/train/x.txt:6", "class", "the class 'cat' is not a number"),
        ("labels/train/x.txt:7", "line", "a polygon has an even number of coordinates; this line has 5"),
        ("labels/train/x.txt:8", "line", "a polygon needs at least 3 points, got 1"),
        ("labels/train/x.txt:9", "w", "the box has no area"),
        ("labels/train/x.txt:10", "cx", "the box goes outside the image"),
        ("labels/train/x.txt:11", "class", "class index -1 is out of range (data.yaml names: 2 classes, 0-1)"),
        ("labels/train/x.txt:12", "h", "nan is outside [0, 1] (YOLO coordinates are fractions)"),
    ]  # fmt: skip
    assert records[1].problems == [] and len(records[1].regions) == 1


def test_yolo_reader_without_class_names_says_so(tmp_path):
    (record,) = read(tmp_path, {"labels/a.txt": b"0 0.5 0.5 0.1 0.1\n"})
    assert problems([record]) == [
        (
            "labels/a.txt:1",
            "class",
            "class 0: no class names (no data.yaml names and no project labels)",
        )
    ]


def test_yolo_reader_refuses_unreadable_files(ops, tmp_path):
    version = version_of(ops, labels=[[box("car", 1, 1, 2, 2)]])
    data = export_bytes(version, "yolo")
    with pytest.raises(InvalidLabelFile, match="cannot be read"):
        read(tmp_path, data[: len(data) // 2])
    with pytest.raises(InvalidLabelFile, match="no label files"):
        read(tmp_path, {"data.yaml": b"names: [a]\n", "images/a.jpg": b"x"})
    with pytest.raises(InvalidLabelFile, match="not valid YAML"):
        read(tmp_path, {"data.yaml": b"names: [a\n", "labels/a.txt": b""})
    (record,) = read(tmp_path, b"\xff\xfe\x00binary", name="x.txt", classes=["a"])
    assert problems([record]) == [("x.txt", "file", "not a text file (not UTF-8)")]


# --- round trips --------------------------------------------------------------------------


def comparable(data: bytes) -> dict[str, bytes]:
    """The files of an export but its lock, with the version id in sources.csv's URLs
    (stable URLs of the version's assets: a round trip makes a new version) made neutral."""
    files = zip_files(data)
    version_id = json.loads(files["labelvault.lock.json"])["version"].encode()
    files = without_lock(files)
    if "sources.csv" in files:
        files["sources.csv"] = files["sources.csv"].replace(version_id, b"<version>")
    return files


def test_yolo_round_trip_of_boxes_and_background_images(ops):
    labels = [
        [box("car", 10, 5, 20, 10), box("road", 0, 0, 100, 50, "r2")],
        [box("road", 16, 12, 32, 24), box("car", 63, 47, 1, 1, "r2")],
        None,
        [],
        [box("car", 1279, 0, 1, 720), box("road", 333, 111, 555, 444, "r2")],
    ]
    version = version_of(
        ops,
        labels=labels,
        contents=[
            png_bytes(100, 50),
            png_bytes(64, 48),
            png_bytes(64, 48, (1, 2, 3)),
            png_bytes(64, 48, (4, 5, 6)),
            png_bytes(1280, 720, (4, 5, 6)),
        ],
        splits=["train", "val", "train", "test", "test"],
    )
    first, second = round_trip(version, "yolo", schema=BBOX_SCHEMA)
    assert comparable(first) == comparable(second)
    assert zip_files(second)["labels/train/image-000.txt"].count(b"\n") == 2


def test_yolo_round_trip_of_polygons_with_images(ops):
    labels = [
        [polygon("road", [[0, 0], [50, 0], [50, 25], [3, 40]])],
        [
            polygon("car", [[1, 1], [63, 1], [32, 47]]),
            polygon("road", [[5, 5], [9, 5], [9, 9]], "r2"),
        ],
    ]
    version = version_of(
        ops,
        labels=labels,
        contents=[png_bytes(100, 50), png_bytes(64, 48)],
        splits=["train", "val"],
    )
    schema = {"type": "polygon", "labels": [{"name": "car"}, {"name": "road"}]}
    first, second = round_trip(version, "yolo", schema=schema, images=True)
    assert comparable(first) == comparable(second)
    assert "images/val/image-001.png" in zip_files(second)
