"""Review: what happens to a finished task, the reviewers' queue, and their decisions.

When a task's last slot is filled (or an annotation of a finished task is edited),
`task_resolve` decides, in the submit's transaction:
- review needed (project.review_mode "all", or "sampled" and the task is in the
  sample, or the task was reviewed before): the task waits for review
  (Task.review = "pending") and nothing is published;
- overlap 1: the annotation is published (datasets.Label);
- overlap > 1: the task's consensus (labeling.quality.consensus.task_consensus:
  majority vote, box fusion, span majority) is published when its confidence is at
  least project.consensus_threshold; below it the task goes to review.
Only accepted (reviewed) or consensus labels are ever published.

The sample of "sampled" review is a hash of (project, task) under review_fraction:
reproducible, and independent of the order tasks finish in.

Reviewers lease tasks waiting for review (ReviewLease, one live lease per task, like
annotators' leases: `SELECT … FOR UPDATE SKIP LOCKED`, expired leases ended by the next
taker; never a task they annotated themselves). `review_decide`:
- accept: publish the proposal (the one annotation, the chosen one, or the consensus);
- fix: the reviewer's result, validated like a submit, becomes a new revision of the
  annotation (created_by = the reviewer) and is published;
- reject (a comment is required): the annotation goes back to its annotator's queue
  (Annotation.needs_rework; the queue serves it to them first, with the comment); their
  next submit sends the task back to review.
Every decision is a Review row: with the leases and revisions, the task's history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from datasets.services.labels import label_publish
from labeling.errors import InvalidAnnotation, InvalidReview, LeaseLost, ReviewConflict
from labeling.models import (
    Annotation,
    AnnotationRevision,
    Project,
    Review,
    ReviewLease,
    Task,
)
from labeling.quality.consensus import TaskConsensus, task_consensus
from labeling.rows import db_time, sql_row

COMMENT_MAX = 5000
# The task's review state after each decision.
STATE_AFTER = {
    Review.Decision.ACCEPT: Task.Review.ACCEPTED,
    Review.Decision.FIX: Task.Review.ACCEPTED,
    Review.Decision.REJECT: Task.Review.REJECTED,
}
REVIEW_LEASE_ATTEMPTS = 3
_SAMPLE_SCALE = 2**64


def review_lease_seconds() -> int:
    return int(settings.LABELING_LEASE_SECONDS)


# --- resolving a finished task ------------------------------------------------------------


def task_in_sample(*, project_id: int, task_id: int, fraction: float) -> bool:
    """Whether a task is in the review sample of its project (see the module doc)."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    digest = hashlib.sha256(f"{project_id}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SAMPLE_SCALE < fraction


def review_needed(*, project: Project, task: Task) -> bool:
    if task.review != Task.Review.NONE:
        return True  # reviewed (or waiting) before: a change is reviewed again
    if project.review_mode == "all":
        return True
    if project.review_mode == "sampled":
        return task_in_sample(
            project_id=project.pk, task_id=task.pk, fraction=project.review_fraction
        )
    return False


def latest_revisions(*, task_id: int) -> list[AnnotationRevision]:
    """The current revision of every annotation of the task, by slot."""
    return list(
        AnnotationRevision.objects.filter(annotation__task_id=task_id)
        .filter(number=F("annotation__revision_count"))
        .select_related("annotation__annotator", "created_by", "schema_revision")
        .order_by("annotation__slot", "annotation_id")
    )


def _task_text(task: Task) -> str | None:
    from labeling.services.annotations import task_text

    try:
        return task_text(task)
    except InvalidAnnotation:  # a text too long for spans: the consensus spans go without
        return None


def task_proposal(
    *, task: Task, project: Project, revisions: list[AnnotationRevision]
) -> tuple[list[dict], TaskConsensus, AnnotationRevision | None]:
    """What the task's label would be: (result, consensus, the revision it is, if one)."""
    kind = project.schema_revision.schema["type"]
    text = None
    if kind == "ner" and len(revisions) > 1:
        text = _task_text(task)
    consensus = task_consensus(kind, [r.result for r in revisions], text=text)
    chosen = revisions[consensus.chosen] if consensus.chosen is not None else None
    return consensus.result, consensus, chosen


