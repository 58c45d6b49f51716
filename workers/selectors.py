"""Read queries on jobs, with the visibility rule in one place."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from workers.models import Job
from workers.types import JobChildren

VIEW_ANY_JOB_PERMISSION = "workers.view_job"


def job_ref(job_id: uuid.UUID | str | None) -> dict[str, str] | None:
    """How an API answer points at a job: {"id", "url"} (None for no job)."""
    if job_id is None:
        return None
    from django.urls import reverse

    return {"id": str(job_id), "url": reverse("api-job-detail", kwargs={"job_id": job_id})}


def job_visible_to_all(user: Any) -> bool:
    """Staff and holders of workers.view_job see every job; others only their own."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_staff or user.has_perm(VIEW_ANY_JOB_PERMISSION))


def job_get_for_user(job_id: uuid.UUID | str, user: Any) -> Job:
    """Return the job if `user` may see it, with its children's counts and live progress
    attached (`job.children_summary`; one more query, only for a job that has children).

    Raises Job.DoesNotExist both when there is no such job and when it belongs to
    someone else, so job ids do not leak (callers answer 404, never 403).
    """
    if not getattr(user, "is_authenticated", False):
        raise Job.DoesNotExist("no such job")
    jobs = Job.objects.select_related("created_by")
    if not job_visible_to_all(user):
        jobs = jobs.filter(created_by=user)
    try:
        job = jobs.get(pk=job_id)
    except Job.DoesNotExist:
        raise Job.DoesNotExist("no such job") from None
    jobs_attach_children([job])
    return job


def job_list_for_user(user: Any, *, parent_id: uuid.UUID | str | None = None) -> QuerySet[Job]:
    """The user's own top-level jobs, newest first; with `parent_id`, that job's children
    instead (chunks of a fan-out). Call jobs_attach_children on the page shown."""
    if not getattr(user, "is_authenticated", False):
        return Job.objects.none()
    jobs = Job.objects.filter(created_by=user)
    if parent_id is None:
        jobs = jobs.filter(parent__isnull=True)
    else:
        jobs = jobs.filter(parent_id=parent_id)
    return jobs.order_by("-created_at")


def job_children_summaries(parent_ids: Iterable[uuid.UUID | str]) -> dict[uuid.UUID, JobChildren]:
    """Count the children of each job by state, with their live progress: one query."""
    ids = list(parent_ids)
    if not ids:
        return {}
    finished = list(Job.FINISHED_STATES)
    rows = (
        Job.objects.filter(parent_id__in=ids)
        .order_by()  # the model's default ordering would join the GROUP BY
        .values("parent_id")
        .annotate(
            total=Count("pk"),
            succeeded=Count("pk", filter=Q(state=Job.State.SUCCEEDED)),
            failed=Count("pk", filter=Q(state=Job.State.FAILED)),
            cancelled=Count("pk", filter=Q(state=Job.State.CANCELLED)),
            unfinished_done=Sum("progress_done", filter=~Q(state__in=finished), default=0),
            totals_sum=Sum("progress_total", default=0),
            totals_unknown=Count("pk", filter=Q(progress_total__isnull=True)),
        )
    )
    summaries = {}
    for row in rows:
        ended = row["succeeded"] + row["failed"] + row["cancelled"]
        summaries[row["parent_id"]] = JobChildren(
            total=row["total"],
            pending=row["total"] - ended,
            succeeded=row["succeeded"],
            failed=row["failed"],
            cancelled=row["cancelled"],
            unfinished_done=row["unfinished_done"],
            totals_sum=None if row["totals_unknown"] else row["totals_sum"],
        )
    return summaries


def jobs_attach_children(jobs: Sequence[Job]) -> None:
    """Set `children_summary` on each job: one query for all those that have children,
    none for the others (they get an all-zero summary)."""
    parents = [job.pk for job in jobs if job.children_total]
    summaries = job_children_summaries(parents)
    for job in jobs:
        job.children_summary = summaries.get(job.pk, JobChildren.none())
