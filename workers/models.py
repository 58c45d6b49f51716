"""The Job record: the truth about one piece of background work.

A Celery message carries only a job id; everything else (what to run, how far it got,
whether it is alive, how it ended) lives in this row, so the UI and the API read
progress here and the sweeper can recover work whose worker died.

Big work fans out: a job's handler spawns child jobs (chunks) and the parent waits
(state WAITING) until they all finished; then one finishing run of the parent calls its
`on_done` handler and ends it. The UI and the API show the parent: its progress is the
sum of its children's.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

if TYPE_CHECKING:
    from workers.types import JobChildren


def _default_max_attempts() -> int:
    return settings.JOB_MAX_ATTEMPTS


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        # The handler returned after spawning child jobs; the job waits for them.
        WAITING = "waiting", "Waiting for its child jobs"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Priority(models.IntegerChoices):
        # Redis serves a queue's lower numbers first (kombu's priority steps 0, 3, 6, 9);
        # the embedded SQLAlchemy broker ignores priorities.
        NORMAL = 0, "Normal"
        # Work nobody waits on (thumbnails): runs when no normal job is queued.
        BACKGROUND = 9, "Background"

    # States a job never leaves.
    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    # States a job can be cancelled in.
    ACTIVE_STATES = (State.QUEUED, State.RUNNING, State.WAITING)

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
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
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
    # Fan-out. A child is created by its parent's run (JobContext.spawn) and is held
    # (enqueued_at NULL, never sent, invisible to the sweeper) until that run ends.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        db_index=False,  # job_parent_state_idx leads with parent
    )
    # Counters kept under a lock on this row: every child reaching a finished state
    # decrements children_pending in the same transaction; the one reaching zero starts
    # the finishing run.
    children_total = models.PositiveIntegerField(default=0)
    children_pending = models.PositiveIntegerField(default=0)
    on_done = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Dotted path of the function called once all child jobs finished.",
    )
    # Set when the last child finished: from then on a run of this job is its finishing
    # run (on_done, then the final state), never its handler again.
    children_finished_at = models.DateTimeField(null=True, blank=True)
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
            # A parent's children by state: the finishing rule, the progress aggregate.
            models.Index(fields=["parent", "state"], name="job_parent_state_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    state__in=["queued", "running", "waiting", "succeeded", "failed", "cancelled"]
                ),
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
            models.CheckConstraint(
                condition=Q(children_pending__lte=F("children_total")),
                name="job_children_pending_lte_total",
            ),
        ]

    # Attached by workers.selectors to a job they return: its children's counts and live
    # progress (one aggregate query). None on a job loaded some other way.
    children_summary: JobChildren | None = None

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
    def is_finishing(self) -> bool:
        """All child jobs finished; the finishing run (on_done) is queued or running."""
        return self.children_finished_at is not None and not self.is_finished

    @property
    def live_done(self) -> int:
        """Items done: for a waiting parent, its finished children's final counts (the
        stored progress_done) plus what its unfinished children report now."""
        summary = self.children_summary
        if summary is not None and self.state == self.State.WAITING:
            return self.progress_done + summary.unfinished_done
        return self.progress_done

    @property
    def live_total(self) -> int | None:
        """Items to do: for a waiting parent, the sum of its children's totals once each
        child has one, else the total the parent set (or None: unknown)."""
        summary = self.children_summary
        if (
            summary is not None
            and self.state == self.State.WAITING
            and summary.totals_sum is not None
        ):
            return summary.totals_sum
        return self.progress_total

    @property
    def progress_percent(self) -> float | None:
        """Percent done (0-100, one decimal), or None while the total is unknown."""
        done, total = self.live_done, self.live_total
        if total:
            return round(min(100.0, 100.0 * done / total), 1)
        if self.state == self.State.SUCCEEDED:
            return 100.0
        return None
