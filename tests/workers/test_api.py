"""GET /api/v1/jobs/<id> and GET /api/v1/jobs: progress, visibility, error bodies."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_job_detail_shows_state_and_progress(api, user, make_job):
    now = timezone.now()
    job = make_job(
        kind="datasets.import",
        created_by=user,
        state="running",
        attempts=1,
        progress_done=250,
        progress_total=1000,
        heartbeat_at=now,
        started_at=now,
    )
    response = api.get(f"/api/v1/jobs/{job.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(job.id)
    assert body["kind"] == "datasets.import"
    assert body["state"] == "running"
    assert body["progress"] == {"done": 250, "total": 1000, "percent": 25.0}
    assert body["attempts"] == 1
    assert body["error"] == "" and body["report"] == {}
    assert body["finished_at"] is None
    assert body["heartbeat_at"] is not None and body["started_at"] is not None
    assert set(body) == {
        "id", "kind", "state", "progress", "attempts", "error", "report",
        "created_at", "started_at", "finished_at", "heartbeat_at",
    }  # fmt: skip


def test_progress_percent_is_null_while_the_total_is_unknown(api, user, make_job):
    job = make_job(created_by=user, progress_done=3)
    assert api.get(f"/api/v1/jobs/{job.id}").json()["progress"] == {
        "done": 3,
        "total": None,
        "percent": None,
    }


def test_unknown_job_is_a_json_404(api):
    response = api.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No such job."}


def test_someone_elses_job_is_a_404_not_a_403(api, other_user, make_job):
    job = make_job(created_by=other_user)
    response = api.get(f"/api/v1/jobs/{job.id}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_anonymous_gets_401(make_job):
    job = make_job()
    response = APIClient().get(f"/api/v1/jobs/{job.id}")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert APIClient().get("/api/v1/jobs").status_code == 401


def test_token_authentication_works(user, make_job):
    from rest_framework.authtoken.models import Token

    job = make_job(created_by=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(f"/api/v1/jobs/{job.id}").status_code == 200


def test_staff_and_view_job_permission_see_any_job(django_user_model, other_user, make_job):
    job = make_job(created_by=other_user)
    staff = django_user_model.objects.create_user(username="ops", is_staff=True)
    auditor = django_user_model.objects.create_user(username="auditor")
    auditor.user_permissions.add(Permission.objects.get(codename="view_job"))
    for viewer in (staff, auditor):
        client = APIClient()
        client.force_authenticate(viewer)
        assert client.get(f"/api/v1/jobs/{job.id}").status_code == 200, viewer


def test_traceback_is_shown_to_staff_only(api, user, django_user_model, make_job):
    job = make_job(
        created_by=user,
        state="failed",
        error="ValueError: bad",
        report={"rows_read": 7, "traceback": "Traceback ..."},
    )
    assert api.get(f"/api/v1/jobs/{job.id}").json()["report"] == {"rows_read": 7}
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_user(username="ops", is_staff=True))
    assert staff.get(f"/api/v1/jobs/{job.id}").json()["report"]["traceback"] == "Traceback ..."


def test_job_list_shows_only_my_jobs_newest_first_with_a_cursor(api, user, other_user, make_job):
    mine = [make_job(created_by=user, kind=f"test.k{i}") for i in range(3)]
    make_job(created_by=other_user)
    make_job()  # a system job (no creator)

    response = api.get("/api/v1/jobs")
    assert response.status_code == 200
    body = response.json()
    assert [j["id"] for j in body["results"]] == [str(j.id) for j in reversed(mine)]
    assert body["next"] is None and body["previous"] is None

    first_page = api.get("/api/v1/jobs", {"page_size": 1})  # ignored: fixed PAGE_SIZE
    assert len(first_page.json()["results"]) == 3


def test_job_list_pages_with_a_cursor(api, user, make_job, settings):
    from workers.api import JobCursorPagination

    jobs = [make_job(created_by=user) for _ in range(3)]
    original = JobCursorPagination.page_size
    JobCursorPagination.page_size = 2
    try:
        page = api.get("/api/v1/jobs").json()
        assert len(page["results"]) == 2 and page["next"]
        rest = api.get(page["next"]).json()
    finally:
        JobCursorPagination.page_size = original
    seen = [j["id"] for j in page["results"] + rest["results"]]
    assert seen == [str(j.id) for j in reversed(jobs)]


def test_schema_documents_the_job_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/jobs/{job_id}" in paths and "/api/v1/jobs" in paths
