"""Label schemas: what a project asks annotators to draw or choose, validated and normalised.

The schema JSON (stored normalised in `SchemaRevision.schema`):

    {
      "type": "bbox" | "polygon" | "keypoint" | "image_class" | "text_class" | "ner",
      "multiple": false,      # true only for image_class / text_class: several choices
      "allow_empty": false,   # a submit with no regions / no choice is allowed
      "labels": [{"name": "car", "color": "#e6194b", "hotkey": "1"}, ...],
      "attributes": [         # per-region attributes, region types only
        {"name": "occluded", "type": "bool", "default": false},
        {"name": "truncation", "type": "enum", "options": ["none", "partial", "full"]},
        {"name": "note", "type": "text"},
        {"name": "count", "type": "number", "min": 0, "max": 99}
      ]
    }

Normalisation fills every optional key, so the stored schema is explicit and
`schema_validate(schema_validate(x)) == schema_validate(x)`:
- `multiple` and `allow_empty` default to false, `attributes` to [];
- a label's `color` defaults to the palette colour of its position and is written as
  lowercase `#rrggbb` (`#ABC` becomes `#aabbcc`);
- a label's `hotkey` defaults to "1".."9", "0" for the first ten labels (skipping a key
  another label took explicitly), then null (no hotkey); an explicit null means none;
- an attribute always has `default` (false for bool, else null unless given), an enum
  its `options`, a number its `min` and `max` (null: unbounded).

Hotkeys are one character of `0-9` or `a-z`. The annotator UI keeps these for itself, so
a label cannot take them: "s" (skip), "z" (undo), "y" (redo), "b" (back to the previous
task); it also uses Enter (submit), Escape (deselect), Space and "?" (instructions),
which are outside the allowed set anyway.

`schema_validate` collects every problem before raising `InvalidSchema`: `field` is the
path of the first (`labels[2].hotkey`), `errors` lists them all as
`{"field": path, "detail": "path: what is wrong"}`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from labeling.errors import InvalidSchema

SCHEMA_TYPES: tuple[str, ...] = ("bbox", "polygon", "keypoint", "image_class", "text_class", "ner")

# Schema type -> the `type` of the regions of its annotation results (labeling.results).
REGION_TYPES: dict[str, str] = {
    "bbox": "rectanglelabels",
    "polygon": "polygonlabels",
    "keypoint": "keypointlabels",
    "image_class": "choices",
    "text_class": "choices",
    "ner": "labels",
}
MEDIA_KINDS: dict[str, str] = {
    "bbox": "image",
    "polygon": "image",
    "keypoint": "image",
    "image_class": "image",
    "text_class": "text",
    "ner": "text",
}
CLASSIFICATION_TYPES = frozenset({"image_class", "text_class"})
# Types whose regions carry attributes (one region, one label, some attributes).
REGION_SCHEMA_TYPES = frozenset({"bbox", "polygon", "keypoint", "ner"})

ATTRIBUTE_TYPES: tuple[str, ...] = ("bool", "enum", "text", "number")

# Sasha Trubetskoy's 20 distinct colours: neighbours in a schema stay tellable apart.
PALETTE: tuple[str, ...] = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
    "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8",
    "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#808080",
)  # fmt: skip
DEFAULT_HOTKEYS = "1234567890"
# Keys the annotator UI binds: skip, undo, redo, back.
RESERVED_HOTKEYS = frozenset("szyb")
HOTKEY_RE = re.compile(r"[0-9a-z]")
COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")

MAX_LABELS = 200
MAX_NAME_LENGTH = 100
MAX_ATTRIBUTES = 50
MAX_ENUM_OPTIONS = 200
MAX_TEXT_DEFAULT_LENGTH = 1000
# 200 labels of 100 characters plus 50 enum attributes of a few options fit in ~60 KB;
# a schema travels with every task payload, so four times that is the ceiling.
MAX_SCHEMA_BYTES = 256 * 1024

_TOP_KEYS = ("type", "multiple", "allow_empty", "labels", "attributes")
_LABEL_KEYS = ("name", "color", "hotkey")
_ATTRIBUTE_KEYS: dict[str, tuple[str, ...]] = {
    "bool": ("name", "type", "default"),
    "enum": ("name", "type", "options", "default"),
    "text": ("name", "type", "default"),
    "number": ("name", "type", "min", "max", "default"),
}


def schema_media_kind(schema: dict[str, Any]) -> str:
    """Return "image" or "text": the kind of dataset a schema of this type labels."""
    return MEDIA_KINDS[schema["type"]]


def schema_region_type(schema: dict[str, Any]) -> str:
    """Return the region `type` of this schema's results (rectanglelabels, choices ...)."""
    return REGION_TYPES[schema["type"]]


