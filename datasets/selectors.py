"""Read queries of the dataset pages: who sees which dataset, the item grid, the import
reports.

Every list is keyset (cursor) paginated, never OFFSET: a page costs the same at item 1
and at item 1,000,000, and the last page is the first page read backwards. Cursors are
opaque and signed (django.core.signing), so a URL cannot be edited into another query;
a cursor that does not verify is read as "first page".

Query shapes are chosen for PostgreSQL's planner, measured on a dataset of 1M items next
to another of 1M (2M items, 670k tags): with `dataset_id = %s ORDER BY id` the planner
walks the primary key and skips the other dataset's rows (420-650 ms per page), because
it assumes a dataset's ids are spread evenly. Pinning a column with `>= x AND <= x`
instead of `= x` keeps it in the ORDER BY, so only the intended index can return rows
in order: every grid page then takes 0.1-1.3 ms (first, last, deep, split, tag). The
exception is a filter on metadata, which no index serves: it scans the dataset in id
order until a page is full (about 1 s per million items scanned when nothing matches).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from django.core import signing
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects
from django.db.models.fields.json import KeyTransform

from datasets.models import Dataset, Import, ImportEntry, Item, ItemTag, Label

T = TypeVar("T")

# The groups that see and manage every dataset: labeling.roles.OPS and ADMIN (datasets
# may not import labeling, so the names are repeated here).
MANAGER_GROUPS = ("ops", "admin")
# 48 fills whole rows at 4, 6 and 8 cards per row (narrow, 1366 px and wide screens).
ITEM_PAGE_SIZE = 48
DATASET_PAGE_SIZE = 50
REJECTED_PAGE_SIZE = 50
RECENT_IMPORTS = 10
# Metadata filter: `key=value`, `key` a top-level key or a dotted path (`camera.model`).
META_KEY_PATTERN = re.compile(r"[^=\s][^=]{0,99}")

_CURSOR_SALT = "datasets.selectors.cursor"
Direction = Literal["first", "after", "before", "last"]


# --- who sees what ----------------------------------------------------------------------


def user_manages_datasets(user: Any) -> bool:
    """Ops, admins and superusers see, create and change every dataset.

    The group lookup is cached on the user object for the rest of the request.
    """
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_datasets_manager", None)
    if cached is None:
        cached = user.groups.filter(name__in=MANAGER_GROUPS).exists()
        user._datasets_manager = cached
    return bool(cached)


def dataset_visible_to(user: Any) -> QuerySet[Dataset]:
    """The datasets `user` may see: every dataset for ops, admins and superusers, their
    own for anyone else, none for anonymous users.

    The one place for this rule (project members will be added here); views answer 404
    for a dataset outside it, so ids do not leak.
    """
    if not getattr(user, "is_authenticated", False):
        return Dataset.objects.none()
    if user_manages_datasets(user):
        return Dataset.objects.all()
    return Dataset.objects.filter(created_by=user)


def dataset_can_create(user: Any) -> bool:
    return user_manages_datasets(user)


def dataset_can_edit(user: Any, dataset: Dataset) -> bool:
    """Change the dataset and import into it: ops, admins, superusers and its creator."""
    if not getattr(user, "is_authenticated", False):
        return False
    return dataset.created_by_id == user.pk or user_manages_datasets(user)


def dataset_get_for_user(*, user: Any, dataset_id: int) -> Dataset:
    """Return the dataset if `user` may see it; raise Dataset.DoesNotExist otherwise
    (also when it exists but belongs to someone else)."""
    return dataset_visible_to(user).select_related("created_by").get(pk=dataset_id)


# --- cursors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list, with the cursors of its neighbours.

    `next_cursor` / `prev_cursor` are None when there is nothing that way; the first
    page has no cursor, the last page's is `last_cursor`.
    """

    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None
    last_cursor: str

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_prev(self) -> bool:
        return self.prev_cursor is not None


def _cursor_make(scope: str, direction: Direction, pivot: int | None = None) -> str:
    return signing.dumps([direction, pivot], salt=f"{_CURSOR_SALT}:{scope}", compress=False)


def _cursor_read(scope: str, cursor: str | None) -> tuple[Direction, int | None]:
    if not cursor:
        return "first", None
    try:
        direction, pivot = signing.loads(cursor, salt=f"{_CURSOR_SALT}:{scope}")
    except (signing.BadSignature, ValueError, TypeError):
        return "first", None
    if direction == "last" and pivot is None:
        return "last", None
    if direction in ("after", "before") and type(pivot) is int:
        return direction, pivot
    return "first", None


