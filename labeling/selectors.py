"""Read queries of labelling: who sees which project, what a task shows its annotator,
progress, and an annotator's recent work.

Projects are visible to ops, admins and superusers (all of them) and to their members
(annotators and reviewers); views and the API answer 404 outside that, so ids do not
leak. Lists are keyset paginated (datasets.selectors.Page).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from datasets.models import Asset, Item
from datasets.selectors import user_manages_datasets
from labeling.models import (
    Annotation,
    AnnotationRevision,
    Lease,
    Prediction,
    Project,
    ProjectMember,
    Review,
    ReviewLease,
    SchemaRevision,
    Skip,
    Task,
)
from labeling.rows import Columns, sql_row

# Texts longer than this (UTF-8 bytes) cannot be labelled with spans: the annotator's
# page holds the whole text, and offsets into a truncated text would be wrong.
TEXT_MAX_BYTES = 1024 * 1024
HISTORY_PAGE_SIZE = 50


def user_manages_projects(user: Any) -> bool:
    """Ops, admins and superusers create, change and see every project (the same groups
    that manage datasets)."""
    return user_manages_datasets(user)


def project_visible_to(user: Any) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user_manages_projects(user):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


_ROLE_SQL = (
    "(SELECT m.role FROM labeling_projectmember m WHERE m.project_id = p.id AND m.user_id = %s)"
)
_PROJECT_COLUMNS = Columns(Project, "p") + Columns(SchemaRevision, "s")
_TASK_COLUMNS = Columns(Task, "t") + Columns(Item, "i") + Columns(Asset, "a") + _PROJECT_COLUMNS
_TASK_FROM = (
    "FROM labeling_task t JOIN datasets_item i ON i.id = t.item_id "
    "JOIN datasets_asset a ON a.sha256 = i.asset_id "
    "JOIN labeling_project p ON p.id = t.project_id "
    "JOIN labeling_schemarevision s ON s.id = p.schema_revision_id"
)


def project_get_for_user(*, user: Any, project_id: int) -> Project:
    """The project (with its schema revision) if `user` may see it;
    Project.DoesNotExist otherwise.

    One query for a member, with their role (kept for member_role); ops and admins who
    are not members cost one more (their groups). Hand-written SQL: every lease asks."""
    if not getattr(user, "is_authenticated", False):
        raise Project.DoesNotExist
    row = sql_row(
        f"SELECT {_PROJECT_COLUMNS.sql}, {_ROLE_SQL} FROM labeling_project p "  # noqa: S608
        "JOIN labeling_schemarevision s ON s.id = p.schema_revision_id WHERE p.id = %s",
        [user.pk, project_id],
    )
    if row is None:
        raise Project.DoesNotExist
    project, revision = _PROJECT_COLUMNS.build(row)
    project.schema_revision = revision
    project.my_role = row[-1]
    _remember_role(user, project.pk, project.my_role)
    if project.my_role is None and not user_manages_projects(user):
        raise Project.DoesNotExist
    return project


def task_get_for_user(*, user: Any, task_id: int) -> Task:
    """The task (with item, asset, project and schema revision) if `user` may see it:
    members of its project and ops/admins; Task.DoesNotExist otherwise. One query for a
    member (hand-written: every submit asks)."""
    if not getattr(user, "is_authenticated", False):
        raise Task.DoesNotExist
    row = sql_row(
        f"SELECT {_TASK_COLUMNS.sql}, {_ROLE_SQL} {_TASK_FROM} WHERE t.id = %s",  # noqa: S608
        [user.pk, task_id],
    )
    if row is None:
        raise Task.DoesNotExist
    task, item, asset, project, revision = _TASK_COLUMNS.build(row)
    item.asset = asset
    project.schema_revision = revision
    task.item = item
    task.project = project
    task.my_role = row[-1]
    _remember_role(user, project.pk, task.my_role)
    if task.my_role is None and not user_manages_projects(user):
        raise Task.DoesNotExist
    return task


def task_with_item(*, task_id: int, project: Project, annotator: Any) -> Task:
    """The task with its item and asset, under the caller's project, and what the
    annotator's page adds to it (`task.extras`, see task_extras), in one query: the
    queue's lease answer."""
    columns = _TASK_COLUMNS
    extras, params = _extras_sql(
        task_id="t.id", item_id="t.item_id", project_id="t.project_id", annotator=annotator
    )
    row = sql_row(
        f"SELECT {columns.sql}, {extras} {_TASK_FROM} WHERE t.id = %s",  # noqa: S608
        [*params, task_id],
    )
    assert row is not None, f"task {task_id} vanished under its lease"
    task, item, asset, _, _ = columns.build(row)
    item.asset = asset
    task.item = item
    task.project = project
    task.extras = _extras(task, row[columns.width :])
    return task


