"""Verbs on jobs: submit, claim, run, cancel, sweep.

The Celery message carries only the job id; the row is the truth. A delivery claims the
job with a conditional UPDATE before doing anything, so a duplicate message (a sweeper
re-send, a broker redelivery) is harmless: it finds the job owned or finished and
returns quietly.

Fan-out (JobContext.spawn): children are written while the parent's handler runs but
held (enqueued_at NULL: never sent, invisible to the sweeper) until the handler
returned; the parent then turns "waiting" and its children are sent. Every transition
of a child into a finished state happens in one transaction with a lock on the parent
row (parent before child, always), which decrements the parent's children_pending and
adds the child's final progress; the transaction that brings it to zero turns the
parent into its finishing run (queued, children_finished_at set) and sends it. That run
calls the parent's on_done and writes the final state, so on_done gets the claim,
heartbeat, retry and sweeper guarantees of any run.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.module_loading import import_string

from workers.celery_app import app
from workers.errors import InvalidJobHandler
from workers.models import Job
from workers.selectors import job_children_summaries
from workers.types import JobChildren, JobContext, JobLease, JobRunResult

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

# Child rows written per INSERT by spawn (a 100,000-file import in chunks of 200 is 500
# children: one INSERT).
SPAWN_BATCH = 1000

# A finishing run (on_done) gets at least this many deliveries, even when the handler
# used up max_attempts before it succeeded.
FINISH_MIN_ATTEMPTS = 3


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
    priority: int = Job.Priority.NORMAL,
) -> Job:
    """Create a queued job and send its message once the surrounding transaction commits.

    `handler` is the dotted path of a function taking a JobContext; it is imported now
    so a typo fails here (InvalidJobHandler, a ValueError), not in a worker. `params`
    must be JSON-serialisable. Safe inside a caller's atomic block: if that rolls back,
    no row and no message. If the broker is down at commit, the row stays queued and
    the sweeper sends it after JOB_REQUEUE_AFTER. `priority` (Job.Priority) orders the
    queue on Redis; the job's child jobs inherit it.
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
            priority=priority,
        )
        job_id = job.id
        transaction.on_commit(lambda: _send(job_id, priority=priority), robust=True)
    return job


def _send(job_id: uuid.UUID | str, *, countdown: float | None = None, priority: int = 0) -> None:
    """Publish the job's message: only its id, on the default queue."""
    app.send_task(JOB_RUN_TASK, args=[str(job_id)], countdown=countdown, priority=priority)


def _send_many(job_ids: list[uuid.UUID], *, priority: int = 0) -> int:
    """Publish the jobs' messages over one producer connection; return how many went.

    Stops at the first failure: the rows are queued with enqueued_at set, so the
    sweeper sends the rest after JOB_REQUEUE_AFTER (retrying 500 sends against a dead
    broker would only hold up this worker).
    """
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for job_id in job_ids:
                app.send_task(
                    JOB_RUN_TASK, args=[str(job_id)], producer=producer, priority=priority
                )
                sent += 1
    except Exception:
        logger.exception("sent %s of %s child jobs; the sweeper sends the rest", sent, len(job_ids))
    return sent


# --- fan-out ----------------------------------------------------------------------------


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class _SpawnLost(Exception):
    """The spawning run no longer owns its job: roll the children back."""


def job_spawn(
    *,
    lease: JobLease,
    kind: str,
    handler: str,
    params_list: Iterable[dict[str, Any]],
    totals: Iterable[int] | None = None,
    on_done: str | None = None,
) -> tuple[list[uuid.UUID], int | None]:
    """Create held child jobs of the job `lease` runs; return (ids, sum of totals).

    What JobContext.spawn calls (see there). One transaction: the children are
    inserted in batches of SPAWN_BATCH, then the parent's counters (and on_done) are
    updated fenced on the lease, so a run that lost its job adds nothing (returns
    ([], None) and sets lease.lost). The children are sent when the run ends.
    """
    _resolve_handler(handler)
    if on_done:
        _resolve_handler(on_done)
    parent = Job.objects.values("created_by_id", "priority").filter(pk=lease.job_id).first()
    if parent is None:
        lease.lost.set()
        return [], None
    pairs: Iterable[tuple[dict[str, Any], int | None]]
    if totals is None:
        pairs = ((params, None) for params in params_list)
    else:
        pairs = zip(params_list, totals, strict=True)
    ids: list[uuid.UUID] = []
    totals_sum = 0
    try:
        with transaction.atomic():
            for batch in _batches(pairs, SPAWN_BATCH):
                children = []
                for params, total in batch:
                    if total is not None:
                        if total < 0:
                            raise ValueError(f"a child's total must not be negative: {total}")
                        totals_sum += total
                    children.append(
                        Job(
                            kind=kind,
                            handler=handler,
                            params=params,
                            parent_id=lease.job_id,
                            created_by_id=parent["created_by_id"],
                            priority=parent["priority"],
                            progress_total=total,
                            enqueued_at=None,  # held until the parent's run ends
                        )
                    )
                Job.objects.bulk_create(children)
                ids.extend(child.pk for child in children)
            counters: dict[str, Any] = {
                "children_total": F("children_total") + len(ids),
                "children_pending": F("children_pending") + len(ids),
            }
            if on_done is not None:
                counters["on_done"] = on_done
            if not lease.write(**counters):
                raise _SpawnLost
    except _SpawnLost:
        logger.warning("job %s lost while spawning children; none created", lease.job_id)
        return [], None
    return ids, (None if totals is None else totals_sum)