# fetch(forward, pivot, limit): rows after `pivot` in list order when forward, else rows
# before it in reverse order; pivot None means from that end of the list.
Fetch = Callable[[bool, int | None, int], list[T]]


def _keyset_page(
    *, fetch: Fetch[T], key: Callable[[T], int], scope: str, cursor: str | None, size: int
) -> Page[T]:
    direction, pivot = _cursor_read(scope, cursor)
    forward = direction in ("first", "after")
    rows = fetch(forward, pivot, size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if not forward:
        rows.reverse()
    if direction == "first":
        has_prev, has_next = False, more
    elif direction == "after":
        has_prev, has_next = True, more
    elif direction == "before":
        has_prev, has_next = more, True
    else:  # last
        has_prev, has_next = more, False
    last = _cursor_make(scope, "last")
    if rows:
        next_cursor = _cursor_make(scope, "after", key(rows[-1])) if has_next else None
        prev_cursor = _cursor_make(scope, "before", key(rows[0])) if has_prev else None
    else:
        # Ran past an end (rows deleted since the link was made): offer the other end.
        next_cursor = "" if has_next else None
        prev_cursor = last if has_prev else None
    return Page(items=rows, next_cursor=next_cursor, prev_cursor=prev_cursor, last_cursor=last)


def _pinned(field: str, value: Any) -> dict[str, Any]:
    """`field >= value AND field <= value`: equal to `field = value`, but the planner keeps
    the column in the ORDER BY (see the module docstring)."""
    return {f"{field}__gte": value, f"{field}__lte": value}


def _ordered(fields: tuple[str, ...], forward: bool) -> list[str]:
    return list(fields) if forward else [f"-{name}" for name in fields]


# --- datasets ---------------------------------------------------------------------------


def dataset_list_page(
    *, user: Any, cursor: str | None = None, size: int = DATASET_PAGE_SIZE
) -> Page[Dataset]:
    """The datasets `user` sees, newest first, with their creator and counters (stored
    on the row: no count over items per page view)."""
    visible = dataset_visible_to(user).select_related("created_by")

    def fetch(forward: bool, pivot: int | None, limit: int) -> list[Dataset]:
        rows = visible
        if pivot is not None:
            rows = rows.filter(pk__lt=pivot) if forward else rows.filter(pk__gt=pivot)
        return list(rows.order_by("-pk" if forward else "pk")[:limit])

    return _keyset_page(fetch=fetch, key=lambda d: d.pk, scope="datasets", cursor=cursor, size=size)


# --- items ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFilters:
    """What the grid shows: `split` None for any split ("" is "no split"), `tag` one tag,
    `meta_key`/`meta_value` one metadata key (a dotted path for nested keys) and value."""

    split: str | None = None
    tag: str = ""
    meta_key: str = ""
    meta_value: str = ""

    @property
    def active(self) -> bool:
        return self.split is not None or bool(self.tag) or bool(self.meta_key)


def _meta_condition(key: str, value: str) -> tuple[KeyTransform, Q]:
    """The metadata key as an expression and the condition on it: JSON equality with the
    text as a string, or also as the number / boolean / null it spells ("3" matches 3)."""
    expression: Any = "metadata"
    for part in key.split("."):
        expression = KeyTransform(part, expression)
    wanted: list[Any] = [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    if parsed is None or isinstance(parsed, bool | int | float):
        wanted.append(parsed)
    condition = Q()
    for candidate in wanted:
        condition |= Q(meta_filter=candidate)
    return expression, condition


def _item_rows(
    dataset: Dataset, filters: ItemFilters, forward: bool, pivot: int | None, limit: int
) -> list[Item]:
    op = "gt" if forward else "lt"
    conditions: dict[str, Any] = {}
    if filters.tag:
        # Driven by the (dataset, tag, item) index of ItemTag, in item order; one filter()
        # call, so the tag conditions and the pivot share one join.
        conditions |= {"tags__dataset": dataset, **_pinned("tags__tag", filters.tag)}
        conditions["dataset"] = dataset
        if pivot is not None:
            conditions[f"tags__item_id__{op}"] = pivot
        order: tuple[str, ...] = ("tags__tag", "tags__item_id")
    else:
        # (dataset, id) index, or (dataset, split, id) with a split filter.
        conditions |= _pinned("dataset_id", dataset.pk)
        if pivot is not None:
            conditions[f"id__{op}"] = pivot
        order = ("dataset_id", "id")
    if filters.split is not None:
        conditions["split"] = filters.split
    rows = Item.objects.filter(**conditions)
    if filters.meta_key:
        expression, condition = _meta_condition(filters.meta_key, filters.meta_value)
        rows = rows.alias(meta_filter=expression).filter(condition)
    return list(rows.select_related("asset").order_by(*_ordered(order, forward))[:limit])


def item_page(
    *,
    dataset: Dataset,
    filters: ItemFilters | None = None,
    cursor: str | None = None,
    size: int = ITEM_PAGE_SIZE,
) -> Page[Item]:
    """One page of the dataset's items in id order, filtered, with `asset` joined and
    `tags` prefetched (sorted): three queries whatever the page, none per item.

    Fast at any depth for split and tag filters (index range scans); a metadata filter
    reads items in id order until the page is full (no index on metadata).
    """
    filters = filters or ItemFilters()
    page = _keyset_page(
        fetch=lambda forward, pivot, limit: _item_rows(dataset, filters, forward, pivot, limit),
        key=lambda item: item.pk,
        scope=f"items:{dataset.pk}",
        cursor=cursor,
        size=size,
    )
    prefetch_related_objects(page.items, Prefetch("tags", queryset=ItemTag.objects.order_by("tag")))
    return page


def item_get(*, dataset: Dataset, item_id: int) -> Item:
    """The item of this dataset, with its asset and sorted tags; raises Item.DoesNotExist."""
    return (
        Item.objects.select_related("asset")
        .prefetch_related(Prefetch("tags", queryset=ItemTag.objects.order_by("tag")))
        .get(dataset=dataset, pk=item_id)
    )


def item_neighbours(*, dataset: Dataset, item: Item) -> tuple[int | None, int | None]:
    """Ids of the previous and next items of the dataset (id order), or None at an end."""
    items = Item.objects.filter(**_pinned("dataset_id", dataset.pk))
    before = (
        items.filter(pk__lt=item.pk).order_by("-dataset_id", "-pk").values_list("pk", flat=True)
    )
    after = items.filter(pk__gt=item.pk).order_by("dataset_id", "pk").values_list("pk", flat=True)
    return before.first(), after.first()


# --- imports ----------------------------------------------------------------------------


def import_list_recent(*, dataset: Dataset, limit: int = RECENT_IMPORTS) -> list[Import]:
    """The dataset's latest imports, newest first, with job and creator."""
    return list(
        Import.objects.filter(dataset=dataset)
        .select_related("job", "created_by")
        .order_by("-created_at", "-pk")[:limit]
    )


def import_get(*, dataset: Dataset, import_id: int) -> Import:
    """The import of this dataset, with its job and creator; raises Import.DoesNotExist."""
    return Import.objects.select_related("job", "created_by").get(dataset=dataset, pk=import_id)


def import_rejected_page(
    *, import_run: Import, cursor: str | None = None, size: int = REJECTED_PAGE_SIZE
) -> Page[ImportEntry]:
    """The import's rejected entries (name, reason) in upload order, by the
    (import, status, seq) index."""
    entries = ImportEntry.objects.filter(
        import_run=import_run, **_pinned("status", ImportEntry.Status.REJECTED)
    ).only("pk", "seq", "name", "reason", "status", "import_run_id")

    def fetch(forward: bool, pivot: int | None, limit: int) -> list[ImportEntry]:
        rows = entries
        if pivot is not None:
            rows = rows.filter(seq__gt=pivot) if forward else rows.filter(seq__lt=pivot)
        return list(rows.order_by(*_ordered(("status", "seq"), forward))[:limit])

    return _keyset_page(
        fetch=fetch,
        key=lambda entry: entry.seq,
        scope=f"rejected:{import_run.pk}",
        cursor=cursor,
        size=size,
    )


def label_values(*, item_ids: Iterable[int]) -> dict[int, Any]:
    """The published label value of each of the items that has one (one query; keep the
    list to a few thousand ids)."""
    return dict(Label.objects.filter(item_id__in=list(item_ids)).values_list("item_id", "value"))
