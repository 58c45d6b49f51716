"""Annotation results: the one documented format of what an annotator (or a model) said.

A result is a JSON list of regions, close to Label Studio's export but in IMAGE PIXELS
(origin top-left, x to the right, y down) and TEXT CHARACTER OFFSETS (Unicode code
points, as Python indexes a str; a browser counting UTF-16 units must convert):

    [
     {"id": "r1", "type": "rectanglelabels",
      "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["car"]},
      "attributes": {"occluded": true}},
     {"id": "r2", "type": "polygonlabels",
      "value": {"points": [[1, 2], [30, 4], [5, 60]], "polygonlabels": ["road"]}},
     {"id": "r3", "type": "keypointlabels",
      "value": {"x": 5, "y": 6, "keypointlabels": ["nose"]}},
     {"id": "r4", "type": "choices", "value": {"choices": ["cat"]}},
     {"id": "r5", "type": "labels",
      "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}}
    ]

Every region of one result has the region type of its schema (labeling.schema:
bbox -> rectanglelabels, polygon -> polygonlabels, keypoint -> keypointlabels,
image_class / text_class -> choices, ner -> labels) and exactly one label; a
classification result is exactly one `choices` region (one choice unless the schema has
`multiple`). A box is `x, y` (its top-left corner) plus `width, height`; a span is
`[start, end)`.

`result_validate` returns the normalised result:
- a region without `id` gets a short random one; ids are unique within a result;
- a span's `text` is filled from the item's text;
- numbers stay as given (ints stay ints, floats stay floats);
- `attributes` holds every schema attribute that is set or has a default (present only
  when the schema has attributes); an attribute set to null is unset;
- "nothing here" (allowed only with the schema's `allow_empty`) is always `[]`: a
  `choices` region with no choice becomes the empty result.

Problems are collected (up to MAX_PROBLEMS) before raising InvalidAnnotation: `field`
is the path of the first (`result[1].value.x`), `errors` lists them all as
`{"field": path, "detail": "result[1]: what is wrong"}`.
"""

from __future__ import annotations

import secrets
from typing import Any

from labeling.errors import InvalidAnnotation
from labeling.schema import describe_json, is_json_number, schema_region_type

MAX_REGIONS = 10_000
# A polygon traced around a large object at full resolution stays well below this.
MAX_POLYGON_POINTS = 10_000
MAX_ID_LENGTH = 64
MAX_TEXT_ATTRIBUTE_LENGTH = 10_000
# A result with thousands of bad regions would make an error response of megabytes; the
# first 200 are plenty to fix a client.
MAX_PROBLEMS = 200
# Coordinates from a browser are floats: 640.0000001 is still inside a 640-pixel image.
TOLERANCE = 1e-6
# How many known labels an "unknown label" message lists.
KNOWN_LABELS_SHOWN = 5

_REGION_KEYS = ("id", "type", "value", "attributes")
_VALUE_KEYS: dict[str, tuple[str, ...]] = {
    "rectanglelabels": ("x", "y", "width", "height", "rectanglelabels"),
    "polygonlabels": ("points", "polygonlabels"),
    "keypointlabels": ("x", "y", "keypointlabels"),
    "choices": ("choices",),
    "labels": ("start", "end", "text", "labels"),
}


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.dropped = 0

    def add(self, field: str, where: str, why: str) -> None:
        if len(self.items) >= MAX_PROBLEMS:
            self.dropped += 1
            return
        self.items.append({"field": field, "detail": f"{where}: {why}"})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        errors = list(self.items)
        if self.dropped:
            errors.append(
                {"field": "result", "detail": f"result: {self.dropped} more problems not listed"}
            )
        first = errors[0]
        raise InvalidAnnotation(first["detail"], field=first["field"], errors=errors)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _new_id(taken: set[str]) -> str:
    while True:
        region_id = secrets.token_urlsafe(6)  # 8 characters, 48 random bits
        if region_id not in taken:
            return region_id