def _lock(job_id: uuid.UUID | str) -> None:
    """Lock the job's row until the transaction ends (SQLite: the IMMEDIATE transaction
    already holds the database's write lock)."""
    list(Job.objects.select_for_update().filter(pk=job_id).values_list("pk", flat=True))


def _recount_children(job_id: uuid.UUID | str) -> JobChildren:
    """Set the job's children counters from its children's rows (job row locked)."""
    summary = job_children_summaries([job_id]).get(job_id, JobChildren.none())
    Job.objects.filter(pk=job_id).update(
        children_total=summary.total, children_pending=summary.pending
    )
    return summary


def _drop_held_children(job_id: uuid.UUID | str) -> int:
    """Delete the children a run spawned but never sent (it did not reach "waiting").

    Call with the job row locked by this run (its claim or a fenced write), so no other
    run of the job is spawning meanwhile. They never ran: nothing else refers to them.
    """
    deleted, _ = Job.objects.filter(parent_id=job_id, enqueued_at__isnull=True).delete()
    if deleted:
        _recount_children(job_id)
        logger.info("job %s: dropped %s child jobs its earlier run never sent", job_id, deleted)
    return deleted


def _enter_waiting(job: Job, lease: JobLease, ctx: JobContext) -> JobRunResult:
    """End the handler run of a job that spawned children: waiting, children sent."""
    job_key = str(job.pk)
    now = timezone.now()
    total = ctx.spawned_totals if ctx.spawned_totals is not None else ctx.total
    with transaction.atomic():
        if not lease.write(
            state=Job.State.WAITING,
            error="",
            report=ctx.report,
            # From now on the progress is the children's: finished ones add to it.
            progress_done=0,
            progress_total=total,
        ):
            logger.warning("job %s spawned children but was cancelled or reclaimed", job_key)
            return JobRunResult(job_key, "lost")
        held = set(
            Job.objects.filter(
                parent_id=job.pk, enqueued_at__isnull=True, state=Job.State.QUEUED
            ).values_list("pk", flat=True)
        )
        Job.objects.filter(parent_id=job.pk, enqueued_at__isnull=True).update(
            enqueued_at=now, updated_at=now
        )
        pending = Job.objects.values_list("children_pending", flat=True).get(pk=job.pk)
        if pending == 0:  # spawned no chunk (an empty import), or all were cancelled
            _start_finishing(job.pk, now)
        to_send = [child for child in ctx.spawned if child in held]
        priority = job.priority
        transaction.on_commit(lambda: _send_many(to_send, priority=priority), robust=True)
    logger.info("job %s waits for %s child jobs", job_key, len(to_send))
    return JobRunResult(job_key, "waiting")


def _start_finishing(parent_id: uuid.UUID | str, now: datetime) -> bool:
    """Turn a waiting parent with no pending children into its finishing run, queued;
    send it after commit. Call with the parent row locked."""
    started = Job.objects.filter(pk=parent_id, state=Job.State.WAITING).update(
        state=Job.State.QUEUED,
        children_finished_at=now,
        enqueued_at=now,
        updated_at=now,
        max_attempts=Greatest(F("max_attempts"), F("attempts") + FINISH_MIN_ATTEMPTS),
    )
    if started:
        transaction.on_commit(lambda: _send_logged(parent_id), robust=True)
    return bool(started)


