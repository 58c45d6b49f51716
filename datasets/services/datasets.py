"""Create and update datasets, and keep their item counters.

Who may create a dataset is decided by datasets.selectors.dataset_can_create (ops,
admin, superusers); these services check it too, so the UI and the API share one rule.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from datasets.checks import checks_config_check
from datasets.errors import InvalidDataset
from datasets.models import Dataset, Item
from datasets.selectors import dataset_can_create, dataset_can_edit

NAME_MAX_LENGTH = Dataset._meta.get_field("name").max_length or 200
# A metadata schema is a page of JSON, not a data set: 64 KB is generous.
SCHEMA_MAX_BYTES = 64 * 1024
_UNSET: Any = object()
JSON_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidDataset("A dataset needs a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidDataset(
            f"The name is {len(name)} characters long; at most {NAME_MAX_LENGTH} are allowed.",
            field="name",
        )
    return name


def _clean_kind(kind: str) -> str:
    if kind not in Dataset.Kind.values:
        allowed = " or ".join(Dataset.Kind.values)
        raise InvalidDataset(f"The kind must be {allowed}, not {kind!r}.", field="kind")
    return kind


def metadata_schema_check(schema: Any) -> dict[str, Any] | None:
    """Return `schema` if it is a usable JSON Schema for item metadata (or None for none).

    Checks it against the meta-schema of its own `$schema` dialect (Draft 2020-12 when
    it names none), and that its top-level type, if given, is "object", since metadata
    is always a JSON object. Raises InvalidDataset(field="metadata_schema") with the
    reason otherwise. Does not check existing items (a schema applies to imports).
    """
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise InvalidDataset(
            "The metadata schema must be a JSON object, e.g. "
            '{"type": "object", "properties": {...}}.',
            field="metadata_schema",
        )
    if len(json.dumps(schema)) > SCHEMA_MAX_BYTES:
        raise InvalidDataset(
            f"The metadata schema is over {SCHEMA_MAX_BYTES // 1024} KB.", field="metadata_schema"
        )
    dialect = validator_for(schema)
    error = best_match(dialect(dialect.META_SCHEMA).iter_errors(schema))
    if error is not None:
        path = list(error.absolute_path)
        message = error.message
        if path and path[-1] == "type" and isinstance(error.instance, str):
            # The meta-schema's anyOf says only "not valid under any of the given schemas".
            message = f"{error.instance!r} is not a type; use one of {', '.join(JSON_TYPES)}"
        where = "/".join(str(part) for part in path)
        raise InvalidDataset(
            f"Not a valid JSON Schema{f' (at {where})' if where else ''}: {message}.",
            field="metadata_schema",
        )
    declared = schema.get("type")
    if declared is not None and declared != "object":
        raise InvalidDataset(
            f'Item metadata is a JSON object, so the schema\'s top-level "type" must be '
            f'"object", not {json.dumps(declared)}.',
            field="metadata_schema",
        )
    return schema


def dataset_create(
    *,
    created_by: Any,
    name: str,
    kind: str,
    description: str = "",
    metadata_schema: dict[str, Any] | None = None,
) -> Dataset:
    """Create an empty dataset owned by `created_by`.

    Raises PermissionDenied unless the user may create datasets (ops, admin,
    superuser); InvalidDataset naming the field for an empty or too long name, an
    unknown kind, a metadata schema that is not a valid JSON Schema, or a name the
    user already gave another dataset. Transactional: nothing is stored on error.
    """
    if not dataset_can_create(created_by):
        raise PermissionDenied("Only ops and admins create datasets.")
    name = _clean_name(name)
    kind = _clean_kind(kind)
    metadata_schema = metadata_schema_check(metadata_schema)
    try:
        with transaction.atomic(durable=True):
            return Dataset.objects.create(
                name=name,
                kind=kind,
                description=(description or "").strip(),
                metadata_schema=metadata_schema,
                created_by=created_by,
            )
    except IntegrityError:
        if Dataset.objects.filter(created_by=created_by, name=name).exists():
            raise InvalidDataset(
                f"You already have a dataset named {name!r}; choose another name.", field="name"
            ) from None
        raise


def dataset_update(
    *,
    dataset: Dataset,
    updated_by: Any,
    name: str = _UNSET,
    description: str = _UNSET,
    metadata_schema: dict[str, Any] | None = _UNSET,
    checks: dict[str, Any] | None = _UNSET,
) -> Dataset:
    """Change a dataset's name, description, metadata schema or data checks (its kind never changes:
    its items are of that kind).

    Raises PermissionDenied unless `updated_by` may edit it (ops, admin, its creator);
    InvalidDataset as dataset_create does. A new schema applies to later imports;
    existing items are not re-checked. Transactional.
    """
    if not dataset_can_edit(updated_by, dataset):
        raise PermissionDenied("You may not change this dataset.")
    fields: dict[str, Any] = {}
    if name is not _UNSET:
        fields["name"] = _clean_name(name)
    if description is not _UNSET:
        fields["description"] = (description or "").strip()
    if metadata_schema is not _UNSET:
        fields["metadata_schema"] = metadata_schema_check(metadata_schema)
    if checks is not _UNSET:
        try:
            checks_config_check(checks)
        except ValueError as exc:
            raise InvalidDataset(f"checks: {exc}.", field="checks") from None
        fields["checks"] = checks or {}
    if not fields:
        return dataset
    try:
        with transaction.atomic(durable=True):
            for field, value in fields.items():
                setattr(dataset, field, value)
            dataset.save(update_fields=[*fields, "updated_at"])
    except IntegrityError:
        dataset.refresh_from_db()
        raise InvalidDataset(
            f"Its owner already has a dataset named {fields.get('name')!r}; choose another name.",
            field="name",
        ) from None
    return dataset


def dataset_counters_add(*, dataset_id: int, items: int, size: int) -> None:
    """Add `items` items of `size` bytes in all (negative to remove) to the dataset's
    running totals.

    Call it in the transaction that inserts or deletes the items, so the totals change
    exactly when the items do (items_add holds the dataset row lock there, so chunks do
    not interleave). Never goes below zero.
    """
    if not items and not size:
        return
    Dataset.objects.filter(pk=dataset_id).update(
        item_count=Greatest(F("item_count") + items, Value(0)),
        total_bytes=Greatest(F("total_bytes") + size, Value(0)),
    )


def dataset_counters_recount(*, dataset_id: int) -> tuple[int, int]:
    """Recompute the dataset's item count and total bytes from its items; return them.

    For repairs and after bulk changes that bypassed dataset_counters_add. Slow by
    design: one pass over the items joined to their assets (about 2 s per million on
    PostgreSQL here), under the dataset row lock, so concurrent imports wait.
    """
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset_id).values_list("pk").first()
        totals = Item.objects.filter(dataset_id=dataset_id).aggregate(
            items=Count("pk"), bytes=Coalesce(Sum("asset__size"), Value(0))
        )
        Dataset.objects.filter(pk=dataset_id).update(
            item_count=totals["items"], total_bytes=totals["bytes"]
        )
    return totals["items"], totals["bytes"]
