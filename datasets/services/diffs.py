"""Diff two versions of one dataset: stream both manifests from object storage through
the merge join of datasets.diff (memory does not grow with the number of items)."""

from __future__ import annotations

from typing import Any

from datasets.diff import EXAMPLES_DEFAULT, ManifestFormatError, lines_diff, manifest_item_lines
from datasets.errors import DatasetError
from datasets.models import Version
from datasets.services.versions import manifest_stream


class InvalidDiff(DatasetError):
    code = "invalid_diff"


def version_diff(*, a: Version, b: Version, examples: int = EXAMPLES_DEFAULT) -> dict[str, Any]:
    """What changed from version `a` to version `b` of the same dataset (datasets.diff):
    {"a", "b", "dataset", "added", "removed", "changed", "relabelled", "split_moved",
    "unchanged", "examples", "class_counts", "shift"}. InvalidDiff for versions of two
    datasets."""
    if a.dataset_id != b.dataset_id:
        raise InvalidDiff(
            f"Versions {a.pk[:12]} and {b.pk[:12]} belong to different datasets "
            f"({a.dataset_id} and {b.dataset_id}); only versions of one dataset can be diffed.",
            field="b",
        )
    try:
        result = lines_diff(
            manifest_item_lines(manifest_stream(a)),
            manifest_item_lines(manifest_stream(b)),
            examples=examples,
        )
    except ManifestFormatError as exc:
        raise InvalidDiff(f"Cannot diff {a.pk[:12]} and {b.pk[:12]}: {exc}.") from None
    return {"a": a.pk, "b": b.pk, "dataset": a.dataset_id, **result}
