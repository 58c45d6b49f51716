"""Admin: jobs are read-only here (workers write them); staff may cancel or delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from workers.models import Job
from workers.services import job_cancel


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "state",
        "progress",
        "attempts",
        "created_by",
        "created_at",
        "heartbeat_at",
        "finished_at",
    )
    list_filter = ("state", "kind", ("parent", admin.EmptyFieldListFilter))
    search_fields = ("=id", "kind", "handler", "created_by__username")
    date_hierarchy = "created_at"
    list_select_related = ("created_by",)
    ordering = ("-created_at",)
    actions = ("cancel_jobs",)
    fields = (
        "id",
        "kind",
        "handler",
        "params",
        "state",
        "progress_done",
        "progress_total",
        "attempts",
        "max_attempts",
        "parent",
        "children_total",
        "children_pending",
        "on_done",
        "children_finished_at",
        "error",
        "report",
        "created_by",
        "created_at",
        "enqueued_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "updated_at",
    )

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        percent = job.progress_percent
        total = "?" if job.progress_total is None else job.progress_total
        return f"{job.progress_done}/{total}" + ("" if percent is None else f" ({percent}%)")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are created by services (job_submit), never by hand

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = sum(job_cancel(pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Cancelled {cancelled} job(s).", messages.SUCCESS)
