"""REST API of the project quality dashboard: the dashboard dict, and the stored
agreement reports (computed by a job). Parse, check access, call
labeling.services.dashboard, shape. Ops, admins and the project's reviewers only: a
project the caller may not see is a 404, one whose quality they may not see a 403."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors
from labeling.models import Project, QualityReport
from labeling.services import dashboard
from workers.selectors import job_ref


def _project_for_quality(request: Request, project_id: int) -> Project:
    try:
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
    except Project.DoesNotExist:
        raise Http404(f"No project {project_id}.") from None
    if not selectors.user_reviews(user=request.user, project=project):
        raise PermissionDenied(
            f"Only ops, admins and reviewers of project {project.pk} see its quality."
        )
    return project


def _report(row: QualityReport) -> dict[str, Any]:
    return {
        "id": row.pk,
        "project": row.project_id,
        "job": job_ref(row.job_id),
        "annotation_count": row.annotation_count,
        "created_at": row.created_at.isoformat(),
        "data": row.data,
    }


QualityReportOutput = inline_serializer(
    name="QualityReportOutput",
    fields={
        "id": serializers.IntegerField(),
        "project": serializers.IntegerField(),
        "job": serializers.JSONField(allow_null=True),
        "annotation_count": serializers.IntegerField(),
        "created_at": serializers.DateTimeField(),
        "data": serializers.JSONField(help_text="labeling.services.quality.project_quality"),
    },
)


class DashboardApi(APIView):
    """The project's quality dashboard over the last `days` days (1..366, default 30):
    totals, daily throughput, and per annotator: annotations, revisions, median lead
    time (ms), gold answers and accuracy (with a daily series), mean agreement with the
    others in the latest quality report, reviews and rejection rate, flagged/paused; and
    the latest report's pairwise agreement matrix (`agreement`, null before the first)."""

    @extend_schema(
        parameters=[OpenApiParameter("days", OpenApiTypes.INT, description="1..366, default 30")],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = _project_for_quality(request, project_id)
        days = request.query_params.get("days", 30)
        return Response(dashboard.project_dashboard(project=project, days=days))


class QualityReportListApi(APIView):
    """POST: compute the project's agreement and consensus in a job that stores a quality
    report; 202 with the job (poll it; then GET quality-reports/latest)."""

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                name="QualityReportSubmitted", fields={"job": serializers.JSONField()}
            )
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_for_quality(request, project_id)
        job = dashboard.quality_report_submit(project=project, by=request.user)
        return Response({"job": job_ref(job.pk)}, status=status.HTTP_202_ACCEPTED)


class QualityReportLatestApi(APIView):
    """The project's newest quality report (project_quality's dict as `data`); 404 when
    none was computed yet."""

    @extend_schema(responses={200: QualityReportOutput})
    def get(self, request: Request, project_id: int) -> Response:
        project = _project_for_quality(request, project_id)
        row = dashboard.quality_report_latest(project=project)
        if row is None:
            raise Http404(
                f"Project {project.pk} has no quality report yet: POST quality-reports first."
            )
        return Response(_report(row))
