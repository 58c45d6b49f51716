"""Import pre-annotations (model predictions) of a project's items.

A prediction is shown to annotators as a starting point and never counts as an
annotation. One per (project, item, model name): importing again replaces it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from datasets.models import Item
from labeling.errors import InvalidAnnotation, InvalidPrediction
from labeling.models import Prediction, Project, Task
from labeling.services.annotations import result_check

# Rows per request: each is validated (a text item's text is read for span offsets).
MAX_ROWS = 5_000
MODEL_NAME_MAX = 200
ROW_KEYS = {"item", "external_id", "model_name", "score", "result"}


@dataclass(frozen=True)
class PredictionImport:
    created: int
    updated: int


def _row_error(index: int, field: str | None, detail: str) -> dict[str, Any]:
    path = f"predictions[{index}]" + (f".{field}" if field else "")
    return {"field": path, "detail": f"{path}: {detail}"}


def predictions_import(*, project: Project, rows: Any) -> PredictionImport:
    """Validate every row, then store them all (or nothing, raising InvalidPrediction
    with one error per bad row: `predictions[3].result[0].value.x: ...`).

    A row names its item by `item` (id) or `external_id`, has `model_name`, an optional
    `score` (a finite number) and a `result` valid under the project's current schema
    revision. Membership/permission is the caller's check. Transactional.
    """
    if not isinstance(rows, list) or not rows:
        raise InvalidPrediction(
            "predictions must be a non-empty list of "
            '{"item" or "external_id", "model_name", "score", "result"}.',
            field="predictions",
        )
    if len(rows) > MAX_ROWS:
        raise InvalidPrediction(
            f"{len(rows)} predictions in one request; send at most {MAX_ROWS}.",
            field="predictions",
        )
    errors: list[dict[str, Any]] = []
    by_id: set[int] = set()
    by_external: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append(_row_error(index, None, "each prediction is an object"))
            continue
        unknown = sorted(set(row) - ROW_KEYS)
        if unknown:
            errors.append(_row_error(index, None, f"unknown keys {', '.join(unknown)}"))
        if isinstance(row.get("item"), int) and not isinstance(row.get("item"), bool):
            by_id.add(row["item"])
        elif isinstance(row.get("external_id"), str):
            by_external.add(row["external_id"])
        else:
            errors.append(
                _row_error(index, "item", "name the item by `item` (id) or `external_id`")
            )
    items = Item.objects.filter(dataset_id=project.dataset_id).select_related("asset")
    found_by_id = {i.pk: i for i in items.filter(pk__in=by_id)} if by_id else {}
    found_by_external = (
        {i.external_id: i for i in items.filter(external_id__in=by_external)} if by_external else {}
    )
    task_items = set(
        Task.objects.filter(
            project=project,
            item_id__in=[i.pk for i in (*found_by_id.values(), *found_by_external.values())],
        ).values_list("item_id", flat=True)
    )
    revision = project.schema_revision
    clean_rows: dict[tuple[int, str], Prediction] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        item = found_by_id.get(row.get("item")) or found_by_external.get(row.get("external_id"))
        if item is None:
            if "item" in row or "external_id" in row:
                name = row.get("item", row.get("external_id"))
                errors.append(
                    _row_error(index, "item", f"no item {name!r} in the project's dataset")
                )
            continue
        if item.pk not in task_items:
            errors.append(
                _row_error(
                    index, "item", f"item {item.external_id!r} is not a task of this project"
                )
            )
            continue
        model_name = row.get("model_name")
        if (
            not isinstance(model_name, str)
            or not model_name.strip()
            or len(model_name) > MODEL_NAME_MAX
        ):
            errors.append(
                _row_error(
                    index,
                    "model_name",
                    f"a model name of 1 to {MODEL_NAME_MAX} characters is required",
                )
            )
            continue
        score = row.get("score")
        if score is not None and (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            errors.append(_row_error(index, "score", "score must be a finite number or null"))
            continue
        try:
            task = Task(project=project, item=item)
            result = result_check(task=task, schema_revision=revision, result=row.get("result"))
        except InvalidAnnotation as exc:
            for problem in exc.errors or [{"field": exc.field, "detail": str(exc)}]:
                errors.append(_row_error(index, None, problem["detail"]))
            continue
        clean_rows[(item.pk, model_name.strip())] = Prediction(
            project=project,
            item=item,
            model_name=model_name.strip(),
            score=score,
            result=result,
            schema_revision=revision,
        )
    if errors:
        raise InvalidPrediction(
            f"{len(errors)} problem(s); nothing was stored. First: {errors[0]['detail']}",
            field=errors[0]["field"],
            errors=errors,
        )
    with transaction.atomic(durable=True):
        existing = set(
            Prediction.objects.filter(
                project=project, item_id__in=[k[0] for k in clean_rows]
            ).values_list("item_id", "model_name")
        )
        Prediction.objects.bulk_create(
            list(clean_rows.values()),
            update_conflicts=True,
            unique_fields=["project", "item", "model_name"],
            update_fields=["score", "result", "schema_revision"],
        )
    updated = len(existing & set(clean_rows))
    return PredictionImport(created=len(clean_rows) - updated, updated=updated)