def _roles(user: Any) -> dict[int, str | None]:
    """The user's roles by project id, found so far in this request (on the user object)."""
    cache = getattr(user, "_project_roles", None)
    if cache is None:
        cache = user._project_roles = {}
    return cache


def _remember_role(user: Any, project_id: int, role: str | None) -> None:
    _roles(user)[project_id] = role


def member_role(*, user: Any, project: Project) -> str | None:
    """The user's role in the project ("annotator", "reviewer") or None."""
    cache = _roles(user)
    if project.pk not in cache:
        cache[project.pk] = (
            ProjectMember.objects.filter(project=project, user=user)
            .values_list("role", flat=True)
            .first()
        )
    return cache[project.pk]


def start_of_today() -> datetime:
    now = timezone.localtime()
    return timezone.make_aware(datetime.combine(now.date(), time.min), now.tzinfo)


@dataclass(frozen=True)
class Progress:
    done_today: int
    remaining: int  # tasks of the project that still need an annotation
    total: int
    done: int


def project_progress(*, project: Project, annotator: Any | None = None) -> Progress:
    """Progress from the project's counters (no count over tasks) and, for an annotator,
    the annotations they made or changed today (an index range)."""
    done_today = 0
    if annotator is not None:
        done_today = Annotation.objects.filter(
            annotator=annotator, project=project, updated_at__gte=start_of_today()
        ).count()
    return Progress(
        done_today=done_today,
        remaining=max(project.task_count - project.done_count, 0),
        total=project.task_count,
        done=project.done_count,
    )


def annotator_counts(*, project: Project) -> list[dict[str, Any]]:
    """Annotations per annotator in the project, most first, with how many they made or
    changed today (the dashboard): one grouped query."""
    return list(
        Annotation.objects.filter(project=project)
        .values(username=F("annotator__username"))
        .annotate(
            annotations=Count("id"),
            today=Count("id", filter=Q(updated_at__gte=start_of_today())),
        )
        .order_by("-annotations", "username")
    )


@dataclass(frozen=True)
class TaskExtras:
    draft: list[dict[str, Any]] | None
    done_today: int
    predictions: list[dict[str, Any]]


def _extras_sql(
    *, task_id: Any, item_id: Any, project_id: Any, annotator: Any
) -> tuple[str, list[Any]]:
    """Three scalar subqueries: the annotator's draft, their tasks done today, and how many
    predictions the item has. Task, item and project may be SQL expressions."""
    return (
        f"(SELECT result FROM labeling_draft WHERE task_id = {task_id} AND annotator_id = %s), "  # noqa: S608
        f"(SELECT count(*) FROM labeling_annotation WHERE annotator_id = %s "
        f"AND project_id = {project_id} AND updated_at >= %s), "
        f"(SELECT count(*) FROM labeling_prediction WHERE project_id = {project_id} "
        f"AND item_id = {item_id})",
        [
            annotator.pk,
            annotator.pk,
            connection.ops.adapt_datetimefield_value(start_of_today()),
        ],
    )


def _extras(task: Task, values: Sequence[Any]) -> TaskExtras:
    raw_draft, done_today, prediction_count = values
    if isinstance(raw_draft, str | bytes):  # JSON comes back as text from a raw cursor
        raw_draft = json.loads(raw_draft)
    predictions = []
    if prediction_count:
        predictions = [
            {"model_name": p.model_name, "score": p.score, "result": p.result}
            for p in Prediction.objects.filter(
                project_id=task.project_id, item_id=task.item_id
            ).order_by(F("score").desc(nulls_last=True), "model_name")
        ]
    return TaskExtras(draft=raw_draft, done_today=done_today, predictions=predictions)


def task_extras(*, task: Task, annotator: Any) -> TaskExtras:
    """What an annotator's page adds to a task: their draft, how many tasks they did
    today, the predictions of its item (best first). One query, two with predictions;
    none when task_with_item read them already."""
    known = getattr(task, "extras", None)
    if known is not None:
        return known
    sql, params = _extras_sql(
        task_id=int(task.pk),
        item_id=int(task.item_id),
        project_id=int(task.project_id),
        annotator=annotator,
    )
    row = sql_row(f"SELECT {sql}", params)  # noqa: S608
    assert row is not None
    return _extras(task, row)


