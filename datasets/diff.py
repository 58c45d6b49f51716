"""The diff of two dataset versions: a merge join of their manifests' item lines.

Both sides are canonical item lines (datasets.manifest: one JSON object per item, keys
sorted, no whitespace) sorted by item id, without the header. The join walks them once,
keeping only counters and at most `examples` examples per kind, so memory does not grow
with the number of items (it grows with the number of distinct (split, tag set)
combinations, which is small in practice).

What it says:
- added / removed: item ids only in b / only in a;
- changed: items in both whose lines differ; among them `relabelled` (the label value
  differs; before/after in the examples) and `split_moved` (the split differs); an item
  whose metadata, asset or provenance alone changed is changed but neither;
- unchanged: identical lines (lines are canonical, so equal bytes are equal items);
- class counts per side (regions or choices per label name, datasets.manifest.label_names)
  and their change;
- the shift of the label distribution, overall, per split and per tag (the TAGS_REPORTED
  most frequent): chi-square test of independence on the 2 x K table of class counts
  (scipy.stats.chi2_contingency: p-value, statistic, degrees of freedom) and the
  Jensen-Shannon distance (base 2, 0 = same distribution, 1 = disjoint) of the normalised
  class distributions. Each is null with a `reason` when it cannot be computed.

Speed: identical lines are the common case between neighbouring versions and are only
compared as bytes, never decoded whole: their split and tags are the line's tail and
their label is decoded alone (see `_line_facts`), and they are counted once for both
sides. Only lines that differ are parsed with json.loads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from datasets.manifest import FORMAT, canonical_line, label_names

EXAMPLES_DEFAULT = 100
EXAMPLES_MAX = 1000
# Tags reported in `shift.by_tag`: the most frequent ones (items carrying them, a + b).
TAGS_REPORTED = 50

_LABEL = b',"label":'
_SPLIT = b',"split":'
_NULL = b"null"
_decoder = json.JSONDecoder()


class ManifestFormatError(ValueError):
    """A manifest whose header names a format this module does not know."""


def manifest_item_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The item lines (without newline) of a whole manifest given as byte chunks: the
    header line is checked for the format `_line_facts` relies on, and skipped."""
    rest = b""
    first = True
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if first and lines:
            found = json.loads(lines[0]).get("format")
            if found != FORMAT:
                raise ManifestFormatError(f"manifest format {found!r}, not {FORMAT!r}")
            del lines[0]
            first = False
        yield from lines
    if rest and not first:
        yield rest  # a manifest ends with a newline; kept in case one does not


def _line_facts(line: bytes) -> tuple[bytes, list[str]]:
    """(profile, label names) of a canonical item line without decoding all of it.

    The profile is the line's tail from `"split"` on: `"split":"train","tags":[...]}`, the
    item's split and tags as bytes. This relies on the canonical form: keys are sorted,
    so `external_id` (a string) and `id` (an integer) come before `label`, and `split`,
    `tags` are the last two keys; and `,"` never occurs inside a JSON string (a quote in a
    string is escaped), so the first `,"label":` and the last `,"split":` are the item's
    own keys, whatever its metadata or label hold.
    """
    start = line.index(_LABEL) + len(_LABEL)
    if line.startswith(_NULL, start):
        names: list[str] = []
    else:
        value, _ = _decoder.raw_decode(line[start:].decode("utf-8"))
        names = _label_names(value)
    return line[line.rindex(_SPLIT) + 1 :], names


# Region value key tuples -> the keys among them that hold label names.
_name_keys: dict[tuple[str, ...], tuple[str, ...]] = {}
_NAME_KEYS_MAX = 4096


def _label_names(value: Any) -> list[str]:
    """datasets.manifest.label_names, with the choice of keys cached per key tuple (a
    region's keys repeat from item to item): the same names, a third of the time."""
    if type(value) is not list:
        return label_names(value)
    names: list[str] = []
    for region in value:
        inner = region.get("value") if type(region) is dict else None
        if type(inner) is not dict:
            continue
        keys = tuple(inner)
        wanted = _name_keys.get(keys)
        if wanted is None:
            if len(_name_keys) >= _NAME_KEYS_MAX:
                _name_keys.clear()
            wanted = _name_keys[keys] = tuple(
                k for k in keys if k == "choices" or k.endswith("labels")
            )
        for key in wanted:
            labels = inner[key]
            if type(labels) is list:
                names.extend(str(name) for name in labels)
    return names


