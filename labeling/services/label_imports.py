"""Import a label file into a project: as pre-annotations or as accepted ground truth.

A reader of datasets.formats turns the file into records (one per item: a key and its
regions); this module matches each record to an item of the project's dataset, checks it
against the project's current schema revision exactly like a submitted annotation
(labeling.results), and writes the valid ones:

- `ground_truth`: the item's resolved label (datasets.services.labels.label_publish), with
  provenance {"source": "import:<id>", "import", "format", "file", "row"}; our own JSONL
  restores the provenance its lines carry (a lossless round trip);
- `predictions`: a Prediction of model `model_name` per item (replacing that model's
  earlier one); the item must be a task of the project;
- `gold`: a gold set: each item's task becomes a gold task with the record as its known
  answer (labeling.services.gold.gold_store); the item must be a task of the project.

Guarantees: the file is read twice, first to validate every record (problems go to
LabelImportProblem rows: row, field, reason), then, only when there were none or the
user asked for `valid_only`, to write the valid records in one transaction: an import
with problems stores no label unless asked to. Memory does not grow with the file: records
go through in batches, valid results wait in a temporary file. Region ids a format does
not carry are given as r1, r2, ... in file order, so importing a file twice gives the same
labels. Safe to run twice (a re-run starts over: problems are cleared, labels upserted).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets.formats import import_format, import_format_names
from datasets.formats.base import ImportRecord, InvalidLabelFile, file_name_candidates
from datasets.models import Item
from datasets.services.labels import label_publish
from labeling.errors import InvalidAnnotation, LabelingError
from labeling.models import LabelImport, LabelImportProblem, Prediction, Project, Task
from labeling.schema import schema_media_kind
from labeling.services.annotations import result_check, task_text
from labeling.services.gold import gold_store
from storage.keys import is_sha256, staging_key
from storage.services import object_open, object_put, staging_delete
from workers.services import is_transient, job_submit
from workers.types import JobContext

LABEL_IMPORT_JOB_KIND = "label_import"
LABEL_IMPORT_HANDLER = "labeling.services.label_imports.label_import_job"
# Records matched and validated per round of queries.
BATCH = 500
# Problems kept as rows (the count goes on): a file that is wrong on every line of a
# million says so in the first hundred thousand.
PROBLEMS_STORED_MAX = 100_000
PROBLEMS_FLUSH = 1_000
MODEL_NAME_MAX = 200
# Pixel coordinates scaled from fractions (YOLO: 6 decimals) within this of an integer
# are that integer, else they keep 6 decimals: exported again they give the same
# fractions (2 decimals would move most fractional boxes by a unit of the 6th decimal).
SNAP_TO_INT = 1e-3
PIXEL_DECIMALS = 6
# A scaled coordinate past the image's edge by less than this is on the edge (fractions
# rounded to 6 decimals overshoot by up to 5e-7 of the size).
EDGE_TOLERANCE = 1e-2


class InvalidLabelImport(LabelingError):
    """A label import request that cannot start (bad format, mode, match, file)."""

    code = "invalid_label_import"


# --- request ----------------------------------------------------------------------------


def label_import_create(
    *,
    project: Project,
    upload: Any,
    fmt: Any,
    mode: Any,
    match: Any = LabelImport.Match.FILE_NAME,
    valid_only: Any = False,
    model_name: Any = "",
    created_by: Any,
) -> LabelImport:
    """Check the request, stage the file and submit the import job. Raises
    InvalidLabelImport naming the field; nothing is stored then."""
    reader = import_format(fmt) if isinstance(fmt, str) else None
    if reader is None:
        raise InvalidLabelImport(
            f"Unknown label format {fmt!r}; formats are {', '.join(import_format_names())}.",
            field="format",
        )
    kind = project.dataset.kind
    if kind not in reader.kinds:
        raise InvalidLabelImport(
            f"{reader.title} holds labels of {' or '.join(sorted(reader.kinds))}s; this "
            f"project's dataset holds {kind}s.",
            field="format",
        )
    if mode not in LabelImport.Mode.values:
        raise InvalidLabelImport(
            f"mode is one of {', '.join(LabelImport.Mode.values)}, not {mode!r}.", field="mode"
        )
    if match not in LabelImport.Match.values:
        raise InvalidLabelImport(
            f"match is one of {', '.join(LabelImport.Match.values)}, not {match!r}.",
            field="match",
        )
    if not isinstance(valid_only, bool):
        raise InvalidLabelImport("valid_only is true or false.", field="valid_only")
    model_name = (model_name or "").strip() if isinstance(model_name, str) else model_name
    if mode == LabelImport.Mode.PREDICTIONS:
        model_name = model_name or "import"
        if not isinstance(model_name, str) or len(model_name) > MODEL_NAME_MAX:
            raise InvalidLabelImport(
                f"model_name is 1 to {MODEL_NAME_MAX} characters.", field="model_name"
            )
    if project.schema_revision_id is None:
        raise InvalidLabelImport("The project has no label schema yet.", field="project")
    size = getattr(upload, "size", None)
    name = posixpath.basename(str(getattr(upload, "name", "") or "labels"))[:500]
    if not size:
        raise InvalidLabelImport("The file is empty.", field="file")
    if size > settings.LABEL_IMPORT_MAX_BYTES:
        raise InvalidLabelImport(
            f"The file has {size} bytes; label files of at most "
            f"{settings.LABEL_IMPORT_MAX_BYTES} bytes are accepted (LABEL_IMPORT_MAX_BYTES).",
            field="file",
        )
    # Staged before the row exists: a failed insert leaves an object under staging/, which
    # is scratch space, never a half-made import.
    key = staging_key(f"labels-{uuid.uuid4().hex}", 0)
    object_put(key, upload, size=size)
    with transaction.atomic(durable=True):
        label_import = LabelImport.objects.create(
            project=project,
            format=reader.name,
            mode=mode,
            match=match,
            valid_only=valid_only,
            model_name=model_name if mode == LabelImport.Mode.PREDICTIONS else "",
            file_name=name,
            file_size=size,
            staged_key=key,
            created_by=created_by,
        )
        job = job_submit(
            kind=LABEL_IMPORT_JOB_KIND,
            handler=LABEL_IMPORT_HANDLER,
            params={"label_import_id": label_import.pk},
            created_by=created_by,
        )
        label_import.job = job
        label_import.save(update_fields=["job"])
    return label_import


# --- the job ------------------------------------------------------------------------------


def label_import_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"label_import_id"}. Download the staged file, run the import,
    drop the staged file. Report the counts."""
    label_import = LabelImport.objects.select_related(
        "project__schema_revision", "project__dataset"
    ).get(pk=ctx.params["label_import_id"])
    if label_import.state in (LabelImport.State.DONE, LabelImport.State.FAILED):
        return {"label_import": label_import.pk, "state": label_import.state}
    # Under its uploaded name: a single YOLO label file is keyed by its file name.
    name = re.sub(r"[^\w.\-]", "_", posixpath.basename(label_import.file_name))[-200:] or "labels"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            local = os.path.join(scratch, name)
            with object_open(label_import.staged_key) as staged, open(local, "wb") as out:
                while block := staged.read(1024 * 1024):
                    out.write(block)
            label_import_execute(label_import, path=local, progress=lambda n: ctx.progress(n))
    except Exception as exc:
        if is_transient(exc):
            raise
        LabelImport.objects.filter(pk=label_import.pk).update(
            state=LabelImport.State.FAILED,
            error=str(exc)[:2000] or type(exc).__name__,
            finished_at=timezone.now(),
        )
        raise
    # The file is kept while the job may still be retried, dropped once it ended.
    staging_delete(posixpath.dirname(label_import.staged_key) + "/")
    label_import.refresh_from_db()
    return {
        "label_import": label_import.pk,
        "state": label_import.state,
        "records": label_import.records,
        "imported": label_import.imported,
        "rejected": label_import.rejected,
        "problems": label_import.problem_count,
    }


