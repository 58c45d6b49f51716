"""Celery tasks (the word "task" alone means labeling.Task): thin shells over services.

The message carries only the job id. Late acks and reject-on-worker-lost keep a message
until its run ended; what a redelivery or a duplicate may do is decided by the
conditional claim in services.job_run, not here. Retries happen only for transient
errors, with backoff, never `autoretry_for=(Exception,)`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from workers import services
from workers.celery_app import app


@app.task(
    name=services.JOB_RUN_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The Job row counts deliveries and caps them (attempts / max_attempts).
    max_retries=None,
    ignore_result=True,
)
def job_run_task(self: Any, job_id: str) -> str:
    """Run one delivery of job `job_id`; re-send it later on a transient error."""
    try:
        result = services.job_run(job_id)
    except services.TRANSIENT_ERRORS as exc:
        # The database went away around the handler (claim or final write): try the
        # delivery again a few times; after that the sweeper recovers the row.
        if self.request.retries >= settings.JOB_MAX_ATTEMPTS:
            raise
        raise self.retry(
            exc=exc, countdown=services.job_retry_delay(self.request.retries + 1)
        ) from exc
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@app.task(name=services.JOBS_SWEEP_TASK, ignore_result=True)
def jobs_sweep_task() -> dict[str, int]:
    """Re-enqueue jobs whose worker died or whose message was lost (run by beat)."""
    return services.jobs_sweep()