def _publish(
    *,
    task: Task,
    project: Project,
    result: list[dict],
    revisions: list[AnnotationRevision],
    extra: dict[str, Any],
    item: Any = None,
) -> None:
    schema_revision = max(revisions, key=lambda r: r.created_at).schema_revision
    label_publish(
        item=item if item is not None else task.item_id,
        value=result,
        schema_hash=schema_revision.schema_hash,
        source=f"project:{project.pk}",
        provenance={
            "project": project.pk,
            "task": task.pk,
            "annotation_revisions": sorted(r.pk for r in revisions),
            "annotators": sorted({r.annotation.annotator.get_username() for r in revisions}),
            "schema_revision": schema_revision.number,
            **extra,
        },
    )


def _set_review(task_id: int, state: str) -> None:
    Task.objects.filter(pk=task_id).update(review=state, updated_at=timezone.now())


def task_resolve(
    *,
    task: Task,
    project: Project,
    known: list[AnnotationRevision] | None = None,
    item: Any = None,
) -> str:
    """Publish the finished task's label or send it to review (see the module doc).
    Returns "published", "review" or "waiting" (a consensus needs every slot). Runs in
    the caller's transaction; `known` are the task's current revisions when the caller
    has them (overlap 1: the one just made)."""
    if review_needed(project=project, task=task):
        _set_review(task.pk, Task.Review.PENDING)
        return "review"
    revisions = known if known is not None else latest_revisions(task_id=task.pk)
    if len(revisions) < project.overlap:
        return "waiting"
    if project.overlap == 1 or len(revisions) == 1:
        chosen = revisions[0]
        _publish(
            task=task,
            project=project,
            result=chosen.result,
            revisions=revisions,
            extra={},
            item=item,
        )
        return "published"
    result, consensus, _ = task_proposal(task=task, project=project, revisions=revisions)
    if consensus.confidence < project.consensus_threshold:
        _set_review(task.pk, Task.Review.PENDING)
        return "review"
    _publish(
        task=task,
        project=project,
        result=result,
        revisions=revisions,
        extra={"consensus": consensus.method, "confidence": round(consensus.confidence, 6)},
        item=item,
    )
    return "published"


# --- the reviewers' queue -------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewGrant:
    lease: ReviewLease
    task: Task
    renewed: bool


_PICK = (
    "SELECT t.id FROM labeling_task t "
    "WHERE t.project_id = %(project)s AND t.review = 'pending' "
    "AND NOT EXISTS (SELECT 1 FROM labeling_reviewlease r WHERE r.task_id = t.id "
    "AND r.ended_at IS NULL AND r.expires_at > %(now)s) "
    "AND NOT EXISTS (SELECT 1 FROM labeling_annotation a WHERE a.task_id = t.id "
    "AND a.annotator_id = %(user)s) "
    "ORDER BY t.priority DESC, t.id LIMIT 1"
)


def review_lease_next(*, project: Project, reviewer: Any) -> ReviewGrant | None:
    """Lease the reviewer the next task waiting for review (highest priority, oldest
    first; never one they annotated), or return their live review lease renewed; None
    when nothing waits. Role checks are the caller's."""
    for attempt in range(REVIEW_LEASE_ATTEMPTS):
        try:
            return _review_lease_next(project=project, reviewer=reviewer)
        except IntegrityError:  # a concurrent reviewer took the task first
            if attempt == REVIEW_LEASE_ATTEMPTS - 1:
                raise
    return None  # unreachable


def _review_lease_next(*, project: Project, reviewer: Any) -> ReviewGrant | None:
    now = timezone.now()
    expires = now + timedelta(seconds=review_lease_seconds())
    mine = ReviewLease.objects.filter(
        project=project, reviewer=reviewer, ended_at__isnull=True, expires_at__gt=now
    ).first()
    if mine is not None:
        mine.expires_at = expires
        mine.save(update_fields=["expires_at"])
        return ReviewGrant(lease=mine, task=_task(mine.task_id, project), renewed=True)
    sql = _PICK + (
        " FOR UPDATE OF t SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else ""
    )
    with transaction.atomic(durable=True):
        row = sql_row(sql, {"project": project.pk, "now": db_time(now), "user": reviewer.pk})
        if row is None:
            return None
        (task_id,) = row
        ReviewLease.objects.filter(task_id=task_id, ended_at__isnull=True).update(
            ended_at=now, end_reason=ReviewLease.End.EXPIRED
        )
        lease = ReviewLease.objects.create(
            task_id=task_id,
            project=project,
            reviewer=reviewer,
            leased_at=now,
            expires_at=expires,
        )
    return ReviewGrant(lease=lease, task=_task(task_id, project), renewed=False)


