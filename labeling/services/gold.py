"""Gold items: items of a project with a known answer, mixed into annotators' queues to
measure them.

- `gold_mark` makes an item's task a gold task (Task.status "gold") with its known
  answer (GoldItem), validated against the project's schema like a submit; the answer
  is published as the item's label. Annotations made on the task before are scored too.
- The queue (labeling.services.queue) serves a gold task the annotator has not
  answered with probability `project.gold_rate` per lease; the lease, the task and the
  submit look exactly like any other to the annotator (the API shows a gold task as
  "open"/"done" and its slot as 0: see labeling.api).
- Each submit on a gold task scores the annotation against the answer
  (labeling.quality.consensus.gold_score) into GoldAnswer, kept current when the
  annotation is edited. `gold_member_check` then compares the annotator's gold accuracy
  (mean score of their last GOLD_WINDOW answers) with `project.gold_threshold` once they
  gave `project.gold_min_answers`: under it they are flagged and, with
  `project.gold_pause`, paused (no more tasks until ops `member_resume` them); at or
  over it a flag without a pause clears itself.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Avg, Count, F
from django.utils import timezone

from datasets.services.labels import label_publish
from labeling.errors import InvalidGold
from labeling.models import (
    Annotation,
    GoldAnswer,
    GoldItem,
    Lease,
    Project,
    ProjectMember,
    Task,
)
from labeling.quality.consensus import gold_score
from labeling.selectors import user_manages_projects
from labeling.services.review import latest_revisions

# An annotator's gold accuracy is the mean score of this many of their latest answers.
GOLD_WINDOW = 50


def _require_manager(user: Any) -> None:
    if not user_manages_projects(user):
        raise PermissionDenied("Only ops and admins manage gold items.")


def gold_mark(*, project: Project, item: Any, result: Any, by: Any) -> GoldItem:
    """Make `item`'s task in `project` a gold task whose known answer is `result`, or
    change the answer of a gold task (every answer is then scored again).

    The item must be a task of the project (in its slice). Annotations already made on
    it are scored; the task leaves the work counters (it is no longer work to do) and
    its live leases end. Transactional. Raises InvalidGold / InvalidAnnotation (naming
    the region) with nothing changed, PermissionDenied for non-managers.
    """
    from labeling.services.annotations import result_check

    _require_manager(by)
    item_id = getattr(item, "pk", item)
    task = (
        Task.objects.select_related("item__asset").filter(project=project, item_id=item_id).first()
    )
    if task is None:
        raise InvalidGold(
            f"Item {item_id} is not a task of project {project.pk} (not in its dataset "
            "slice, or its tasks are still being created).",
            field="item",
        )
    task.project = project
    clean = result_check(task=task, schema_revision=project.schema_revision, result=result)
    with transaction.atomic(durable=True):
        return gold_store(project=project, task=task, result=clean, by=by)


def gold_store(*, project: Project, task: Task, result: list[dict], by: Any) -> GoldItem:
    """gold_mark's writes for a checked `result`, in the caller's transaction (a gold set
    import stores many in one)."""
    revision = project.schema_revision
    now = timezone.now()
    locked = Task.objects.select_for_update().get(pk=task.pk)
    if locked.status != Task.Status.GOLD:
        counters = {"task_count": F("task_count") - 1}
        if locked.status == Task.Status.DONE:
            counters["done_count"] = F("done_count") - 1
        Project.objects.filter(pk=project.pk).update(**counters)
        Task.objects.filter(pk=task.pk).update(
            status=Task.Status.GOLD, review=Task.Review.NONE, updated_at=now
        )
        Lease.objects.filter(task_id=task.pk, ended_at__isnull=True).update(
            ended_at=now, end_reason=Lease.End.RELEASED
        )
    gold, _ = GoldItem.objects.update_or_create(
        task_id=task.pk,
        defaults={
            "project": project,
            "result": result,
            "schema_revision": revision,
            "created_by": by,
        },
    )
    label_publish(
        item=task.item_id,
        value=result,
        schema_hash=revision.schema_hash,
        source=f"project:{project.pk}",
        provenance={
            "project": project.pk,
            "task": task.pk,
            "gold": True,
            "by": by.get_username(),
            "schema_revision": revision.number,
        },
    )
    annotators = set()
    for latest in latest_revisions(task_id=task.pk):
        gold_answer_record(
            project=project, annotation=latest.annotation, result=latest.result, gold=gold
        )
        annotators.add(latest.annotation.annotator_id)
    for annotator_id in sorted(annotators):
        gold_member_check(project=project, annotator_id=annotator_id)
    return gold


def gold_answer_record(
    *, project: Project, annotation: Annotation, result: list[dict], gold: GoldItem
) -> GoldAnswer:
    """Score the annotation's current result against the gold answer and store it
    (replacing an earlier score of the same annotation). Runs in the caller's
    transaction."""
    kind = gold.schema_revision.schema["type"]
    score = round(gold_score(kind, gold.result, result), 6)
    now = timezone.now()
    answer, created = GoldAnswer.objects.get_or_create(
        annotation=annotation,
        defaults={
            "project": project,
            "annotator_id": annotation.annotator_id,
            "score": score,
            "created_at": now,
            "updated_at": now,
        },
    )
    if not created:
        answer.score = score
        answer.updated_at = now
        answer.save(update_fields=["score", "updated_at"])
    return answer


def gold_accuracy(*, project: Project, annotator_id: int) -> tuple[float | None, int]:
    """The annotator's gold accuracy (mean score of their last GOLD_WINDOW answers) and
    how many answers it is over; (None, 0) before their first."""
    scores = list(
        GoldAnswer.objects.filter(project=project, annotator_id=annotator_id)
        .order_by("-created_at", "-id")
        .values_list("score", flat=True)[:GOLD_WINDOW]
    )
    if not scores:
        return None, 0
    return sum(scores) / len(scores), len(scores)


def gold_member_check(*, project: Project, annotator_id: int) -> ProjectMember | None:
    """Flag (and, with project.gold_pause, pause) the annotator when their gold accuracy
    is under project.gold_threshold after at least project.gold_min_answers answers;
    clear an unpaused flag when it is back at or over it. Runs in the caller's
    transaction; returns the member row (None for a non-member, e.g. ops)."""
    member = (
        ProjectMember.objects.select_for_update()
        .filter(project=project, user_id=annotator_id)
        .first()
    )
    if member is None:
        return None
    accuracy, answers = gold_accuracy(project=project, annotator_id=annotator_id)
    if accuracy is None or answers < project.gold_min_answers:
        return member
    now = timezone.now()
    if accuracy < project.gold_threshold:
        member.flag_reason = (
            f"Gold accuracy {accuracy:.0%} over the last {answers} gold tasks is under "
            f"the project's {project.gold_threshold:.0%}."
        )
        fields = ["flag_reason"]
        if member.flagged_at is None:
            member.flagged_at = now
            fields.append("flagged_at")
        if project.gold_pause and member.paused_at is None:
            member.paused_at = now
            fields.append("paused_at")
        member.save(update_fields=fields)
    elif member.flagged_at is not None and member.paused_at is None:
        member.flagged_at = None
        member.flag_reason = ""
        member.save(update_fields=["flagged_at", "flag_reason"])
    return member


def member_resume(*, project: Project, username: str, by: Any) -> ProjectMember:
    """Clear a member's flag and pause (ops, after talking to them). Their earlier gold
    answers still count: falling under the threshold again flags them again.
    ProjectMember.DoesNotExist for a non-member."""
    _require_manager(by)
    member = ProjectMember.objects.select_related("user").get(
        project=project, user__username=username
    )
    member.flagged_at = None
    member.paused_at = None
    member.flag_reason = ""
    member.save(update_fields=["flagged_at", "paused_at", "flag_reason"])
    return member


def gold_items(*, project: Project) -> Any:
    """The project's gold items, newest first, each with `answers` (how many annotations
    were scored against it) and `mean_score` (a queryset: paginate it)."""
    return (
        GoldItem.objects.filter(project=project)
        .select_related("task__item", "created_by", "schema_revision")
        .annotate(
            answers=Count("task__annotations__gold"),
            mean_score=Avg("task__annotations__gold__score"),
        )
        .order_by("-id")
    )
