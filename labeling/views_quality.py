"""The project quality page: totals, charts (Chart.js, drawn by
labeling/static/labeling/dashboard.js from the dashboard dict passed with json_script),
the per-annotator table, its CSV download, and the "Recompute agreement" job.

Ops, admins and the project's reviewers see it; a project the user may not see is a 404
(ids do not leak), one they see but whose quality they may not see (its annotators) a
403. Views parse, call labeling.services.dashboard, and shape the page.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from labeling import selectors
from labeling.models import Project
from labeling.services import dashboard as dashboard_services
from labeling.views import header_context, project_or_404
from workers.selectors import job_visible_to_all

# The windows the page offers (days); any 1..MAX_DAYS works in the URL.
WINDOWS = (7, 14, 30, 90)
DEFAULT_DAYS = 14


def _quality_project_or_404(request: HttpRequest, project_id: int) -> Project:
    project = project_or_404(request, project_id)
    if not selectors.user_reviews(user=request.user, project=project):
        raise PermissionDenied("Only ops, admins and the project's reviewers see its quality.")
    return project


def _days(request: HttpRequest) -> Any:
    return request.GET.get("days") or DEFAULT_DAYS


def _job_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    job = dashboard_services.quality_report_job_active(project=project)
    return {
        "project": project,
        "quality_job": job,
        # The job bar polls /jobs/<id>/progress, which shows a job to its owner and to
        # those who see every job; others get a line of text (and this page's own poll).
        "job_visible": job is not None
        and (job.created_by_id == request.user.pk or job_visible_to_all(request.user)),
    }


@require_http_methods(["GET", "POST"])
@login_required
def quality(request: HttpRequest, project_id: int) -> HttpResponse:
    """GET: the page (?days=N, the window of the daily charts). POST: start the job that
    recomputes agreement; an htmx POST gets the job's progress panel, a plain one is sent
    back to the page."""
    project = _quality_project_or_404(request, project_id)
    if request.method == "POST":
        try:
            dashboard_services.quality_report_submit(project=project, by=request.user)
        except dashboard_services.InvalidDashboardRequest as exc:
            context = _job_context(request, project) | {"error": str(exc)}
            return render(request, "labeling/_quality_job.html", context, status=400)
        if request.headers.get("HX-Request"):
            return render(request, "labeling/_quality_job.html", _job_context(request, project))
        return redirect("labeling:quality", project_id=project.pk)
    try:
        data = dashboard_services.project_dashboard(project=project, days=_days(request))
    except dashboard_services.InvalidDashboardRequest as exc:
        return HttpResponseBadRequest(f"{exc.field}: {exc}")
    context = {
        **header_context(request, project),
        **_job_context(request, project),
        "tab": "quality",
        "dashboard": data,
        "rows": [
            row
            | {
                "lead_seconds": None
                if row["median_lead_time_ms"] is None
                else row["median_lead_time_ms"] / 1000
            }
            for row in data["annotators"]
        ],
        "agreement_at": parse_datetime(data["agreement"]["created_at"])
        if data["agreement"]
        else None,
        "chart_data": {
            "days": data["days"],
            "throughput": data["throughput"],
            "annotators": [
                {
                    "username": row["username"],
                    "throughput": row["throughput"],
                    "gold_accuracy_series": row["gold_accuracy_series"],
                    "gold_answers_series": row["gold_answers_series"],
                    "median_lead_time_ms": row["median_lead_time_ms"],
                    "rejection_rate": row["rejection_rate"],
                    "reviewed": row["reviewed"],
                    "flagged": row["flagged"],
                }
                for row in data["annotators"]
            ],
            "gold_threshold": project.gold_threshold,
            "agreement": data["agreement"],
        },
        "windows": WINDOWS,
        "days": len(data["days"]),
    }
    response = render(request, "labeling/quality.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def quality_job(request: HttpRequest, project_id: int) -> HttpResponse:
    """The "Recompute agreement" panel, polled by htmx while its job runs: once no job is
    running the page reloads itself (HX-Refresh) to show the new report."""
    project = _quality_project_or_404(request, project_id)
    context = _job_context(request, project)
    if context["quality_job"] is None:
        response = HttpResponse(status=200)
        response["HX-Refresh"] = "true"
        return response
    response = render(request, "labeling/_quality_job.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def quality_csv(request: HttpRequest, project_id: int) -> HttpResponse:
    """The per-annotator table as CSV (?days=N as the page), streamed."""
    project = _quality_project_or_404(request, project_id)
    try:
        data = dashboard_services.project_dashboard(project=project, days=_days(request))
    except dashboard_services.InvalidDashboardRequest as exc:
        return HttpResponseBadRequest(f"{exc.field}: {exc}")
    response = StreamingHttpResponse(
        dashboard_services.dashboard_csv_rows(dashboard=data), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="project-{project.pk}-quality.csv"'
    response["Cache-Control"] = "no-store"
    return response