def _child_finished(parent_id: uuid.UUID | str, child_id: uuid.UUID | str, now: datetime) -> None:
    """Count a child that just reached a finished state into its parent.

    Call in the transaction that finished the child, with the parent row locked first:
    decrements are serialised, so exactly one transaction sees the count reach zero.
    """
    done = Job.objects.values_list("progress_done", flat=True).get(pk=child_id)
    Job.objects.filter(pk=parent_id).update(
        # Never below zero, even if a child row was deleted by hand; the sweeper
        # recounts a parent whose count and children disagree.
        children_pending=Greatest(F("children_pending") - 1, Value(0)),
        progress_done=F("progress_done") + done,
        updated_at=now,
    )
    state, pending = Job.objects.values_list("state", "children_pending").get(pk=parent_id)
    if state == Job.State.WAITING and pending == 0:
        _start_finishing(parent_id, now)


def _write_finished(
    job_id: uuid.UUID | str,
    parent_id: uuid.UUID | None,
    fence: Q,
    fields: dict[str, Any],
    *,
    drop_held: bool = False,
) -> bool:
    """Move a job to a finished state if it still matches `fence`; return whether it
    did. A child is counted into its parent in the same transaction (parent locked
    first). With drop_held, children its run never sent are deleted too."""
    now = timezone.now()
    fields = {"finished_at": now, "updated_at": now, **fields}
    with transaction.atomic():
        if parent_id is not None:
            _lock(parent_id)
        changed = Job.objects.filter(fence, pk=job_id).update(**fields)
        if changed and drop_held:
            _drop_held_children(job_id)
        if changed and parent_id is not None:
            _child_finished(parent_id, job_id, now)
    return bool(changed)


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
                # A finishing run keeps the time the job itself started.
                started_at=Case(
                    When(
                        children_finished_at__isnull=False,
                        started_at__isnull=False,
                        then=F("started_at"),
                    ),
                    default=Value(now),
                ),
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


def _finish(lease: JobLease, *, drop_held: bool = False, **fields: Any) -> bool:
    """Write the run's final state, fenced on its lease; count a child into its parent."""
    written = _write_finished(
        lease.job_id,
        lease.parent_id,
        Q(state=Job.State.RUNNING, attempts=lease.attempt),
        {"heartbeat_at": timezone.now(), **fields},
        drop_held=drop_held,
    )
    if not written:
        lease.lost.set()
    return written


