"""labeling.results: every rule with a bad region, good results of every region type."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labeling.errors import InvalidAnnotation
from labeling.results import MAX_PROBLEMS, result_validate
from labeling.schema import schema_validate

TEXT = "Alice met Bob in Zürich."

SCHEMAS = {
    "bbox": schema_validate(
        {
            "type": "bbox",
            "labels": [
                {"name": n} for n in ("car", "person", "bike", "bus", "truck", "tram", "van")
            ],
            "attributes": [
                {"name": "occluded", "type": "bool"},
                {"name": "truncation", "type": "enum", "options": ["none", "partial"]},
                {"name": "note", "type": "text"},
                {"name": "count", "type": "number", "min": 0, "max": 9, "default": 1},
            ],
        }
    ),
    "polygon": schema_validate({"type": "polygon", "labels": [{"name": "road"}]}),
    "keypoint": schema_validate({"type": "keypoint", "labels": [{"name": "nose"}]}),
    "image_class": schema_validate(
        {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]}
    ),
    "multi": schema_validate(
        {"type": "image_class", "multiple": True, "labels": [{"name": "cat"}, {"name": "dog"}]}
    ),
    "text_class": schema_validate(
        {"type": "text_class", "allow_empty": True, "labels": [{"name": "spam"}]}
    ),
    "ner": schema_validate({"type": "ner", "labels": [{"name": "PER"}, {"name": "LOC"}]}),
    "empty_ok": schema_validate({"type": "bbox", "allow_empty": True, "labels": [{"name": "car"}]}),
}


def _check(result: Any, schema: str = "bbox", **item: Any) -> list[dict[str, Any]]:
    item = {"width": 640, "height": 480, "text": TEXT, **item}
    return result_validate(result, schema=SCHEMAS[schema], **item)


def box(x: Any = 10, y: Any = 20, w: Any = 30, h: Any = 40, label: Any = "car", **extra: Any):
    value = {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}
    return {"id": "r1", "type": "rectanglelabels", "value": value, **extra}


def polygon(points: Any, label: str = "road") -> dict[str, Any]:
    return {"type": "polygonlabels", "value": {"points": points, "polygonlabels": [label]}}


def keypoint(x: Any, y: Any) -> dict[str, Any]:
    return {"type": "keypointlabels", "value": {"x": x, "y": y, "keypointlabels": ["nose"]}}


def span(start: Any, end: Any, label: str = "PER", **value: Any) -> dict[str, Any]:
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [label], **value}}


def choices(*names: Any) -> dict[str, Any]:
    return {"type": "choices", "value": {"choices": list(names)}}


GOOD = [
    # (schema, result, item overrides)
    ("bbox", [box(), box(0, 0, 640, 480, id="r2", attributes={"occluded": True})], {}),
    ("bbox", [box(600.5, 0.25, 39.5000000001, 1)], {}),  # float tolerance
    ("bbox", [box(5000, 5000, 10, 10)], {"width": None, "height": None}),  # size unknown
    ("polygon", [polygon([[1, 2], [30, 4], [5, 60]]), polygon([[0, 0], [640, 0], [640, 480]])], {}),
    ("keypoint", [keypoint(5, 6), keypoint(640, 480)], {}),
    ("image_class", [choices("cat")], {}),
    ("multi", [choices("cat", "dog")], {}),
    ("text_class", [choices("spam")], {"width": None, "height": None}),
    ("ner", [span(0, 5, text="Alice"), span(17, 23, "LOC"), span(0, 9)], {}),
    ("ner", [span(0, 500, text="anything")], {"text": None}),  # text unknown
    ("empty_ok", [], {}),
]


@pytest.mark.parametrize(("schema", "result", "item"), GOOD)
def test_good_results_normalise_and_stay_normalised(
    schema: str, result: list[dict[str, Any]], item: dict[str, Any]
) -> None:
    before = copy.deepcopy(result)
    normalised = _check(result, schema, **item)
    assert result == before  # the input is not changed
    assert len(normalised) == len(result)
    assert len({region["id"] for region in normalised}) == len(normalised)
    assert all(isinstance(region["id"], str) and region["id"] for region in normalised)
    assert _check(normalised, schema, **item) == normalised


def test_normalisation_fills_ids_span_text_and_attribute_defaults() -> None:
    [region] = _check([{"type": "rectanglelabels", "value": box(1.5, 2)["value"]}])
    assert len(region["id"]) == 8
    assert region["value"] == {
        "x": 1.5,
        "y": 2,
        "width": 30,
        "height": 40,
        "rectanglelabels": ["car"],
    }
    assert isinstance(region["value"]["y"], int) and isinstance(region["value"]["x"], float)
    assert region["attributes"] == {"occluded": False, "count": 1}  # bool defaults to false
    [with_attributes] = _check([box(attributes={"occluded": False, "note": "x", "count": None})])
    assert with_attributes["attributes"] == {"occluded": False, "note": "x", "count": 1}
    [entity] = _check([span(17, 23, "LOC")], "ner")
    assert entity["value"] == {"start": 17, "end": 23, "text": "Zürich", "labels": ["LOC"]}
    assert "attributes" not in entity  # the schema has none


def test_no_choice_is_the_empty_result_when_allowed() -> None:
    assert _check([choices()], "text_class") == []
    assert _check([], "text_class") == []


EMPTY = "the result is empty; this project does not allow 'nothing here'"
NAN, INF = float("nan"), float("inf")

BAD = [
    # (schema, result, item overrides, field, words in the message)
    ("bbox", {"regions": []}, {}, "result", "must be a list of regions"),
    ("bbox", [box()] * 10_001, {}, "result", "the limit is 10000"),
    ("bbox", [], {}, "result", EMPTY),
    ("image_class", [], {}, "result", EMPTY),
    ("image_class", [choices()], {}, "result[0].value.choices", EMPTY),
    ("bbox", ["box"], {}, "result[0]", "must be an object"),
    ("bbox", [box(score=0.5)], {}, "result[0].score", "unknown key 'score'"),
    ("bbox", [{"value": box()["value"]}], {}, "result[0].type", "type is required"),
    (
        "bbox",
        [polygon([[1, 2], [3, 4], [5, 6]])],
        {},
        "result[0].type",
        "does not match this project's 'rectanglelabels'",
    ),
    (
        "bbox",
        [{"type": "rectanglelabels", "value": []}],
        {},
        "result[0].value",
        "value must be an object",
    ),
    ("bbox", [box(id=5)], {}, "result[0].id", "non-empty string"),
    ("bbox", [box(), box()], {}, "result[1].id", "id 'r1' is already the id of result[0]"),
    (
        "bbox",
        [box(label="plane")],
        {},
        "result[0].value.rectanglelabels[0]",
        "unknown label 'plane' (known: car, person, bike, bus, truck and 2 more)",
    ),
    ("bbox", [box(label=["car"])], {}, "result[0].value.rectanglelabels[0]", "unknown label"),
    (
        "bbox",
        [
            {
                "type": "rectanglelabels",
                "value": {**box()["value"], "rectanglelabels": ["car", "bus"]},
            }
        ],
        {},
        "result[0].value.rectanglelabels",
        "exactly one label, got 2",
    ),
    (
        "bbox",
        [{"type": "rectanglelabels", "value": {**box()["value"], "rectanglelabels": []}}],
        {},
        "result[0].value.rectanglelabels",
        "exactly one label, got 0",
    ),
    (
        "bbox",
        [{"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1}}],
        {},
        "result[0].value.rectanglelabels",
        "is required",
    ),
    (
        "bbox",
        [{"type": "rectanglelabels", "value": {**box()["value"], "rotation": 3}}],
        {},
        "result[0].value.rotation",
        "unknown key 'rotation'",
    ),
    ("bbox", [box(x=-1)], {}, "result[0].value.x", "starts outside the image (x = -1 < 0)"),
    ("bbox", [box(y=-0.5)], {}, "result[0].value.y", "starts outside the image"),
    ("bbox", [box(w=0)], {}, "result[0].value.width", "no area (width = 0)"),
    ("bbox", [box(h=-3)], {}, "result[0].value.height", "no area"),
    (
        "bbox",
        [box(x=600, w=100)],
        {},
        "result[0].value.width",
        "result[0]: the box goes outside the image (x + width = 700 > image width 640)",
    ),
    (
        "bbox",
        [box(y=470, h=11)],
        {},
        "result[0].value.height",
        "(y + height = 481 > image height 480)",
    ),
    ("bbox", [box(x=NAN)], {}, "result[0].value.x", "finite number"),
    ("bbox", [box(w=INF)], {}, "result[0].value.width", "finite number"),
    ("bbox", [box(x=True)], {}, "result[0].value.x", "finite number, got a boolean"),
    ("bbox", [box(y="3")], {}, "result[0].value.y", "finite number, got a string"),
    (
        "bbox",
        [
            {
                "type": "rectanglelabels",
                "value": {"x": 1, "width": 1, "height": 1, "rectanglelabels": ["car"]},
            }
        ],
        {},
        "result[0].value.y",
        "y is required",
    ),
    (
        "bbox",
        [box(attributes={"colour": "red"})],
        {},
        "result[0].attributes.colour",
        "unknown attribute 'colour' (known: occluded, truncation, note, count)",
    ),
    ("bbox", [box(attributes=[])], {}, "result[0].attributes", "must be an object"),
    (
        "bbox",
        [box(attributes={"occluded": "yes"})],
        {},
        "result[0].attributes.occluded",
        "true or false",
    ),
    (
        "bbox",
        [box(attributes={"truncation": "full"})],
        {},
        "result[0].attributes.truncation",
        "'full' is not one of: none, partial",
    ),
    ("bbox", [box(attributes={"note": 3})], {}, "result[0].attributes.note", "must be a string"),
    (
        "bbox",
        [box(attributes={"count": 10})],
        {},
        "result[0].attributes.count",
        "10 is outside 0..9",
    ),
    ("bbox", [box(attributes={"count": True})], {}, "result[0].attributes.count", "finite number"),
    (
        "polygon",
        [polygon([[1, 2], [3, 4]])],
        {},
        "result[0].value.points",
        "at least 3 points, got 2",
    ),
    ("polygon", [polygon("1,2 3,4")], {}, "result[0].value.points", "list of [x, y] pairs"),
    (
        "polygon",
        [polygon([[1, 2], [3, 4], [5]])],
        {},
        "result[0].value.points[2]",
        "two finite numbers",
    ),
    (
        "polygon",
        [polygon([[1, 2], [3, NAN], [5, 6]])],
        {},
        "result[0].value.points[1]",
        "two finite numbers",
    ),
    (
        "polygon",
        [polygon([[1, 2], [3, 4], [5, False]])],
        {},
        "result[0].value.points[2]",
        "two finite numbers",
    ),
    (
        "polygon",
        [polygon([[1, 2], [641, 4], [5, 60]])],
        {},
        "result[0].value.points[1]",
        "point 1 [641, 4] is outside the image (640x480)",
    ),
    (
        "polygon",
        [polygon([[1, 2], [30, -4], [5, 60]])],
        {},
        "result[0].value.points[1]",
        "outside the image",
    ),
    ("polygon", [polygon([[1, 1], [2, 2], [3, 3]])], {}, "result[0].value.points", "no area"),
    (
        "polygon",
        [polygon([[1, 2], [30, 4], [5, 60]], "car")],
        {},
        "result[0].value.polygonlabels[0]",
        "unknown label 'car' (known: road)",
    ),
    (
        "keypoint",
        [keypoint(641, 5)],
        {},
        "result[0].value.x",
        "the keypoint (641, 5) is outside the image (640x480)",
    ),
    ("keypoint", [keypoint(5, 481)], {}, "result[0].value.y", "outside the image"),
    (
        "keypoint",
        [keypoint(-1, 5)],
        {"width": None},
        "result[0].value.x",
        "outside the image (?x480)",
    ),
    ("keypoint", [keypoint(None, 5)], {}, "result[0].value.x", "finite number, got null"),
    ("ner", [span(0.0, 5)], {}, "result[0].value.start", "integer character offset, got 0.0"),
    ("ner", [span(0, True)], {}, "result[0].value.end", "integer character offset, got a boolean"),
    ("ner", [span(-1, 5)], {}, "result[0].value.start", "starts before the text"),
    ("ner", [span(5, 5)], {}, "result[0].value.end", "empty or reversed (start = 5, end = 5)"),
    ("ner", [span(6, 5)], {}, "result[0].value.end", "empty or reversed"),
    (
        "ner",
        [span(20, 25)],
        {},
        "result[0].value.end",
        "past the end of the text (end = 25 > text length 24)",
    ),
    (
        "ner",
        [span(0, 5, text="Alicia")],
        {},
        "result[0].value.text",
        "'Alicia' is not the text at [0, 5), which is 'Alice'",
    ),
    ("ner", [span(0, 5, text=5)], {}, "result[0].value.text", "must be a string"),
    (
        "ner",
        [span(0, 5, "ORG")],
        {},
        "result[0].value.labels[0]",
        "unknown label 'ORG' (known: PER, LOC)",
    ),
    (
        "ner",
        [{**span(0, 5), "attributes": {"x": 1}}],
        {},
        "result[0].attributes.x",
        "unknown attribute 'x' (known: none in this project)",
    ),
    (
        "image_class",
        [choices("cat"), choices("dog")],
        {},
        "result",
        "2 choices regions; a classification has exactly one",
    ),
    (
        "image_class",
        [choices("cat", "dog")],
        {},
        "result[0].value.choices",
        "exactly one choice is allowed in this project, got 2",
    ),
    (
        "image_class",
        [choices("cow")],
        {},
        "result[0].value.choices[0]",
        "unknown choice 'cow' (known: cat, dog)",
    ),
    ("multi", [choices("cat", "cat")], {}, "result[0].value.choices[1]", "'cat' is given twice"),
    (
        "image_class",
        [{"type": "choices", "value": {"choices": "cat"}}],
        {},
        "result[0].value.choices",
        "must be a list",
    ),
    (
        "image_class",
        [{"type": "choices", "value": {}}],
        {},
        "result[0].value.choices",
        "is required",
    ),
    (
        "image_class",
        [{**choices("cat"), "attributes": {"a": 1}}],
        {},
        "result[0].attributes",
        "takes no attributes",
    ),
]


@pytest.mark.parametrize(("schema", "result", "item", "field", "words"), BAD)
def test_bad_result_names_the_region_and_the_problem(
    schema: str, result: Any, item: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidAnnotation) as caught:
        _check(result, schema, **item)
    error = caught.value
    assert error.field == field
    assert words in str(error)
    region = field.split(".")[0]
    assert str(error).startswith(f"{region}: ")
    assert error.errors[0] == {"field": field, "detail": str(error)}


def test_every_bad_region_is_listed() -> None:
    result = [box(), box(x=-1, id="r2"), box(label="plane", id="r3"), box(w=0, h=0, id="r4")]
    with pytest.raises(InvalidAnnotation) as caught:
        _check(result)
    assert [e["field"] for e in caught.value.errors] == [
        "result[1].value.x",
        "result[2].value.rectanglelabels[0]",
        "result[3].value.width",
        "result[3].value.height",
    ]


def test_problems_are_capped() -> None:
    with pytest.raises(InvalidAnnotation) as caught:
        _check([box(x=-1, id=str(i)) for i in range(500)])
    errors = caught.value.errors
    assert len(errors) == MAX_PROBLEMS + 1
    assert errors[-1]["detail"] == "result: 300 more problems not listed"
