"""What a job handler receives (JobContext) and what a run of a job ends with.

A handler is a plain domain function `handler(ctx: JobContext) -> dict | None`, named
by dotted path in the Job row. It reads `ctx.params`, reports `ctx.progress(...)` as
often as it likes, checks `ctx.should_stop()` between chunks, and returns (or
`ctx.update_report(...)`s) a small JSON report. It must be safe to run twice: a worker
that dies mid-run means the job runs again from the start on another worker.

Fan-out: a handler with big work calls `ctx.spawn(...)` with one params dict per chunk;
when it returns, the job waits (state "waiting") while workers run the chunks as child
jobs, and once the last one finished, a finishing run calls the `on_done` handler given
to spawn with a JobContext whose `children` tells how the chunks ended.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
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

    def __init__(
        self, job_id: uuid.UUID | str, attempt: int, *, parent_id: uuid.UUID | None = None
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        # Set for a child job: its finishing write also counts it into the parent.
        self.parent_id = parent_id
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


@dataclass(frozen=True)
class JobChildren:
    """How a parent job's child jobs stand (one aggregate query, workers.selectors)."""

    total: int
    pending: int  # queued or running (or waiting for children of their own)
    succeeded: int
    failed: int
    cancelled: int
    # Progress reported so far by the children still pending (finished children's final
    # counts are already added to the parent's progress_done).
    unfinished_done: int = 0
    # Sum of the children's progress totals, None while any child's total is unknown.
    totals_sum: int | None = None

    @classmethod
    def none(cls) -> JobChildren:
        return cls(total=0, pending=0, succeeded=0, failed=0, cancelled=0)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "pending": self.pending,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
        }


class JobContext:
    """The handle a job handler gets: its parameters, progress, report, stop flag, and
    `spawn` to fan out. In an on_done handler, `children` says how the chunks ended."""

    def __init__(
        self,
        *,
        job_id: uuid.UUID,
        kind: str,
        params: dict[str, Any],
        lease: JobLease,
        children: JobChildren | None = None,
    ) -> None:
        self.job_id = job_id
        self.kind = kind
        self.params = params
        self._lease = lease
        # Only in the finishing run (on_done) of a parent: how its children ended.
        self.children = children
        self._spawned: list[uuid.UUID] = []
        self._spawn_called = False
        self._spawn_totals: int | None = 0  # None once a spawned child has no total
        self._report: dict[str, Any] = {}
        self._done = 0
        self._total: int | None = None
        self._total_changed = False
        self._last_write = 0.0  # monotonic; 0 so the first progress call is written
        self._reported = False

    @property
    def parent_id(self) -> uuid.UUID | None:
        """The parent job's id when this job is a chunk spawned by another job."""
        return self._lease.parent_id

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

    # --- fan-out --------------------------------------------------------------------------

    def spawn(
        self,
        *,
        kind: str,
        handler: str,
        params_list: Iterable[dict[str, Any]],
        totals: Iterable[int] | None = None,
        on_done: str | None = None,
    ) -> list[uuid.UUID]:
        """Create one child job per params dict; return their ids, in order.

        The children run once this handler returned: the job then waits (state
        "waiting") instead of succeeding, its report is what the handler returned, and
        the children are sent to the workers. `totals` gives each child's progress total
        (same order as params_list), so the parent's bar is right from the start; the
        parent's progress is the sum of its children's. When the last child finished,
        one finishing run calls `on_done` (dotted path of `func(ctx: JobContext)`, with
        the parent's params and report and `ctx.children`), then ends the job: failed
        if any child failed or was cancelled ("k of n chunks failed: <first error>"),
        else succeeded. on_done must be idempotent (a worker dying during it means it
        runs again); its returned dict is merged into the report.

        May be called several times in one run (children add up). Rows are written in
        batches of 1000 in one transaction, children inherit created_by; a run that
        does not reach "waiting" (it failed, retries, or its worker died) leaves no
        children behind: a re-run spawns its plan again. Returns [] (and should_stop()
        turns True) when this run no longer owns the job. Raises InvalidJobHandler for
        a handler or on_done that does not import, ValueError if totals and
        params_list differ in length.
        """
        if self.children is not None:
            raise RuntimeError("spawn is for a job's handler, not for its on_done")
        from workers.services import job_spawn  # services import this module

        ids, totals_sum = job_spawn(
            lease=self._lease,
            kind=kind,
            handler=handler,
            params_list=params_list,
            totals=totals,
            on_done=on_done,
        )
        if self._lease.lost.is_set():
            return []
        self._spawn_called = True
        self._spawned.extend(ids)
        if totals_sum is None:
            if ids:
                self._spawn_totals = None
        elif self._spawn_totals is not None:
            self._spawn_totals += totals_sum
        return ids

    @property
    def spawned_totals(self) -> int | None:
        """Sum of the totals given to spawn, None if some child was spawned without one."""
        return self._spawn_totals

    @property
    def spawned(self) -> list[uuid.UUID]:
        """Ids of the children spawned by this run so far."""
        return list(self._spawned)

    @property
    def has_spawned(self) -> bool:
        """Whether this run called spawn (even with no chunks): the job then waits."""
        return self._spawn_called

    def should_stop(self) -> bool:
        """Return True once the job was cancelled or handed to another worker.

        Learnt from the heartbeat and progress writes (within JOB_HEARTBEAT_SECONDS, or
        a second when progress is reported often), so it costs no query. A handler
        should return soon after; nothing it writes to the row counts any more.
        """
        return self._lease.lost.is_set()


Outcome = Literal["skipped", "succeeded", "failed", "retry", "lost", "waiting"]


@dataclass(frozen=True)
class JobRunResult:
    """How one delivery of a job ended.

    skipped: another delivery owns the job, or it already finished (duplicate message);
    retry: a transient error, the row is queued again and the message must be re-sent
    after `retry_in` seconds; lost: the job was cancelled or reclaimed mid-run;
    waiting: the handler spawned child jobs, the job now waits for them.
    """

    job_id: str
    outcome: Outcome
    retry_in: float | None = None