def result_validate(
    result: Any,
    *,
    schema: dict[str, Any],
    width: int | None,
    height: int | None,
    text: str | None,
) -> list[dict[str, Any]]:
    """Return the normalised form of an annotation result under a normalised schema.

    `width`/`height` are the image size in pixels and `text` the item's text; None
    (unknown) skips the checks that need them. Pure: reads nothing, writes nothing.
    Raises InvalidAnnotation listing every problem (up to MAX_PROBLEMS).
    """
    problems = _Problems()
    if not isinstance(result, list):
        problems.add("result", "result", f"must be a list of regions, got {describe_json(result)}")
        problems.raise_if_any()
    if len(result) > MAX_REGIONS:
        problems.add("result", "result", f"has {len(result)} regions; the limit is {MAX_REGIONS}")
        problems.raise_if_any()

    region_type = schema_region_type(schema)
    checker = _Checker(schema, width, height, text, problems)
    regions: list[dict[str, Any]] = []
    id_at: dict[str, int] = {}
    for i, raw in enumerate(result):
        region = checker.region(i, raw, region_type)
        if region is None:
            continue
        region_id = region.get("id")
        if region_id is not None:
            if region_id in id_at:
                problems.add(
                    f"result[{i}].id",
                    f"result[{i}]",
                    f"id {region_id!r} is already the id of result[{id_at[region_id]}]",
                )
            else:
                id_at[region_id] = i
        regions.append(region)

    if region_type == "choices":
        regions = _choices_check(regions, schema, problems)
    if not regions and not problems.items and not schema["allow_empty"]:
        problems.add(
            "result", "result", "the result is empty; this project does not allow 'nothing here'"
        )
    problems.raise_if_any()

    taken = set(id_at)
    for region in regions:
        if region["id"] is None:
            region["id"] = _new_id(taken)
            taken.add(region["id"])
    return regions


def _choices_check(
    regions: list[dict[str, Any]], schema: dict[str, Any], problems: _Problems
) -> list[dict[str, Any]]:
    """Apply the whole-result rules of classification; return the normalised regions."""
    if len(regions) > 1:
        problems.add(
            "result",
            "result",
            f"has {len(regions)} choices regions; a classification has exactly one",
        )
        return regions
    if regions and not regions[0]["value"]["choices"]:
        return []  # "nothing here" has one form: the empty result
    return regions