def _profile_decode(profile: bytes) -> tuple[str, list[str]]:
    obj = json.loads(b"{" + profile)
    return obj["split"], obj["tags"]


class _Tally:
    """Items and class counts per profile (split and tags) of one set of lines."""

    def __init__(self) -> None:
        self.profiles: dict[bytes, tuple[list[int], Counter[str]]] = {}

    def add(self, line: bytes) -> None:
        profile, names = _line_facts(line)
        entry = self.profiles.get(profile)
        if entry is None:
            entry = self.profiles[profile] = ([0], Counter())
        entry[0][0] += 1
        if names:
            entry[1].update(names)


class _Scopes:
    """One side's class counts and item counts: overall, per split, per tag."""

    def __init__(self, *tallies: _Tally) -> None:
        self.overall: Counter[str] = Counter()
        self.split: dict[str, Counter[str]] = {}
        self.tag: dict[str, Counter[str]] = {}
        self.tag_items: Counter[str] = Counter()
        for tally in tallies:
            for profile, (items, classes) in tally.profiles.items():
                split, tags = _profile_decode(profile)
                self.overall.update(classes)
                self.split.setdefault(split, Counter()).update(classes)
                for tag in tags:
                    self.tag.setdefault(tag, Counter()).update(classes)
                    self.tag_items[tag] += items[0]


