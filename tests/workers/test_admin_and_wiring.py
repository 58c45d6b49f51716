"""The admin of jobs, and the wiring other code relies on (task names, beat, urls)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from workers import services
from workers.celery_app import app
from workers.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", email=""))
    return client


def test_admin_lists_jobs_with_a_state_filter_and_shows_one_read_only(admin_client_, make_job):
    job = make_job(state="failed", error="ValueError: bad", report={"traceback": "Traceback ..."})
    listing = admin_client_.get("/admin/workers/job/?state__exact=failed")
    assert listing.status_code == 200
    assert str(job.id) in listing.content.decode()
    page = admin_client_.get(f"/admin/workers/job/{job.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Traceback ..." in html and 'name="state"' not in html  # shown, not editable
    assert admin_client_.get("/admin/workers/job/add/").status_code == 403


def test_admin_filters_top_level_jobs_and_shows_a_parents_counters(admin_client_, make_job):
    parent = make_job(kind="test.parent", state="waiting", children_total=2, children_pending=1)
    child = make_job(kind="test.chunk", parent=parent)
    listing = admin_client_.get("/admin/workers/job/?parent__isempty=1").content.decode()
    assert str(parent.id) in listing and str(child.id) not in listing
    page = admin_client_.get(f"/admin/workers/job/{parent.id}/change/").content.decode()
    assert "Children pending" in page and "Waiting for its child jobs" in page


def test_admin_cancel_action(admin_client_, make_job):
    queued, done = make_job(), make_job(state="succeeded")
    response = admin_client_.post(
        "/admin/workers/job/",
        {"action": "cancel_jobs", "_selected_action": [str(queued.id), str(done.id)]},
        follow=True,
    )
    assert "Cancelled 1 job(s)." in response.content.decode()
    assert Job.objects.get(pk=queued.id).state == "cancelled"
    assert Job.objects.get(pk=done.id).state == "succeeded"


def test_tasks_are_registered_under_the_names_senders_and_beat_use():
    import workers.celery_tasks  # noqa: F401 - what autodiscovery imports in a worker

    run = app.tasks[services.JOB_RUN_TASK]
    assert run.acks_late is True and run.reject_on_worker_lost is True
    assert services.JOBS_SWEEP_TASK in app.tasks
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert services.JOBS_SWEEP_TASK in scheduled


def test_urls():
    assert reverse("api-job-list") == "/api/v1/jobs"
    assert reverse("api-job-detail", args=["6f1c1c4e-7a53-4a51-9a55-8f0b0d0e3b0a"]).startswith(
        "/api/v1/jobs/"
    )
    assert reverse("workers:job-progress", args=["6f1c1c4e-7a53-4a51-9a55-8f0b0d0e3b0a"]).endswith(
        "/progress"
    )
