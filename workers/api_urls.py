"""REST endpoints under /api/v1/ for jobs."""

from django.urls import path

from workers import api

urlpatterns = [
    path("jobs", api.JobListApi.as_view(), name="api-job-list"),
    path("jobs/<uuid:job_id>", api.JobDetailApi.as_view(), name="api-job-detail"),
]
