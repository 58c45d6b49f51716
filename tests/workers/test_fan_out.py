"""Fan-out: a job spawns child jobs (chunks), waits for them, and finishes exactly once.

job_run is called in-process here, one delivery at a time, so every step of the
protocol is visible; test_worker_process.py runs the same through real workers.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.workers.handlers import HERE
from workers import services
from workers.errors import InvalidJobHandler
from workers.models import Job
from workers.selectors import job_get_for_user
from workers.services import job_cancel, job_claim, job_run, job_submit, jobs_sweep
from workers.types import JobContext, JobLease

pytestmark = pytest.mark.django_db

NO_SWEEP = {"requeued": 0, "resent": 0, "failed": 0, "finishing": 0, "send_errors": 0}


def _fan_out(marker: Path | None = None, *, user=None, **params) -> Job:
    params = {"chunks": 3, "steps": 4, **params}
    if marker is not None:
        params["marker"] = str(marker)
    return job_submit(
        kind="test.fan_out", handler=f"{HERE}.fan_out", params=params, created_by=user
    )


def _lines(marker: Path, prefix: str) -> list[str]:
    if not marker.exists():
        return []
    return [line for line in marker.read_text().splitlines() if line.startswith(prefix)]


def _children(parent: Job) -> list[Job]:
    return list(Job.objects.filter(parent=parent).order_by("params__index"))


def _run_children(parent: Job) -> None:
    for child in _children(parent):
        job_run(child.id)


# --- spawn --------------------------------------------------------------------------------


def test_spawn_holds_the_children_until_the_handler_returns_then_the_parent_waits(
    user, tmp_path, celery_embedded_broker, broker_messages, django_capture_on_commit_callbacks
):
    parent = _fan_out(tmp_path / "m", user=user)
    with django_capture_on_commit_callbacks(execute=True):
        result = job_run(parent.id)
    assert result.outcome == "waiting"

    parent.refresh_from_db()
    assert parent.state == Job.State.WAITING
    assert parent.report == {"chunks": 3}  # what the handler returned
    # The planning phase's own progress (1/1) is replaced by the chunks': 0 of 3 x 4.
    assert (parent.progress_done, parent.progress_total) == (0, 12)
    assert (parent.children_total, parent.children_pending) == (3, 3)
    assert parent.on_done == f"{HERE}.fan_out_done"
    assert parent.finished_at is None

    children = _children(parent)
    assert [c.params["index"] for c in children] == [0, 1, 2]
    for child in children:
        assert (child.state, child.kind, child.handler) == ("queued", "test.chunk", f"{HERE}.chunk")
        assert child.created_by == user and child.progress_total == 4
        assert child.enqueued_at is not None  # sent: the sweeper may resend it from now on
    # One message per child, in plan order, once the run's transaction committed.
    sent = [args[0] for _, args, _ in broker_messages(celery_embedded_broker)]
    assert sent == [str(c.id) for c in children]


def test_children_inherit_the_priority_of_their_parent(user, tmp_path, celery_redis_broker):
    parent = job_submit(
        kind="test.fan_out",
        handler=f"{HERE}.fan_out",
        params={"chunks": 2, "steps": 1},
        priority=Job.Priority.BACKGROUND,
    )
    assert job_run(parent.id).outcome == "waiting"
    assert [c.priority for c in _children(parent)] == [Job.Priority.BACKGROUND] * 2


def test_children_are_written_in_batches_of_a_thousand(make_job):
    parent = make_job()
    attempt = 1
    assert job_claim(parent.id)
    ctx = JobContext(
        job_id=parent.id, kind=parent.kind, params={}, lease=JobLease(parent.id, attempt)
    )
    with CaptureQueriesContext(connection) as queries:
        ids = ctx.spawn(
            kind="test.chunk",
            handler=f"{HERE}.chunk",
            params_list=({"index": i} for i in range(2500)),
            totals=(200 for _ in range(2500)),
        )
    inserts = [q for q in queries if q["sql"].startswith("INSERT")]
    # PostgreSQL: 3 INSERTs (1000 + 1000 + 500). SQLite: Django splits each batch further
    # to stay under its 999 bound parameters (about 45 rows of 22 columns per INSERT).
    per_insert = min(1000, connection.ops.bulk_batch_size(Job._meta.concrete_fields, [0] * 1000))
    assert len(inserts) == 2 * math.ceil(1000 / per_insert) + math.ceil(500 / per_insert)
    if connection.vendor == "postgresql":
        assert len(inserts) == 3
    assert len(ids) == 2500 and ctx.spawned_totals == 500_000
    parent.refresh_from_db()
    assert (parent.children_total, parent.children_pending) == (2500, 2500)
    # Held: not sent, so the sweeper's "queued too long" scan cannot see them.
    assert not Job.objects.filter(parent=parent, enqueued_at__isnull=False).exists()


def test_spawn_checks_its_arguments_and_writes_nothing_on_error(make_job):
    parent = make_job()
    assert job_claim(parent.id)
    ctx = JobContext(job_id=parent.id, kind=parent.kind, params={}, lease=JobLease(parent.id, 1))
    with pytest.raises(InvalidJobHandler):
        ctx.spawn(kind="k", handler=f"{HERE}.nope", params_list=[{}])
    with pytest.raises(InvalidJobHandler):
        ctx.spawn(kind="k", handler=f"{HERE}.chunk", params_list=[{}], on_done=f"{HERE}.nope")
    with pytest.raises(ValueError, match="shorter|longer"):
        ctx.spawn(kind="k", handler=f"{HERE}.chunk", params_list=[{}, {}, {}], totals=[1, 2])
    assert not Job.objects.filter(parent=parent).exists()
    assert ctx.has_spawned is False


def test_spawn_by_a_run_that_lost_its_job_creates_nothing(make_job):
    parent = make_job()
    assert job_claim(parent.id)
    ctx = JobContext(job_id=parent.id, kind=parent.kind, params={}, lease=JobLease(parent.id, 1))
    Job.objects.filter(pk=parent.id).update(attempts=2)  # reclaimed by another worker
    assert ctx.spawn(kind="k", handler=f"{HERE}.chunk", params_list=[{"index": 0}]) == []
    assert ctx.should_stop() is True
    assert not Job.objects.filter(parent=parent).exists()
    parent.refresh_from_db()
    assert parent.children_total == 0


@pytest.mark.parametrize("then_raise", ["bug", "transient"])
def test_a_run_that_fails_after_spawning_leaves_no_children(tmp_path, then_raise):
    parent = _fan_out(tmp_path / "m", then_raise=then_raise)
    outcome = job_run(parent.id).outcome
    parent.refresh_from_db()
    assert (outcome, parent.state) == (
        ("failed", "failed") if then_raise == "bug" else ("retry", "queued")
    )
    assert not Job.objects.filter(parent=parent).exists()
    assert (parent.children_total, parent.children_pending) == (0, 0)


def test_a_rerun_after_a_worker_died_mid_plan_spawns_its_plan_once(tmp_path, settings):
    settings.JOB_STALE_AFTER = 60
    parent = _fan_out(tmp_path / "m", chunks=4)
    # Attempt 1 spawned, then its worker died before the handler returned.
    assert job_claim(parent.id)
    ctx = JobContext(job_id=parent.id, kind="k", params={}, lease=JobLease(parent.id, 1))
    ctx.spawn(kind="test.chunk", handler=f"{HERE}.chunk", params_list=[{"index": 9}] * 4)
    Job.objects.filter(pk=parent.id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert jobs_sweep()["requeued"] == 1
    # The sweeper sent the parent again but not its held children (no enqueued_at).
    assert Job.objects.filter(parent=parent, enqueued_at__isnull=True).count() == 4

    assert job_run(parent.id).outcome == "waiting"
    parent.refresh_from_db()
    assert parent.attempts == 2
    assert (parent.children_total, parent.children_pending) == (4, 4)
    assert sorted(c.params["index"] for c in _children(parent)) == [0, 1, 2, 3]


# --- children finish, the parent follows ----------------------------------------------


def test_children_progress_adds_up_and_the_last_child_queues_the_finishing_run(
    user, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    marker = tmp_path / "m"
    parent = _fan_out(marker, user=user, chunks=3, steps=4)
    job_run(parent.id)
    first, second, third = _children(parent)

    assert job_run(first.id).outcome == "succeeded"
    parent.refresh_from_db()
    assert (parent.state, parent.children_pending, parent.progress_done) == ("waiting", 2, 4)

    # While a child runs, the parent's live progress includes what it reported so far.
    assert job_claim(second.id)
    Job.objects.filter(pk=second.id).update(progress_done=3)
    shown = job_get_for_user(parent.id, user)
    assert (shown.live_done, shown.live_total, shown.progress_percent) == (7, 12, 58.3)
    assert shown.children_summary.as_dict() == {
        "total": 3, "pending": 2, "succeeded": 1, "failed": 0, "cancelled": 0
    }  # fmt: skip
    Job.objects.filter(pk=second.id).update(state="queued", progress_done=0)

    sent: list[str] = []
    monkeypatch.setattr(services, "_send", lambda job_id, **kw: sent.append(str(job_id)))
    with django_capture_on_commit_callbacks(execute=True):
        assert job_run(second.id).outcome == "succeeded"
        assert sent == []  # one child still pending
        assert job_run(third.id).outcome == "succeeded"
    assert sent == [str(parent.id)]  # the last child queued the parent's finishing run
    parent.refresh_from_db()
    assert parent.state == "queued" and parent.children_finished_at is not None
    assert (parent.children_pending, parent.progress_done) == (0, 12)
    assert _lines(marker, "on_done") == []

    assert job_run(parent.id).outcome == "succeeded"
    parent.refresh_from_db()
    assert parent.state == "succeeded" and parent.error == ""
    assert parent.report == {
        "chunks": 3,
        "chunks_succeeded": 3,
        "chunks_failed": 0,
        "handler_said": 3,
    }
    assert (parent.progress_done, parent.progress_total, parent.progress_percent) == (12, 12, 100)
    assert parent.attempts == 2  # the handler's run and the finishing run
    assert parent.started_at < parent.children_finished_at <= parent.finished_at
    # A duplicate message of the parent does nothing: on_done ran once.
    assert job_run(parent.id).outcome == "skipped"
    assert len(_lines(marker, "on_done")) == 1


def test_a_failed_chunk_fails_the_parent_with_the_first_error_after_on_done(tmp_path):
    marker = tmp_path / "m"
    parent = _fan_out(marker, chunks=4, steps=2, fail_chunk=2)
    job_run(parent.id)
    outcomes = [job_run(child.id).outcome for child in _children(parent)]
    assert outcomes == ["succeeded", "succeeded", "failed", "succeeded"]

    assert job_run(parent.id).outcome == "failed"
    parent.refresh_from_db()
    assert parent.state == "failed"
    assert parent.error == "1 of 4 chunks failed: ValueError: chunk 2: bad row"
    assert parent.report["chunks_failed"] == 1 and parent.report["chunks_succeeded"] == 3
    assert parent.progress_done == 8  # the failed chunk counted its 2 steps too
    assert len(_lines(marker, "on_done")) == 1


def test_a_parent_without_on_done_finishes_by_its_children(tmp_path):
    parent = _fan_out(tmp_path / "m", chunks=2, on_done=False)
    job_run(parent.id)
    _run_children(parent)
    assert job_run(parent.id).outcome == "succeeded"
    parent.refresh_from_db()
    assert parent.report == {"chunks": 2}
    assert (parent.progress_done, parent.progress_total) == (8, 8)


def test_spawning_no_chunk_finishes_through_on_done_at_once(tmp_path):
    marker = tmp_path / "m"
    parent = _fan_out(marker, chunks=0)
    assert job_run(parent.id).outcome == "waiting"
    parent.refresh_from_db()
    assert parent.state == "queued" and parent.children_finished_at is not None
    assert job_run(parent.id).outcome == "succeeded"
    parent.refresh_from_db()
    assert parent.report["chunks_succeeded"] == 0
    assert len(_lines(marker, "on_done")) == 1


def test_an_on_done_bug_fails_the_parent_and_a_transient_error_retries_it(tmp_path):
    broken = _fan_out(tmp_path / "a", chunks=1, on_done_fails="bug")
    job_run(broken.id)
    _run_children(broken)
    assert job_run(broken.id).outcome == "failed"
    broken.refresh_from_db()
    assert broken.error == "ValueError: on_done: totals do not add up"
    assert "Traceback" in broken.report["traceback"]

    flaky = _fan_out(tmp_path / "b", chunks=2, on_done_fails="transient")
    job_run(flaky.id)
    _run_children(flaky)
    retry = job_run(flaky.id)
    assert retry.outcome == "retry" and retry.retry_in is not None
    flaky.refresh_from_db()
    assert flaky.state == "queued" and flaky.error.startswith("StorageUnavailable")
    assert flaky.children_finished_at is not None  # the retry runs on_done, not the plan
    assert job_run(flaky.id).outcome == "succeeded"
    flaky.refresh_from_db()
    assert (flaky.state, flaky.attempts, flaky.error) == ("succeeded", 3, "")
    assert Job.objects.filter(parent=flaky).count() == 2  # the chunks ran once
    assert len(_lines(tmp_path / "b", "on_done")) == 2


def test_the_finishing_run_gets_attempts_even_if_the_plan_used_them_all(tmp_path):
    parent = _fan_out(tmp_path / "m", chunks=1)
    Job.objects.filter(pk=parent.id).update(max_attempts=2, attempts=1)  # plan on its last
    job_run(parent.id)
    _run_children(parent)
    assert job_run(parent.id).outcome == "succeeded"


def test_nested_fan_out_counts_grandchildren_into_the_top_job(tmp_path):
    marker = tmp_path / "m"
    top = _fan_out(marker, chunks=2, depth=2, sub_chunks=3, steps=2)
    job_run(top.id)
    middle = _children(top)
    for job in middle:
        assert job_run(job.id).outcome == "waiting"
    for job in middle:
        _run_children(job)
        assert job_run(job.id).outcome == "succeeded"  # its finishing run
    top.refresh_from_db()
    assert top.state == "queued" and top.children_pending == 0
    assert job_run(top.id).outcome == "succeeded"
    top.refresh_from_db()
    assert top.progress_done == 2 * 3 * 2
    assert len(_lines(marker, "on_done")) == 3  # two middle jobs and the top one


# --- the sweeper ----------------------------------------------------------------------


def test_sweeper_leaves_waiting_parents_alone_however_old_their_heartbeat(make_job, settings):
    settings.JOB_STALE_AFTER = 60
    long_ago = timezone.now() - timedelta(hours=3)
    parent = make_job(state="waiting", attempts=1, heartbeat_at=long_ago,
                      children_total=1, children_pending=1)  # fmt: skip
    make_job(parent=parent, state="running", attempts=1, heartbeat_at=timezone.now(),
             enqueued_at=long_ago)  # fmt: skip
    Job.objects.filter(pk=parent.pk).update(updated_at=long_ago)
    assert jobs_sweep() == NO_SWEEP
    parent.refresh_from_db()
    assert parent.state == "waiting"


def test_sweeper_finishes_a_waiting_parent_whose_children_are_all_done(
    make_job, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """The count reached zero without a finishing run (or a chunk row was deleted by
    hand, so the count never will): the sweeper recounts and queues the finishing run."""
    settings.JOB_STALE_AFTER = 60
    sent: list[str] = []
    monkeypatch.setattr(services, "_send", lambda job_id, **kw: sent.append(str(job_id)))
    marker = tmp_path / "m"
    long_ago = timezone.now() - timedelta(minutes=5)
    orphan = make_job(
        handler=f"{HERE}.fan_out", params={"marker": str(marker)}, on_done=f"{HERE}.fan_out_done",
        state="waiting", attempts=1, children_total=2, children_pending=0,
    )  # fmt: skip
    stuck = make_job(state="waiting", attempts=1, children_total=2, children_pending=1)
    for parent in (orphan, stuck):
        make_job(parent=parent, state="succeeded", attempts=1, progress_done=5)
        make_job(parent=parent, state="succeeded", attempts=1, progress_done=5)
    Job.objects.filter(parent=stuck).first().delete()
    Job.objects.filter(pk=stuck.pk).update(updated_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        counts = jobs_sweep()
    assert counts == {**NO_SWEEP, "finishing": 2}
    assert sorted(sent) == sorted([str(orphan.id), str(stuck.id)])
    stuck.refresh_from_db()
    assert (stuck.state, stuck.children_total, stuck.children_pending) == ("queued", 1, 0)
    assert jobs_sweep() == NO_SWEEP

    assert job_run(orphan.id).outcome == "succeeded"
    assert len(_lines(marker, "on_done")) == 1


def test_a_finishing_run_whose_worker_died_is_swept_and_runs_on_done_again(
    tmp_path, settings, monkeypatch
):
    """The worker died after the last child, during on_done: the finishing run is a
    running job gone stale; the sweeper re-enqueues it like any other."""
    settings.JOB_STALE_AFTER = 60
    monkeypatch.setattr(services, "_send", lambda job_id, **kw: None)
    marker = tmp_path / "m"
    parent = _fan_out(marker, chunks=2)
    job_run(parent.id)
    _run_children(parent)
    assert job_claim(parent.id)  # the finishing run's claim; then its worker died
    Job.objects.filter(pk=parent.id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))

    assert jobs_sweep()["requeued"] == 1
    assert job_run(parent.id).outcome == "succeeded"
    parent.refresh_from_db()
    assert (parent.state, parent.attempts) == ("succeeded", 3)
    assert len(_lines(marker, "on_done")) == 1
    assert jobs_sweep() == NO_SWEEP


def test_sweeper_fails_a_poison_child_and_counts_it_into_the_parent(tmp_path, settings):
    settings.JOB_STALE_AFTER = 60
    parent = _fan_out(tmp_path / "m", chunks=2)
    job_run(parent.id)
    dying, fine = _children(parent)
    Job.objects.filter(pk=dying.id).update(
        state="running", attempts=5, max_attempts=5,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )  # fmt: skip
    job_run(fine.id)
    assert jobs_sweep()["failed"] == 1
    parent.refresh_from_db()
    assert (parent.state, parent.children_pending) == ("queued", 0)
    assert job_run(parent.id).outcome == "failed"
    parent.refresh_from_db()
    assert parent.error.startswith("1 of 2 chunks failed: gave up after 5 deliveries: worker lost")


# --- cancel -----------------------------------------------------------------------------


def test_cancel_of_a_parent_cancels_its_unfinished_descendants(tmp_path):
    top = _fan_out(tmp_path / "m", chunks=3, depth=2, sub_chunks=2)
    job_run(top.id)
    done, waiting, queued = _children(top)
    # One chunk finished, one fanned out itself, one was never started.
    Job.objects.filter(pk=done.pk).update(state="succeeded")
    Job.objects.filter(pk=top.pk).update(children_pending=2)
    assert job_run(waiting.id).outcome == "waiting"
    grandchildren = _children(waiting)
    assert job_claim(grandchildren[0].id)

    assert job_cancel(top.id) is True
    states = dict(Job.objects.values_list("pk", "state"))
    assert states[top.pk] == states[waiting.pk] == states[queued.pk] == "cancelled"
    assert {states[g.pk] for g in grandchildren} == {"cancelled"}
    assert states[done.pk] == "succeeded"
    assert Job.objects.get(pk=top.pk).children_pending == 0
    # Their messages (and the running grandchild's next write) change nothing.
    assert job_run(queued.id).outcome == "skipped"
    assert job_cancel(top.id) is False


def test_cancel_of_the_last_pending_chunk_fails_the_parent(tmp_path):
    parent = _fan_out(tmp_path / "m", chunks=2)
    job_run(parent.id)
    first, second = _children(parent)
    job_run(first.id)
    assert job_cancel(second.id) is True
    parent.refresh_from_db()
    assert (parent.state, parent.children_pending) == ("queued", 0)
    assert job_run(parent.id).outcome == "failed"
    parent.refresh_from_db()
    assert parent.error == "1 of 2 chunks failed: cancelled"


# --- the race -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_last_two_chunks_finishing_together_finish_the_parent_once(
    tmp_path, monkeypatch, settings
):
    """Two workers' last chunks commit at the same moment: the parent-row lock
    serialises their decrements, so exactly one of them sees zero and queues the
    finishing run. (A read-then-write decrement without the lock fails this at once
    on PostgreSQL.)"""
    if connection.vendor == "sqlite":
        pytest.skip(
            "SQLite runs every transaction IMMEDIATE (settings): writers are serialised "
            "whole, so two finishing chunks cannot interleave and this proves nothing"
        )
    settings.JOB_HEARTBEAT_SECONDS = 60  # no heartbeat thread writes during the race
    sent: list[str] = []
    lock = threading.Lock()

    def record(job_id, **kwargs):
        with lock:
            sent.append(str(job_id))

    monkeypatch.setattr(services, "_send", record)
    monkeypatch.setattr(services, "_send_many", lambda ids: len(ids))

    for race in range(8):
        marker = tmp_path / f"race-{race}"
        parent = _fan_out(marker, chunks=2, steps=1, meet=True)
        assert job_run(parent.id).outcome == "waiting"
        children = _children(parent)
        sent.clear()
        outcomes: list[str] = []

        def run(child_id, outcomes=outcomes):
            try:
                outcomes.append(job_run(child_id).outcome)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(c.id,)) for c in children]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert outcomes == ["succeeded", "succeeded"], race
        assert sent == [str(parent.id)], race  # one finishing run queued, not two, not none
        parent.refresh_from_db()
        assert (parent.state, parent.children_pending, parent.progress_done) == ("queued", 0, 2)
        assert job_run(parent.id).outcome == "succeeded"
        assert job_run(parent.id).outcome == "skipped"  # the duplicate message
        assert len(_lines(marker, "on_done")) == 1, race
        assert len(_lines(marker, "chunk-done")) == 2
