"""The canonical line of a manifest item is exactly json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False) + "\\n", whatever path writes it."""

from __future__ import annotations

import json

import pytest

from datasets.manifest import canonical_line, item_line, split_for


def _reference(obj) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


TRICKY_METADATA = {
    "z": [1, 2.5, -0.0, 1e-7, 1e21, 123456789012345678901234567890],
    "é": 'ünïcødé ✓ 𝄞 \u2028 "quoted" \\ back\tslash\n',
    "a": {"nested": {"b": None, "a": [True, False, {"y": 1, "x": 0.1 + 0.2}]}},
    "": "empty key",
    "10": 10,
    "9": 9,
}


@pytest.mark.parametrize(
    ("label", "provenance"),
    [
        (None, None),
        (
            [
                {
                    "id": "r1",
                    "type": "rectanglelabels",
                    "value": {
                        "x": 1.5,
                        "y": 2,
                        "width": 3.25,
                        "height": 4,
                        "rectanglelabels": ["voiture ✓"],
                    },
                }
            ],
            {"annotation_revisions": [3, 1], "annotators": ["ann é"]},
        ),
    ],
)
def test_canonical_line_of_a_tricky_item_is_sorted_compact_utf8_json(label, provenance) -> None:
    sha = "0" * 63 + "1"
    item = item_line(
        item_id=42,
        external_id="dossier/çà 日本.jpg",
        sha256=sha,
        size=12345,
        media_type="image/jpeg",
        metadata=TRICKY_METADATA,
        tags=["zèbre", "alpha", "Beta"],
        split="",
        label=label,
        label_source="project:1",
        provenance=provenance,
    )

    line = canonical_line(item)

    assert line == _reference(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = json.loads(line)
    assert decoded["tags"] == ["Beta", "alpha", "zèbre"]
    assert decoded["split"] == split_for(sha)
    assert decoded["label"] == label
    assert decoded["provenance"] == (
        None if label is None else {"source": "project:1", **provenance}
    )
    assert list(decoded) == sorted(decoded)
    assert "ünïcødé".encode() in line  # not \u-escaped


def test_canonical_line_refuses_nan_and_infinity() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            canonical_line({"x": bad})
