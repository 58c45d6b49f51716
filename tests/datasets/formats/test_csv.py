"""CSV: the exact data.csv of images and texts, embedded files, class filters; the reader
on hand-written files (label JSON, label names as a classification, ; delimiters, zips);
malformed files; imports through the label-import service and round trips."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from datasets.formats import import_format
from datasets.formats.base import InvalidLabelFile
from datasets.models import Label
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

BOM = b"\xef\xbb\xbf"
HEADER = "id,external_id,file_name,sha256,split,tags,width,height,url,labels,regions,label,metadata"


def box(label, x=1, region_id="r1"):
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
    }


def read(tmp_path, data: bytes, *, name="labels.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return list(import_format("csv").read(str(path)))


def problems(records):
    return [(p.row, p.field, p.reason) for r in records for p in r.problems]


def rows_of(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(zip_files(data)["data.csv"].decode("utf-8-sig"))))


# --- export -------------------------------------------------------------------------------


def test_csv_export_of_images_hand_checked(ops):
    labels = [[box("car"), box("שלום", x=5, region_id="r2")], None, []]
    version = version_of(ops, labels=labels, splits=["train", "val", "train"])
    data = export_bytes(version, "csv")
    assert export_bytes(version, "csv") == data
    files = zip_files(data)
    assert list(files) == ["data.csv", "labelvault.lock.json"]
    text = files["data.csv"]
    assert text.startswith(BOM + HEADER.encode() + b"\n")
    lines = text[len(BOM) :].decode("utf-8").split("\n")
    assert len(lines) == 5 and lines[-1] == ""  # header, 3 rows, the final newline
    items = version.dataset.items.order_by("pk")
    first = items[0]
    sha = first.asset_id
    url = f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{sha}"
    label_json = json.dumps(labels[0], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert lines[1] == (
        f"{first.pk},image-000.png,image-000.png,{sha},train,,64,48,{url},car;שלום,2,"
        f'"{label_json.replace(chr(34), chr(34) * 2)}",{{}}'
    )
    second, third = items[1], items[2]
    assert lines[2] == (
        f"{second.pk},image-001.png,image-001.png,{second.asset_id},val,,64,48,"
        f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{second.asset_id},,,,{{}}"
    )
    assert lines[3].endswith(f"/assets/{third.asset_id},,0,[],{{}}")
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"] == {"items": 3, "labelled": 2, "regions": 2, "skipped": {}}


def test_csv_export_of_texts_embeds_files_and_filters_classes(ops):
    spans = [
        {"id": "s1", "type": "labels", "value": {"start": 0, "end": 4, "text": "text", "labels": ["PER"]}},
        {"id": "s2", "type": "labels", "value": {"start": 5, "end": 6, "text": "0", "labels": ["NUM"]}},
    ]  # fmt: skip
    version = version_of(
        ops,
        kind="text",
        labels=[spans, None],
        contents=[b'text 0, "quoted"\nsecond line', "שלום".encode()],
    )
    data = export_bytes(version, "csv", images=True, classes=["PER"])
    files = zip_files(data)
    assert list(files) == [
        "data.csv",
        "texts/text-000.txt",
        "texts/text-001.txt",
        "labelvault.lock.json",
    ]
    rows = rows_of(data)
    assert list(rows[0]) == [*HEADER.replace("url", "file").split(","), "text"]
    assert rows[0]["file"] == "texts/text-000.txt" and rows[0]["width"] == ""
    assert rows[0]["text"] == 'text 0, "quoted"\nsecond line' and rows[1]["text"] == "שלום"
    assert json.loads(rows[0]["label"]) == [spans[0]]
    assert rows[0]["labels"] == "PER" and rows[0]["regions"] == "1"
    assert files["texts/text-001.txt"] == "שלום".encode()
    # Written by hand for speed: exactly the bytes csv.writer gives for the same cells.
    body = files["data.csv"][len(BOM) :].decode("utf-8")
    again = io.StringIO()
    csv.writer(again, lineterminator="\n").writerows(csv.reader(io.StringIO(body, newline="")))
    assert again.getvalue() == body
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}


def test_csv_export_of_classifications_lists_every_choice(ops):
    choice = {"id": "c1", "type": "choices", "value": {"choices": ["cat", "indoor"]}}
    version = version_of(ops, labels=[[choice]], splits=["test"])
    (row,) = rows_of(export_bytes(version, "csv"))
    assert row["labels"] == "cat;indoor" and row["regions"] == "1" and row["split"] == "test"


# --- import: hand-written files -------------------------------------------------------------


def test_csv_reader_reads_label_json_with_a_bom(tmp_path):
    label = [box("car")]
    data = (
        BOM
        + (
            "external_id,label,width,height\n"
            f'a.png,"{json.dumps(label).replace(chr(34), chr(34) * 2)}",64,48\n'
            "b.png,,64,48\n"
            "c.png,[],,\n"
        ).encode()
    )
    records = read(tmp_path, data)
    assert [(r.row, r.key, r.regions, r.width, r.height) for r in records] == [
        (2, "a.png", label, 64, 48),
        (4, "c.png", [], None, None),
    ]


def test_csv_reader_makes_a_classification_of_label_names(tmp_path):
    data = (
        b"File_Name;Labels\n"  # ; delimited (a European Excel), names matched without case
        b"a.jpg;cat\n"
        b'"b.jpg";" dog ; indoor "\n'
        b"c.jpg;\n"
    )
    records = read(tmp_path, data)
    assert [(r.row, r.key, r.regions) for r in records] == [
        (2, "a.jpg", [{"type": "choices", "value": {"choices": ["cat"]}}]),
        (3, "b.jpg", [{"type": "choices", "value": {"choices": ["dog", "indoor"]}}]),
    ]
    (record,) = read(tmp_path, b"sha256,class\n" + b"AB" * 32 + b",cat\n")
    assert record.key == "" and record.sha256 == "ab" * 32
    (record,) = read(tmp_path, b"external_id\tlabel_name\r\nx.png\tcar\r\n")
    assert record.key == "x.png" and record.regions[0]["value"]["choices"] == ["car"]


def test_csv_reader_reports_bad_rows(tmp_path):
    data = (
        b"external_id,file_name,label\n"
        b"a.png,,[{oops\n"
        b",,[]\n"
        b"\n"
        b",,\n"
        b'b.png,,"[1, 2]"\n'
        b"c.png,,[],extra\n"
        b',d.png,"[\n]"\n'
        b"e.png,,{}\n"
        b"\n"
        b"\n"
    )
    records = read(tmp_path, data)
    assert problems(records) == [
        (2, "label", "the label is not JSON: Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"),
        (3, "external_id", "no external_id or file_name in this row"),
        (4, "row", "empty row"),
        (5, "row", "empty row"),
        (6, "label", "the label is a JSON list of region objects (labeling/results.py)"),
        (7, "row", "4 cells; the header has 3 columns"),
        (10, "label", "the label is a JSON list of region objects (labeling/results.py)"),
    ]  # fmt: skip
    # The row of line 8 spans two lines (a quoted newline) and is fine.
    assert [(r.row, r.key, r.regions) for r in records if not r.problems] == [(8, "d.png", [])]


def test_csv_reader_refuses_what_is_not_a_utf8_csv_with_a_header(tmp_path):
    with pytest.raises(InvalidLabelFile, match=r"not UTF-8 text \(a bad byte on line 3\)"):
        read(tmp_path, b"external_id,labels\na.png,cat\nb.png,caf\xe9\n")
    with pytest.raises(InvalidLabelFile, match="no header row naming the item"):
        read(tmp_path, b"a.png,cat\nb.png,dog\n")
    with pytest.raises(InvalidLabelFile, match="it has nothing"):
        read(tmp_path, b"")
    with pytest.raises(InvalidLabelFile, match="no label column"):
        read(tmp_path, b"external_id,score\na.png,1\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a.csv", "external_id,labels\n")
        zf.writestr("b.csv", "external_id,labels\n")
    with pytest.raises(InvalidLabelFile, match="no data.csv"):
        read(tmp_path, buffer.getvalue(), name="x.zip")


def test_csv_reader_reads_the_data_csv_of_our_export(ops, tmp_path):
    labels = [[box("car")], None, []]
    version = version_of(ops, labels=labels)
    data = export_bytes(version, "csv")
    records = read(tmp_path, data, name="export.zip")
    assert [(r.row, r.key, r.regions, r.width) for r in records] == [
        (2, "image-000.png", labels[0], 64),
        (4, "image-002.png", [], 64),
    ]
    with pytest.raises(InvalidLabelFile, match="cannot be read"):
        read(tmp_path, data[: len(data) // 2], name="export.zip")


# --- import through the service, round trips ------------------------------------------------


def test_csv_import_of_label_names_as_ground_truth(ops):
    version = version_of(ops, labels=[None, None, None])
    data = b"file_name,labels\nimage-000.png,cat\nimage-002.png,dog\n"
    schema = {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]}
    done = label_file_import(version, data, "csv", schema=schema, suffix=".csv")
    assert done.state == "done", problems_of(done)
    assert done.imported == 2
    labels = {
        label.item.external_id: label.value
        for label in Label.objects.filter(dataset=version.dataset).select_related("item")
    }
    assert labels == {
        "image-000.png": [{"id": "r1", "type": "choices", "value": {"choices": ["cat"]}}],
        "image-002.png": [{"id": "r1", "type": "choices", "value": {"choices": ["dog"]}}],
    }


def comparable(data: bytes) -> dict[str, bytes]:
    """The files but the lock, with the version id in the item URLs made neutral (a
    round trip makes a new version, whose assets have URLs of their own)."""
    files = zip_files(data)
    version_id = json.loads(files["labelvault.lock.json"])["version"].encode()
    files = without_lock(files)
    files["data.csv"] = files["data.csv"].replace(version_id, b"<version>")
    return files


def test_csv_round_trip_of_boxes_and_empty_images(ops):
    labels = [[box("car"), box("שלום", x=5, region_id="r2")], None, [], [box("car", x=7.25)]]
    version = version_of(ops, labels=labels, splits=["train", "val", "train", "test"])
    schema = {
        "type": "bbox",
        "allow_empty": True,
        "labels": [{"name": "car"}, {"name": "שלום"}],
    }
    first, second = round_trip(version, "csv", schema=schema)
    assert comparable(first) == comparable(second)
    assert [row["label"] for row in rows_of(second)] == [row["label"] for row in rows_of(first)]


def test_csv_round_trip_of_texts_with_embedded_files(ops):
    span = {
        "id": "r1",
        "type": "labels",
        "value": {"start": 0, "end": 4, "text": "text", "labels": ["PER"]},
    }
    version = version_of(ops, kind="text", labels=[[span], None])
    schema = {"type": "ner", "labels": [{"name": "PER"}]}
    first, second = round_trip(version, "csv", schema=schema, images=True)
    assert without_lock(zip_files(first)) == without_lock(zip_files(second))
