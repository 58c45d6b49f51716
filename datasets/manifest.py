"""The canonical manifest of a dataset version: what its id is the hash of.

A manifest is JSON Lines, UTF-8: one header line, then one line per item sorted by item
id. Every line is `json.dumps(obj, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)` plus "\\n": no insignificant whitespace, keys sorted, so equal content
is equal bytes on any machine and database. The version id is the SHA-256 of those bytes
(header included); the creation time and author are not in them.

Header: {"format", "dataset", "code_commit", "code_repo", "parent", "label_schemas",
"split_seed"}. Item: {"id", "external_id", "sha256", "size", "media_type", "metadata",
"tags", "split", "label", "provenance"}: `label` is the published label's value (a list of
regions, see labeling/results.py) or null, `provenance` says where it came from
({"source", ...}: annotation revision ids, annotators, batch) or null.

Pure functions only: datasets.services.versions streams the rows through them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

FORMAT = "labelvault.manifest/1"
# Items without a split get one from their content: the same asset keeps its split in
# every version, and the same content under two items lands in the same split.
DEFAULT_SPLIT_SEED = "0"
SPLIT_SHARES = (("train", 80), ("val", 10), ("test", 10))
CODE_COMMIT = re.compile(r"[0-9a-f]{7,40}")


def canonical_line(obj: Any) -> bytes:
    """The canonical bytes of one manifest line (ValueError on NaN or infinity)."""
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8") + b"\n"


def code_commit_check(value: Any) -> str:
    """A git commit (7-40 lowercase hex digits) or the word "none"; ValueError otherwise."""
    if isinstance(value, str):
        value = value.strip().lower()
        if value == "none" or CODE_COMMIT.fullmatch(value):
            return value
    raise ValueError(
        f"code_commit must be a git commit (7 to 40 hex digits, `git rev-parse HEAD`) or "
        f"the word 'none', not {value!r}"
    )


def split_for(sha256: str, seed: str = DEFAULT_SPLIT_SEED) -> str:
    """The split an item without one gets: a hash of the seed and its asset, cut into
    SPLIT_SHARES (80/10/10) percent."""
    bucket = int.from_bytes(hashlib.sha256(f"{seed}:{sha256}".encode()).digest()[:8], "big") % 100
    for split, share in SPLIT_SHARES:
        if bucket < share:
            return split
        bucket -= share
    return SPLIT_SHARES[-1][0]


def header(
    *,
    dataset_id: int,
    code_commit: str,
    code_repo: str,
    parent: str | None,
    label_schemas: Iterable[str],
    split_seed: str = DEFAULT_SPLIT_SEED,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "dataset": dataset_id,
        "code_commit": code_commit,
        "code_repo": code_repo,
        "parent": parent,
        "label_schemas": sorted(set(label_schemas)),
        "split_seed": split_seed,
    }


def item_line(
    *,
    item_id: int,
    external_id: str,
    sha256: str,
    size: int,
    media_type: str,
    metadata: dict[str, Any],
    tags: Iterable[str],
    split: str,
    label: list[dict[str, Any]] | None,
    label_source: str | None,
    provenance: dict[str, Any] | None,
    split_seed: str = DEFAULT_SPLIT_SEED,
) -> dict[str, Any]:
    return {
        "id": item_id,
        "external_id": external_id,
        "sha256": sha256,
        "size": size,
        "media_type": media_type,
        "metadata": metadata,
        "tags": sorted(tags),
        "split": split or split_for(sha256, split_seed),
        "label": label,
        "provenance": None if label is None else {"source": label_source, **(provenance or {})},
    }


def label_names(value: list[dict[str, Any]] | None) -> list[str]:
    """The label names a label value uses, once per region (choices: once per choice)."""
    names: list[str] = []
    for region in value or ():
        inner = region.get("value") if isinstance(region, dict) else None
        if not isinstance(inner, dict):
            continue
        for key, labels in inner.items():
            if (key == "choices" or key.endswith("labels")) and isinstance(labels, list):
                names.extend(str(name) for name in labels)
    return names


class Digest:
    """Running SHA-256 of the whole manifest and of its item lines, plus counts."""

    def __init__(self) -> None:
        self.whole = hashlib.sha256()
        self.body = hashlib.sha256()
        self.items = 0
        self.labelled = 0
        self.size = 0
        self.classes: Counter[str] = Counter()
        self.splits: Counter[str] = Counter()

    def add_header(self, line: bytes) -> None:
        self.whole.update(line)
        self.size += len(line)

    def add_item(self, line: bytes, item: dict[str, Any]) -> None:
        self.add_items_block(line)
        self.count_item(item)

    def add_items_block(self, block: bytes) -> None:
        """Hash consecutive item lines at once (the same digest as line by line)."""
        self.whole.update(block)
        self.body.update(block)
        self.size += len(block)

    def count_item(self, item: dict[str, Any]) -> None:
        """Count an item whose line goes into add_items_block."""
        self.items += 1
        self.splits[item["split"]] += 1
        if item["label"] is not None:
            self.labelled += 1
            self.classes.update(label_names(item["label"]))
