"""Add items to a dataset in bulk, deciding for each row: created, unchanged, duplicate
or rejected, race-free when several import chunks write the same dataset at once."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from datasets.models import Dataset, Item, ItemTag

MAX_TAG_LENGTH = 100
MAX_EXTERNAL_ID_LENGTH = 512


@dataclass(frozen=True)
class ItemRow:
    """An item to add: `key` is the caller's handle for the row (an entry id)."""

    key: Hashable
    external_id: str
    sha256: str
    metadata: dict = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    split: str = ""


@dataclass(frozen=True)
class ItemOutcome:
    key: Hashable
    status: str  # "created" | "unchanged" | "duplicate" | "rejected"
    item_id: int | None
    reason: str = ""


def items_add(*, dataset: Dataset, rows: Sequence[ItemRow]) -> list[ItemOutcome]:
    """Create the items of `rows` that are new; return one outcome per row, in order.

    - created: a new item (with its tags);
    - unchanged: the dataset already has this external_id with the same content (a
      re-run of the same import adds nothing);
    - duplicate: the content is already in the dataset under another external_id (the
      same asset is never stored twice in one dataset);
    - rejected: the external_id already names different content.
    Must run inside a transaction (the caller's, with the entries' statuses): it locks
    the dataset row until that commits, so concurrent writers of one dataset (import
    chunks) classify and insert one after the other and every count is exact. The lock
    covers only this short step, not the fetching and hashing before it.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("items_add must run inside transaction.atomic()")
    if not rows:
        return []
    Dataset.objects.select_for_update().filter(pk=dataset.pk).values_list("pk").first()
    names = {r.external_id for r in rows}
    shas = {r.sha256 for r in rows}
    by_name = _items_by("external_id", dataset, names)
    by_asset = _items_by("asset_id", dataset, shas)

    outcomes: dict[Hashable, ItemOutcome] = {}
    to_create: list[ItemRow] = []
    claimed_names: dict[str, ItemRow] = {}
    claimed_shas: dict[str, ItemRow] = {}
    for row in rows:
        known = by_name.get(row.external_id)
        if known is not None:
            outcomes[row.key] = _against_existing(row, known)
            continue
        same_content = by_asset.get(row.sha256)
        if same_content is not None:
            outcomes[row.key] = ItemOutcome(
                row.key,
                "duplicate",
                same_content[0],
                f"same content as item {same_content[1]!r}",
            )
            continue
        # Within this batch: the first row with a name or a content wins.
        if row.external_id in claimed_names:
            first = claimed_names[row.external_id]
            outcomes[row.key] = (
                ItemOutcome(row.key, "unchanged", None, "")
                if first.sha256 == row.sha256
                else ItemOutcome(
                    row.key,
                    "rejected",
                    None,
                    f"external_id {row.external_id!r} appears twice with different content",
                )
            )
            continue
        if row.sha256 in claimed_shas:
            outcomes[row.key] = ItemOutcome(
                row.key,
                "duplicate",
                None,
                f"same content as {claimed_shas[row.sha256].external_id!r} in this import",
            )
            continue
        claimed_names[row.external_id] = row
        claimed_shas[row.sha256] = row
        to_create.append(row)

    if to_create:
        Item.objects.bulk_create(
            [
                Item(
                    dataset=dataset,
                    asset_id=row.sha256,
                    external_id=row.external_id,
                    metadata=row.metadata,
                    split=row.split,
                )
                for row in to_create
            ],
            # The lock above means no conflict is expected; should one slip in (a writer
            # that bypassed this service), the read-back below classifies it.
            ignore_conflicts=True,
        )
        # Read back the ids (bulk_create with ignore_conflicts does not return them).
        stored = _items_by("external_id", dataset, {r.external_id for r in to_create})
        stored_by_asset = _items_by("asset_id", dataset, {r.sha256 for r in to_create})
        tags: list[ItemTag] = []
        for row in to_create:
            item = stored.get(row.external_id)
            if item is not None and item[1] == row.sha256:
                outcomes[row.key] = ItemOutcome(row.key, "created", item[0])
                tags.extend(ItemTag(item_id=item[0], dataset=dataset, tag=tag) for tag in row.tags)
            elif item is not None:
                outcomes[row.key] = _against_existing(row, item)
            else:
                other = stored_by_asset.get(row.sha256)
                outcomes[row.key] = ItemOutcome(
                    row.key,
                    "duplicate",
                    other[0] if other else None,
                    f"same content as item {other[1]!r}"
                    if other
                    else "same content as another item",
                )
        if tags:
            ItemTag.objects.bulk_create(tags, ignore_conflicts=True)
    return [outcomes[row.key] for row in rows]


def _items_by(column: str, dataset: Dataset, values: set[str]) -> dict[str, tuple[int, str]]:
    """Map each value of `column` found in the dataset to (item id, the other column)."""
    other = "asset_id" if column == "external_id" else "external_id"
    found: dict[str, tuple[int, str]] = {}
    values_list = sorted(values)
    # Stay under SQLite's 999 bound parameters per statement.
    for start in range(0, len(values_list), 900):
        batch = values_list[start : start + 900]
        for pk, key, other_value in Item.objects.filter(
            dataset=dataset, **{f"{column}__in": batch}
        ).values_list("pk", column, other):
            found[key] = (pk, other_value)
    return found


def _against_existing(row: ItemRow, known: tuple[int, str]) -> ItemOutcome:
    item_id, sha256 = known
    if sha256 == row.sha256:
        return ItemOutcome(row.key, "unchanged", item_id)
    return ItemOutcome(
        row.key,
        "rejected",
        None,
        f"external_id {row.external_id!r} already names different content "
        f"(sha256 {sha256[:12]}…); delete that item or choose another id",
    )
