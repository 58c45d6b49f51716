"""Pascal VOC: one XML per image in a fixed, hand-checked shape, ImageSets and labelmap;
the reader turns VOC XML (a zip or one file) into records, reports bad objects and broken
files by file/field/reason, and export -> import -> export gives the same files."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from defusedxml.ElementTree import fromstring

from datasets.formats.base import InvalidLabelFile
from datasets.formats.voc import IMPORT, _number
from tests.datasets.formats.conftest import (
    export_bytes,
    label_file_import,
    problems_of,
    round_trip,
    version_of,
    without_lock,
    zip_files,
)

pytestmark = pytest.mark.django_db


def box(label, x=1, y=2, w=3, h=4, region_id="r1", **extra):
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
        **extra,
    }


def voc_xml(objects: str, *, filename: str = "a.jpg", size: str | None = None) -> bytes:
    size = size or "<width>64</width><height>48</height><depth>3</depth>"
    return (
        f"<annotation><folder>VOC2007</folder><filename>{filename}</filename>"
        f"<size>{size}</size>{objects}</annotation>"
    ).encode()


def voc_object(name="car", xmin="1", ymin="2", xmax="4", ymax="6", extra=""):
    return (
        f"<object><name>{name}</name><difficult>0</difficult>{extra}<bndbox>"
        f"<xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
        "</bndbox></object>"
    )


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def read_records(tmp_path, data: bytes, suffix: str = ".zip"):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    return list(IMPORT.read(str(path)))


# --- export -----------------------------------------------------------------------------


EXPECTED_XML = """\
<annotation>
  <folder>JPEGImages</folder>
  <filename>street/car park.png</filename>
  <source>
    <database>Labelvault</database>
  </source>
  <size>
    <width>64</width>
    <height>48</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>
  <object>
    <name>car</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>1</xmin>
      <ymin>2</ymin>
      <xmax>31</xmax>
      <ymax>42</ymax>
    </bndbox>
  </object>
  <object>
    <name>a &lt;b&gt; שלום</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <occluded>1</occluded>
    <bndbox>
      <xmin>0.1</xmin>
      <ymin>5.0</ymin>
      <xmax>0.3</xmax>
      <ymax>15.25</ymax>
    </bndbox>
  </object>