# --- the import -----------------------------------------------------------------------


class _Problems:
    """Problem rows of one import, written a thousand at a time (kept whatever happens to
    the labels: they are the report)."""

    def __init__(self, label_import: LabelImport) -> None:
        self.label_import = label_import
        self.count = 0
        self.buffer: list[LabelImportProblem] = []

    def add(self, row: Any, field: str, reason: str) -> None:
        self.count += 1
        if self.count > PROBLEMS_STORED_MAX:
            return
        self.buffer.append(
            LabelImportProblem(
                label_import=self.label_import,
                seq=self.count,
                row=str(row)[:100],
                field=str(field)[:300],
                reason=reason,
            )
        )
        if len(self.buffer) >= PROBLEMS_FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            LabelImportProblem.objects.bulk_create(self.buffer)
            self.buffer = []


def _batches(records: Iterable[ImportRecord], size: int) -> Iterator[list[ImportRecord]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def _sha256_of(record: ImportRecord) -> str | None:
    if record.sha256 and is_sha256(record.sha256):
        return record.sha256
    stem = posixpath.splitext(posixpath.basename(record.key.replace("\\", "/")))[0]
    return stem if is_sha256(stem) else None


def _match(label_import: LabelImport, batch: list[ImportRecord]) -> dict[int, Item]:
    """The item each record of the batch names (by its index in the batch), per the
    import's `match`: one query per batch on an indexed column."""
    items = Item.objects.filter(dataset_id=label_import.project.dataset_id).select_related("asset")
    found: dict[int, Item] = {}
    if label_import.match == LabelImport.Match.SHA256:
        wanted = {i: _sha256_of(r) for i, r in enumerate(batch)}
        by_hash = {
            item.asset_id: item
            for item in items.filter(asset_id__in={h for h in wanted.values() if h})
        }
        for index, sha256 in wanted.items():
            if sha256 in by_hash:
                found[index] = by_hash[sha256]
        return found
    if label_import.match == LabelImport.Match.EXTERNAL_ID:
        candidates = {i: [r.key] for i, r in enumerate(batch) if r.key}
    else:
        candidates = {i: file_name_candidates(r.key) for i, r in enumerate(batch) if r.key}
    names = {name for names in candidates.values() for name in names}
    by_name = {item.external_id: item for item in items.filter(external_id__in=names)}
    for index, names in candidates.items():
        for name in names:
            if name in by_name:
                found[index] = by_name[name]
                break
    return found


def _scaled(value: float, size: int) -> int | float:
    pixels = value * size
    if -EDGE_TOLERANCE < pixels < 0:
        pixels = 0
    elif size < pixels < size + EDGE_TOLERANCE:
        pixels = size
    nearest = round(pixels)
    return int(nearest) if abs(pixels - nearest) < SNAP_TO_INT else round(pixels, PIXEL_DECIMALS)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _denormalise(regions: list[dict[str, Any]], width: int, height: int) -> None:
    """Fractions of the image size (YOLO) to pixels, in place; a box that ends past the
    edge by a rounding error ends on it."""
    for region in regions:
        value = region.get("value")
        if not isinstance(value, dict):
            continue
        for key, size in (("x", width), ("width", width), ("y", height), ("height", height)):
            if _number(value.get(key)):
                value[key] = _scaled(value[key], size)
        for start, extent, size in (("x", "width", width), ("y", "height", height)):
            if _number(value.get(start)) and _number(value.get(extent)):
                over = value[start] + value[extent] - size
                if 0 < over < EDGE_TOLERANCE:
                    value[extent] = _scaled((size - value[start]) / size, size)
        points = value.get("points")
        if isinstance(points, list):
            value["points"] = [
                [_scaled(p[0], width), _scaled(p[1], height)]
                if isinstance(p, list) and len(p) == 2 and _number(p[0]) and _number(p[1])
                else p
                for p in points
            ]


def _keep_schema_attributes(regions: list[Any], schema: dict[str, Any]) -> None:
    """Drop, in place, region attributes the project's schema does not define: tools
    write their own (CVAT's COCO puts `occluded` on every annotation), and a foreign file
    should not fail on them. Our own JSONL keeps them (the schema check names them)."""
    known = {attribute["name"] for attribute in schema.get("attributes", [])}
    for region in regions:
        attributes = region.get("attributes") if isinstance(region, dict) else None
        if isinstance(attributes, dict):
            kept = {k: v for k, v in attributes.items() if k in known}
            if kept:
                region["attributes"] = kept
            else:
                region.pop("attributes")


def _with_ids(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give regions without an id r1, r2, ... (by position), skipping ids already used."""
    taken = {r.get("id") for r in regions if isinstance(r, dict) and r.get("id")}
    number = 0
    out = []
    for region in regions:
        if isinstance(region, dict) and not region.get("id"):
            number += 1
            while f"r{number}" in taken:
                number += 1
            region = {**region, "id": f"r{number}"}
        out.append(region)
    return out


def label_import_execute(
    label_import: LabelImport,
    *,
    path: str,
    progress: Callable[[int], None] | None = None,
) -> LabelImport:
    """Run the import of the label file at `path` (see the module docstring); return the
    row with its final state and counts. A file that cannot be read at all fails the
    import with its reason."""
    project = label_import.project
    revision = project.schema_revision
    schema = revision.schema
    text_kind = schema_media_kind(schema) == "text"
    reader = import_format(label_import.format)
    classes = [label["name"] for label in schema.get("labels", [])]
    LabelImport.objects.filter(pk=label_import.pk).update(state=LabelImport.State.RUNNING, error="")
    LabelImportProblem.objects.filter(label_import=label_import).delete()
    problems = _Problems(label_import)
    needs_task = label_import.mode in (
        LabelImport.Mode.PREDICTIONS,
        LabelImport.Mode.GOLD,
    )  # a prediction or gold item is of a task
    seen: dict[int, Any] = {}
    records = rejected = valid = 0
    with tempfile.TemporaryFile() as spool:
        try:
            for batch in _batches(reader.read(path, classes=classes), BATCH):
                matched = _match(label_import, batch)
                task_items: set[int] = set()
                if needs_task:
                    task_items = set(
                        Task.objects.filter(
                            project=project, item_id__in=[i.pk for i in matched.values()]
                        ).values_list("item_id", flat=True)
                    )
                for index, record in enumerate(batch):
                    records += 1
                    ok = _check_record(
                        label_import,
                        record,
                        matched.get(index),
                        problems=problems,
                        seen=seen,
                        task_items=task_items if needs_task else None,
                        revision=revision,
                        text_kind=text_kind,
                        spool=spool,
                    )
                    valid += ok
                    rejected += not ok
                if progress is not None:
                    progress(records)
        except InvalidLabelFile as exc:
            problems.add("file", exc.field or "file", str(exc))
            problems.flush()
            return _finish(
                label_import,
                state=LabelImport.State.FAILED,
                records=records,
                imported=0,
                rejected=rejected,
                problems=problems.count,
                error=str(exc),
            )
        problems.flush()
        if records == 0:
            return _finish(
                label_import,
                state=LabelImport.State.FAILED,
                records=0,
                imported=0,
                rejected=0,
                problems=problems.count,
                error="The file holds no labelled records.",
            )
        if problems.count and not label_import.valid_only:
            return _finish(
                label_import,
                state=LabelImport.State.FAILED,
                records=records,
                imported=0,
                rejected=rejected,
                problems=problems.count,
                error=(
                    f"{problems.count} problem(s) in {rejected} of {records} records; nothing "
                    "was imported. Fix the file, or import the valid records only."
                ),
            )
        spool.seek(0)
        _write(label_import, spool, revision=revision)
    return _finish(
        label_import,
        state=LabelImport.State.DONE,
        records=records,
        imported=valid,
        rejected=rejected,
        problems=problems.count,
        error="",
    )


def _check_record(
    label_import: LabelImport,
    record: ImportRecord,
    item: Item | None,
    *,
    problems: _Problems,
    seen: dict[int, Any],
    task_items: set[int] | None,
    revision: Any,
    text_kind: bool,
    spool: IO[bytes],
) -> bool:
    """Validate one record; write it to the spool when valid, else add its problems."""
    for problem in record.problems:
        problems.add(problem.row, problem.field, problem.reason)
    if record.problems and (item is None or not record.regions):
        return False
    # A record the reader already faulted is still checked against the schema, so one
    # pass lists every problem of a file (a bad category and a box outside the image).
    key_field = label_import.match
    if item is None:
        problems.add(
            record.row,
            key_field,
            f"no item of the project's dataset matches {record.key or record.sha256!r} "
            f"by {LabelImport.Match(label_import.match).label.lower()}",
        )
        return False
    if item.pk in seen:
        problems.add(
            record.row,
            key_field,
            f"item {item.external_id!r} is already labelled by row {seen[item.pk]} of this file",
        )
        return False
    if task_items is not None and item.pk not in task_items:
        problems.add(
            record.row, key_field, f"item {item.external_id!r} is not a task of this project"
        )
        return False
    asset = item.asset
    declared = (record.width, record.height)
    if None not in declared and asset.width is not None:  # noqa: SIM102
        if declared != (asset.width, asset.height):
            problems.add(
                record.row,
                "size",
                f"the file says {record.width}x{record.height} pixels; the image "
                f"{item.external_id!r} is {asset.width}x{asset.height}",
            )
            return False
    task = Task(project=label_import.project, item=item)
    regions = [dict(r) if isinstance(r, dict) else r for r in record.regions]
    if label_import.format != "jsonl":
        _keep_schema_attributes(regions, revision.schema)
    if getattr(record, "normalized", False):
        if asset.width is None or asset.height is None:
            problems.add(record.row, "size", f"the size of image {item.external_id!r} is unknown")
            return False
        _denormalise(regions, asset.width, asset.height)
    if record.tokens is not None:
        from datasets.formats.conll import spans_from_tokens

        try:
            text = task_text(task) if text_kind else None
        except InvalidAnnotation as exc:
            problems.add(record.row, "text", str(exc))
            return False
        if text is None:
            problems.add(record.row, "tokens", "token labels need a text item")
            return False
        spans, token_problems = spans_from_tokens(text, record.tokens)
        if token_problems:
            for field, reason in token_problems:
                problems.add(record.row, field, reason)
            return False
        regions = spans
    try:
        result = result_check(task=task, schema_revision=revision, result=_with_ids(regions))
    except InvalidAnnotation as exc:
        for problem in exc.errors or [{"field": exc.field or "result", "detail": str(exc)}]:
            problems.add(record.row, problem["field"] or "result", problem["detail"])
        return False
    if record.problems:
        return False
    seen[item.pk] = record.row
    spool.write(
        json.dumps([item.pk, result, record.provenance, record.row], ensure_ascii=False).encode(
            "utf-8"
        )
        + b"\n"
    )
    return True


def _write(label_import: LabelImport, spool: IO[bytes], *, revision: Any) -> None:
    """Write the spooled valid records in one transaction."""
    project = label_import.project
    dataset_id = project.dataset_id
    source = f"import:{label_import.pk}"
    base = {
        "import": label_import.pk,
        "format": label_import.format,
        "file": label_import.file_name,
    }
    with transaction.atomic(durable=True):
        lines = iter(spool)
        while chunk := list(islice(lines, BATCH)):
            rows = [json.loads(line) for line in chunk]
            if label_import.mode == LabelImport.Mode.PREDICTIONS:
                Prediction.objects.bulk_create(
                    [
                        Prediction(
                            project=project,
                            item_id=item_id,
                            model_name=label_import.model_name,
                            result=result,
                            schema_revision=revision,
                        )
                        for item_id, result, _, _ in rows
                    ],
                    update_conflicts=True,
                    unique_fields=["project", "item", "model_name"],
                    update_fields=["score", "result", "schema_revision"],
                )
                continue
            if label_import.mode == LabelImport.Mode.GOLD:
                tasks = dict(
                    Task.objects.filter(
                        project=project, item_id__in=[row[0] for row in rows]
                    ).values_list("item_id", "pk")
                )
                for item_id, result, _, _ in rows:
                    gold_store(
                        project=project,
                        task=Task(pk=tasks[item_id], item_id=item_id, project=project),
                        result=result,
                        by=label_import.created_by,
                    )
                continue
            for item_id, result, restored, row in rows:
                if restored and restored.get("source"):
                    label_source = str(restored["source"])[:100]
                    provenance = {k: v for k, v in restored.items() if k != "source"}
                else:
                    label_source = source
                    provenance = {**base, "row": row}
                label_publish(
                    item=Item(pk=item_id, dataset_id=dataset_id),
                    value=result,
                    schema_hash=revision.schema_hash,
                    source=label_source,
                    provenance=provenance,
                )


def _finish(label_import: LabelImport, *, state: str, **counts: Any) -> LabelImport:
    error = counts.pop("error", "")
    LabelImport.objects.filter(pk=label_import.pk).update(
        state=state,
        records=counts["records"],
        imported=counts["imported"],
        rejected=counts["rejected"],
        problem_count=counts["problems"],
        error=error,
        finished_at=timezone.now(),
    )
    label_import.refresh_from_db()
    return label_import