def shift(counts_a: Mapping[str, int], counts_b: Mapping[str, int]) -> dict[str, Any]:
    """Chi-square test and Jensen-Shannon distance between two class-count tables."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency

    classes = sorted(n for n in {*counts_a, *counts_b} if counts_a.get(n) or counts_b.get(n))
    row_a = [int(counts_a.get(n, 0)) for n in classes]
    row_b = [int(counts_b.get(n, 0)) for n in classes]
    total_a, total_b = sum(row_a), sum(row_b)
    result: dict[str, Any] = {
        "classes": len(classes),
        "total_a": total_a,
        "total_b": total_b,
        "chi2_p": None,
        "chi2": None,
        "dof": None,
        "js_distance": None,
        "reason": None,
    }
    if not total_a or not total_b:
        side = "a" if not total_a else "b"
        result["reason"] = f"no labels in {side}: no distribution to compare"
        return result
    p = [n / total_a for n in row_a]
    q = [n / total_b for n in row_b]
    result["js_distance"] = float(jensenshannon(p, q, base=2))
    if len(classes) < 2:
        result["reason"] = "one class only: a chi-square test needs at least two"
        return result
    test = chi2_contingency([row_a, row_b])
    result["chi2_p"] = float(test.pvalue)
    result["chi2"] = float(test.statistic)
    result["dof"] = int(test.dof)
    return result


class _Examples:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.added: list[int] = []
        self.removed: list[int] = []
        self.relabelled: list[dict[str, Any]] = []
        self.split_moved: list[dict[str, Any]] = []

    def keep(self, bucket: list[Any], make: Any) -> None:
        if len(bucket) < self.limit:
            bucket.append(make())

    def as_dict(self) -> dict[str, list[Any]]:
        return {
            "added": self.added,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "split_moved": self.split_moved,
        }


def _item_id(line: bytes) -> int:
    return json.loads(line)["id"]


def lines_diff(
    lines_a: Iterable[bytes], lines_b: Iterable[bytes], *, examples: int = EXAMPLES_DEFAULT
) -> dict[str, Any]:
    """Diff two streams of canonical item lines (with or without their trailing newline,
    the same on both sides), each sorted by item id. See the module docstring."""
    it_a: Iterator[bytes] = iter(lines_a)
    it_b: Iterator[bytes] = iter(lines_b)
    common, only_a, only_b = _Tally(), _Tally(), _Tally()
    kept = _Examples(max(0, min(examples, EXAMPLES_MAX)))
    counts = Counter[str]()
    unchanged = 0
    la = next(it_a, None)
    lb = next(it_b, None)
    a: dict[str, Any] | None = None  # la parsed, once it differs from lb
    b: dict[str, Any] | None = None
    while la is not None and lb is not None:
        if la == lb:
            unchanged += 1
            common.add(la)
            la = next(it_a, None)
            lb = next(it_b, None)
            a = b = None
            continue
        if a is None:
            a = json.loads(la)
        if b is None:
            b = json.loads(lb)
        if a["id"] < b["id"]:
            counts["removed"] += 1
            kept.keep(kept.removed, lambda a=a: a["id"])
            only_a.add(la)
            la, a = next(it_a, None), None
        elif a["id"] > b["id"]:
            counts["added"] += 1
            kept.keep(kept.added, lambda b=b: b["id"])
            only_b.add(lb)
            lb, b = next(it_b, None), None
        else:
            counts["changed"] += 1
            if a["label"] != b["label"]:
                counts["relabelled"] += 1
                kept.keep(
                    kept.relabelled,
                    lambda a=a, b=b: {"id": a["id"], "before": a["label"], "after": b["label"]},
                )
            if a["split"] != b["split"]:
                counts["split_moved"] += 1
                kept.keep(
                    kept.split_moved,
                    lambda a=a, b=b: {"id": a["id"], "from": a["split"], "to": b["split"]},
                )
            only_a.add(la)
            only_b.add(lb)
            la, lb, a, b = next(it_a, None), next(it_b, None), None, None
    while la is not None:
        counts["removed"] += 1
        kept.keep(kept.removed, lambda la=la: _item_id(la))
        only_a.add(la)
        la = next(it_a, None)
    while lb is not None:
        counts["added"] += 1
        kept.keep(kept.added, lambda lb=lb: _item_id(lb))
        only_b.add(lb)
        lb = next(it_b, None)
    return _report(counts, unchanged, kept, _Scopes(common, only_a), _Scopes(common, only_b))


def _report(
    counts: Counter[str], unchanged: int, kept: _Examples, side_a: _Scopes, side_b: _Scopes
) -> dict[str, Any]:
    names = sorted({*side_a.overall, *side_b.overall})
    class_counts = {
        name: {
            "a": side_a.overall[name],
            "b": side_b.overall[name],
            "change": side_b.overall[name] - side_a.overall[name],
        }
        for name in names
    }
    tag_items = side_a.tag_items + side_b.tag_items
    top_tags = sorted(tag for tag, _ in tag_items.most_common(TAGS_REPORTED))
    splits = sorted({*side_a.split, *side_b.split})
    empty: Counter[str] = Counter()
    return {
        "added": counts["added"],
        "removed": counts["removed"],
        "changed": counts["changed"],
        "relabelled": counts["relabelled"],
        "split_moved": counts["split_moved"],
        "unchanged": unchanged,
        "examples": kept.as_dict(),
        "examples_limit": kept.limit,
        "class_counts": class_counts,
        "shift": {
            "overall": shift(side_a.overall, side_b.overall),
            "by_split": {
                s: shift(side_a.split.get(s, empty), side_b.split.get(s, empty)) for s in splits
            },
            "by_tag": {
                t: shift(side_a.tag.get(t, empty), side_b.tag.get(t, empty)) for t in top_tags
            },
            "tags_total": len(tag_items),
            "tags_reported": len(top_tags),
            "tags_note": f"the {TAGS_REPORTED} tags carried by the most items (a + b) at most",
        },
    }


def items_diff(
    items_a: Iterable[Mapping[str, Any]],
    items_b: Iterable[Mapping[str, Any]],
    *,
    examples: int = EXAMPLES_DEFAULT,
) -> dict[str, Any]:
    """Diff two streams of manifest item dicts, each sorted by id (made canonical here)."""
    return lines_diff(
        (canonical_line(item) for item in items_a),
        (canonical_line(item) for item in items_b),
        examples=examples,
    )