def schema_hash(schema: dict[str, Any]) -> str:
    """Return the SHA-256 hex of the canonical JSON of a (normalised) schema."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _Problems:
    """Every problem found so far, in the order found."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, why: str) -> None:
        self.items.append({"field": field, "detail": f"{field}: {why}"})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise InvalidSchema(first["detail"], field=first["field"], errors=self.items)


def describe_json(value: Any) -> str:
    """Name a JSON value's kind for a message ("a string", "null" ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_json_number(value: Any) -> bool:
    """A finite JSON number: not a boolean, not NaN, not infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unknown_keys(
    problems: _Problems, obj: dict[str, Any], allowed: tuple[str, ...], path: str
) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.add(where, f"unknown key {key!r} (allowed: {', '.join(allowed)})")


def _check_name(problems: _Problems, name: Any, path: str) -> bool:
    """Check a label or attribute name; return whether it is usable."""
    if not isinstance(name, str):
        problems.add(path, f"must be a string, got {describe_json(name)}")
        return False
    if not name.strip():
        problems.add(path, "must not be empty")
        return False
    if len(name) > MAX_NAME_LENGTH:
        problems.add(path, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
        return False
    if name != name.strip():
        problems.add(path, f"{name!r} has leading or trailing whitespace")
        return False
    if any(not ch.isprintable() for ch in name):
        problems.add(path, f"{name!r} contains control characters")
        return False
    return True


def _check_bool(problems: _Problems, raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        problems.add(key, f"must be true or false, got {describe_json(value)}")
        return False
    return value


def schema_validate(raw: Any) -> dict[str, Any]:
    """Return the normalised form of a label schema (every default filled in).

    Pure: reads nothing, writes nothing. Raises InvalidSchema listing every problem.
    """
    problems = _Problems()
    if not isinstance(raw, dict):
        problems.add("schema", f"must be an object, got {describe_json(raw)}")
        problems.raise_if_any()
    try:
        size = len(json.dumps(raw, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        problems.add("schema", "must be plain JSON")
        problems.raise_if_any()
    if size > MAX_SCHEMA_BYTES:
        problems.add("schema", f"is {size} bytes of JSON; the limit is {MAX_SCHEMA_BYTES}")
        problems.raise_if_any()

    _unknown_keys(problems, raw, _TOP_KEYS, "")

    schema_type = raw.get("type")
    if schema_type not in SCHEMA_TYPES:
        if "type" not in raw:
            problems.add("type", f"is required (one of: {', '.join(SCHEMA_TYPES)})")
        else:
            shown = (
                repr(schema_type) if isinstance(schema_type, str) else describe_json(schema_type)
            )
            problems.add("type", f"unknown type {shown} (one of: {', '.join(SCHEMA_TYPES)})")
        schema_type = None

    multiple = _check_bool(problems, raw, "multiple")
    if multiple and schema_type is not None and schema_type not in CLASSIFICATION_TYPES:
        problems.add(
            "multiple", f"only image_class and text_class schemas take multiple, not {schema_type}"
        )
    allow_empty = _check_bool(problems, raw, "allow_empty")

    labels = _labels_validate(problems, raw.get("labels"), present="labels" in raw)
    attributes = _attributes_validate(problems, raw.get("attributes", []), schema_type)

    problems.raise_if_any()
    return {
        "type": schema_type,
        "multiple": multiple,
        "allow_empty": allow_empty,
        "labels": labels,
        "attributes": attributes,
    }


def _labels_validate(problems: _Problems, raw: Any, *, present: bool) -> list[dict[str, Any]]:
    if not present:
        problems.add("labels", "is required: a list of 1 to 200 labels")
        return []
    if not isinstance(raw, list):
        problems.add("labels", f"must be a list, got {describe_json(raw)}")
        return []
    if not raw:
        problems.add("labels", "must have at least one label")
        return []
    if len(raw) > MAX_LABELS:
        problems.add("labels", f"has {len(raw)} labels; the limit is {MAX_LABELS}")
        return []

    labels: list[dict[str, Any]] = []
    name_at: dict[str, int] = {}
    hotkey_at: dict[str, int] = {}
    for i, label in enumerate(raw):
        path = f"labels[{i}]"
        if not isinstance(label, dict):
            problems.add(
                path, f'must be an object like {{"name": ...}}, got {describe_json(label)}'
            )
            labels.append({"name": None, "color": None, "hotkey": None})
            continue
        _unknown_keys(problems, label, _LABEL_KEYS, path)

        name = label.get("name")
        if "name" not in label:
            problems.add(f"{path}.name", "is required")
        elif _check_name(problems, name, f"{path}.name"):
            if name in name_at:
                problems.add(
                    f"{path}.name", f"{name!r} is already the name of labels[{name_at[name]}]"
                )
            else:
                name_at[name] = i

        color = label.get("color")
        if color is not None:
            if not isinstance(color, str) or not COLOR_RE.fullmatch(color):
                shown = repr(color) if isinstance(color, str) else describe_json(color)
                problems.add(f"{path}.color", f"{shown} is not a colour like #rgb or #rrggbb")
                color = None
            else:
                color = color.lower()
                if len(color) == 4:
                    color = "#" + "".join(ch * 2 for ch in color[1:])
        if color is None:
            color = PALETTE[i % len(PALETTE)]

        hotkey = label.get("hotkey")
        if hotkey is not None:
            if not isinstance(hotkey, str) or not HOTKEY_RE.fullmatch(hotkey):
                shown = repr(hotkey) if isinstance(hotkey, str) else describe_json(hotkey)
                problems.add(
                    f"{path}.hotkey", f"{shown} is not a hotkey: use one character of 0-9 or a-z"
                )
            elif hotkey in RESERVED_HOTKEYS:
                problems.add(
                    f"{path}.hotkey",
                    f"{hotkey!r} is reserved by the annotator UI "
                    f"(reserved: {', '.join(sorted(RESERVED_HOTKEYS))})",
                )
            elif hotkey in hotkey_at:
                j = hotkey_at[hotkey]
                owner = raw[j].get("name") if isinstance(raw[j], dict) else None
                owner_text = f" ({owner})" if isinstance(owner, str) else ""
                problems.add(
                    f"{path}.hotkey", f"{hotkey!r} is already the hotkey of labels[{j}]{owner_text}"
                )
            else:
                hotkey_at[hotkey] = i
        labels.append({"name": name, "color": color, "hotkey": hotkey})

    # Default hotkeys last, so an explicit "1" further down wins over a default.
    for i, (label, source) in enumerate(zip(labels, raw, strict=True)):
        if i >= len(DEFAULT_HOTKEYS) or not isinstance(source, dict) or "hotkey" in source:
            continue
        key = DEFAULT_HOTKEYS[i]
        if key not in hotkey_at:
            label["hotkey"] = key
            hotkey_at[key] = i
    return labels


def _attributes_validate(
    problems: _Problems, raw: Any, schema_type: str | None
) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        problems.add("attributes", f"must be a list, got {describe_json(raw)}")
        return []
    if not raw:
        return []
    if schema_type is not None and schema_type not in REGION_SCHEMA_TYPES:
        problems.add(
            "attributes",
            f"only region schemas (bbox, polygon, keypoint, ner) take attributes, not {schema_type}",
        )
        return []
    if len(raw) > MAX_ATTRIBUTES:
        problems.add("attributes", f"has {len(raw)} attributes; the limit is {MAX_ATTRIBUTES}")
        return []

    attributes: list[dict[str, Any]] = []
    name_at: dict[str, int] = {}
    for i, attribute in enumerate(raw):
        path = f"attributes[{i}]"
        if not isinstance(attribute, dict):
            problems.add(
                path,
                f'must be an object like {{"name": ..., "type": ...}}, got {describe_json(attribute)}',
            )
            continue
        name = attribute.get("name")
        if "name" not in attribute:
            problems.add(f"{path}.name", "is required")
        elif _check_name(problems, name, f"{path}.name"):
            if name in name_at:
                problems.add(
                    f"{path}.name", f"{name!r} is already the name of attributes[{name_at[name]}]"
                )
            else:
                name_at[name] = i

        kind = attribute.get("type")
        if kind not in ATTRIBUTE_TYPES:
            if "type" not in attribute:
                problems.add(f"{path}.type", f"is required (one of: {', '.join(ATTRIBUTE_TYPES)})")
            else:
                shown = repr(kind) if isinstance(kind, str) else describe_json(kind)
                problems.add(
                    f"{path}.type", f"unknown type {shown} (one of: {', '.join(ATTRIBUTE_TYPES)})"
                )
            continue
        _unknown_keys(problems, attribute, _ATTRIBUTE_KEYS[kind], path)
        normalised: dict[str, Any] = {"name": name, "type": kind}
        default = attribute.get("default")

        if kind == "bool":
            if default is None:
                default = False
            elif not isinstance(default, bool):
                problems.add(
                    f"{path}.default", f"must be true or false, got {describe_json(default)}"
                )
        elif kind == "text":
            if default is not None and not isinstance(default, str):
                problems.add(f"{path}.default", f"must be a string, got {describe_json(default)}")
            elif isinstance(default, str) and len(default) > MAX_TEXT_DEFAULT_LENGTH:
                problems.add(
                    f"{path}.default",
                    f"is {len(default)} characters long; the limit is {MAX_TEXT_DEFAULT_LENGTH}",
                )
        elif kind == "enum":
            options = _enum_options(problems, attribute.get("options"), f"{path}.options")
            normalised["options"] = options
            if default is not None and options is not None and default not in options:
                shown = repr(default) if isinstance(default, str) else describe_json(default)
                problems.add(f"{path}.default", f"{shown} is not one of the options")
        else:  # number
            low, high = attribute.get("min"), attribute.get("max")
            for key, bound in (("min", low), ("max", high)):
                if bound is not None and not is_json_number(bound):
                    problems.add(
                        f"{path}.{key}", f"must be a finite number, got {describe_json(bound)}"
                    )
            low = low if is_json_number(low) else None
            high = high if is_json_number(high) else None
            if low is not None and high is not None and low > high:
                problems.add(f"{path}.min", f"min {low} is greater than max {high}")
            normalised["min"], normalised["max"] = low, high
            if default is not None:
                if not is_json_number(default):
                    problems.add(
                        f"{path}.default", f"must be a finite number, got {describe_json(default)}"
                    )
                elif (low is not None and default < low) or (high is not None and default > high):
                    problems.add(
                        f"{path}.default", f"{default} is outside min..max ({low}..{high})"
                    )
        normalised["default"] = default
        attributes.append(normalised)
    return attributes


def _enum_options(problems: _Problems, options: Any, path: str) -> list[str] | None:
    if options is None:
        problems.add(path, "an enum attribute needs a list of at least one option")
        return None
    if not isinstance(options, list):
        problems.add(path, f"must be a list of strings, got {describe_json(options)}")
        return None
    if not options:
        problems.add(path, "an enum attribute needs at least one option")
        return None
    if len(options) > MAX_ENUM_OPTIONS:
        problems.add(path, f"has {len(options)} options; the limit is {MAX_ENUM_OPTIONS}")
        return None
    ok = True
    seen: set[str] = set()
    for j, option in enumerate(options):
        if not _check_name(problems, option, f"{path}[{j}]"):
            ok = False
        elif option in seen:
            problems.add(f"{path}[{j}]", f"{option!r} is listed twice")
            ok = False
        else:
            seen.add(option)
    return list(options) if ok else None
