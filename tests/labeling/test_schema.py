"""labeling.schema: every rule with a bad payload, good payloads of every type."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from labeling.errors import InvalidSchema
from labeling.schema import (
    PALETTE,
    SCHEMA_TYPES,
    schema_hash,
    schema_media_kind,
    schema_region_type,
    schema_validate,
)


def _schema(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": "bbox", "labels": [{"name": "car"}, {"name": "person"}]}
    raw.update(changes)
    return raw


def _labels(n: int) -> list[dict[str, Any]]:
    return [{"name": f"l{i}"} for i in range(n)]


GOOD = [
    pytest.param(
        {
            "type": "bbox",
            "labels": [{"name": "car", "color": "#E6194B", "hotkey": "c"}, {"name": "person"}],
            "attributes": [
                {"name": "occluded", "type": "bool", "default": False},
                {"name": "truncation", "type": "enum", "options": ["none", "partial", "full"]},
                {"name": "note", "type": "text"},
                {"name": "count", "type": "number", "min": 0, "max": 99, "default": 1},
            ],
        },
        id="bbox",
    ),
    pytest.param({"type": "polygon", "labels": [{"name": "road"}]}, id="polygon"),
    pytest.param({"type": "keypoint", "labels": [{"name": "nose"}]}, id="keypoint"),
    pytest.param(
        {"type": "image_class", "multiple": True, "labels": [{"name": "cat"}, {"name": "dog"}]},
        id="image_class",
    ),
    pytest.param(
        {"type": "text_class", "allow_empty": True, "labels": [{"name": "spam"}]}, id="text_class"
    ),
    pytest.param(
        {"type": "ner", "labels": [{"name": "PER"}], "attributes": [{"name": "x", "type": "text"}]},
        id="ner",
    ),
    pytest.param({"type": "bbox", "labels": _labels(200)}, id="200-labels"),
]


@pytest.mark.parametrize("raw", GOOD)
def test_good_schemas_normalise_and_stay_normalised(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    schema = schema_validate(raw)
    assert raw == before  # the input is not changed
    assert set(schema) == {"type", "multiple", "allow_empty", "labels", "attributes"}
    assert schema_validate(schema) == schema
    for label in schema["labels"]:
        assert set(label) == {"name", "color", "hotkey"}
        assert label["color"].startswith("#") and len(label["color"]) == 7


def test_defaults_are_filled() -> None:
    schema = schema_validate({"type": "bbox", "labels": _labels(12)})
    assert schema["multiple"] is False and schema["allow_empty"] is False
    assert schema["attributes"] == []
    assert [label["hotkey"] for label in schema["labels"]] == [*"1234567890", None, None]
    assert [label["color"] for label in schema["labels"]] == list(PALETTE[:12])


def test_explicit_hotkey_wins_over_a_default_and_colours_are_normalised() -> None:
    schema = schema_validate(
        {"type": "bbox", "labels": [{"name": "a"}, {"name": "b", "hotkey": "1", "color": "#AbC"}]}
    )
    assert schema["labels"][0]["hotkey"] is None
    assert schema["labels"][1] == {"name": "b", "color": "#aabbcc", "hotkey": "1"}


def test_attribute_defaults_are_filled() -> None:
    schema = schema_validate(GOOD[0].values[0])
    assert schema["attributes"] == [
        {"name": "occluded", "type": "bool", "default": False},
        {
            "name": "truncation",
            "type": "enum",
            "options": ["none", "partial", "full"],
            "default": None,
        },
        {"name": "note", "type": "text", "default": None},
        {"name": "count", "type": "number", "min": 0, "max": 99, "default": 1},
    ]


def _attr(**attribute: Any) -> dict[str, Any]:
    return _schema(attributes=[attribute])


BAD = [
    # (raw, field, words in the message)
    ([], "schema", "must be an object"),
    (_schema(type="cuboid"), "type", "unknown type 'cuboid'"),
    ({"labels": [{"name": "a"}]}, "type", "is required"),
    (_schema(colour="red"), "colour", "unknown key 'colour'"),
    (_schema(multiple=True), "multiple", "only image_class and text_class"),
    (_schema(multiple="yes"), "multiple", "true or false"),
    (_schema(allow_empty=1), "allow_empty", "true or false"),
    ({"type": "bbox"}, "labels", "is required"),
    (_schema(labels=[]), "labels", "at least one label"),
    (_schema(labels=_labels(201)), "labels", "201 labels; the limit is 200"),
    (_schema(labels="car"), "labels", "must be a list"),
    (_schema(labels=["car"]), "labels[0]", "must be an object"),
    (_schema(labels=[{"name": "a", "shortcut": "x"}]), "labels[0].shortcut", "unknown key"),
    (_schema(labels=[{"color": "#fff"}]), "labels[0].name", "is required"),
    (_schema(labels=[{"name": ""}]), "labels[0].name", "must not be empty"),
    (_schema(labels=[{"name": "x" * 101}]), "labels[0].name", "the limit is 100"),
    (_schema(labels=[{"name": " car"}]), "labels[0].name", "leading or trailing whitespace"),
    (_schema(labels=[{"name": 3}]), "labels[0].name", "must be a string"),
    (
        _schema(labels=[{"name": "a"}, {"name": "a"}]),
        "labels[1].name",
        "already the name of labels[0]",
    ),
    (_schema(labels=[{"name": "a", "color": "red"}]), "labels[0].color", "'red' is not a colour"),
    (_schema(labels=[{"name": "a", "color": "#abcd"}]), "labels[0].color", "not a colour"),
    (_schema(labels=[{"name": "a", "hotkey": "ab"}]), "labels[0].hotkey", "not a hotkey"),
    (_schema(labels=[{"name": "a", "hotkey": "A"}]), "labels[0].hotkey", "0-9 or a-z"),
    (_schema(labels=[{"name": "a", "hotkey": 1}]), "labels[0].hotkey", "not a hotkey"),
    (
        _schema(labels=[{"name": "a", "hotkey": "s"}]),
        "labels[0].hotkey",
        "reserved by the annotator UI",
    ),
    (
        _schema(
            labels=[{"name": "car", "hotkey": "a"}, {"name": "b"}, {"name": "c", "hotkey": "a"}]
        ),
        "labels[2].hotkey",
        "labels[2].hotkey: 'a' is already the hotkey of labels[0] (car)",
    ),
    (_schema(attributes={}), "attributes", "must be a list"),
    (
        {
            "type": "image_class",
            "labels": [{"name": "a"}],
            "attributes": [{"name": "x", "type": "bool"}],
        },
        "attributes",
        "only region schemas",
    ),
    (_attr(type="bool"), "attributes[0].name", "is required"),
    (
        _schema(attributes=[{"name": "x", "type": "bool"}, {"name": "x", "type": "text"}]),
        "attributes[1].name",
        "already the name of attributes[0]",
    ),
    (_attr(name="x", type="date"), "attributes[0].type", "unknown type 'date'"),
    (_attr(name="x"), "attributes[0].type", "is required"),
    (_attr(name="x", type="bool", options=["a"]), "attributes[0].options", "unknown key 'options'"),
    (_attr(name="x", type="enum"), "attributes[0].options", "at least one option"),
    (_attr(name="x", type="enum", options=[]), "attributes[0].options", "at least one option"),
    (_attr(name="x", type="enum", options=["a", "a"]), "attributes[0].options[1]", "listed twice"),
    (
        _attr(name="x", type="enum", options=["a", 1]),
        "attributes[0].options[1]",
        "must be a string",
    ),
    (
        _attr(name="x", type="enum", options=["a"], default="b"),
        "attributes[0].default",
        "not one of the options",
    ),
    (_attr(name="x", type="bool", default="no"), "attributes[0].default", "true or false"),
    (_attr(name="x", type="text", default=1), "attributes[0].default", "must be a string"),
    (_attr(name="x", type="number", default="1"), "attributes[0].default", "finite number"),
    (_attr(name="x", type="number", default=True), "attributes[0].default", "finite number"),
    (
        _attr(name="x", type="number", min=0, max=5, default=6),
        "attributes[0].default",
        "outside min..max",
    ),
    (_attr(name="x", type="number", min=5, max=1), "attributes[0].min", "greater than max"),
    (_attr(name="x", type="number", min=float("nan")), "attributes[0].min", "finite number"),
    (_schema(labels=[{"name": "x" * 100, "color": "#" + "f" * 300_000}]), "schema", "the limit is"),
]


@pytest.mark.parametrize(("raw", "field", "words"), BAD)
def test_bad_schema_names_the_field_and_the_problem(raw: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidSchema) as caught:
        schema_validate(raw)
    error = caught.value
    assert error.field == field
    assert words in str(error)
    assert str(error).startswith(f"{field}: ")
    assert error.errors[0] == {"field": field, "detail": str(error)}


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidSchema) as caught:
        schema_validate(
            {
                "type": "bbox",
                "bogus": 1,
                "labels": [{"name": "a", "hotkey": "s"}, {"name": "a", "color": "blue"}],
            }
        )
    assert [e["field"] for e in caught.value.errors] == [
        "bogus",
        "labels[0].hotkey",
        "labels[1].name",
        "labels[1].color",
    ]


@pytest.mark.parametrize(
    ("schema_type", "media", "region"),
    [
        ("bbox", "image", "rectanglelabels"),
        ("polygon", "image", "polygonlabels"),
        ("keypoint", "image", "keypointlabels"),
        ("image_class", "image", "choices"),
        ("text_class", "text", "choices"),
        ("ner", "text", "labels"),
    ],
)
def test_media_kind_and_region_type(schema_type: str, media: str, region: str) -> None:
    schema = schema_validate({"type": schema_type, "labels": [{"name": "a"}]})
    assert schema_type in SCHEMA_TYPES
    assert schema_media_kind(schema) == media
    assert schema_region_type(schema) == region


def test_hash_is_sha256_of_canonical_json_and_ignores_key_order() -> None:
    schema = schema_validate({"type": "ner", "labels": [{"name": "Zürich"}]})
    reordered = dict(reversed(list(schema.items())))
    assert schema_hash(schema) == schema_hash(reordered)
    canonical = (
        '{"allow_empty":false,"attributes":[],"labels":[{"color":"#e6194b","hotkey":"1",'
        '"name":"Zürich"}],"multiple":false,"type":"ner"}'
    )
    assert schema_hash(schema) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    other = schema_validate({"type": "ner", "labels": [{"name": "Zurich"}]})
    assert schema_hash(other) != schema_hash(schema)
