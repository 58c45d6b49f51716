"""The Job record: the truth about one piece of background work.

A Celery message carries only a job id; everything else (what to run, how far it got,
whether it is alive, how it ended) lives in this row, so the UI and the API read
progress here and the sweeper can recover work whose worker died.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


def _default_max_attempts() -> int:
    return settings.JOB_MAX_ATTEMPTS


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # States a job never leaves.
    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(
        max_length=64, help_text='Short label shown to people, e.g. "datasets.import".'
    )
    handler = models.CharField(
        max_length=255,
        help_text='Dotted path of the domain function that does the work, "pkg.module.func".',
    )
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(null=True, blank=True)
    # Deliveries claimed so far; also the fencing token of the current run: a worker
    # writes only while the row still has the attempt number it claimed.
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=_default_max_attempts)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the current message was (or, for a delayed retry, will be) due at the broker.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sweeper's two scans: stale running jobs, forgotten queued jobs.
            models.Index(fields=["state", "heartbeat_at"], name="job_state_heartbeat_idx"),
            models.Index(fields=["state", "enqueued_at"], name="job_state_enqueued_idx"),
            # "My jobs", newest first.
            models.Index(fields=["created_by", "created_at"], name="job_creator_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="job_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(progress_done__gte=0), name="job_progress_done_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(progress_total__isnull=True) | Q(progress_total__gte=0),
                name="job_progress_total_gte_0",
            ),
            models.CheckConstraint(condition=Q(attempts__gte=0), name="job_attempts_gte_0"),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="job_max_attempts_gte_1"),
            models.CheckConstraint(
                condition=~Q(state="running") | Q(heartbeat_at__isnull=False),
                name="job_running_has_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES

    @property
    def report_items(self) -> list[tuple[str, Any]]:
        """The report's entries for display, without the traceback (staff read it in
        the admin). A list, because a template's `report.items` would look up a report
        key named "items" first."""
        return [(key, value) for key, value in self.report.items() if key != "traceback"]

    @property
    def progress_percent(self) -> float | None:
        """Percent done (0-100, one decimal), or None while the total is unknown."""
        if self.progress_total:
            return round(min(100.0, 100.0 * self.progress_done / self.progress_total), 1)
        if self.state == self.State.SUCCEEDED:
            return 100.0
        return None
