"""Jobs run by real `celery -A config worker` processes, through Redis and through the
embedded broker (SQLAlchemy on SQLite): no eager mode, nothing of Celery mocked.

Each test runs once per broker (the `celery_broker` fixture is parametrised).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.workers.handlers import HERE
from workers.celery_app import app
from workers.models import Job
from workers.services import JOB_RUN_TASK, JOBS_SWEEP_TASK, job_cancel, job_submit, jobs_sweep

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Worker settings for these tests: beat often, presume death after 2 s of silence.
FAST_JOBS_ENV = {"JOB_HEARTBEAT_SECONDS": "0.3", "JOB_STALE_AFTER": "2"}


def test_jobs_run_end_to_end_through_a_worker(celery_broker, celery_worker_factory, wait_for_job):
    celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)

    add = job_submit(kind="test.add", handler=f"{HERE}.add", params={"a": 2, "b": 40}, total=1)
    flaky = job_submit(kind="test.flaky", handler=f"{HERE}.flaky_storage")
    broken = job_submit(kind="test.broken", handler=f"{HERE}.broken")

    add = wait_for_job(add.id)
    assert add.state == Job.State.SUCCEEDED, add.error
    assert add.report == {"sum": 42}
    assert (add.progress_done, add.progress_total, add.progress_percent) == (1, 1, 100.0)
    assert add.attempts == 1 and add.error == ""
    assert add.started_at <= add.finished_at

    # StorageUnavailable on attempt 1: back to queued, the Celery task retried with a
    # countdown on the same queue, attempt 2 succeeds.
    flaky = wait_for_job(flaky.id)
    assert flaky.state == Job.State.SUCCEEDED, flaky.error
    assert (flaky.attempts, flaky.report) == (2, {"ok": True, "attempt": 2})

    broken = wait_for_job(broken.id)
    assert broken.state == Job.State.FAILED
    assert broken.attempts == 1  # not retried: a bug is not transient
    assert broken.error == "ValueError: row 7: label 'cat ' is not in the schema"
    assert "Traceback" in broken.report["traceback"]


def test_sweep_task_run_by_a_worker_recovers_a_dead_job(
    celery_broker, celery_worker_factory, wait_for_job
):
    celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    # As a worker that died mid-run leaves it: running, heartbeat long silent.
    dead = Job.objects.create(
        kind="test.add",
        handler=f"{HERE}.add",
        params={"a": 1, "b": 1},
        state=Job.State.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(seconds=30),
    )
    # What beat sends every JOB_SWEEP_INTERVAL (settings.CELERY_BEAT_SCHEDULE).
    app.send_task(JOBS_SWEEP_TASK)

    dead = wait_for_job(dead.id)
    assert (dead.state, dead.attempts, dead.report) == (Job.State.SUCCEEDED, 2, {"sum": 2})


def _wait_for_log(worker, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in the worker log:\n{worker.log_tail()}"
        time.sleep(0.1)


def test_job_of_a_killed_worker_is_swept_and_completes_exactly_once(
    celery_broker, celery_worker_factory, wait_for_job, settings, tmp_path
):
    settings.JOB_STALE_AFTER = 2.0  # this process runs the sweeper
    marker = tmp_path / "runs.log"
    first = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    job = job_submit(
        kind="test.slow",
        handler=f"{HERE}.slow",
        params={"steps": 15, "delay": 0.2, "marker": str(marker)},
    )
    wait_for_job(job.id, until=lambda j: j.state == Job.State.RUNNING and j.progress_done > 0)
    # While its worker lives the heartbeat stays fresh: the sweeper leaves the job alone.
    assert jobs_sweep()["requeued"] == 0

    first.kill()  # SIGKILL to the whole process group, like an OOM kill of the container
    assert not first.alive()
    job.refresh_from_db()
    assert (job.state, job.attempts) == (Job.State.RUNNING, 1)
    killed_at_step = job.progress_done

    # The sweeper re-enqueues the job once its heartbeat is older than JOB_STALE_AFTER.
    deadline = time.monotonic() + 15
    while (counts := jobs_sweep())["requeued"] == 0:
        assert time.monotonic() < deadline, "the sweeper never found the job stale"
        time.sleep(0.25)
    assert counts == {"requeued": 1, "resent": 0, "failed": 0, "finishing": 0, "send_errors": 0}
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED
    assert job.error.startswith("worker lost")

    second = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    # Plus a duplicate message, as a broker redelivery of the lost one would be.
    app.send_task(JOB_RUN_TASK, args=[str(job.id)])

    job = wait_for_job(job.id, timeout=60)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.report == {"steps": 15}
    assert (job.progress_done, job.progress_total) == (15, 15)
    assert job.error == ""

    # The duplicate was delivered too and did nothing.
    _wait_for_log(second, f"job {job.id} not claimable")
    runs = [line.split()[:2] for line in marker.read_text().splitlines()]
    assert runs == [["start", "1"], ["start", "2"], ["done", "2"]], (killed_at_step, runs)


# --- fan-out ------------------------------------------------------------------------------


def _chunk_runs(marker) -> dict[str, list[tuple[int, int, int]]]:
    """{"chunk-start": [(index, attempt, pid), ...], "chunk-done": [...], ...}"""
    runs: dict[str, list[tuple[int, int, int]]] = {}
    for line in marker.read_text().splitlines():
        event, *fields = line.split()
        if event.startswith("chunk-"):
            runs.setdefault(event, []).append(tuple(int(f) for f in fields))
    return runs


def _on_done_calls(marker) -> int:
    return sum(line.startswith("on_done") for line in marker.read_text().splitlines())


def test_fan_out_shares_chunks_between_two_workers_and_finishes_each_parent_once(
    celery_broker, celery_worker_factory, wait_for_job, tmp_path
):
    first = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    second = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    ok_marker, bad_marker, cancel_marker = (tmp_path / n for n in ("ok", "bad", "cancel"))

    ok = job_submit(
        kind="test.fan_out",
        handler=f"{HERE}.fan_out",
        params={"chunks": 20, "steps": 3, "delay": 0.03, "marker": str(ok_marker)},
    )
    bad = job_submit(
        kind="test.fan_out",
        handler=f"{HERE}.fan_out",
        params={"chunks": 4, "steps": 2, "fail_chunk": 2, "marker": str(bad_marker)},
    )

    ok = wait_for_job(ok.id, timeout=60)
    assert ok.state == Job.State.SUCCEEDED, ok.error
    assert (ok.progress_done, ok.progress_total, ok.children_total) == (60, 60, 20)
    assert ok.report == {"chunks": 20, "chunks_succeeded": 20, "chunks_failed": 0,
                         "handler_said": 20}  # fmt: skip
    assert _on_done_calls(ok_marker) == 1
    runs = _chunk_runs(ok_marker)
    assert sorted(index for index, _, _ in runs["chunk-done"]) == list(range(20))  # once each
    pids = {pid for _, _, pid in runs["chunk-done"]}
    assert len(pids) == 2, f"one worker did all the chunks: {pids}"  # both took a share

    bad = wait_for_job(bad.id, timeout=30)
    assert bad.state == Job.State.FAILED
    assert bad.error == "1 of 4 chunks failed: ValueError: chunk 2: bad row"
    assert bad.report["chunks_failed"] == 1
    assert _on_done_calls(bad_marker) == 1

    # Cancel cascades: a chunk that is running stops, the queued ones never start.
    slow = job_submit(
        kind="test.fan_out",
        handler=f"{HERE}.fan_out",
        params={"chunks": 6, "steps": 100, "delay": 0.05, "marker": str(cancel_marker)},
    )
    wait_for_job(
        slow.id,
        until=lambda j: Job.objects.filter(parent=j, state="running", progress_done__gt=0).exists(),
    )
    assert job_cancel(slow.id) is True
    deadline = time.monotonic() + 20
    while "chunk-stopped" not in cancel_marker.read_text():
        assert time.monotonic() < deadline, cancel_marker.read_text()
        time.sleep(0.1)
    assert set(Job.objects.filter(parent=slow).values_list("state", flat=True)) == {"cancelled"}
    time.sleep(0.5)  # a queued chunk's message arriving now must find it cancelled
    runs = _chunk_runs(cancel_marker)
    assert "chunk-done" not in runs
    assert len(runs["chunk-start"]) <= 2  # at most one chunk per worker had started
    assert _on_done_calls(cancel_marker) == 0
    assert Job.objects.get(pk=slow.id).state == Job.State.CANCELLED
    assert first.alive() and second.alive()


def test_fan_out_survives_a_killed_worker_each_chunk_and_the_parent_finish_once(
    celery_broker, celery_worker_factory, wait_for_job, settings, tmp_path
):
    settings.JOB_STALE_AFTER = 2.0  # this process runs the sweeper
    marker = tmp_path / "runs.log"
    first = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    parent = job_submit(
        kind="test.fan_out",
        handler=f"{HERE}.fan_out",
        params={"chunks": 4, "steps": 8, "delay": 0.1, "marker": str(marker)},
    )
    wait_for_job(
        parent.id,
        until=lambda j: Job.objects.filter(parent=j, state="running", progress_done__gt=0).exists(),
    )
    # The waiting parent has no heartbeat of its own: the sweeper leaves it alone.
    assert jobs_sweep()["requeued"] == 0

    first.kill()
    killed = Job.objects.get(parent=parent, state=Job.State.RUNNING)
    deadline = time.monotonic() + 15
    while (counts := jobs_sweep())["requeued"] == 0:
        assert time.monotonic() < deadline, "the sweeper never found the chunk stale"
        time.sleep(0.25)
    assert counts["requeued"] == 1 and counts["finishing"] == 0
    assert Job.objects.get(pk=parent.id).state == Job.State.WAITING

    second = celery_worker_factory(celery_broker, env=FAST_JOBS_ENV)
    parent = wait_for_job(parent.id, timeout=60)
    assert parent.state == Job.State.SUCCEEDED, parent.error
    assert (parent.progress_done, parent.progress_total) == (32, 32)
    assert _on_done_calls(marker) == 1

    runs = _chunk_runs(marker)
    assert sorted(index for index, _, _ in runs["chunk-done"]) == [0, 1, 2, 3]
    killed_index = killed.params["index"]
    assert [(i, a) for i, a, _ in runs["chunk-start"] if i == killed_index] == [
        (killed_index, 1),
        (killed_index, 2),
    ]
    assert Job.objects.get(pk=killed.pk).attempts == 2

    # A duplicate message of the finished parent (a redelivery) does nothing.
    app.send_task(JOB_RUN_TASK, args=[str(parent.id)])
    _wait_for_log(second, f"job {parent.id} not claimable")
    assert _on_done_calls(marker) == 1


def test_background_jobs_wait_while_normal_jobs_are_queued_on_redis(
    celery_redis_broker, celery_worker_factory, wait_for_job
):
    # Queued before any worker runs: the background jobs first, the normal ones after.
    background = [
        job_submit(
            kind="test.add",
            handler=f"{HERE}.add",
            params={"a": n, "b": 0},
            priority=Job.Priority.BACKGROUND,
        )
        for n in range(3)
    ]
    normal = [
        job_submit(kind="test.add", handler=f"{HERE}.add", params={"a": n, "b": 1})
        for n in range(3)
    ]
    celery_worker_factory(celery_redis_broker, env=FAST_JOBS_ENV)  # one process

    finished = [wait_for_job(job.id) for job in background + normal]
    assert all(job.state == Job.State.SUCCEEDED for job in finished)
    first_background = min(job.started_at for job in finished[:3])
    last_normal = max(job.started_at for job in finished[3:])
    assert last_normal < first_background
    assert {job.priority for job in finished[:3]} == {Job.Priority.BACKGROUND}
