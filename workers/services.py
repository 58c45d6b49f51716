"""Verbs on jobs: submit, claim, run, cancel, sweep.

The Celery message carries only the job id; the row is the truth. A delivery claims the
job with a conditional UPDATE before doing anything, so a duplicate message (a sweeper
re-send, a broker redelivery) is harmless: it finds the job owned or finished and
returns quietly.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from workers.celery_app import app
from workers.errors import InvalidJobHandler
from workers.models import Job
from workers.types import JobContext, JobLease, JobRunResult

logger = logging.getLogger(__name__)

JOB_RUN_TASK = "workers.job_run"
JOBS_SWEEP_TASK = "workers.jobs_sweep"

# Errors worth retrying: the object store, the broker or the database is briefly away.
# storage.errors.StorageUnavailable is a ConnectionError; socket timeouts are
# TimeoutError. Everything else is a bug or bad input, and retrying would not help.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OperationalError,
    InterfaceError,
)

# Retry delays: 2 s, 4 s, 8 s ... capped at 5 min, each scaled into [50 %, 100 %] so
# jobs failing together do not come back together. Overridable by settings.
RETRY_BACKOFF_SECONDS = 2.0
RETRY_BACKOFF_MAX_SECONDS = 300.0

# Rows the sweeper looks at per scan; the next sweep (JOB_SWEEP_INTERVAL) takes the rest.
SWEEP_BATCH = 500

ERROR_MAX_CHARS = 1000


# --- submit -----------------------------------------------------------------------------


def _resolve_handler(handler: str) -> Callable[[JobContext], Any]:
    try:
        func = import_string(handler)
    except ImportError as exc:
        raise InvalidJobHandler(
            f"job handler {handler!r} is not an importable 'package.module.function' path: {exc}"
        ) from exc
    if not callable(func):
        raise InvalidJobHandler(f"job handler {handler!r} is not callable")
    return func


def job_submit(
    *,
    kind: str,
    handler: str,
    params: dict[str, Any] | None = None,
    created_by: Any = None,
    total: int | None = None,
) -> Job:
    """Create a queued job and send its message once the surrounding transaction commits.

    `handler` is the dotted path of a function taking a JobContext; it is imported now
    so a typo fails here (InvalidJobHandler, a ValueError), not in a worker. `params`
    must be JSON-serialisable. Safe inside a caller's atomic block: if that rolls back,
    no row and no message. If the broker is down at commit, the row stays queued and
    the sweeper sends it after JOB_REQUEUE_AFTER.
    """
    _resolve_handler(handler)
    if created_by is not None and not getattr(created_by, "is_authenticated", False):
        created_by = None  # an anonymous request user owns nothing
    if total is not None and total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            handler=handler,
            params=params or {},
            created_by=created_by,
            progress_total=total,
            enqueued_at=timezone.now(),
        )
        job_id = job.id
        transaction.on_commit(lambda: _send(job_id), robust=True)
    return job


def _send(job_id: uuid.UUID | str, *, countdown: float | None = None) -> None:
    """Publish the job's message: only its id, on the default queue."""
    app.send_task(JOB_RUN_TASK, args=[str(job_id)], countdown=countdown)


# --- claim and run ----------------------------------------------------------------------


def _claim(job_id: uuid.UUID | str) -> int | None:
    """Take the job for this delivery; return the attempt number, or None if not ours."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_STALE_AFTER)
    # One transaction: the UPDATE locks the row, so the attempt number read back is the
    # one this UPDATE wrote (a concurrent claim waits, then finds the heartbeat fresh).
    with transaction.atomic():
        claimed = (
            Job.objects.filter(pk=job_id)
            .filter(
                Q(state=Job.State.QUEUED)
                | Q(state=Job.State.RUNNING, heartbeat_at__lt=stale_before)
            )
            .update(
                state=Job.State.RUNNING,
                attempts=F("attempts") + 1,
                heartbeat_at=now,
                started_at=now,
                updated_at=now,
            )
        )
        if not claimed:
            return None
        return Job.objects.filter(pk=job_id).values_list("attempts", flat=True).get()


def job_claim(job_id: uuid.UUID | str) -> bool:
    """Claim a job by conditional UPDATE; return whether this caller got it.

    Wins when the job is queued, or running with a heartbeat older than
    JOB_STALE_AFTER (its worker is presumed dead). Increments `attempts`. Of two
    concurrent claims exactly one wins.
    """
    return _claim(job_id) is not None


def job_retry_delay(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential, jittered."""
    base = float(getattr(settings, "JOB_RETRY_BACKOFF_SECONDS", RETRY_BACKOFF_SECONDS))
    cap = float(getattr(settings, "JOB_RETRY_BACKOFF_MAX_SECONDS", RETRY_BACKOFF_MAX_SECONDS))
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:ERROR_MAX_CHARS]


