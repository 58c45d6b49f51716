"""GET /api/v1/jobs/<id> and GET /api/v1/jobs: progress, visibility, error bodies."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from workers.models import Job

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
    assert body["parent"] is None
    assert body["children"] == {
        "total": 0, "pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0
    }  # fmt: skip
    assert set(body) == {
        "id", "kind", "state", "progress", "attempts", "error", "report",
        "created_at", "started_at", "finished_at", "heartbeat_at", "parent", "children",
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


def _fan_out(make_job, user, *, children):
    """A waiting parent and its children, given as (state, done, total) triples."""
    now = timezone.now()
    finished = [c for c in children if c[0] in ("succeeded", "failed", "cancelled")]
    parent = make_job(
        kind="datasets.import",
        created_by=user,
        state="waiting",
        attempts=1,
        heartbeat_at=now,
        progress_done=sum(done for _, done, _ in finished),
        progress_total=sum(total or 0 for _, _, total in children),
        children_total=len(children),
        children_pending=len(children) - len(finished),
    )
    for state, done, total in children:
        make_job(
            kind="datasets.import.chunk",
            parent=parent,
            created_by=user,
            state=state,
            attempts=1 if state != "queued" else 0,
            heartbeat_at=now,
            progress_done=done,
            progress_total=total,
        )
    return parent


def test_job_detail_of_a_waiting_parent_counts_its_children_in_one_query(
    api, user, make_job, django_assert_num_queries
):
    parent = _fan_out(
        make_job,
        user,
        children=[
            ("succeeded", 200, 200),
            ("failed", 50, 200),
            ("running", 120, 200),
            ("queued", 0, 200),
        ],
    )
    api.get(f"/api/v1/jobs/{parent.id}")  # loads the user's permissions once
    with django_assert_num_queries(2):  # the job, its children's aggregate
        body = api.get(f"/api/v1/jobs/{parent.id}").json()
    assert body["state"] == "waiting"
    assert body["children"] == {
        "total": 4, "pending": 2, "succeeded": 1, "failed": 1, "cancelled": 0
    }  # fmt: skip
    # Finished chunks' final counts (250) plus what the running one reports now (120).
    assert body["progress"] == {"done": 370, "total": 800, "percent": 46.2}
    assert body["parent"] is None

    child = Job.objects.filter(parent=parent, state="running").get()
    child_body = api.get(f"/api/v1/jobs/{child.id}").json()
    assert child_body["parent"] == str(parent.id)
    assert child_body["progress"] == {"done": 120, "total": 200, "percent": 60.0}


def test_a_waiting_parents_total_follows_its_childrens_totals_once_all_are_known(
    api, user, make_job
):
    parent = _fan_out(make_job, user, children=[("running", 5, 10), ("queued", 0, None)])
    Job.objects.filter(pk=parent.pk).update(progress_total=None)
    assert api.get(f"/api/v1/jobs/{parent.id}").json()["progress"] == {
        "done": 5, "total": None, "percent": None
    }  # fmt: skip
    Job.objects.filter(parent=parent, progress_total__isnull=True).update(progress_total=30)
    assert api.get(f"/api/v1/jobs/{parent.id}").json()["progress"] == {
        "done": 5, "total": 40, "percent": 12.5
    }  # fmt: skip


def test_job_list_shows_top_level_jobs_and_a_jobs_children_on_request(
    api, user, make_job, django_assert_num_queries
):
    leaf = make_job(created_by=user)
    parent = _fan_out(make_job, user, children=[("succeeded", 2, 2), ("running", 1, 2)])
    chunk_ids = {str(pk) for pk in Job.objects.filter(parent=parent).values_list("pk", flat=True)}

    with django_assert_num_queries(2):  # the page, the children of the parents on it
        body = api.get("/api/v1/jobs").json()
    assert [j["id"] for j in body["results"]] == [str(parent.id), str(leaf.id)]
    assert body["results"][0]["children"]["pending"] == 1
    assert body["results"][0]["progress"]["done"] == 3

    chunks = api.get("/api/v1/jobs", {"parent": str(parent.id)}).json()["results"]
    assert {j["id"] for j in chunks} == chunk_ids

    bad = api.get("/api/v1/jobs", {"parent": "not-a-uuid"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid"