class _Checker:
    """Checks one region at a time against a schema and the item's size or text."""

    def __init__(
        self,
        schema: dict[str, Any],
        width: int | None,
        height: int | None,
        text: str | None,
        problems: _Problems,
    ) -> None:
        self.schema = schema
        self.width = width
        self.height = height
        self.text = text
        self.problems = problems
        self.label_names = [label["name"] for label in schema["labels"]]
        self.label_set = set(self.label_names)
        self.attributes = {attribute["name"]: attribute for attribute in schema["attributes"]}

    def add(self, i: int, sub: str, why: str) -> None:
        field = f"result[{i}]" + (f".{sub}" if sub else "")
        self.problems.add(field, f"result[{i}]", why)

    def region(self, i: int, raw: Any, region_type: str) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.add(i, "", f"must be an object (a region), got {describe_json(raw)}")
            return None
        ok = True
        for key in raw:
            if key not in _REGION_KEYS:
                self.add(i, str(key), f"unknown key {key!r} (allowed: {', '.join(_REGION_KEYS)})")
                ok = False

        region_id = raw.get("id")
        if region_id is not None and (
            not isinstance(region_id, str) or not region_id or len(region_id) > MAX_ID_LENGTH
        ):
            self.add(
                i, "id", f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters"
            )
            ok = False
            region_id = None

        kind = raw.get("type")
        if kind != region_type:
            if "type" not in raw:
                self.add(i, "type", f"type is required: {region_type!r} in this project")
            else:
                self.add(
                    i,
                    "type",
                    f"type {_short(kind)} does not match this project's {region_type!r} "
                    f"({self.schema['type']} schema)",
                )
            return None

        value = raw.get("value")
        if not isinstance(value, dict):
            self.add(i, "value", f"value must be an object, got {describe_json(value)}")
            return None
        allowed = _VALUE_KEYS[region_type]
        for key in value:
            if key not in allowed:
                self.add(
                    i,
                    f"value.{key}",
                    f"unknown key {key!r} in a {region_type} value (allowed: {', '.join(allowed)})",
                )
                ok = False

        checked = getattr(self, f"_{region_type}")(i, value)
        if region_type == "choices":
            if "attributes" in raw and raw["attributes"] not in (None, {}):
                self.add(i, "attributes", "a classification takes no attributes")
                ok = False
            attributes = None
        else:
            attributes = self._attributes(i, raw.get("attributes"))
        if checked is None or attributes is False or not ok:
            return None
        region: dict[str, Any] = {"id": region_id, "type": region_type, "value": checked}
        if self.attributes and attributes is not None:
            region["attributes"] = attributes
        return region

    # -- labels ----------------------------------------------------------------------

    def _known(self) -> str:
        shown = ", ".join(self.label_names[:KNOWN_LABELS_SHOWN])
        more = len(self.label_names) - KNOWN_LABELS_SHOWN
        return shown + (f" and {more} more" if more > 0 else "")

    def _one_label(self, i: int, value: dict[str, Any], key: str) -> str | None:
        labels = value.get(key)
        if not isinstance(labels, list):
            if key not in value:
                self.add(i, f"value.{key}", f"{key} is required: a list with one label")
            else:
                self.add(
                    i,
                    f"value.{key}",
                    f"{key} must be a list with one label, got {describe_json(labels)}",
                )
            return None
        if len(labels) != 1:
            self.add(i, f"value.{key}", f"a region has exactly one label, got {len(labels)}")
            return None
        label = labels[0]
        if not isinstance(label, str) or label not in self.label_set:
            self.add(
                i,
                f"value.{key}[0]",
                f"unknown label {_short(label)} (known: {self._known()})",
            )
            return None
        return label

    def _number(self, i: int, value: dict[str, Any], key: str) -> int | float | None:
        number = value.get(key)
        if not is_json_number(number):
            if key not in value:
                self.add(i, f"value.{key}", f"{key} is required")
            else:
                self.add(
                    i,
                    f"value.{key}",
                    f"{key} must be a finite number, got {_short(number) if isinstance(number, float) else describe_json(number)}",
                )
            return None
        return number

    # -- region types ------------------------------------------------------------------

    def _rectanglelabels(self, i: int, value: dict[str, Any]) -> dict[str, Any] | None:
        x, y = self._number(i, value, "x"), self._number(i, value, "y")
        w, h = self._number(i, value, "width"), self._number(i, value, "height")
        label = self._one_label(i, value, "rectanglelabels")
        ok = None not in (x, y, w, h) and label is not None
        for key, number in (("x", x), ("y", y)):
            if number is not None and number < 0:
                self.add(
                    i, f"value.{key}", f"the box starts outside the image ({key} = {number} < 0)"
                )
                ok = False
        for key, number in (("width", w), ("height", h)):
            if number is not None and number <= 0:
                self.add(i, f"value.{key}", f"the box has no area ({key} = {number})")
                ok = False
        if (
            x is not None
            and w is not None
            and self.width is not None
            and x + w > self.width + TOLERANCE
        ):
            self.add(
                i,
                "value.width",
                f"the box goes outside the image (x + width = {x + w:g} > image width {self.width})",
            )
            ok = False
        if (
            y is not None
            and h is not None
            and self.height is not None
            and y + h > self.height + TOLERANCE
        ):
            self.add(
                i,
                "value.height",
                f"the box goes outside the image (y + height = {y + h:g} > image height {self.height})",
            )
            ok = False
        if not ok:
            return None
        return {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}

    def _inside(self, x: float, y: float) -> bool:
        return (
            x >= -TOLERANCE
            and y >= -TOLERANCE
            and (self.width is None or x <= self.width + TOLERANCE)
            and (self.height is None or y <= self.height + TOLERANCE)
        )

    def _image_size(self) -> str:
        return f"{self.width if self.width is not None else '?'}x{self.height if self.height is not None else '?'}"

    def _polygonlabels(self, i: int, value: dict[str, Any]) -> dict[str, Any] | None:
        label = self._one_label(i, value, "polygonlabels")
        points = value.get("points")
        if not isinstance(points, list):
            if "points" not in value:
                self.add(i, "value.points", "points is required: a list of [x, y] pairs")
            else:
                self.add(
                    i,
                    "value.points",
                    f"points must be a list of [x, y] pairs, got {describe_json(points)}",
                )
            return None
        if len(points) < 3:
            self.add(i, "value.points", f"a polygon needs at least 3 points, got {len(points)}")
            return None
        if len(points) > MAX_POLYGON_POINTS:
            self.add(
                i, "value.points", f"has {len(points)} points; the limit is {MAX_POLYGON_POINTS}"
            )
            return None
        ok = label is not None
        for j, point in enumerate(points):
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not is_json_number(point[0])
                or not is_json_number(point[1])
            ):
                self.add(
                    i,
                    f"value.points[{j}]",
                    f"point {j} must be [x, y] with two finite numbers, got {_short(point)}",
                )
                ok = False
            elif not self._inside(point[0], point[1]):
                self.add(
                    i,
                    f"value.points[{j}]",
                    f"point {j} {_short(point)} is outside the image ({self._image_size()})",
                )
                ok = False
        if not ok:
            return None
        # Shoelace formula: a polygon whose points are all on one line encloses nothing.
        n = len(points)
        twice_area = sum(
            points[k][0] * points[(k + 1) % n][1] - points[(k + 1) % n][0] * points[k][1]
            for k in range(n)
        )
        if abs(twice_area) <= TOLERANCE:
            self.add(i, "value.points", "the polygon has no area (its points are on one line)")
            return None
        return {"points": [[p[0], p[1]] for p in points], "polygonlabels": [label]}

    def _keypointlabels(self, i: int, value: dict[str, Any]) -> dict[str, Any] | None:
        x, y = self._number(i, value, "x"), self._number(i, value, "y")
        label = self._one_label(i, value, "keypointlabels")
        if x is None or y is None:
            return None
        if not self._inside(x, y):
            self.add(
                i,
                "value.x"
                if (x < 0 or (self.width is not None and x > self.width + TOLERANCE))
                else "value.y",
                f"the keypoint ({x:g}, {y:g}) is outside the image ({self._image_size()})",
            )
            return None
        if label is None:
            return None
        return {"x": x, "y": y, "keypointlabels": [label]}

    def _labels(self, i: int, value: dict[str, Any]) -> dict[str, Any] | None:
        label = self._one_label(i, value, "labels")
        bounds: dict[str, int] = {}
        for key in ("start", "end"):
            offset = value.get(key)
            if isinstance(offset, bool) or not isinstance(offset, int):
                if key not in value:
                    self.add(i, f"value.{key}", f"{key} is required: a character offset")
                else:
                    self.add(
                        i,
                        f"value.{key}",
                        f"{key} must be an integer character offset, got {_short(offset) if isinstance(offset, float) else describe_json(offset)}",
                    )
            else:
                bounds[key] = offset
        span_text = value.get("text")
        if span_text is not None and not isinstance(span_text, str):
            self.add(i, "value.text", f"text must be a string, got {describe_json(span_text)}")
            return None
        if len(bounds) < 2:
            return None
        start, end = bounds["start"], bounds["end"]
        if start < 0:
            self.add(i, "value.start", f"the span starts before the text (start = {start} < 0)")
            return None
        if start >= end:
            self.add(
                i, "value.end", f"the span is empty or reversed (start = {start}, end = {end})"
            )
            return None
        if self.text is not None:
            if end > len(self.text):
                self.add(
                    i,
                    "value.end",
                    f"the span goes past the end of the text (end = {end} > text length {len(self.text)})",
                )
                return None
            actual = self.text[start:end]
            if span_text is not None and span_text != actual:
                self.add(
                    i,
                    "value.text",
                    f"text {_short(span_text)} is not the text at [{start}, {end}), which is {_short(actual)}",
                )
                return None
            span_text = actual
        if label is None:
            return None
        normalised: dict[str, Any] = {"start": start, "end": end}
        if span_text is not None:
            normalised["text"] = span_text
        normalised["labels"] = [label]
        return normalised

    def _choices(self, i: int, value: dict[str, Any]) -> dict[str, Any] | None:
        choices = value.get("choices")
        if not isinstance(choices, list):
            if "choices" not in value:
                self.add(i, "value.choices", "choices is required: a list of labels")
            else:
                self.add(
                    i,
                    "value.choices",
                    f"choices must be a list of labels, got {describe_json(choices)}",
                )
            return None
        ok = True
        seen: set[str] = set()
        for j, choice in enumerate(choices):
            if not isinstance(choice, str) or choice not in self.label_set:
                self.add(
                    i,
                    f"value.choices[{j}]",
                    f"unknown choice {_short(choice)} (known: {self._known()})",
                )
                ok = False
            elif choice in seen:
                self.add(i, f"value.choices[{j}]", f"choice {choice!r} is given twice")
                ok = False
            else:
                seen.add(choice)
        if not ok:
            return None
        if not choices and not self.schema["allow_empty"]:
            self.add(
                i,
                "value.choices",
                "the result is empty; this project does not allow 'nothing here'",
            )
            return None
        if len(choices) > 1 and not self.schema["multiple"]:
            self.add(
                i,
                "value.choices",
                f"exactly one choice is allowed in this project, got {len(choices)}",
            )
            return None
        return {"choices": list(choices)}

    # -- attributes --------------------------------------------------------------------

    def _attributes(self, i: int, raw: Any) -> dict[str, Any] | None | bool:
        """Return the filled attributes, or False when they are bad."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.add(i, "attributes", f"attributes must be an object, got {describe_json(raw)}")
            return False
        ok = True
        filled: dict[str, Any] = {}
        for name, value in raw.items():
            attribute = self.attributes.get(name)
            if attribute is None:
                known = ", ".join(self.attributes) or "none in this project"
                self.add(i, f"attributes.{name}", f"unknown attribute {name!r} (known: {known})")
                ok = False
                continue
            if value is None:
                continue
            why = _attribute_problem(attribute, value)
            if why:
                self.add(i, f"attributes.{name}", f"attribute {name!r} {why}")
                ok = False
            else:
                filled[name] = value
        if not ok:
            return False
        result: dict[str, Any] = {}
        for name, attribute in self.attributes.items():
            if name in filled:
                result[name] = filled[name]
            elif attribute["default"] is not None:
                result[name] = attribute["default"]
        return result


def _attribute_problem(attribute: dict[str, Any], value: Any) -> str | None:
    """Say what is wrong with an attribute value, or None when it fits."""
    kind = attribute["type"]
    if kind == "bool":
        return (
            None
            if isinstance(value, bool)
            else f"must be true or false, got {describe_json(value)}"
        )
    if kind == "text":
        if not isinstance(value, str):
            return f"must be a string, got {describe_json(value)}"
        if len(value) > MAX_TEXT_ATTRIBUTE_LENGTH:
            return f"is {len(value)} characters long; the limit is {MAX_TEXT_ATTRIBUTE_LENGTH}"
        return None
    if kind == "enum":
        if value in attribute["options"]:
            return None
        return f"{_short(value)} is not one of: {', '.join(attribute['options'])}"
    # number
    if not is_json_number(value):
        return f"must be a finite number, got {describe_json(value)}"
    low, high = attribute["min"], attribute["max"]
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{value} is outside {low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
    return None
