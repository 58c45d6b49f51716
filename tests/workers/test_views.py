"""The job page and its htmx progress partial."""

from __future__ import annotations

import uuid

import pytest
from django.template import Context, Template
from django.utils import timezone

from workers.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def _running(make_job, user, **fields):
    now = timezone.now()
    defaults = {"state": "running", "attempts": 1, "heartbeat_at": now, "started_at": now}
    return make_job(created_by=user, **{**defaults, **fields})


def test_partial_polls_itself_while_the_job_runs(browser, user, make_job):
    job = _running(make_job, user, progress_done=30, progress_total=120)
    response = browser.get(f"/jobs/{job.id}/progress")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith(f'<div class="job" id="job-{job.id}"')
    assert f'hx-get="/jobs/{job.id}/progress"' in html
    assert 'hx-trigger="every 1s"' in html and 'hx-swap="outerHTML"' in html
    assert '<progress max="120" value="30"' in html
    assert "30 of 120 (25.0%)" in html
    assert response["Cache-Control"] == "no-store"


def test_partial_of_a_queued_job_with_unknown_total_is_indeterminate(browser, user, make_job):
    job = make_job(created_by=user, error="StorageUnavailable: down")
    html = browser.get(f"/jobs/{job.id}/progress").content.decode()
    assert "hx-get=" in html
    assert "<progress aria-label" in html  # no value: an indeterminate bar
    assert "Retrying after: StorageUnavailable: down" in html


def test_partial_stops_polling_and_shows_the_report_when_done(browser, user, make_job):
    job = make_job(
        created_by=user,
        state="succeeded",
        attempts=1,
        progress_done=120,
        progress_total=120,
        # "items": a key a template's `report.items` would have tripped over
        report={"items": 120, "skipped": 0, "traceback": "never shown"},
    )
    html = browser.get(f"/jobs/{job.id}/progress").content.decode()
    assert "hx-get" not in html and "hx-trigger" not in html
    assert "Succeeded" in html
    assert "<dt>items</dt><dd>120</dd>" in html and "<dt>skipped</dt><dd>0</dd>" in html
    assert "never shown" not in html


def test_partial_stops_polling_and_shows_the_error_when_failed(browser, user, make_job):
    job = make_job(
        created_by=user, state="failed", attempts=1, error="ValueError: row 7 <b>bad</b>"
    )
    html = browser.get(f"/jobs/{job.id}/progress").content.decode()
    assert "hx-get" not in html
    assert '<p class="job-error" role="alert">ValueError: row 7 &lt;b&gt;bad&lt;/b&gt;</p>' in html


def test_any_template_can_include_the_partial(user, make_job):
    job = _running(make_job, user, progress_done=1, progress_total=4)
    html = Template('{% include "workers/_job_progress.html" with job=job %}').render(
        Context({"job": job})
    )
    assert f'hx-get="/jobs/{job.id}/progress"' in html and "25.0%" in html


def test_job_page_extends_the_base_layout(browser, user, make_job):
    job = _running(make_job, user, kind="datasets.import")
    response = browser.get(f"/jobs/{job.id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Job datasets.import · Labelvault</title>" in html
    assert f'id="job-{job.id}"' in html and "htmx.min.js" in html


def test_someone_elses_or_an_unknown_job_is_404(client, other_user, user, make_job):
    client.force_login(user)
    job = make_job(created_by=other_user)
    assert client.get(f"/jobs/{job.id}").status_code == 404
    assert client.get(f"/jobs/{job.id}/progress").status_code == 404
    assert client.get(f"/jobs/{uuid.uuid4()}/progress").status_code == 404


def test_a_poll_of_a_job_deleted_meanwhile_stops_polling(browser, user, make_job):
    job_id = _running(make_job, user).id
    Job.objects.filter(pk=job_id).delete()
    poll = browser.get(f"/jobs/{job_id}/progress", HTTP_HX_REQUEST="true")
    assert poll.status_code == 286  # htmx stops an `every` poll on 286
    assert "hx-get" not in poll.content.decode()


def test_anonymous_is_sent_to_login(client, make_job):
    job = make_job()
    response = client.get(f"/jobs/{job.id}")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    # An htmx poll whose session expired: tell htmx to navigate, do not swap a login page in.
    poll = client.get(f"/jobs/{job.id}/progress", HTTP_HX_REQUEST="true")
    assert poll.status_code == 401
    assert poll["HX-Redirect"].startswith("/accounts/login/?next=")


def test_partial_of_a_waiting_parent_counts_chunks_and_keeps_polling(browser, user, make_job):
    now = timezone.now()
    parent = make_job(
        created_by=user, state="waiting", attempts=1, heartbeat_at=now,
        progress_done=200, progress_total=600, children_total=3, children_pending=2,
    )  # fmt: skip
    make_job(parent=parent, created_by=user, state="succeeded", progress_done=200)
    make_job(parent=parent, created_by=user, state="running", attempts=1, heartbeat_at=now,
             progress_done=100, progress_total=200)  # fmt: skip
    make_job(parent=parent, created_by=user, state="queued", progress_total=200)

    html = browser.get(f"/jobs/{parent.id}/progress").content.decode()
    assert f'hx-get="/jobs/{parent.id}/progress"' in html  # still polling
    assert "Waiting for its child jobs" in html
    assert "Waiting for 2 of 3 chunks." in html
    assert '<progress max="600" value="300"' in html and "300 of 600 (50.0%)" in html

    Job.objects.filter(pk=parent.pk).update(
        state="queued", children_pending=0, children_finished_at=now
    )
    html = browser.get(f"/jobs/{parent.id}/progress").content.decode()
    assert "hx-get=" in html and "All 3 chunks finished; finishing." in html

    page = browser.get(f"/jobs/{parent.id}").content.decode()
    assert "1 succeeded, 0 failed, 0 cancelled, 2 pending" in page
