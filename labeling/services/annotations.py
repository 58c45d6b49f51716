"""Submit annotations (append-only revisions), keep drafts, and publish the resolved
label of a finished task into datasets.

Guarantees:
- a submit is validated against the project's current schema revision before anything
  is stored (labeling.results), and stored in one transaction with the end of its lease,
  the task's counters and, when the task is finished, its published label;
- a re-sent submit (same idempotency key from the same user) stores nothing and returns
  the revision the first one made;
- editing an annotation adds a revision; earlier revisions are never changed;
- a submit whose lease was lost (expired and taken by someone else) is refused with
  LeaseLost, and its result kept as the annotator's draft, so no work is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from datasets.services.thumbnails import text_read_head
from labeling.errors import InvalidAnnotation, LeaseLost
from labeling.models import (
    Annotation,
    AnnotationRevision,
    Draft,
    GoldItem,
    Lease,
    Project,
    SchemaRevision,
    Task,
)
from labeling.results import result_validate
from labeling.rows import db_time, sql_row, sql_rows
from labeling.schema import schema_media_kind
from labeling.services.gold import gold_answer_record, gold_member_check
from labeling.services.review import task_resolve

IDEMPOTENCY_KEY_MAX = 100
# A draft is work in progress of one task: a few hundred regions at most, but a
# runaway client must not fill the database.
DRAFT_MAX_BYTES = 2 * 1024 * 1024
LEAD_TIME_MAX_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class SubmitOutcome:
    annotation: Annotation
    revision: AnnotationRevision
    created: bool  # False: the idempotency key named an earlier submit, nothing stored
    task_status: str


def task_text(task: Task) -> str | None:
    """The text of a text item (for span offsets), None for other media. Raises
    InvalidAnnotation when the text is too long to label with spans."""
    from labeling.selectors import TEXT_MAX_BYTES

    asset = task.item.asset
    if not asset.media_type.startswith("text/"):
        return None
    head = text_read_head(asset.sha256, max_bytes=TEXT_MAX_BYTES)
    if head.truncated:
        raise InvalidAnnotation(
            f"The text of item {task.item.external_id!r} is over {TEXT_MAX_BYTES // 1024} KiB; "
            "spans cannot be labelled on it.",
            field="result",
        )
    return head.text


def result_check(*, task: Task, schema_revision: SchemaRevision, result: Any) -> list[dict]:
    """Validate a result for the task's item under the schema revision; return it
    normalised. Raises InvalidAnnotation naming every bad region."""
    schema = schema_revision.schema
    asset = task.item.asset
    text = task_text(task) if schema_media_kind(schema) == "text" else None
    return result_validate(result, schema=schema, width=asset.width, height=asset.height, text=text)


def _clean_key(key: Any) -> str | None:
    if key in (None, ""):
        return None
    if not isinstance(key, str) or len(key) > IDEMPOTENCY_KEY_MAX:
        raise InvalidAnnotation(
            f"idempotency_key must be a string of at most {IDEMPOTENCY_KEY_MAX} characters "
            "(a UUID per submit).",
            field="idempotency_key",
        )
    return key


def _clean_lead_time(value: Any) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= LEAD_TIME_MAX_MS
    ):
        raise InvalidAnnotation(
            f"lead_time_ms must be a number of milliseconds from 0 to {LEAD_TIME_MAX_MS}.",
            field="lead_time_ms",
        )
    return int(value)


def _earlier(annotator: Any, key: str | None) -> SubmitOutcome | None:
    if key is None:
        return None
    revision = (
        AnnotationRevision.objects.select_related("annotation__task")
        .filter(created_by=annotator, idempotency_key=key)
        .first()
    )
    if revision is None:
        return None
    return SubmitOutcome(
        annotation=revision.annotation,
        revision=revision,
        created=False,
        task_status=revision.annotation.task.status,
    )


def annotation_submit(
    *,
    task: Task,
    annotator: Any,
    result: Any,
    lease_id: int | None = None,
    lead_time_ms: Any = None,
    idempotency_key: Any = None,
) -> SubmitOutcome:
    """Store the annotator's result for the task as a new revision.

    The first submit on a task needs the lease the queue gave (`lease_id`); it fills
    the lease's slot and ends the lease. Later submits (going back to edit) need none.
    Raises InvalidAnnotation (nothing stored), LeaseLost (the result is kept as a
    draft). Idempotent with `idempotency_key`. Membership is the caller's check.
    """
    key = _clean_key(idempotency_key)
    lead_time = _clean_lead_time(lead_time_ms)
    project = task.project
    revision_of_schema = project.schema_revision
    clean = result_check(task=task, schema_revision=revision_of_schema, result=result)
    submit = _submit
    if task.status == Task.Status.GOLD or task.review == Task.Review.REJECTED:
        submit = _submit_slow
    try:
        return submit(
            task=task,
            project=project,
            annotator=annotator,
            result=clean,
            schema_revision=revision_of_schema,
            lease_id=lease_id,
            lead_time=lead_time,
            key=key,
        )
    except LeaseLost:
        # A re-sent submit whose first try went through finds its lease ended: the
        # first answer stands.
        earlier = _earlier(annotator, key)
        if earlier is not None:
            return earlier
        draft_save(task=task, annotator=annotator, result=clean)
        raise
    except IntegrityError as exc:
        if "annotation_per_annotator" in str(exc):
            # A lease on a task this annotator already annotated (not handed out by the
            # queue, but a client may send one): the submit edits their annotation.
            return annotation_submit(
                task=task,
                annotator=annotator,
                result=clean,
                lead_time_ms=lead_time,
                idempotency_key=key,
            )
        # A re-sent submit: its key is taken (the unique index on (user, key), checked
        # by the insert instead of a lookup before every submit), so nothing was stored
        # and the first submit's revision is the answer.
        earlier = _earlier(annotator, key)
        if earlier is None:
            raise
        return earlier


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _submit(
    *,
    task: Task,
    project: Project,
    annotator: Any,
    result: list[dict],
    schema_revision: SchemaRevision,
    lease_id: int | None,
    lead_time: int | None,
    key: str | None,
) -> SubmitOutcome:
    """The submit's writes as plain SQL statements in one transaction (this runs for
    every task an annotator finishes; the ORM's per-query cost was most of it). Locks
    the task row first, then the lease, like the queue."""
    now = timezone.now()
    # Table names written out (Django's defaults, asserted by a test), so the SQL reads as
    # it runs.

    def revision_row(number: int) -> list[Any]:
        """The values of _REVISION_COLUMNS after annotation_id."""
        return [
            number,
            _json(result),
            schema_revision.pk,
            annotator.pk,
            db_time(now),
            lead_time,
            key,
        ]

    with transaction.atomic(durable=True):
        # A submit with a lease makes the annotation; one without edits it (going back).
        # The row lock of the edit's UPDATE orders concurrent edits.
        edited = None
        if lease_id is None:
            edited = sql_row(
                "UPDATE labeling_annotation SET revision_count = revision_count + 1, "
                "updated_at = %s WHERE task_id = %s AND annotator_id = %s "
                "RETURNING id, slot, revision_count",
                [db_time(now), task.pk, annotator.pk],
            )
        finished = False
        if edited is not None:
            annotation_id, slot, number = edited
            created_at = None
            (status,) = sql_row("SELECT status FROM labeling_task WHERE id = %s", [task.pk])
        else:
            row = sql_row(
                "UPDATE labeling_task SET remaining = remaining - 1, updated_at = %s, "
                "status = CASE WHEN remaining = 1 THEN 'done' ELSE 'open' END "
                "WHERE id = %s AND remaining > 0 RETURNING status",
                [db_time(now), task.pk],
            )
            if lease_id is None:
                raise LeaseLost(
                    "Submitting a new annotation needs the lease from the queue "
                    "(POST /api/v1/projects/{id}/next); send its id as `lease`.",
                    field="lease",
                )
            held = sql_row(
                "UPDATE labeling_lease SET ended_at = %s, end_reason = %s "
                "WHERE id = %s AND annotator_id = %s AND task_id = %s AND ended_at IS NULL "
                "RETURNING slot",
                [db_time(now), Lease.End.SUBMITTED, lease_id, annotator.pk, task.pk],
            )
            if row is None or held is None:
                raise _lease_lost(lease_id=lease_id, annotator=annotator, task=task)
            (status,) = row
            (slot,) = held
            finished = status == Task.Status.DONE
            number, created_at = 1, now
            revision_values = revision_row(number)
            if connection.vendor == "postgresql":
                # Annotation, its first revision and the end of the draft in one statement.
                row = sql_row(
                    "WITH a AS (INSERT INTO labeling_annotation (task_id, slot, annotator_id, "  # noqa: S608
                    "project_id, revision_count, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, 1, %s, %s) RETURNING id), "
                    "d AS (DELETE FROM labeling_draft WHERE task_id = %s AND annotator_id = %s) "
                    f"INSERT INTO labeling_annotationrevision ({_REVISION_COLUMNS}) "
                    "SELECT a.id, %s::integer, %s::jsonb, %s::bigint, %s::integer, %s::timestamptz, "
                    "%s::integer, %s::varchar FROM a RETURNING annotation_id, id",
                    [
                        *(task.pk, slot, annotator.pk, project.pk, db_time(now), db_time(now)),
                        *(task.pk, annotator.pk),
                        *revision_values,
                    ],
                )
                annotation_id, revision_id = row
            else:
                (annotation_id,) = sql_row(
                    "INSERT INTO labeling_annotation (task_id, slot, annotator_id, project_id, "
                    "revision_count, created_at, updated_at) VALUES (%s, %s, %s, %s, 1, %s, %s) "
                    "RETURNING id",
                    [task.pk, slot, annotator.pk, project.pk, db_time(now), db_time(now)],
                )
                revision_id = _revision_insert(annotation_id, revision_values)
                _draft_delete(task, annotator)
        if edited is not None:
            revision_id = _revision_insert(annotation_id, revision_row(number))
            _draft_delete(task, annotator)
        annotation = Annotation(
            pk=annotation_id,
            task_id=task.pk,
            slot=slot,
            annotator=annotator,
            project=project,
            revision_count=number,
            created_at=created_at,
            updated_at=now,
        )
        revision = AnnotationRevision(
            pk=revision_id,
            annotation=annotation,
            number=number,
            result=result,
            schema_revision=schema_revision,
            created_by=annotator,
            created_at=now,
            lead_time_ms=lead_time,
            idempotency_key=key,
        )
        if status == Task.Status.DONE:
            # Publish or send to review. With overlap 1 this revision is the task's only
            # annotation: no need to read the revisions back.
            task_resolve(
                task=task,
                project=project,
                item=task.item,
                known=[revision] if project.overlap == 1 else None,
            )
        if finished:
            # Last statement before commit: the project row is every finishing submit's.
            sql_rows(
                "UPDATE labeling_project SET done_count = done_count + 1 WHERE id = %s",
                [project.pk],
            )
    return SubmitOutcome(annotation=annotation, revision=revision, created=True, task_status=status)


def _submit_slow(
    *,
    task: Task,
    project: Project,
    annotator: Any,
    result: list[dict],
    schema_revision: SchemaRevision,
    lease_id: int | None,
    lead_time: int | None,
    key: str | None,
) -> SubmitOutcome:
    """The submit on a gold task or on a task a reviewer rejected, through the ORM (a
    small share of submits). A gold task has no slots: any number of annotators answer
    it, each answer is scored (labeling.services.gold), and its status is reported as a
    finished task of the project's overlap would be, so nothing tells a gold task
    apart. A rejected annotation reworked by its annotator sends the task back to
    review once no annotation of it waits for rework."""
    now = timezone.now()
    gold = task.status == Task.Status.GOLD
    with transaction.atomic(durable=True):
        locked = Task.objects.select_for_update().get(pk=task.pk)
        annotation = (
            Annotation.objects.select_for_update().filter(task=task, annotator=annotator).first()
        )
        if lease_id is not None:
            ended = Lease.objects.filter(
                pk=lease_id, annotator=annotator, task=task, ended_at__isnull=True
            ).update(ended_at=now, end_reason=Lease.End.SUBMITTED)
            if not ended:
                raise _lease_lost(lease_id=lease_id, annotator=annotator, task=task)
        if annotation is None:
            if lease_id is None or not gold:
                # A rejected task is finished: a new annotation on it has no slot.
                raise LeaseLost(
                    "Submitting a new annotation needs the lease from the queue "
                    "(POST /api/v1/projects/{id}/next); send its id as `lease`.",
                    field="lease",
                )
            annotation = Annotation.objects.create(
                task=task,
                slot=None,
                annotator=annotator,
                project=project,
                revision_count=1,
                created_at=now,
                updated_at=now,
            )
        else:
            annotation.revision_count += 1
            annotation.updated_at = now
            annotation.save(update_fields=["revision_count", "updated_at"])
        revision = AnnotationRevision.objects.create(
            annotation=annotation,
            number=annotation.revision_count,
            result=result,
            schema_revision=schema_revision,
            created_by=annotator,
            created_at=now,
            lead_time_ms=lead_time,
            idempotency_key=key,
        )
        _draft_delete(task, annotator)
        if gold:
            gold_item = GoldItem.objects.select_related("schema_revision").get(task=task)
            gold_answer_record(
                project=project, annotation=annotation, result=result, gold=gold_item
            )
            gold_member_check(project=project, annotator_id=annotator.pk)
            status = Task.Status.DONE if project.overlap == 1 else Task.Status.OPEN
        else:
            if annotation.needs_rework:
                annotation.needs_rework = False
                annotation.save(update_fields=["needs_rework"])
            waiting = Annotation.objects.filter(task=task, needs_rework=True).exists()
            if not waiting and locked.review == Task.Review.REJECTED:
                locked.review = Task.Review.PENDING
                locked.save(update_fields=["review", "updated_at"])
            status = locked.status
    return SubmitOutcome(annotation=annotation, revision=revision, created=True, task_status=status)


_REVISION_COLUMNS = (
    "annotation_id, number, result, schema_revision_id, created_by_id, created_at, "
    "lead_time_ms, idempotency_key"
)


def _revision_insert(annotation_id: int, values: list[Any]) -> int:
    row = sql_row(
        f"INSERT INTO labeling_annotationrevision ({_REVISION_COLUMNS}) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [annotation_id, *values],
    )
    assert row is not None
    return row[0]


def _draft_delete(task: Task, annotator: Any) -> None:
    sql_rows(
        "DELETE FROM labeling_draft WHERE task_id = %s AND annotator_id = %s",
        [task.pk, annotator.pk],
    )


def _lease_lost(*, lease_id: int, annotator: Any, task: Task) -> LeaseLost:
    lease = Lease.objects.filter(pk=lease_id, annotator=annotator).first()
    if lease is None or lease.task_id != task.pk:
        return LeaseLost(f"Lease {lease_id} is not yours on task {task.pk}.", field="lease")
    return LeaseLost(
        f"Lease {lease_id} has ended ({lease.end_reason or 'expired'}); your result was "
        "kept as a draft.",
        field="lease",
    )


# --- drafts -----------------------------------------------------------------------------


def draft_save(*, task: Task, annotator: Any, result: Any) -> Draft:
    """Keep the annotator's unsubmitted result for the task (replacing the last one).

    Only its shape is checked (a list of objects, at most DRAFT_MAX_BYTES): a draft is
    work in progress and validated when submitted."""
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise InvalidAnnotation("A draft is a list of region objects.", field="result")
    if len(json.dumps(result)) > DRAFT_MAX_BYTES:
        raise InvalidAnnotation(
            f"The draft is over {DRAFT_MAX_BYTES // (1024 * 1024)} MiB.", field="result"
        )
    draft, _ = Draft.objects.update_or_create(
        task=task, annotator=annotator, defaults={"result": result}
    )
    return draft


def draft_get(*, task: Task, annotator: Any) -> Draft | None:
    return Draft.objects.filter(task=task, annotator=annotator).first()