def job_run(job_id: uuid.UUID | str) -> JobRunResult:
    """Run one delivery of a job: claim it, call its handler, record how it ended.

    Returns quietly (outcome "skipped") when the job is not claimable: already running
    elsewhere, waiting for its children, finished, cancelled, or deleted. A job claimed
    more than max_attempts times (its runs keep dying) is failed as a poison job. On
    success the report, state and finished_at are written last, in one UPDATE, after
    the handler's own outputs. A handler that spawned children leaves the job
    "waiting" (outcome "waiting") and its children are sent after commit. A job whose
    children all finished runs its finishing run instead of its handler (on_done).
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
    lease = JobLease(job.pk, attempt, parent_id=job.parent_id)
    if job.children_total and job.children_finished_at is None:
        # An earlier run spawned children and died before sending them: this run plans
        # again. Safe: our claim bumped the attempt, so that run can add no more.
        with transaction.atomic():
            _lock(job.pk)
            _drop_held_children(job.pk)
    if attempt > job.max_attempts:
        reason = job.error or "each run died without finishing"
        _finish(
            lease,
            state=Job.State.FAILED,
            error=f"gave up after {attempt - 1} deliveries: {reason}"[:ERROR_MAX_CHARS],
        )
        logger.error("job %s is a poison job: gave up after %s deliveries", job_key, attempt - 1)
        return JobRunResult(job_key, "failed")

    if job.children_finished_at is not None:
        return _run_finishing(job, lease)

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
    if ctx.has_spawned:
        return _enter_waiting(job, lease, ctx)
    if not _finish(
        lease, state=Job.State.SUCCEEDED, error="", report=ctx.report, **ctx.progress_fields()
    ):
        logger.warning("job %s finished but was cancelled or reclaimed meanwhile", job_key)
        return JobRunResult(job_key, "lost")
    logger.info("job %s succeeded on attempt %s", job_key, attempt)
    return JobRunResult(job_key, "succeeded")


def _children_failure(job_id: uuid.UUID, children: JobChildren) -> str:
    """'k of n chunks failed: <first error>', or "" when every child succeeded."""
    failed = children.failed + children.cancelled
    if not failed:
        return ""
    first = (
        Job.objects.filter(parent_id=job_id, state=Job.State.FAILED)
        .order_by("finished_at", "pk")
        .values_list("error", flat=True)
        .first()
    )
    return f"{failed} of {children.total} chunks failed: {first or 'cancelled'}"[:ERROR_MAX_CHARS]


def _run_finishing(job: Job, lease: JobLease) -> JobRunResult:
    """The finishing run of a parent: call on_done, then end the job by its children.

    Succeeded if every child succeeded, else failed with "k of n chunks failed: ...".
    on_done's errors are handled like a handler's (transient: retried; else the job
    fails with on_done's error); the children are not run again.
    """
    job_key = str(job.pk)
    children = job_children_summaries([job.pk]).get(job.pk, JobChildren.none())
    ctx = JobContext(
        job_id=job.pk, kind=job.kind, params=job.params, lease=lease, children=children
    )
    ctx.set_report(job.report)  # what the handler returned; on_done may add to it
    if job.on_done:
        heartbeat = _Heartbeat(lease, settings.JOB_HEARTBEAT_SECONDS)
        heartbeat.start()
        try:
            on_done = _resolve_handler(job.on_done)
            logger.info(
                "job %s attempt %s: children done, running %s", job_key, lease.attempt, job.on_done
            )
            returned = on_done(ctx)
        except Exception as exc:
            heartbeat.stop()
            return _record_error(job, lease, ctx, exc)
        finally:
            heartbeat.stop()
        if isinstance(returned, dict):
            ctx.update_report(returned)

    error = _children_failure(job.pk, children)
    fields: dict[str, Any] = {"report": ctx.report, **ctx.progress_fields()}
    if "progress_total" not in fields and children.totals_sum is not None and children.total:
        fields["progress_total"] = children.totals_sum
    state = Job.State.FAILED if error else Job.State.SUCCEEDED
    if not _finish(lease, state=state, error=error, **fields):
        logger.warning("job %s finished its children but was cancelled meanwhile", job_key)
        return JobRunResult(job_key, "lost")
    log = logger.error if error else logger.info
    log(
        "job %s %s: %s of %s children succeeded", job_key, state, children.succeeded, children.total
    )
    return JobRunResult(job_key, "failed" if error else "succeeded")


def _record_error(job: Job, lease: JobLease, ctx: JobContext, exc: Exception) -> JobRunResult:
    job_key = str(job.pk)
    error = _one_line(exc)
    # Children this run spawned but never sent: a retry plans again, a failure has none.
    drop_held = ctx.has_spawned
    if is_transient(exc) and lease.attempt < job.max_attempts:
        delay = job_retry_delay(lease.attempt)
        with transaction.atomic():
            requeued = lease.write(
                state=Job.State.QUEUED,
                error=error,
                # When the retry message is due, so the sweeper's "queued too long" clock
                # starts then, not now.
                enqueued_at=timezone.now() + timedelta(seconds=delay),
                **ctx.progress_fields(),
            )
            if requeued and drop_held:
                _drop_held_children(job.pk)
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
        lease,
        state=Job.State.FAILED,
        error=error,
        report=report,
        drop_held=drop_held,
        **ctx.progress_fields(),
    ):
        return JobRunResult(job_key, "lost")
    return JobRunResult(job_key, "failed")


# --- cancel -----------------------------------------------------------------------------


def job_cancel(job_id: uuid.UUID | str) -> bool:
    """Cancel a queued, running or waiting job and its unfinished descendants; return
    whether the job was cancelled now.

    A running handler (the job's or a child's) sees `ctx.should_stop()` turn True at
    its next heartbeat or progress write, and nothing it writes to the row counts any
    more. Finished jobs are left alone (returns False). A cancelled child counts as a
    failed chunk of its parent. One transaction.
    """
    parent_id = Job.objects.filter(pk=job_id).values_list("parent_id", flat=True).first()
    now = timezone.now()
    with transaction.atomic():
        if parent_id is not None:
            _lock(parent_id)  # parent before child, as every finishing write does
        cancelled = Job.objects.filter(pk=job_id, state__in=Job.ACTIVE_STATES).update(
            state=Job.State.CANCELLED, finished_at=now, updated_at=now
        )
        if not cancelled:
            return False
        _cancel_descendants(job_id, now)
        if parent_id is not None:
            _child_finished(parent_id, job_id, now)
    return True


def _cancel_descendants(job_id: uuid.UUID | str, now: datetime) -> int:
    """Cancel the unfinished children of a just-cancelled job, level by level."""
    cancelled = 0
    level: list[Any] = [job_id]
    while level:
        nested = list(
            Job.objects.filter(
                parent_id__in=level, state__in=Job.ACTIVE_STATES, children_total__gt=0
            ).values_list("pk", flat=True)
        )
        cancelled += Job.objects.filter(parent_id__in=level, state__in=Job.ACTIVE_STATES).update(
            state=Job.State.CANCELLED, finished_at=now, updated_at=now
        )
        # Every child of these jobs is finished now.
        Job.objects.filter(pk__in=level).update(children_pending=0)
        level = nested
    if cancelled:
        logger.info("job %s cancelled with %s unfinished descendants", job_id, cancelled)
    return cancelled


# --- sweep ------------------------------------------------------------------------------


def _send_logged(job_id: uuid.UUID) -> bool:
    try:
        priority = Job.objects.filter(pk=job_id).values_list("priority", flat=True).first()
        _send(job_id, priority=priority or Job.Priority.NORMAL)
    except Exception:
        # The row is queued with a fresh enqueued_at: the next sweep after
        # JOB_REQUEUE_AFTER sends it again. One bad send must not stop the sweep.
        logger.exception("could not send job %s to the broker", job_id)
        return False
    return True


def jobs_sweep() -> dict[str, int]:
    """Recover jobs whose worker died or whose message was lost; return counts.

    - running, heartbeat older than JOB_STALE_AFTER: back to queued and sent again
      ("requeued"), or failed if it already used max_attempts deliveries ("failed"; a
      child failed so counts into its parent);
    - queued, enqueued_at older than JOB_REQUEUE_AFTER (message lost, e.g. a Redis
      restart): sent again ("resent"). Children held by a running parent have no
      enqueued_at and are left alone;
    - waiting with no unfinished children (its count reached zero but the finishing
      run was never queued, or a child row was deleted by hand): its finishing run is
      queued and sent ("finishing"). Waiting jobs have no heartbeat to go stale: they
      are never re-enqueued for it.
    Each row changes by a conditional UPDATE before its message is sent, so sweeps may
    overlap; an extra message is harmless because claims are conditional. Call it
    outside a transaction (the beat task does).
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_STALE_AFTER)
    lost_before = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    counts = {"requeued": 0, "resent": 0, "failed": 0, "finishing": 0, "send_errors": 0}

    stale = (
        Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=stale_before)
        .order_by("heartbeat_at")
        .values_list(
            "pk", "attempts", "max_attempts", "heartbeat_at", "parent_id", "children_total"
        )[:SWEEP_BATCH]
    )
    for job_id, attempts, max_attempts, heartbeat_at, parent_id, children_total in stale:
        same_run = Q(state=Job.State.RUNNING, attempts=attempts, heartbeat_at__lt=stale_before)
        lost = f"worker lost (no heartbeat since {heartbeat_at.isoformat()})"
        if attempts >= max_attempts:
            if _write_finished(
                job_id,
                parent_id,
                same_run,
                {
                    "state": Job.State.FAILED,
                    "error": f"gave up after {attempts} deliveries: {lost}",
                },
                drop_held=bool(children_total),
            ):
                counts["failed"] += 1
                logger.error("job %s failed: gave up after %s deliveries", job_id, attempts)
        elif Job.objects.filter(same_run, pk=job_id).update(
            state=Job.State.QUEUED, error=lost, enqueued_at=now, updated_at=now
        ):
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

    # Waiting parents whose count says done, and those no child finished for a while
    # (a cheap EXISTS on the (parent, state) index tells if they are really still busy).
    waiting = (
        Job.objects.filter(state=Job.State.WAITING)
        .filter(Q(children_pending=0) | Q(updated_at__lt=stale_before))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for job_id in waiting:
        if Job.objects.filter(parent_id=job_id, state__in=Job.ACTIVE_STATES).exists():
            continue
        if _finish_orphan(job_id, now):
            counts["finishing"] += 1
    return counts


def _finish_orphan(job_id: uuid.UUID, now: datetime) -> bool:
    """Queue the finishing run of a waiting job whose children all finished."""
    with transaction.atomic():
        _lock(job_id)
        if not Job.objects.filter(pk=job_id, state=Job.State.WAITING).exists():
            return False  # finished or cancelled meanwhile
        summary = _recount_children(job_id)
        if summary.pending:
            return False
        if not _start_finishing(job_id, now):
            return False
    logger.warning("job %s waited with no unfinished children; finishing it", job_id)
    return True