</annotation>
"""


def test_voc_export_of_one_image_with_two_boxes_is_the_hand_checked_xml(ops):
    labels = [
        [
            box("car", 1, 2, 30, 40),
            box("a <b> שלום", 0.1, 5.0, 0.2, 10.25, "r2", attributes={"occluded": True}),
        ]
    ]
    version = version_of(ops, labels=labels, splits=["val"], external_ids=["street/car park.png"])
    files = zip_files(export_bytes(version, "voc"))
    assert list(files) == [
        "Annotations/street/car park.xml",
        "ImageSets/Main/val.txt",
        "labelmap.txt",
        "labelvault.lock.json",
    ]
    assert files["Annotations/street/car park.xml"].decode() == EXPECTED_XML
    assert files["ImageSets/Main/val.txt"] == b"street/car park\n"
    assert files["labelmap.txt"].decode() == (
        "# label:color_rgb:parts:actions\na <b> שלום:::\ncar:::\n"
    )
    fromstring(files["Annotations/street/car park.xml"])  # well-formed


def test_voc_export_layout_empty_images_and_skipped_regions(ops):
    polygon = {
        "id": "p1",
        "type": "polygonlabels",
        "value": {"points": [[1, 1], [9, 1], [1, 9]], "polygonlabels": ["car"]},
    }
    labels = [[box("car")], [], None, [polygon, box("bus", region_id="r2")]]
    version = version_of(ops, labels=labels, splits=["train", "val", "train", "test"])
    first = export_bytes(version, "voc", images=True)
    assert export_bytes(version, "voc", images=True) == first  # byte-identical rebuilds
    files = zip_files(first)
    assert list(files) == [
        "Annotations/image-000.xml",
        "Annotations/image-001.xml",
        "Annotations/image-002.xml",
        "Annotations/image-003.xml",
        "ImageSets/Main/train.txt",
        "ImageSets/Main/val.txt",
        "ImageSets/Main/test.txt",
        "labelmap.txt",
        "JPEGImages/image-000.png",
        "JPEGImages/image-001.png",
        "JPEGImages/image-002.png",
        "JPEGImages/image-003.png",
        "labelvault.lock.json",
    ]
    assert files["ImageSets/Main/train.txt"] == b"image-000\nimage-002\n"
    for empty in ("Annotations/image-001.xml", "Annotations/image-002.xml"):
        root = fromstring(files[empty])
        assert root.findall("object") == [] and root.findtext("size/width") == "64"
    names = [
        o.findtext("name") for o in fromstring(files["Annotations/image-003.xml"]).iter("object")
    ]
    assert names == ["bus"]
    assert files["JPEGImages/image-000.png"].startswith(b"\x89PNG")
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"] == {
        "items": 4,
        "labelled": 3,
        "regions": 2,
        "skipped": {"polygonlabels not in voc": 1},
    }


def test_voc_export_filters_splits_and_classes(ops):
    labels = [[box("car"), box("猫", region_id="r2")], [box("猫")]]
    version = version_of(ops, labels=labels, splits=["train", "val"])
    files = zip_files(export_bytes(version, "voc", splits=["train"], classes=["猫"]))
    assert list(files) == [
        "Annotations/image-000.xml",
        "ImageSets/Main/train.txt",
        "labelmap.txt",
        "labelvault.lock.json",
    ]
    objects = list(fromstring(files["Annotations/image-000.xml"]).iter("object"))
    assert [o.findtext("name") for o in objects] == ["猫"]
    assert files["labelmap.txt"].decode() == "# label:color_rgb:parts:actions\n猫:::\n"
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}


def test_voc_export_of_an_image_with_a_thousand_boxes(ops):
    boxes = [box("car", n % 60, n % 40, 2, 3.5, f"r{n}") for n in range(1000)]
    version = version_of(ops, labels=[boxes])
    files = zip_files(export_bytes(version, "voc"))
    objects = list(fromstring(files["Annotations/image-000.xml"]).iter("object"))
    assert len(objects) == 1000
    last = objects[999].find("bndbox")
    assert [last.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")] == [
        "39",
        "39",
        "41",
        "42.5",
    ]


# --- reading ------------------------------------------------------------------------------


def test_voc_reader_turns_hand_written_xml_into_records(tmp_path):
    data = zip_of(
        {
            "Annotations/a.xml": voc_xml(
                voc_object("car", "10", "20", "40", "60")
                + voc_object("bus", "1.5", " 2 ", "4.25", "6.0", "<occluded>1</occluded>")
            ),
            "Annotations/sub/b.xml": voc_xml("", filename=""),
            "ImageSets/Main/train.txt": b"a\n",
            "labelmap.txt": b"car:::\n",
        }
    )
    first, second = read_records(tmp_path, data)
    assert (first.row, first.key, first.width, first.height) == (
        "Annotations/a.xml",
        "a.jpg",
        64,
        48,
    )
    assert first.problems == []
    assert first.regions[0] == {
        "type": "rectanglelabels",
        "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["car"]},
    }
    assert all(type(first.regions[0]["value"][k]) is int for k in ("x", "y", "width", "height"))
    assert first.regions[1] == {
        "type": "rectanglelabels",
        "value": {"x": 1.5, "y": 2, "width": 2.75, "height": 4.0, "rectanglelabels": ["bus"]},
        "attributes": {"occluded": True},
    }
    assert type(first.regions[1]["value"]["height"]) is float
    # No <filename>: the file's path under Annotations/; no object: nothing on the image.
    assert (second.key, second.regions, second.problems) == ("sub/b", [], [])


def test_voc_reader_of_one_xml_file(tmp_path):
    (record,) = read_records(tmp_path, voc_xml(voc_object()), suffix=".xml")
    assert (record.key, record.width, record.height) == ("a.jpg", 64, 48)
    assert len(record.regions) == 1
    # A tool that did not know the size wrote 0: unknown, not a problem.
    unknown = voc_xml(voc_object(), size="<width>0</width><height>0</height>")
    (record,) = read_records(tmp_path, unknown, suffix=".xml")
    assert (record.width, record.height, record.problems) == (None, None, [])


def test_voc_reader_reports_bad_objects_and_broken_files(tmp_path):
    data = zip_of(
        {
            "Annotations/a.xml": voc_xml(
                voc_object("car", "1", "2", "ten", "6")
                + voc_object("", "1", "2", "4", "6")
                + voc_object("car", "5", "2", "5", "1")
                + "<object><name>car</name></object>"
            ),
            "Annotations/broken.xml": b"<annotation><filename>x.jpg</filename>",
            "Annotations/bomb.xml": (
                b'<!DOCTYPE a [<!ENTITY e "lol"><!ENTITY f "&e;&e;&e;">]>'
                b"<annotation>&f;</annotation>"
            ),
            "Annotations/wrong.xml": b"<html></html>",
            "Annotations/good.xml": voc_xml(voc_object(), filename="good.jpg"),
        }
    )
    records = read_records(tmp_path, data)
    assert [r.row for r in records] == [
        "Annotations/a.xml",
        "Annotations/broken.xml",
        "Annotations/bomb.xml",
        "Annotations/wrong.xml",
        "Annotations/good.xml",
    ]
    found = [(p.row, p.field, p.reason) for p in records[0].problems]
    assert found == [
        ("Annotations/a.xml", "object[0].bndbox.xmax", "<xmax> must be a number, got 'ten'"),
        ("Annotations/a.xml", "object[1].name", "an object needs a <name>"),
        ("Annotations/a.xml", "object[2].bndbox.xmax", "xmax (5) must be greater than xmin (5)"),
        ("Annotations/a.xml", "object[2].bndbox.ymax", "ymax (1) must be greater than ymin (2)"),
        ("Annotations/a.xml", "object[3].bndbox", "an object needs a <bndbox>"),
    ]
    assert records[0].regions == []  # a record with problems is rejected as a whole
    (broken,) = records[1].problems
    assert (broken.row, broken.field) == ("Annotations/broken.xml", "xml")
    assert broken.reason.startswith("not well-formed XML")
    assert records[2].problems[0].reason.startswith("refused")
    assert records[3].problems[0].field == "annotation"
    assert records[4].problems == [] and records[4].key == "good.jpg"


def test_voc_numbers_read_back_to_what_is_written_again(tmp_path):
    """The re-export invariant: a box written, read and written again gives the same text
    (ints stay ints, floats keep a decimal point, float noise does not show)."""
    pairs = [
        (1, 3),
        (0.1, 0.2),
        (10.123, 20.456),
        (1, 2.5),
        (3.0, 4),
        (1 / 3, 2 / 3),
        (2.675, 0.005),
    ]
    objects = "".join(voc_object("car", _number(x), "1", _number(x + w), "11") for x, w in pairs)
    (record,) = read_records(tmp_path, voc_xml(objects), suffix=".xml")
    for (x, w), region in zip(pairs, record.regions, strict=True):
        value = region["value"]
        assert _number(value["x"]) == _number(x)
        assert _number(value["x"] + value["width"]) == _number(x + w)
        assert type(value["x"]) is type(x)
    assert _number(0.1 + 0.2) == "0.3" and _number(3.0) == "3.0" and _number(7) == "7"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"just text", "neither a zip"),
        (b"PK\x03\x04 cut short", "cannot be read"),
        (zip_of({"notes.txt": b"x"}), "no Pascal VOC annotation"),
    ],
)
def test_voc_reader_refuses_a_file_that_is_not_voc(tmp_path, data, match):
    with pytest.raises(InvalidLabelFile, match=match):
        read_records(tmp_path, data)


# --- through the label import service ------------------------------------------------------


BOX_SCHEMA = {
    "type": "bbox",
    "labels": [{"name": "car"}, {"name": "שלום"}],
    "allow_empty": True,
    "attributes": [{"name": "occluded", "type": "bool"}],
}


def test_voc_round_trip_of_boxes_floats_and_empty_images(ops):
    labels = [
        [
            box("car", 1, 2, 30, 40, attributes={"occluded": False}),
            box("שלום", 0.1, 5.0, 0.2, 10.25, "r2", attributes={"occluded": True}),
            box("car", 10.123, 3.3, 20.456, 4.4, "r3", attributes={"occluded": False}),
        ],
        [],
        None,
        # As a labelling tool under this schema stores them: the bool attribute defaults
        # to false.
        [box("car", 0, 0, 64, 48, attributes={"occluded": False})],
    ]
    version = version_of(ops, labels=labels, splits=["train", "val", "val", "test"])
    first, second = round_trip(version, "voc", schema=BOX_SCHEMA)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))


def test_voc_round_trip_without_attributes(ops):
    labels = [[box("car", 1, 2, 30, 40), box("car", 5.5, 6, 7.25, 8, "r2")], None]
    version = version_of(ops, labels=labels, splits=["train", "val"])
    schema = {"type": "bbox", "labels": [{"name": "car"}], "allow_empty": True}
    first, second = round_trip(version, "voc", schema=schema, images=True)
    assert without_lock(zip_files(second)) == without_lock(zip_files(first))
    assert b"<occluded>" not in zip_files(first)["Annotations/image-000.xml"]


def test_voc_import_reports_problems_by_file_and_stores_nothing(ops):
    version = version_of(ops, labels=[None, None])
    data = zip_of(
        {
            "Annotations/image-000.xml": voc_xml(voc_object(), filename="image-000.png"),
            "Annotations/image-001.xml": voc_xml(
                voc_object("car", "1", "2", "x", "6"), filename="image-001.png"
            ),
        }
    )
    result = label_file_import(version, data, "voc", schema=BOX_SCHEMA)
    assert result.state == "failed" and result.imported == 0
    assert problems_of(result) == [
        (
            "Annotations/image-001.xml",
            "object[0].bndbox.xmax",
            "<xmax> must be a number, got 'x'",
        )
    ]
    result = label_file_import(version, data, "voc", schema=BOX_SCHEMA, valid_only=True)
    assert (result.state, result.imported, result.rejected) == ("done", 1, 1)
    item = version.dataset.items.get(external_id="image-000.png")
    assert item.label.value[0]["value"] == {
        "x": 1,
        "y": 2,
        "width": 3,
        "height": 4,
        "rectanglelabels": ["car"],
    }
