"""REST endpoints under /api/v1/ for projects, tasks, leases, annotations, predictions."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
