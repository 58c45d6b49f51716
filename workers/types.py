"""What a job handler receives (JobContext) and what a run of a job ends with.

A handler is a plain domain function `handler(ctx: JobContext) -> dict | None`, named
by dotted path in the Job row. It reads `ctx.params`, reports `ctx.progress(...)` as
often as it likes, checks `ctx.should_stop()` between chunks, and returns (or
`ctx.update_report(...)`s) a small JSON report. It must be safe to run twice: a worker
that dies mid-run means the job runs again from the start on another worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.utils import timezone

from workers.models import Job

# Progress is reported as often as a handler likes; the row is written at most once a
# second (a progress bar polls once a second, and a 100k-item loop must not mean 100k
# UPDATEs).
PROGRESS_WRITE_INTERVAL_SECONDS = 1.0


class JobLease:
    """One claimed run of a job: the job id plus the attempt number that claimed it.

    Every write of the run is fenced on (state=running, attempts=attempt): once the job
    is cancelled, or presumed dead and claimed again by another worker, the writes of
    this run change nothing and `lost` is set.
    """

    def __init__(self, job_id: uuid.UUID | str, attempt: int) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.lost = threading.Event()

    def write(self, **fields: Any) -> bool:
        """Update the row if this run still owns it; return whether it did."""
        now = timezone.now()
        fields.setdefault("heartbeat_at", now)
        fields.setdefault("updated_at", now)
        changed = Job.objects.filter(
            pk=self.job_id, state=Job.State.RUNNING, attempts=self.attempt
        ).update(**fields)
        if not changed:
            self.lost.set()
        return bool(changed)

    def beat(self) -> bool:
        return self.write()


class JobContext:
    """The handle a job handler gets: its parameters, progress, report, stop flag."""

    def __init__(
        self, *, job_id: uuid.UUID, kind: str, params: dict[str, Any], lease: JobLease
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self._lease = lease
        self._report: dict[str, Any] = {}
        self._done = 0
        self._total: int | None = None
        self._total_changed = False
        self._last_write = 0.0  # monotonic; 0 so the first progress call is written
        self._reported = False

    @property
    def attempt(self) -> int:
        """1 on the first delivery, 2 after one retry or one lost worker, ..."""
        return self._lease.attempt

    @property
    def done(self) -> int:
        return self._done

    @property
    def total(self) -> int | None:
        return self._total

    def progress(self, done: int, total: int | None = None) -> None:
        """Record progress (and a heartbeat). Cheap: writes the row at most once a second.

        `total=None` keeps the total known so far. Raises django.db errors if the
        database is down (transient: the run is retried).
        """
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"progress must not be negative (done={done}, total={total})")
        self._done = done
        self._reported = True
        if total is not None and total != self._total:
            self._total = total
            self._total_changed = True
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_WRITE_INTERVAL_SECONDS:
            self.flush_progress()

    def flush_progress(self) -> bool:
        """Write the latest progress now; return False if this run lost the job."""
        fields: dict[str, Any] = {"progress_done": self._done}
        if self._total_changed:
            fields["progress_total"] = self._total
        self._last_write = time.monotonic()
        written = self._lease.write(**fields)
        if written:
            self._total_changed = False
        return written

    def progress_fields(self) -> dict[str, Any]:
        """The progress columns to write with the final state (none if never reported)."""
        if not self._reported:
            return {}
        fields: dict[str, Any] = {"progress_done": self._done}
        if self._total_changed:
            fields["progress_total"] = self._total
        return fields

    def set_report(self, report: dict[str, Any]) -> None:
        """Replace the report written when the job finishes (JSON-serialisable)."""
        self._report = dict(report)

    def update_report(self, values: dict[str, Any] | None = None, /, **more: Any) -> None:
        """Merge keys into the report written when the job finishes."""
        self._report.update(values or {}, **more)

    @property
    def report(self) -> dict[str, Any]:
        return dict(self._report)

    def should_stop(self) -> bool:
        """Return True once the job was cancelled or handed to another worker.

        Learnt from the heartbeat and progress writes (within JOB_HEARTBEAT_SECONDS, or
        a second when progress is reported often), so it costs no query. A handler
        should return soon after; nothing it writes to the row counts any more.
        """
        return self._lease.lost.is_set()


Outcome = Literal["skipped", "succeeded", "failed", "retry", "lost"]


@dataclass(frozen=True)
class JobRunResult:
    """How one delivery of a job ended.

    skipped: another delivery owns the job, or it already finished (duplicate message);
    retry: a transient error, the row is queued again and the message must be re-sent
    after `retry_in` seconds; lost: the job was cancelled or reclaimed mid-run.
    """

    job_id: str
    outcome: Outcome
    retry_in: float | None = None
