"""workers.services: submit, claim, run (success, retry, failure, poison), cancel, sweep.

job_run is called in-process here (the real service, no Celery); the worker-process
tests run the same path through real workers.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from storage.errors import StorageUnavailable
from tests.workers.handlers import HERE
from workers import services
from workers.errors import InvalidJobHandler
from workers.models import Job
from workers.services import (
    job_cancel,
    job_claim,
    job_retry_delay,
    job_run,
    job_submit,
    jobs_sweep,
)
from workers.types import JobContext, JobLease

pytestmark = pytest.mark.django_db


# --- submit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("tests.workers.handlers.nope", "not an importable"),
        ("no_such_package.module.func", "not an importable"),
        ("nodots", "not an importable"),
        (f"{HERE}.NOT_CALLABLE", "is not callable"),
    ],
)
def test_submit_rejects_a_handler_that_does_not_resolve(handler, message):
    with pytest.raises(ValueError, match=message) as caught:
        job_submit(kind="test.bad", handler=handler)
    assert isinstance(caught.value, InvalidJobHandler)
    assert not Job.objects.exists()


def test_submit_creates_a_queued_job_and_sends_only_its_id_after_commit(
    user, settings, celery_embedded_broker, broker_messages, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = job_submit(
            kind="test.add",
            handler=f"{HERE}.add",
            params={"a": 1, "b": 2},
            created_by=user,
            total=1,
        )
    job.refresh_from_db()
    assert (job.state, job.attempts, job.progress_done, job.progress_total) == ("queued", 0, 0, 1)
    assert job.created_by == user and job.enqueued_at is not None
    assert job.max_attempts == settings.JOB_MAX_ATTEMPTS
    assert broker_messages(celery_embedded_broker, wait=0.5) == []  # nothing before commit

    for callback in callbacks:
        callback()
    assert broker_messages(celery_embedded_broker) == [("workers.job_run", [str(job.id)], {})]


def test_submit_inside_a_rolled_back_transaction_leaves_no_job_and_sends_nothing(
    django_capture_on_commit_callbacks,
):
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        job_submit(kind="test.add", handler=f"{HERE}.add")
        raise RuntimeError("caller failed after submitting")
    assert callbacks == []
    assert not Job.objects.exists()


def test_submit_treats_an_anonymous_user_as_no_owner():
    from django.contrib.auth.models import AnonymousUser

    job = job_submit(kind="test.add", handler=f"{HERE}.add", created_by=AnonymousUser())
    assert job.created_by is None


# --- claim ------------------------------------------------------------------------------


def test_claim_is_conditional_only_one_of_two_claims_wins(make_job):
    job = make_job()
    assert job_claim(job.id) is True
    assert job_claim(job.id) is False
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("running", 1)
    assert job.heartbeat_at is not None and job.started_at is not None


def test_claim_takes_over_a_running_job_only_once_its_heartbeat_is_stale(make_job, settings):
    settings.JOB_STALE_AFTER = 60
    now = timezone.now()
    fresh = make_job(state="running", attempts=1, heartbeat_at=now - timedelta(seconds=30))
    stale = make_job(state="running", attempts=1, heartbeat_at=now - timedelta(seconds=90))
    assert job_claim(fresh.id) is False
    assert job_claim(stale.id) is True
    stale.refresh_from_db()
    assert (stale.state, stale.attempts) == ("running", 2)


@pytest.mark.parametrize("state", ["succeeded", "failed", "cancelled"])
def test_claim_never_takes_a_finished_job(make_job, state):
    job = make_job(state=state, attempts=1, heartbeat_at=timezone.now() - timedelta(days=1))
    assert job_claim(job.id) is False
    assert job_claim(uuid.uuid4()) is False  # and no such job: False, no error


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_exactly_one_wins(make_job):
    job = make_job()
    contenders = 6
    barrier = threading.Barrier(contenders)
    results: list[bool] = []

    def claim() -> None:
        try:
            barrier.wait()
            results.append(job_claim(job.id))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (contenders - 1) + [True]
    job.refresh_from_db()
    assert job.attempts == 1


# --- run --------------------------------------------------------------------------------


def test_run_calls_the_handler_and_records_success_last(make_job):
    job = make_job(params={"a": 20, "b": 22})
    result = job_run(job.id)
    assert (result.outcome, result.retry_in) == ("succeeded", None)
    job.refresh_from_db()
    assert job.state == "succeeded"
    assert job.report == {"sum": 42}
    assert (job.progress_done, job.progress_total, job.attempts, job.error) == (1, 1, 1, "")
    assert job.finished_at >= job.started_at


def test_run_of_a_duplicate_or_unknown_message_returns_quietly(make_job):
    job = make_job(state="succeeded", attempts=1, report={"sum": 3})
    assert job_run(job.id).outcome == "skipped"
    assert job_run(uuid.uuid4()).outcome == "skipped"
    job.refresh_from_db()
    assert (job.state, job.attempts, job.report) == ("succeeded", 1, {"sum": 3})


def test_transient_error_requeues_with_backoff_then_succeeds(make_job, settings):
    settings.JOB_RETRY_BACKOFF_SECONDS = 4.0
    job = make_job(kind="test.flaky", handler=f"{HERE}.flaky_storage")

    first = job_run(job.id)
    assert first.outcome == "retry"
    assert 2.0 <= first.retry_in <= 4.0  # attempt 1: base 4 s, jittered into [50 %, 100 %]
    job.refresh_from_db()
    assert job.state == "queued"
    assert job.error.startswith("StorageUnavailable: object store at 127.0.0.1:9 refused")
    assert job.enqueued_at > timezone.now()  # due when the delayed retry arrives
    assert job.finished_at is None

    second = job_run(job.id)
    assert second.outcome == "succeeded"
    job.refresh_from_db()
    assert (job.state, job.attempts, job.error) == ("succeeded", 2, "")
    assert job.report == {"ok": True, "attempt": 2}


def test_transient_error_fails_once_max_attempts_are_used(make_job):
    job = make_job(kind="test.timeout", handler=f"{HERE}.always_timeout", max_attempts=2)
    assert job_run(job.id).outcome == "retry"
    result = job_run(job.id)
    assert (result.outcome, result.retry_in) == ("failed", None)
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.error == "gave up after 2 attempts: TimeoutError: read timed out"
    assert "TimeoutError" in job.report["traceback"]


def test_other_errors_fail_at_once_with_a_one_line_error_and_the_traceback(make_job):
    job = make_job(kind="test.broken", handler=f"{HERE}.broken")
    result = job_run(job.id)
    assert result.outcome == "failed"
    job.refresh_from_db()
    assert job.state == "failed" and job.attempts == 1
    assert job.error == "ValueError: row 7: label 'cat ' is not in the schema"
    assert job.report["rows_read"] == 7  # what the handler reported before failing
    assert job.report["traceback"].startswith("Traceback (most recent call last)")
    assert "second line of detail" in job.report["traceback"]
    assert job.finished_at is not None


def test_a_handler_gone_since_submit_fails_the_job(make_job):
    job = make_job(handler=f"{HERE}.renamed_since")
    assert job_run(job.id).outcome == "failed"
    job.refresh_from_db()
    assert job.error.startswith("InvalidJobHandler: job handler")


def test_poison_job_fails_after_max_attempts_deliveries(make_job, settings):
    # Its runs kept killing their worker: running, heartbeat stale, all attempts used.
    settings.JOB_STALE_AFTER = 60
    job = make_job(
        state="running",
        attempts=3,
        max_attempts=3,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        error="worker lost (no heartbeat since ...)",
    )
    result = job_run(job.id)
    assert result.outcome == "failed"
    job.refresh_from_db()
    assert job.state == "failed" and job.attempts == 4
    assert job.error == "gave up after 3 deliveries: worker lost (no heartbeat since ...)"
    assert job.finished_at is not None


def test_retry_delay_grows_exponentially_with_jitter_up_to_a_cap(settings):
    settings.JOB_RETRY_BACKOFF_SECONDS = 2.0
    settings.JOB_RETRY_BACKOFF_MAX_SECONDS = 30.0
    for attempt, full in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (12, 30.0)]:
        delays = {job_retry_delay(attempt) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays), (attempt, sorted(delays))
        assert len(delays) > 1  # jittered


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionError("reset"), True),
        (TimeoutError(), True),
        (StorageUnavailable("down"), True),
        (OperationalError("server closed the connection"), True),
        (InterfaceError("connection already closed"), True),
        (ValueError("bad"), False),
        (KeyError("x"), False),
        (IntegrityError("duplicate key"), False),
    ],
)
def test_only_connection_errors_are_transient(exc, transient):
    assert services.is_transient(exc) is transient


# --- progress and heartbeat -------------------------------------------------------------


def test_progress_is_cheap_to_call_often(make_job):
    job = make_job()
    assert job_claim(job.id)
    ctx = JobContext(job_id=job.id, kind=job.kind, params={}, lease=JobLease(job.id, 1))
    with CaptureQueriesContext(connection) as queries:
        for done in range(1, 5001):
            ctx.progress(done, total=5000)
    assert len(queries) == 1  # the first call writes; the rest wait for the next second
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total) == (1, 5000)
    assert ctx.flush_progress() is True
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.progress_percent) == (5000, 5000, 100.0)


def test_progress_writes_stop_counting_once_the_job_was_taken_over(make_job):
    job = make_job()
    assert job_claim(job.id)
    ctx = JobContext(job_id=job.id, kind=job.kind, params={}, lease=JobLease(job.id, 1))
    Job.objects.filter(pk=job.id).update(attempts=2)  # another worker claimed it meanwhile
    assert ctx.should_stop() is False
    ctx.progress(10)
    assert ctx.should_stop() is True
    job.refresh_from_db()
    assert job.progress_done == 0


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_beats_while_the_handler_is_silent(make_job, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    job = make_job(kind="test.quiet", handler=f"{HERE}.observe_heartbeats", params={"seconds": 0.8})
    assert job_run(job.id).outcome == "succeeded"
    job.refresh_from_db()
    beats = job.report["heartbeats"]
    assert len(set(beats)) >= 3, beats  # the row's heartbeat moved while the handler slept


# --- cancel -----------------------------------------------------------------------------


def test_cancel_a_queued_job_then_its_message_does_nothing(make_job):
    job = make_job()
    assert job_cancel(job.id) is True
    assert job_cancel(job.id) is False
    assert job_run(job.id).outcome == "skipped"
    job.refresh_from_db()
    assert job.state == "cancelled" and job.attempts == 0 and job.finished_at is not None


def test_cancel_leaves_finished_jobs_alone(make_job):
    job = make_job(state="succeeded")
    assert job_cancel(job.id) is False
    job.refresh_from_db()
    assert job.state == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_cancel_a_running_job_stops_its_handler(make_job, settings, tmp_path):
    settings.JOB_HEARTBEAT_SECONDS = 0.1
    marker = tmp_path / "stopped"
    job = make_job(
        kind="test.cancel", handler=f"{HERE}.wait_for_cancel", params={"marker": str(marker)}
    )
    outcome: list[str] = []

    def run() -> None:
        try:
            outcome.append(job_run(job.id).outcome)
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = timezone.now() + timedelta(seconds=10)
        while Job.objects.get(pk=job.id).state != "running":
            assert timezone.now() < deadline, "job never started"
        assert job_cancel(job.id) is True
    finally:
        thread.join(timeout=15)
    assert outcome == ["lost"]  # it returned, but its result no longer counts
    assert marker.read_text() == "stopped"
    job.refresh_from_db()
    assert job.state == "cancelled" and job.report == {}


# --- sweep ------------------------------------------------------------------------------


def test_sweep_requeues_stale_jobs_resends_forgotten_ones_and_fails_poison(
    make_job, settings, celery_embedded_broker, broker_messages
):
    settings.JOB_STALE_AFTER = 60
    settings.JOB_REQUEUE_AFTER = 600
    now = timezone.now()
    healthy = make_job(state="running", attempts=1, heartbeat_at=now - timedelta(seconds=5))
    dead = make_job(state="running", attempts=1, heartbeat_at=now - timedelta(seconds=61))
    poison = make_job(
        state="running", attempts=3, max_attempts=3, heartbeat_at=now - timedelta(minutes=5)
    )
    waiting = make_job(state="queued", enqueued_at=now - timedelta(seconds=30))
    forgotten = make_job(state="queued", enqueued_at=now - timedelta(seconds=601))
    done = make_job(state="succeeded", attempts=1, heartbeat_at=now - timedelta(days=1))

    counts = jobs_sweep()

    assert counts == {"requeued": 1, "resent": 1, "failed": 1, "finishing": 0, "send_errors": 0}
    sent = broker_messages(celery_embedded_broker)
    assert sorted(sent) == sorted(
        [("workers.job_run", [str(dead.id)], {}), ("workers.job_run", [str(forgotten.id)], {})]
    )
    states = {j.pk: (j.state, j.attempts) for j in Job.objects.all()}
    assert states[healthy.pk] == ("running", 1)
    assert states[dead.pk] == ("queued", 1)  # claimed again (attempt 2) by the next delivery
    assert states[poison.pk] == ("failed", 3)
    assert states[waiting.pk] == ("queued", 0)
    assert states[forgotten.pk] == ("queued", 0)
    assert states[done.pk] == ("succeeded", 1)
    dead.refresh_from_db()
    assert dead.error.startswith("worker lost (no heartbeat since")
    poison.refresh_from_db()
    assert poison.error.startswith("gave up after 3 deliveries: worker lost")

    # A second sweep right away finds nothing new: the resent job's clock restarted.
    assert jobs_sweep() == {
        "requeued": 0, "resent": 0, "failed": 0, "finishing": 0, "send_errors": 0
    }  # fmt: skip
    assert broker_messages(celery_embedded_broker, wait=0.5) == []


def test_sweep_keeps_going_when_the_broker_is_down(make_job, settings, celery_unreachable_broker):
    settings.JOB_STALE_AFTER = 60
    stale = timezone.now() - timedelta(minutes=5)
    first = make_job(state="running", attempts=1, heartbeat_at=stale)
    second = make_job(state="running", attempts=1, heartbeat_at=stale)
    assert jobs_sweep() == {
        "requeued": 2, "resent": 0, "failed": 0, "finishing": 0, "send_errors": 2
    }  # fmt: skip
    # Both rows are queued: the "queued too long" scan sends them once the broker is back.
    assert set(
        Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("state", flat=True)
    ) == {"queued"}