def _task(task_id: int, project: Project) -> Task:
    """The leased task with its item and asset, under the caller's project."""
    task = Task.objects.select_related("item__asset").get(pk=task_id)
    task.project = project
    return task


def review_lease_heartbeat(*, lease_id: int, reviewer: Any) -> ReviewLease:
    """Extend the reviewer's lease by a lease period. LeaseLost when it ended;
    ReviewLease.DoesNotExist for someone else's."""
    lease = ReviewLease.objects.get(pk=lease_id, reviewer=reviewer)
    now = timezone.now()
    updated = ReviewLease.objects.filter(pk=lease_id, ended_at__isnull=True).update(
        expires_at=now + timedelta(seconds=review_lease_seconds())
    )
    if not updated:
        raise LeaseLost(
            f"Review lease {lease_id} has ended ({lease.end_reason or 'expired'}); "
            "ask for the next task to review."
        )
    lease.refresh_from_db(fields=["expires_at"])
    return lease


def review_lease_release(*, lease_id: int, reviewer: Any) -> bool:
    """Give the task back to the review queue. Idempotent; ReviewLease.DoesNotExist for
    someone else's."""
    ReviewLease.objects.only("pk").get(pk=lease_id, reviewer=reviewer)
    return bool(
        ReviewLease.objects.filter(pk=lease_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), end_reason=ReviewLease.End.RELEASED
        )
    )


# --- decisions ------------------------------------------------------------------------------


def _clean_comment(comment: Any, *, required: bool) -> str:
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise InvalidReview("comment must be text.", field="comment")
    comment = comment.strip()
    if required and not comment:
        raise InvalidReview(
            "Say what is wrong: a rejected task goes back to its annotator with your comment.",
            field="comment",
        )
    if len(comment) > COMMENT_MAX:
        raise InvalidReview(f"The comment is over {COMMENT_MAX} characters.", field="comment")
    return comment


def _target(
    revisions: list[AnnotationRevision], annotation_id: Any, chosen: AnnotationRevision | None
) -> AnnotationRevision | None:
    if annotation_id in (None, ""):
        if len(revisions) == 1:
            return revisions[0]
        return chosen
    for revision in revisions:
        if revision.annotation_id == annotation_id:
            return revision
    raise InvalidReview(
        f"Annotation {annotation_id} is not an annotation of this task; it has "
        f"{', '.join(str(r.annotation_id) for r in revisions) or 'none'}.",
        field="annotation",
    )


