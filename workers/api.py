"""REST endpoints for jobs: progress of one job, and the caller's own jobs.

A job that fanned out shows its children's counts and their summed progress; its
chunks are listed with GET /api/v1/jobs?parent=<id>.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workers.models import Job
from workers.selectors import job_get_for_user, job_list_for_user, jobs_attach_children


class JobProgressSerializer(serializers.Serializer):
    # A waiting parent's numbers include what its running children report now.
    done = serializers.IntegerField(source="live_done")
    total = serializers.IntegerField(source="live_total", allow_null=True)
    percent = serializers.FloatField(source="progress_percent", allow_null=True)


class JobChildrenSerializer(serializers.Serializer):
    """Child jobs (chunks) by state; all zero for a job that did not fan out."""

    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class JobOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    state = serializers.ChoiceField(choices=Job.State.choices)
    progress = JobProgressSerializer(source="*")
    parent = serializers.UUIDField(source="parent_id", allow_null=True)
    children = JobChildrenSerializer(source="children_summary")
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    report = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)

    def get_report(self, job: Job) -> dict[str, Any]:
        # A traceback names code paths and may quote data: staff only (admin shows it).
        request = self.context.get("request")
        if request is not None and request.user.is_staff:
            return job.report
        return dict(job.report_items)


_NOT_FOUND = OpenApiResponse(description='{"error": "not_found"}: no such job, or not yours.')


class JobDetailApi(APIView):
    """A job's state and progress; poll it while `state` is queued, running or waiting."""

    @extend_schema(
        operation_id="jobs_retrieve", responses={200: JobOutputSerializer, 404: _NOT_FOUND}
    )
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        try:
            job = job_get_for_user(job_id, request.user)
        except Job.DoesNotExist:
            raise NotFound("No such job.") from None
        return Response(JobOutputSerializer(job, context={"request": request}).data)


class JobCursorPagination(CursorPagination):
    ordering = "-created_at"


class JobListInputSerializer(serializers.Serializer):
    parent = serializers.UUIDField(required=False)


class JobListApi(ListAPIView):
    """The caller's own top-level jobs, newest first (cursor-paginated); with
    ?parent=<id>, the child jobs (chunks) of that job."""

    serializer_class = JobOutputSerializer
    pagination_class = JobCursorPagination

    def get_queryset(self) -> Any:
        query = JobListInputSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return job_list_for_user(self.request.user, parent_id=query.validated_data.get("parent"))

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        jobs_attach_children(page if page is not None else queryset)
        return page

    @extend_schema(
        operation_id="jobs_list",
        parameters=[
            OpenApiParameter(
                "parent",
                OpenApiTypes.UUID,
                description="List the child jobs (chunks) of this job instead.",
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
