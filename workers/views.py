"""Server-rendered job pages: a job's page and its htmx progress partial.

Other apps show a job anywhere with
`{% include "workers/_job_progress.html" with job=job %}`: while the job is queued or
running the partial polls /jobs/<id>/progress every second and replaces itself; once
the job finished it renders without hx-get, so polling stops.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from workers.models import Job
from workers.selectors import job_get_for_user


def _get_job_or_404(request: HttpRequest, job_id: uuid.UUID) -> Job:
    try:
        return job_get_for_user(job_id, request.user)
    except Job.DoesNotExist:
        raise Http404("No such job.") from None


def _login_required_htmx(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """login_required that sends an htmx poll to the login page instead of swapping it in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated and request.headers.get("HX-Request"):
            login = redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            return HttpResponse(status=401, headers={"HX-Redirect": login["Location"]})
        return login_required(view)(request, *args, **kwargs)

    return wrapper


@require_GET
@_login_required_htmx
def job_progress(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    try:
        job = job_get_for_user(job_id, request.user)
    except Job.DoesNotExist:
        if not request.headers.get("HX-Request"):
            raise Http404("No such job.") from None
        # An htmx poll of a job deleted meanwhile: 286 is htmx's "stop polling" status
        # (an error status would not be swapped, and the poll would go on forever).
        return HttpResponse(
            '<div class="job"><p class="job-error">This job no longer exists.</p></div>',
            status=286,
        )
    response = render(request, "workers/_job_progress.html", {"job": job})
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@_login_required_htmx
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _get_job_or_404(request, job_id)
    return render(request, "workers/job_detail.html", {"job": job})