class _Heartbeat(threading.Thread):
    """Beat heartbeat_at every JOB_HEARTBEAT_SECONDS while the handler runs.

    Runs on its own database connection (Django connections are per thread) and closes
    it when stopped, so a long handler that never reports progress still looks alive.
    """

    def __init__(self, lease: JobLease, interval: float) -> None:
        super().__init__(name=f"job-heartbeat-{lease.job_id}", daemon=True)
        self.lease = lease
        self.interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    if not self.lease.beat():
                        return  # cancelled or reclaimed: nothing left to keep alive
                except DatabaseError:
                    # The database blinked; the next beat tries again. Staying silent
                    # longer than JOB_STALE_AFTER lets the sweeper recover the job.
                    logger.warning("heartbeat of job %s failed", self.lease.job_id, exc_info=True)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join()


def _finish(lease: JobLease, **fields: Any) -> bool:
    now = timezone.now()
    fields.setdefault("finished_at", now)
    return lease.write(heartbeat_at=now, updated_at=now, **fields)


def job_run(job_id: uuid.UUID | str) -> JobRunResult:
    """Run one delivery of a job: claim it, call its handler, record how it ended.

    Returns quietly (outcome "skipped") when the job is not claimable: already running
    elsewhere, finished, cancelled, or deleted. A job claimed more than max_attempts
    times (its runs keep dying) is failed as a poison job. On success the report, state
    and finished_at are written last, in one UPDATE, after the handler's own outputs.
    A transient error (TRANSIENT_ERRORS) puts the job back to queued and returns
    outcome "retry" with a backoff delay; the caller re-sends the message. Any other
    exception fails the job with a one-line error and the traceback in
    report["traceback"]. Writes are fenced on the attempt number, so a run that lost
    the job (cancelled, or reclaimed after a stale heartbeat) changes nothing.
    """
    job_key = str(job_id)
    attempt = _claim(job_id)
    if attempt is None:
        logger.info("job %s not claimable (owned elsewhere, finished or gone); skipping", job_key)
        return JobRunResult(job_key, "skipped")

    job = Job.objects.get(pk=job_id)
    lease = JobLease(job.pk, attempt)
    if attempt > job.max_attempts:
        reason = job.error or "each run died without finishing"
        _finish(
            lease,
            state=Job.State.FAILED,
            error=f"gave up after {attempt - 1} deliveries: {reason}"[:ERROR_MAX_CHARS],
        )
        logger.error("job %s is a poison job: gave up after %s deliveries", job_key, attempt - 1)
        return JobRunResult(job_key, "failed")

    ctx = JobContext(job_id=job.pk, kind=job.kind, params=job.params, lease=lease)
    heartbeat = _Heartbeat(lease, settings.JOB_HEARTBEAT_SECONDS)
    heartbeat.start()
    try:
        handler = _resolve_handler(job.handler)
        logger.info("job %s (%s) attempt %s: running %s", job_key, job.kind, attempt, job.handler)
        returned = handler(ctx)
    except Exception as exc:
        heartbeat.stop()
        return _record_error(job, lease, ctx, exc)
    finally:
        heartbeat.stop()

    if isinstance(returned, dict):
        ctx.update_report(returned)
    if not _finish(
        lease, state=Job.State.SUCCEEDED, error="", report=ctx.report, **ctx.progress_fields()
    ):
        logger.warning("job %s finished but was cancelled or reclaimed meanwhile", job_key)
        return JobRunResult(job_key, "lost")
    logger.info("job %s succeeded on attempt %s", job_key, attempt)
    return JobRunResult(job_key, "succeeded")


