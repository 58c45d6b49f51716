"""Rows for the dataset page tests: datasets, assets, items with tags, imports.

Made with bulk_create and made-up hashes (no blobs), except where a test stores real
bytes itself: the selectors and most views never read the object store.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

from datasets.models import Asset, Dataset, Import, ImportEntry, Item, ItemTag

_serial = itertools.count(1)


def fake_sha256(label: str | None = None) -> str:
    return hashlib.sha256(f"{label or next(_serial)}-{next(_serial)}".encode()).hexdigest()


def make_dataset(
    owner: Any, *, name: str | None = None, kind: str = "image", **fields: Any
) -> Dataset:
    return Dataset.objects.create(
        name=name or f"dataset {next(_serial)}", kind=kind, created_by=owner, **fields
    )


def make_items(
    dataset: Dataset,
    count: int,
    *,
    split: str | Sequence[str] = "",
    tags: Sequence[Sequence[str]] | Sequence[str] = (),
    metadata: Sequence[dict[str, Any]] | dict[str, Any] | None = None,
    media_type: str | None = None,
    thumbnail_ready: bool = False,
    preview: str = "",
    size: int = 1000,
) -> list[Item]:
    """`count` items (and their assets) in id order. `split`, `tags` (a tag list per item,
    or one list for all) and `metadata` take a value for all or one per item."""
    media_type = media_type or ("image/png" if dataset.kind == "image" else "text/plain")
    assets = [
        Asset(
            sha256=fake_sha256(),
            size=size,
            media_type=media_type,
            width=64 if media_type.startswith("image/") else None,
            height=48 if media_type.startswith("image/") else None,
            thumbnail_ready=thumbnail_ready,
            preview=preview,
        )
        for _ in range(count)
    ]
    Asset.objects.bulk_create(assets)
    start = next(_serial)
    items = Item.objects.bulk_create(
        [
            Item(
                dataset=dataset,
                asset=asset,
                external_id=f"item-{start}-{n:05d}",
                split=split if isinstance(split, str) else split[n],
                metadata=(
                    (metadata if isinstance(metadata, dict) else metadata[n]) if metadata else {}
                ),
            )
            for n, asset in enumerate(assets)
        ]
    )
    items.sort(key=lambda item: item.pk)
    one_list_for_all = bool(tags) and isinstance(tags[0], str)
    per_item: list[Any] = [tags] * count if one_list_for_all else list(tags) or [()] * count
    ItemTag.objects.bulk_create(
        [
            ItemTag(item=item, dataset=dataset, tag=tag)
            for item, item_tags in zip(items, per_item, strict=False)
            for tag in item_tags
        ]
    )
    return items


def make_import(dataset: Dataset, owner: Any, **fields: Any) -> Import:
    return Import.objects.create(
        dataset=dataset, source=Import.Source.UPLOAD, created_by=owner, **fields
    )


def make_entries(imp: Import, statuses: Sequence[str]) -> list[ImportEntry]:
    """One entry per status, seq 0.., rejected ones with a reason naming their seq."""
    return ImportEntry.objects.bulk_create(
        [
            ImportEntry(
                import_run=imp,
                seq=seq,
                name=f"folder/file-{seq:04d}.png",
                ref=f"staging/{imp.pk}/{seq}",
                status=status,
                reason=f"reason {seq}" if status == "rejected" else "",
            )
            for seq, status in enumerate(statuses)
        ]
    )
