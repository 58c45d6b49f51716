"""REST endpoints for jobs: progress of one job, and the caller's own jobs."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workers.models import Job
from workers.selectors import job_get_for_user, job_list_for_user


class JobProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(source="progress_done")
    total = serializers.IntegerField(source="progress_total", allow_null=True)
    percent = serializers.FloatField(source="progress_percent", allow_null=True)


class JobOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    state = serializers.ChoiceField(choices=Job.State.choices)
    progress = JobProgressSerializer(source="*")
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
    """A job's state and progress; poll it while `state` is queued or running."""

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


class JobListApi(ListAPIView):
    """The caller's own jobs, newest first (cursor-paginated)."""

    serializer_class = JobOutputSerializer
    pagination_class = JobCursorPagination

    def get_queryset(self) -> Any:
        return job_list_for_user(self.request.user)

    @extend_schema(operation_id="jobs_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