def _record_error(job: Job, lease: JobLease, ctx: JobContext, exc: Exception) -> JobRunResult:
    job_key = str(job.pk)
    error = _one_line(exc)
    if is_transient(exc) and lease.attempt < job.max_attempts:
        delay = job_retry_delay(lease.attempt)
        requeued = lease.write(
            state=Job.State.QUEUED,
            error=error,
            # When the retry message is due, so the sweeper's "queued too long" clock
            # starts then, not now.
            enqueued_at=timezone.now() + timedelta(seconds=delay),
            **ctx.progress_fields(),
        )
        if not requeued:
            return JobRunResult(job_key, "lost")
        logger.warning(
            "job %s attempt %s hit a transient error, retrying in %.1fs: %s",
            job_key,
            lease.attempt,
            delay,
            error,
        )
        return JobRunResult(job_key, "retry", retry_in=delay)

    if is_transient(exc):
        error = f"gave up after {lease.attempt} attempts: {error}"[:ERROR_MAX_CHARS]
    report = ctx.report
    report["traceback"] = "".join(traceback.format_exception(exc))[-20000:]
    logger.error("job %s failed on attempt %s: %s", job_key, lease.attempt, error)
    if not _finish(
        lease, state=Job.State.FAILED, error=error, report=report, **ctx.progress_fields()
    ):
        return JobRunResult(job_key, "lost")
    return JobRunResult(job_key, "failed")


# --- cancel -----------------------------------------------------------------------------


def job_cancel(job_id: uuid.UUID | str) -> bool:
    """Cancel a queued or running job; return whether it was cancelled now.

    A running handler sees `ctx.should_stop()` turn True at its next heartbeat or
    progress write, and nothing it writes to the row counts any more. Finished jobs
    are left alone (returns False).
    """
    now = timezone.now()
    return bool(
        Job.objects.filter(pk=job_id, state__in=[Job.State.QUEUED, Job.State.RUNNING]).update(
            state=Job.State.CANCELLED, finished_at=now, updated_at=now
        )
    )


# --- sweep ------------------------------------------------------------------------------


def _send_logged(job_id: uuid.UUID) -> bool:
    try:
        _send(job_id)
    except Exception:
        # The row is queued with a fresh enqueued_at: the next sweep after
        # JOB_REQUEUE_AFTER sends it again. One bad send must not stop the sweep.
        logger.exception("could not send job %s to the broker", job_id)
        return False
    return True


def jobs_sweep() -> dict[str, int]:
    """Recover jobs whose worker died or whose message was lost; return counts.

    - running, heartbeat older than JOB_STALE_AFTER: back to queued and sent again
      ("requeued"), or failed if it already used max_attempts deliveries ("failed");
    - queued, enqueued_at older than JOB_REQUEUE_AFTER (message lost, e.g. a Redis
      restart): sent again ("resent").
    Each row changes by a conditional UPDATE before its message is sent, so sweeps may
    overlap; an extra message is harmless because claims are conditional. Call it
    outside a transaction (the beat task does).
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_STALE_AFTER)
    lost_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    counts = {"requeued": 0, "resent": 0, "failed": 0, "send_errors": 0}

    stale = (
        Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=stale_before)
        .order_by("heartbeat_at")
        .values_list("pk", "attempts", "max_attempts", "heartbeat_at")[:SWEEP_BATCH]
    )
    for job_id, attempts, max_attempts, heartbeat_at in stale:
        same_run = Job.objects.filter(
            pk=job_id, state=Job.State.RUNNING, attempts=attempts, heartbeat_at__lt=stale_before
        )
        lost = f"worker lost (no heartbeat since {heartbeat_at.isoformat()})"
        if attempts >= max_attempts:
            if same_run.update(
                state=Job.State.FAILED,
                error=f"gave up after {attempts} deliveries: {lost}",
                finished_at=now,
                updated_at=now,
            ):
                counts["failed"] += 1
                logger.error("job %s failed: gave up after %s deliveries", job_id, attempts)
        elif same_run.update(state=Job.State.QUEUED, error=lost, enqueued_at=now, updated_at=now):
            counts["requeued"] += 1
            logger.warning("job %s: %s; re-enqueued", job_id, lost)
            if not _send_logged(job_id):
                counts["send_errors"] += 1

    forgotten = (
        Job.objects.filter(state=Job.State.QUEUED, enqueued_at__lt=lost_before)
        .order_by("enqueued_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for job_id in forgotten:
        if Job.objects.filter(
            pk=job_id, state=Job.State.QUEUED, enqueued_at__lt=lost_before
        ).update(enqueued_at=now, updated_at=now):
            counts["resent"] += 1
            logger.warning("job %s queued too long; message sent again", job_id)
            if not _send_logged(job_id):
                counts["send_errors"] += 1
    return counts