def annotator_history(
    *,
    project: Project,
    annotator: Any,
    before: datetime | None = None,
    limit: int = HISTORY_PAGE_SIZE,
) -> list[Annotation]:
    """The annotator's annotations in the project, most recently changed first, older
    than `before` when given (keyset on updated_at)."""
    rows = Annotation.objects.filter(project=project, annotator=annotator)
    if before is not None:
        rows = rows.filter(updated_at__lt=before)
    return list(rows.select_related("task__item").order_by("-updated_at")[:limit])


def rework_review(*, annotation: Annotation) -> dict[str, Any] | None:
    """The rejection that sent the annotation back to its annotator: comment, reviewer
    and when (None when there is none)."""
    review = (
        Review.objects.filter(annotation=annotation, decision=Review.Decision.REJECT)
        .select_related("reviewer")
        .order_by("-created_at", "-id")
        .first()
    )
    if review is None:
        return None
    return {
        "comment": review.comment,
        "reviewer": review.reviewer.get_username(),
        "created_at": review.created_at,
    }


def task_reviews(*, task: Task) -> list[dict[str, Any]]:
    """The task's review decisions, oldest first."""
    return [
        {
            "id": r.pk,
            "decision": r.decision,
            "comment": r.comment,
            "reviewer": r.reviewer.get_username(),
            "annotation": r.annotation_id,
            "revision": r.revision_id,
            "created_at": r.created_at,
        }
        for r in Review.objects.filter(task=task)
        .select_related("reviewer")
        .order_by("created_at", "id")
    ]


def task_history(*, task: Task) -> list[dict[str, Any]]:
    """Everything that happened to a task, oldest first: leases (annotators' and
    reviewers'), revisions (with their results), skips and review decisions. A task's
    history is tens of rows: read whole."""
    events: list[dict[str, Any]] = []
    for lease in Lease.objects.filter(task=task).select_related("annotator"):
        events.append(
            {
                "at": lease.leased_at,
                "kind": "lease",
                "user": lease.annotator.get_username(),
                "slot": lease.slot,
                "ended_at": lease.ended_at,
                "end_reason": lease.end_reason or None,
            }
        )
    for lease in ReviewLease.objects.filter(task=task).select_related("reviewer"):
        events.append(
            {
                "at": lease.leased_at,
                "kind": "review_lease",
                "user": lease.reviewer.get_username(),
                "ended_at": lease.ended_at,
                "end_reason": lease.end_reason or None,
            }
        )
    for revision in AnnotationRevision.objects.filter(annotation__task=task).select_related(
        "annotation__annotator", "created_by", "schema_revision"
    ):
        events.append(
            {
                "at": revision.created_at,
                "kind": "revision",
                "user": revision.created_by.get_username(),
                "annotation": revision.annotation_id,
                "annotator": revision.annotation.annotator.get_username(),
                "revision": revision.pk,
                "number": revision.number,
                "lead_time_ms": revision.lead_time_ms,
                "schema_revision": revision.schema_revision.number,
                "result": revision.result,
            }
        )
    for skip in Skip.objects.filter(task=task).select_related("annotator"):
        events.append(
            {
                "at": skip.created_at,
                "kind": "skip",
                "user": skip.annotator.get_username(),
                "reason": skip.reason,
            }
        )
    for review in task_reviews(task=task):
        events.append(
            {
                "at": review["created_at"],
                "kind": "review",
                "user": review["reviewer"],
                "decision": review["decision"],
                "comment": review["comment"],
                "annotation": review["annotation"],
                "revision": review["revision"],
            }
        )
    order = {"lease": 0, "review_lease": 1, "revision": 2, "skip": 3, "review": 4}
    events.sort(key=lambda e: (e["at"], order[e["kind"]]))
    return events


def user_reviews(*, user: Any, project: Project) -> bool:
    """Whether the user may review in the project: its reviewers, ops and admins."""
    return user_manages_projects(user) or member_role(user=user, project=project) == (
        ProjectMember.Role.REVIEWER
    )


def review_pending_count(*, project: Project) -> int:
    """Tasks waiting for review (the task_review_queue partial index)."""
    return Task.objects.filter(project=project, review=Task.Review.PENDING).count()
