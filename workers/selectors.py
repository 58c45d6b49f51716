"""Read queries on jobs, with the visibility rule in one place."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from workers.models import Job

VIEW_ANY_JOB_PERMISSION = "workers.view_job"


def job_visible_to_all(user: Any) -> bool:
    """Staff and holders of workers.view_job see every job; others only their own."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_staff or user.has_perm(VIEW_ANY_JOB_PERMISSION))


def job_get_for_user(job_id: uuid.UUID | str, user: Any) -> Job:
    """Return the job if `user` may see it.

    Raises Job.DoesNotExist both when there is no such job and when it belongs to
    someone else, so job ids do not leak (callers answer 404, never 403).
    """
    if not getattr(user, "is_authenticated", False):
        raise Job.DoesNotExist("no such job")
    jobs = Job.objects.select_related("created_by")
    if not job_visible_to_all(user):
        jobs = jobs.filter(created_by=user)
    try:
        return jobs.get(pk=job_id)
    except Job.DoesNotExist:
        raise Job.DoesNotExist("no such job") from None


def job_list_for_user(user: Any) -> QuerySet[Job]:
    """The user's own jobs, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Job.objects.none()
    return Job.objects.filter(created_by=user).order_by("-created_at")