def review_decide(
    *,
    task: Task,
    reviewer: Any,
    decision: str,
    comment: Any = "",
    annotation_id: Any = None,
    result: Any = None,
    review_lease_id: int | None = None,
) -> Review:
    """Record the reviewer's decision on a task waiting for review (module doc).

    With `review_lease_id` the lease must be the reviewer's and live; without one, no
    other reviewer may hold the task. Transactional: raises InvalidReview /
    InvalidAnnotation (a bad fix) with nothing stored, ReviewConflict when the task is
    not waiting for review or is held by another reviewer, LeaseLost for an ended lease.
    Role checks are the caller's.
    """
    from labeling.services.annotations import result_check

    if decision not in Review.Decision.values:
        raise InvalidReview(
            f"decision must be one of {', '.join(Review.Decision.values)}, not {decision!r}.",
            field="decision",
        )
    comment = _clean_comment(comment, required=decision == Review.Decision.REJECT)
    if annotation_id not in (None, "") and (
        isinstance(annotation_id, bool) or not isinstance(annotation_id, int)
    ):
        raise InvalidReview("annotation must be an annotation id (a number).", field="annotation")
    project = task.project
    clean = None
    if decision == Review.Decision.FIX:
        if result is None:
            raise InvalidReview("A fix needs the corrected `result`.", field="result")
        clean = result_check(task=task, schema_revision=project.schema_revision, result=result)
    now = timezone.now()
    with transaction.atomic(durable=True):
        locked = Task.objects.select_for_update().get(pk=task.pk)
        if locked.review != Task.Review.PENDING:
            state = locked.review or "not in review"
            raise ReviewConflict(
                f"Task {task.pk} is not waiting for review ({state}).", field="task"
            )
        live = ReviewLease.objects.filter(task_id=task.pk, ended_at__isnull=True)
        if review_lease_id is not None:
            mine = live.filter(pk=review_lease_id, reviewer=reviewer).first()
            if mine is None:
                raise LeaseLost(
                    f"Review lease {review_lease_id} is not a live lease of yours on task "
                    f"{task.pk}; ask for the next task to review.",
                    field="lease",
                )
        else:
            other = live.filter(expires_at__gt=now).exclude(reviewer=reviewer).first()
            if other is not None:
                raise ReviewConflict(
                    f"Another reviewer holds task {task.pk} until {other.expires_at:%H:%M:%S}.",
                    field="task",
                )
        revisions = latest_revisions(task_id=task.pk)
        if not revisions:
            raise ReviewConflict(f"Task {task.pk} has no annotation to review.", field="task")
        proposal, consensus, chosen = task_proposal(task=task, project=project, revisions=revisions)
        target = _target(revisions, annotation_id, chosen)
        review = Review(
            task_id=task.pk,
            project=project,
            reviewer=reviewer,
            decision=decision,
            comment=comment,
            created_at=now,
        )
        if decision == Review.Decision.REJECT:
            if annotation_id in (None, "") and len(revisions) > 1:
                raise InvalidReview(
                    "This task has several annotations: say which one goes back (`annotation`).",
                    field="annotation",
                )
            Annotation.objects.filter(pk=target.annotation_id).update(needs_rework=True)
            review.annotation_id = target.annotation_id
            review.revision = target
            _set_review(task.pk, STATE_AFTER[decision])
        else:
            if decision == Review.Decision.FIX:
                if target is None:
                    target = revisions[0]
                revision = _fix_revision(
                    target=target, reviewer=reviewer, result=clean, project=project, now=now
                )
                published, extra = clean, {"review": "fix"}
                revisions = [revision if r.pk == target.pk else r for r in revisions]
                review.revision = revision
            elif target is not None and annotation_id not in (None, ""):
                published, extra = target.result, {"review": "accept"}
                review.revision = target
            else:
                published = proposal
                extra = {"review": "accept"}
                if len(revisions) > 1:
                    extra |= {
                        "consensus": consensus.method,
                        "confidence": round(consensus.confidence, 6),
                    }
                review.revision = chosen
            review.annotation_id = target.annotation_id if target is not None else None
            review.result = published
            _publish(
                task=task,
                project=project,
                result=published,
                revisions=revisions,
                extra=extra | {"reviewer": reviewer.get_username()},
            )
            Annotation.objects.filter(task_id=task.pk, needs_rework=True).update(needs_rework=False)
            _set_review(task.pk, STATE_AFTER[decision])
        review.save()
        live.update(ended_at=now, end_reason=ReviewLease.End.DECIDED)
    return review


def _fix_revision(
    *,
    target: AnnotationRevision,
    reviewer: Any,
    result: list[dict],
    project: Project,
    now: Any,
) -> AnnotationRevision:
    annotation = Annotation.objects.select_for_update().get(pk=target.annotation_id)
    annotation.revision_count += 1
    annotation.updated_at = now
    annotation.save(update_fields=["revision_count", "updated_at"])
    revision = AnnotationRevision.objects.create(
        annotation=annotation,
        number=annotation.revision_count,
        result=result,
        schema_revision=project.schema_revision,
        created_by=reviewer,
        created_at=now,
    )
    revision.annotation = annotation
    return revision


# --- project-wide consensus (Dawid-Skene) ---------------------------------------------------

CONSENSUS_JOB_KIND = "project_consensus"
CONSENSUS_JOB_HANDLER = "labeling.services.review.project_consensus_job_run"
CONSENSUS_CHUNK = 2000


