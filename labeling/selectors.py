"""Read queries of labelling: who sees which project, what a task shows its annotator,
progress, and an annotator's recent work.

Projects are visible to ops, admins and superusers (all of them) and to their members
(annotators and reviewers); views and the API answer 404 outside that, so ids do not
leak. Lists are keyset paginated (datasets.selectors.Page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from datasets.selectors import user_manages_datasets
from labeling.models import Annotation, Project, ProjectMember, Task

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


def project_get_for_user(*, user: Any, project_id: int) -> Project:
    """The project if `user` may see it; Project.DoesNotExist otherwise."""
    return project_visible_to(user).select_related("schema_revision", "dataset").get(pk=project_id)


def member_role(*, user: Any, project: Project) -> str | None:
    """The user's role in the project ("annotator", "reviewer") or None."""
    cache = getattr(user, "_project_roles", None)
    if cache is None:
        cache = user._project_roles = {}
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
    """Annotations per annotator in the project, most first (the dashboard)."""
    return list(
        Annotation.objects.filter(project=project)
        .values("annotator__username")
        .annotate(annotations=Count("id"))
        .order_by("-annotations", "annotator__username")
    )


def task_get(*, task_id: int) -> Task:
    return Task.objects.select_related("item__asset", "project__schema_revision").get(pk=task_id)


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
