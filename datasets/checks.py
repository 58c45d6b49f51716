"""Data checks evaluated when a version is snapshotted: the tests a release must pass.

A dataset's `checks` setting turns them on and sets their thresholds:

    {"every_item_labelled": true, "labels_valid": true, "boxes_inside_image": true,
     "min_items_per_class": 50, "no_split_leakage": true,
     "split_proportions": {"train": 0.8, "val": 0.1, "test": 0.1, "tolerance": 0.05},
     "metadata_valid": true}

Missing keys take DEFAULTS (the cheap, always-meaningful ones on; thresholds off). The
checker is fed every manifest item once, in the snapshot's stream, and keeps counters
only (memory does not grow with the dataset), plus at most EXAMPLES item ids per check.
A version whose checks fail is still recorded, marked failed with this report, and can
not be tagged `release`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from jsonschema.validators import validator_for

from datasets.manifest import label_names

DEFAULTS: dict[str, Any] = {
    "every_item_labelled": True,
    "labels_valid": True,
    "boxes_inside_image": True,
    "min_items_per_class": 0,
    "no_split_leakage": True,
    "split_proportions": None,
    "metadata_valid": True,
}
EXAMPLES = 10
SPLITS = ("train", "val", "test")


def checks_config_check(raw: Any) -> dict[str, Any]:
    """The dataset's checks setting with defaults filled; ValueError naming the key."""
    if raw in (None, ""):
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError('checks must be an object like {"min_items_per_class": 50}')
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown checks {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    config = {**DEFAULTS, **raw}
    for key in (
        "every_item_labelled",
        "labels_valid",
        "boxes_inside_image",
        "no_split_leakage",
        "metadata_valid",
    ):
        if not isinstance(config[key], bool):
            raise ValueError(f"{key} must be true or false")
    minimum = config["min_items_per_class"]
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise ValueError("min_items_per_class must be a whole number ≥ 0 (0: off)")
    shares = config["split_proportions"]
    if shares is not None:
        if not isinstance(shares, dict) or set(shares) - {*SPLITS, "tolerance"}:
            raise ValueError(
                'split_proportions is {"train": 0.8, "val": 0.1, "test": 0.1, "tolerance": 0.05}'
            )
        for key, value in shares.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"split_proportions.{key} must be a fraction from 0 to 1")
        if abs(sum(v for k, v in shares.items() if k != "tolerance") - 1) > 1e-6:
            raise ValueError("split_proportions of train, val and test must add up to 1")
    return config


def _box_outside(region: dict[str, Any], width: int, height: int) -> bool:
    value = region.get("value") or {}
    if region.get("type") == "rectanglelabels":
        x, y = value.get("x", 0), value.get("y", 0)
        return (
            x < 0
            or y < 0
            or x + value.get("width", 0) > width
            or y + value.get("height", 0) > height
        )
    if region.get("type") == "polygonlabels":
        return any(
            not (0 <= px <= width and 0 <= py <= height) for px, py in value.get("points", [])
        )
    if region.get("type") == "keypointlabels":
        return not (0 <= value.get("x", 0) <= width and 0 <= value.get("y", 0) <= height)
    return False


def _region_valid(region: Any) -> bool:
    if not isinstance(region, dict) or not isinstance(region.get("type"), str):
        return False
    value = region.get("value")
    if not isinstance(value, dict):
        return False
    names = [
        n
        for k, v in value.items()
        if k == "choices" or k.endswith("labels")
        for n in (v if isinstance(v, list) else [None])
    ]
    return bool(names) and all(isinstance(n, str) and n for n in names)


class Checker:
    """Feed it every item of a snapshot (with its image size), then read `report()`."""

    def __init__(self, config: dict[str, Any], *, metadata_schema: dict[str, Any] | None) -> None:
        self.config = config
        self.items = 0
        self.unlabelled = 0
        self.invalid_labels = 0
        self.boxes_outside = 0
        self.invalid_metadata = 0
        self.classes: Counter[str] = Counter()
        self.splits: Counter[str] = Counter()
        self.examples: dict[str, list[int]] = {}
        self.leaking: list[str] = []
        self.validator = None
        if metadata_schema and config["metadata_valid"]:
            cls = validator_for(metadata_schema)
            self.validator = cls(metadata_schema)

    def _example(self, check: str, item_id: int) -> None:
        found = self.examples.setdefault(check, [])
        if len(found) < EXAMPLES:
            found.append(item_id)

    def feed(self, item: dict[str, Any], *, width: int | None, height: int | None) -> None:
        self.items += 1
        self.splits[item["split"]] += 1
        label = item["label"]
        if label is None:
            self.unlabelled += 1
            self._example("every_item_labelled", item["id"])
        else:
            self.classes.update(set(label_names(label)))
            if not all(_region_valid(r) for r in label):
                self.invalid_labels += 1
                self._example("labels_valid", item["id"])
            if (
                width
                and height
                and any(_box_outside(r, width, height) for r in label if isinstance(r, dict))
            ):
                self.boxes_outside += 1
                self._example("boxes_inside_image", item["id"])
        if self.validator is not None and not self.validator.is_valid(item["metadata"]):
            self.invalid_metadata += 1
            self._example("metadata_valid", item["id"])

    def report(self) -> list[dict[str, Any]]:
        """One entry per check that ran: {"check", "passed", "detail", "examples"}."""
        config = self.config
        out: list[dict[str, Any]] = []

        def add(check: str, passed: bool, detail: str) -> None:
            out.append(
                {
                    "check": check,
                    "passed": passed,
                    "detail": detail,
                    "examples": self.examples.get(check, []),
                }
            )

        if config["every_item_labelled"]:
            add(
                "every_item_labelled",
                self.unlabelled == 0,
                f"{self.unlabelled} of {self.items} items have no label",
            )
        if config["labels_valid"]:
            add(
                "labels_valid",
                self.invalid_labels == 0,
                f"{self.invalid_labels} labels are not lists of labelled regions",
            )
        if config["boxes_inside_image"]:
            add(
                "boxes_inside_image",
                self.boxes_outside == 0,
                f"{self.boxes_outside} labels have a region outside their image",
            )
        minimum = config["min_items_per_class"]
        if minimum:
            short = sorted(name for name, count in self.classes.items() if count < minimum)
            add(
                "min_items_per_class",
                not short and bool(self.classes),
                f"classes under {minimum} items: {', '.join(short[:20]) or 'none'}"
                + ("" if self.classes else " (no labelled items)"),
            )
        if config["no_split_leakage"]:
            add(
                "no_split_leakage",
                not self.leaking,
                f"{len(self.leaking)} assets are in more than one split"
                + (
                    f": {', '.join(s[:12] for s in self.leaking[:EXAMPLES])}"
                    if self.leaking
                    else ""
                ),
            )
        shares = config["split_proportions"]
        if shares:
            tolerance = shares.get("tolerance", 0.05)
            off = []
            for split in SPLITS:
                actual = self.splits[split] / self.items if self.items else 0.0
                wanted = shares.get(split, 0.0)
                if abs(actual - wanted) > tolerance:
                    off.append(f"{split} {actual:.3f} (wanted {wanted} ± {tolerance})")
            add("split_proportions", not off, "; ".join(off) or "within tolerance")
        if self.validator is not None:
            add(
                "metadata_valid",
                self.invalid_metadata == 0,
                f"{self.invalid_metadata} items break the metadata schema",
            )
        return out