def project_consensus_submit(*, project: Project, created_by: Any = None) -> Any:
    """Submit the job that applies Dawid-Skene consensus to the project (after commit).
    Classification projects with overlap > 1 only: InvalidReview otherwise."""
    from workers.services import job_submit

    kind = project.schema_revision.schema["type"] if project.schema_revision else None
    if kind not in ("image_class", "text_class") or project.overlap < 2:
        raise InvalidReview(
            "Dawid-Skene consensus is for classification projects with overlap 2 or more; "
            "boxes, polygons and spans are resolved per task as they finish.",
            field="project",
        )
    return job_submit(
        kind=CONSENSUS_JOB_KIND,
        handler=CONSENSUS_JOB_HANDLER,
        params={"project_id": project.pk},
        created_by=created_by,
    )


def project_consensus_job_run(ctx: Any) -> dict[str, Any]:
    """Job handler: params {"project_id"}; see project_consensus_apply."""
    project = (
        Project.objects.select_related("schema_revision")
        .filter(pk=ctx.params["project_id"])
        .first()
    )
    if project is None:
        return {"project": "gone"}
    return project_consensus_apply(project=project, progress=ctx.progress)


def _choices_result(label: str, multiple: bool) -> list[dict]:
    choices = label.split("+") if multiple else [label]
    return [{"id": "c1", "type": "choices", "value": {"choices": choices}}]


def project_consensus_apply(*, project: Project, progress: Any = None) -> dict[str, Any]:
    """Re-resolve the project's finished, unreviewed classification tasks with
    Dawid-Skene, which weighs each annotator by their estimated accuracy over the whole
    project (a task's majority vote, used as tasks finish, cannot):

    - a task whose Dawid-Skene confidence is under project.consensus_threshold goes to
      review (its published label, if any, stays until a reviewer decides);
    - otherwise its label is (re)published as the Dawid-Skene class when that differs
      from the published one (provenance consensus "dawid_skene" with the confidence).

    Tasks in review, reviewed or gold are left alone. Streams the tasks in chunks of
    CONSENSUS_CHUNK (one transaction each); safe to run again (it converges: a second
    run changes nothing). Returns counts.
    """
    from datasets.selectors import label_values
    from labeling.services.quality import project_quality

    schema = project.schema_revision.schema
    multiple = bool(schema.get("multiple"))
    threshold = project.consensus_threshold
    report = project_quality(project=project, threshold=threshold, items=True)
    per_task = report.get("items") or []
    counts = {"tasks": len(per_task), "republished": 0, "to_review": 0, "unchanged": 0}
    for start in range(0, len(per_task), CONSENSUS_CHUNK):
        chunk = per_task[start : start + CONSENSUS_CHUNK]
        by_task = {row["task"]: row for row in chunk}
        with transaction.atomic(durable=True):
            open_tasks = list(
                Task.objects.select_for_update()
                .filter(
                    pk__in=list(by_task),
                    status=Task.Status.DONE,
                    review=Task.Review.NONE,
                )
                .order_by("pk")
                .values_list("pk", "item_id")
            )
            published = label_values(item_ids=[item_id for _, item_id in open_tasks])
            to_review = []
            for task_id, item_id in open_tasks:
                row = by_task[task_id]
                confidence = row["dawid_skene_confidence"] or 0.0
                if confidence < threshold:
                    to_review.append(task_id)
                    continue
                value = published.get(item_id)
                current = (
                    "+".join(sorted(value[0]["value"]["choices"]))
                    if value and value[0].get("type") == "choices"
                    else None
                )
                if current == row["dawid_skene"]:
                    counts["unchanged"] += 1
                    continue
                task = Task(pk=task_id, item_id=item_id, project=project)
                _publish(
                    task=task,
                    project=project,
                    result=_choices_result(row["dawid_skene"], multiple),
                    revisions=latest_revisions(task_id=task_id),
                    extra={"consensus": "dawid_skene", "confidence": confidence},
                )
                counts["republished"] += 1
            Task.objects.filter(pk__in=to_review).update(
                review=Task.Review.PENDING, updated_at=timezone.now()
            )
            counts["to_review"] += len(to_review)
        if progress is not None:
            progress(min(start + CONSENSUS_CHUNK, len(per_task)), len(per_task))
    return counts
