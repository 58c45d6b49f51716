"""The quality dashboard on a small classification project worked by hand: three
annotators label four items through the queue with known lead times, two gold tasks
with known scores, a few reviews, a stored agreement report; numbers, CSV, the job that
stores a report, the page and the API with their permissions."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from labeling.models import (
    Annotation,
    AnnotationRevision,
    GoldAnswer,
    GoldItem,
    Project,
    ProjectMember,
    QualityReport,
    Review,
    Task,
)
from labeling.services import dashboard
from labeling.services.annotations import annotation_submit
from labeling.services.quality import project_quality
from labeling.services.queue import task_lease_next
from tests.factories import UserFactory
from tests.labeling.conftest import api_for, make_project

pytestmark = pytest.mark.django_db

CLASSES = {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]}
# Labels of items 0-3 by annotator 0, 1, 2.
TABLE = [["cat", "cat", "cat"], ["dog", "dog", "cat"], ["cat", "cat", "dog"], ["dog", "dog", "dog"]]
# Lead times (ms) of annotator u's submit on item i; None: the client sent none.
LEAD = [[1000, 2000, 3000, 4000], [500, 500, 500, 500], [100, 200, 300, None]]


def choice(name):
    return [{"type": "choices", "value": {"choices": [name]}}]


@pytest.fixture
def world(ops):
    users = [UserFactory(username=f"ann{u}", roles=["annotator"]) for u in range(3)]
    project, items = make_project(ops, users, schema=CLASSES, overlap=3, count=6)
    # No gold served by the queue here: the gold rows below are made by hand.
    Project.objects.filter(pk=project.pk).update(gold_rate=0)
    project.refresh_from_db()
    tasks = {t.item_id: t for t in Task.objects.filter(project=project)}
    gold_tasks = [tasks[items[4].pk], tasks[items[5].pk]]
    Task.objects.filter(pk__in=[t.pk for t in gold_tasks]).update(status="gold")
    index = {item.pk: n for n, item in enumerate(items)}
    for u, user in enumerate(users):
        while (grant := task_lease_next(project=project, annotator=user)) is not None:
            i = index[grant.task.item_id]
            annotation_submit(
                task=grant.task,
                annotator=user,
                result=choice(TABLE[i][u]),
                lease_id=grant.lease.pk,
                lead_time_ms=LEAD[u][i],
            )
    annotations = {
        (a.annotator.username, index[a.task.item_id]): a
        for a in Annotation.objects.filter(project=project).select_related("annotator", "task")
    }
    now = timezone.now()
    # ann0's first two annotations were made two days ago.
    two_days_ago = now - timedelta(days=2)
    Annotation.objects.filter(pk__in=[annotations["ann0", 0].pk, annotations["ann0", 1].pk]).update(
        created_at=two_days_ago
    )
    # A reviewer's fix of ann1's item 1: a revision that is not ann1's own.
    reviewer = UserFactory(username="rev", roles=["reviewer"])
    ProjectMember.objects.create(project=project, user=reviewer, role="reviewer")
    fixed = annotations["ann1", 1]
    AnnotationRevision.objects.create(
        annotation=fixed,
        number=2,
        result=choice("cat"),
        schema_revision=project.schema_revision,
        created_by=reviewer,
        created_at=now,
        lead_time_ms=99_000,
    )
    Annotation.objects.filter(pk=fixed.pk).update(revision_count=2)
    # Gold: ann0 scores 1 and 1, ann1 1 (yesterday) and 0, ann2 0 on one gold task.
    for task in gold_tasks:
        GoldItem.objects.create(
            project=project,
            task=task,
            result=choice("cat"),
            schema_revision=project.schema_revision,
            created_by=ops,
        )
    scores = {"ann0": [1.0, 1.0], "ann1": [1.0, 0.0], "ann2": [0.0]}
    yesterday = now - timedelta(days=1)
    for user in users:
        for g, score in enumerate(scores[user.username]):
            when = yesterday if (user.username, g) == ("ann1", 0) else now
            answer = Annotation.objects.create(
                task=gold_tasks[g],
                slot=None,
                annotator=user,
                project=project,
                created_at=when,
                updated_at=when,
            )
            GoldAnswer.objects.create(
                annotation=answer,
                project=project,
                annotator=user,
                score=score,
                created_at=when,
                updated_at=when,
            )
    # Reviews: ann2 rejected once and accepted once, ann0 accepted, ann1 fixed, and the
    # consensus of item 3 accepted.
    for (name, i), decision in [
        (("ann2", 2), "reject"),
        (("ann2", 0), "accept"),
        (("ann0", 0), "accept"),
        (("ann1", 1), "fix"),
        ((None, 3), "accept"),  # the consensus of item 3: judges all three annotations
    ]:
        a = annotations[name or "ann0", i]
        Review.objects.create(
            task=a.task,
            project=project,
            reviewer=reviewer,
            decision=decision,
            annotation=a if name else None,
            created_at=now,
        )
    # (Low-confidence consensus may have sent tasks to review: set the states by hand.)
    Task.objects.filter(project=project).update(review="")
    Task.objects.filter(pk=tasks[items[0].pk].pk).update(review="accepted")
    Task.objects.filter(pk=tasks[items[2].pk].pk).update(review="rejected")
    Task.objects.filter(pk=tasks[items[3].pk].pk).update(review="pending")
    ProjectMember.objects.filter(project=project, user=users[2]).update(
        flagged_at=now, flag_reason="gold accuracy 0% < 70%", paused_at=now
    )
    project.refresh_from_db()
    return {"project": project, "users": users, "reviewer": reviewer, "ops": ops}


def store_report(project):
    return QualityReport.objects.create(
        project=project,
        data={
            "project": project.pk,
            "type": "image_class",
            "annotators": ["ann0", "ann1", "ann2"],
            "alpha": 0.25,
            "cohen_kappa": [[None, 0.8, 0.2], [0.8, None, 0.4], [0.2, None, None]],
        },
        annotation_count=12,
    )


def rows_by_name(data):
    return {row["username"]: row for row in data["annotators"]}


def test_numbers_match_the_hand_computed_ones(world):
    project = world["project"]
    store_report(project)
    data = dashboard.project_dashboard(project=project, days=7)
    rows = rows_by_name(data)
    assert set(rows) == {"ann0", "ann1", "ann2"}  # the reviewer made no annotation
    # Four task annotations each, plus their gold answers.
    assert [rows[n]["annotations"] for n in ("ann0", "ann1", "ann2")] == [6, 6, 5]
    # Throughput: today last; ann0's two backdated annotations two days ago.
    assert len(data["days"]) == 7 and data["days"][-1] == timezone.localdate().isoformat()
    assert rows["ann0"]["throughput"] == [0, 0, 0, 0, 2, 0, 4]
    assert rows["ann1"]["throughput"] == [0, 0, 0, 0, 0, 1, 5]
    assert rows["ann2"]["throughput"] == [0, 0, 0, 0, 0, 0, 5]
    assert data["throughput"] == [0, 0, 0, 0, 2, 1, 14]
    # Median lead time of one's own revisions: (2000+3000)/2; 500; (100, 200, 300) -> 200
    # (the submit without a lead time counts as a revision, not in the median; the
    # reviewer's 99 s fix of ann1's annotation is not ann1's).
    assert rows["ann0"]["median_lead_time_ms"] == 2500.0
    assert rows["ann1"]["median_lead_time_ms"] == 500.0
    assert rows["ann2"]["median_lead_time_ms"] == 200.0
    assert [rows[n]["revisions_in_window"] for n in ("ann0", "ann1", "ann2")] == [4, 4, 4]
    # Over today only, ann0's lead times are those of items 2 and 3.
    today = rows_by_name(dashboard.project_dashboard(project=project, days=1))["ann0"]
    assert (today["revisions_in_window"], today["median_lead_time_ms"]) == (2, 3500.0)
    # Gold accuracy: mean score, and per day.
    assert (rows["ann0"]["gold_answers"], rows["ann0"]["gold_accuracy"]) == (2, 1.0)
    assert (rows["ann1"]["gold_answers"], rows["ann1"]["gold_accuracy"]) == (2, 0.5)
    assert (rows["ann2"]["gold_answers"], rows["ann2"]["gold_accuracy"]) == (1, 0.0)
    assert rows["ann1"]["gold_accuracy_series"][-2:] == [1.0, 0.0]
    assert rows["ann0"]["gold_accuracy_series"] == [None] * 6 + [1.0]
    # Agreement: the mean of one's row of the stored matrix, without the diagonal and
    # the pairs with no value.
    assert rows["ann0"]["agreement"] == 0.5
    assert rows["ann1"]["agreement"] == 0.6
    assert rows["ann2"]["agreement"] == 0.2
    assert data["agreement"]["measure"] == "cohen_kappa"
    assert data["agreement"]["overall"] == 0.25
    # Rejection rate: rejects / reviews that judged one's annotations (a fix is not a
    # reject; the consensus accept judged everyone's).
    ann2 = rows["ann2"]
    assert (ann2["reviewed"], ann2["rejected"], ann2["rejection_rate"]) == (3, 1, 0.3333)
    assert (rows["ann0"]["reviewed"], rows["ann0"]["rejection_rate"]) == (2, 0.0)
    assert (rows["ann1"]["reviewed"], rows["ann1"]["fixed"], rows["ann1"]["rejection_rate"]) == (
        2,
        1,
        0.0,
    )
    assert rows["ann2"]["flagged"] and rows["ann2"]["paused"]
    assert not rows["ann0"]["flagged"] and not rows["ann0"]["paused"]
    totals = data["totals"]
    assert (totals["tasks"], totals["done"], totals["gold_items"]) == (6, 4, 2)
    assert (totals["review_pending"], totals["review_accepted"], totals["review_rejected"]) == (
        1,
        1,
        1,
    )
    assert totals["reviewed"] == 7 and totals["rejection_rate"] == round(1 / 7, 4)
    assert totals["gold_answers"] == 5 and totals["gold_accuracy"] == 0.6
    assert (totals["flagged"], totals["paused"], totals["annotations"]) == (1, 1, 17)


def test_no_report_no_reviews_no_gold_gives_none_not_zero(ops, annotator):
    project, _ = make_project(ops, [annotator], schema=CLASSES, count=2)
    data = dashboard.project_dashboard(project=project)
    (row,) = data["annotators"]  # a member who has not annotated yet is listed
    assert row["username"] == annotator.username and row["annotations"] == 0
    assert row["median_lead_time_ms"] is None and row["gold_accuracy"] is None
    assert row["agreement"] is None and row["rejection_rate"] is None
    assert data["agreement"] is None and data["totals"]["rejection_rate"] is None
    assert len(data["days"]) == 30 and data["throughput"] == [0] * 30


def test_the_sqlite_median_fallback_gives_the_same_answer(world, monkeypatch):
    project = world["project"]
    since = timezone.now() - timedelta(days=7)
    on_postgres = dashboard._median_lead_times(project, since)

    class FakeConnection:
        vendor = "sqlite"

    monkeypatch.setattr(dashboard, "connection", FakeConnection())
    assert dashboard._median_lead_times(project, since) == on_postgres
    assert len(on_postgres) == 3


@pytest.mark.parametrize("days", [0, 367, "a week", None])
def test_bad_days_are_refused_naming_the_field(world, days):
    with pytest.raises(dashboard.InvalidDashboardRequest) as exc:
        dashboard.project_dashboard(project=world["project"], days=days)
    assert exc.value.field == "days"


def test_the_dashboard_runs_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    project = world["project"]
    store_report(project)
    with django_assert_max_num_queries(12):
        dashboard.project_dashboard(project=project, days=30)


def test_csv_has_the_per_annotator_table(world):
    project = world["project"]
    store_report(project)
    lines = list(
        dashboard.dashboard_csv_rows(dashboard=dashboard.project_dashboard(project=project))
    )
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert list(rows[0]) == list(dashboard.CSV_COLUMNS)
    by_name = {r["username"]: r for r in rows}
    assert by_name["ann2"]["rejection_rate"] == "0.3333"
    assert by_name["ann2"]["median_lead_time_ms"] == "200.0"
    assert by_name["ann2"]["flagged"] == "yes" and by_name["ann2"]["paused"] == "yes"
    assert by_name["ann0"]["gold_accuracy"] == "1.0" and by_name["ann0"]["agreement"] == "0.5"
    assert by_name["ann0"]["flag_reason"] == "" and by_name["ann0"]["paused"] == "no"


def test_the_job_stores_project_qualitys_dict(world):
    from workers.models import Job
    from workers.services import job_run

    project = world["project"]
    assert dashboard.quality_report_latest(project=project) is None
    job = dashboard.quality_report_submit(project=project, by=world["ops"])
    assert dashboard.quality_report_job_active(project=project) == job
    job_run(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED
    report = dashboard.quality_report_latest(project=project)
    assert report is not None and report.job_id == job.pk
    expected = project_quality(project=project, threshold=project.consensus_threshold)
    assert report.data == expected
    assert report.annotation_count == expected["annotations"] == 12
    assert job.report == {"report": report.pk, "annotations": 12}
    assert dashboard.quality_report_job_active(project=project) is None
    # The dashboard reads the agreement of that report (latest revisions: the reviewer's
    # fix made ann1's item 1 a cat, so ann0 and ann1 differ once too).
    rows = rows_by_name(dashboard.project_dashboard(project=project))
    names = expected["annotators"]
    kappa = expected["cohen_kappa"]
    a0, a1, a2 = (names.index(n) for n in ("ann0", "ann1", "ann2"))
    # ann0 cat dog cat dog, ann1 cat cat cat dog: p_o = 3/4, p_e = .5*.75 + .5*.25 = 1/2.
    assert kappa[a0][a1] == 0.5 and kappa[a0][a0] is None
    assert rows["ann0"]["agreement"] == round((kappa[a0][a1] + kappa[a0][a2]) / 2, 4)
    assert rows["ann2"]["agreement"] == round((kappa[a2][a0] + kappa[a2][a1]) / 2, 4)


def test_keypoint_projects_have_no_report_to_compute(ops, annotator):
    schema = {"type": "keypoint", "labels": [{"name": "nose"}]}
    project, _ = make_project(ops, [annotator], schema=schema, count=1)
    with pytest.raises(dashboard.InvalidDashboardRequest):
        dashboard.quality_report_submit(project=project, by=ops)
    client = Client()
    client.force_login(ops)
    refused = client.post(f"/projects/{project.pk}/quality", HTTP_HX_REQUEST="true")
    assert refused.status_code == 400
    assert "no agreement measure for &#x27;keypoint&#x27;" in refused.content.decode()
    api = api_for(ops).post(f"/api/v1/projects/{project.pk}/quality-reports")
    assert api.status_code == 400 and api.json()["field"] == "project"


# --- the page ---------------------------------------------------------------------------


def login(client, user):
    client.force_login(user)
    return client


def test_the_page_shows_totals_table_charts_and_data(world, client):
    project = world["project"]
    store_report(project)
    response = login(client, world["ops"]).get(f"/projects/{project.pk}/quality?days=7")
    assert response.status_code == 200
    html = response.content.decode()
    for canvas in ("chart-throughput", "chart-gold", "chart-agreement", "chart-lead-time"):
        assert f'id="{canvas}"' in html
    assert 'id="chart-rejection"' in html
    assert 'id="quality-data"' in html and "vendor/chartjs/chart.umd.js" in html
    assert 'data-annotator="ann2" class="flagged"' in html
    assert ">paused</span>" in html and ">flagged</span>" in html
    assert response.context["dashboard"]["annotators"][0]["username"] == "ann0"
    assert response.context["chart_data"]["agreement"]["matrix"][0][1] == 0.8
    assert f'href="/projects/{project.pk}/quality.csv?days=7"' in html
    # The tab is in the project's header.
    assert f'href="/projects/{project.pk}/quality" aria-current="page"' in html


def test_the_page_without_data_says_so(ops, annotator, client):
    project, _ = make_project(ops, [annotator], schema=CLASSES, count=2)
    html = login(client, ops).get(f"/projects/{project.pk}/quality").content.decode()
    assert "No gold answers yet" in html and "Not computed yet" in html
    assert "No reviews yet" in html
    assert 'id="chart-agreement"' not in html


def test_page_permissions(world, client, annotator, outsider):
    project = world["project"]
    url = f"/projects/{project.pk}/quality"
    assert client.get(url).status_code == 302  # to the login page
    assert login(client, outsider).get(url).status_code == 404
    member = world["users"][0]
    assert login(client, member).get(url).status_code == 403
    assert login(client, member).get(url + ".csv").status_code == 403
    assert login(client, member).post(url).status_code == 403
    assert login(client, world["reviewer"]).get(url).status_code == 200
    assert login(client, world["ops"]).get("/projects/999999/quality").status_code == 404
    assert login(client, world["ops"]).get(url + "?days=0").status_code == 400


def test_recompute_by_htmx_shows_the_job_and_the_poll_reloads_when_done(world, client):
    from workers.services import job_run

    project = world["project"]
    login(client, world["ops"])
    response = client.post(f"/projects/{project.pk}/quality", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job = dashboard.quality_report_job_active(project=project)
    assert job is not None and job.created_by == world["ops"]
    html = response.content.decode()
    assert f'id="job-{job.pk}"' in html and "disabled" in html
    poll = client.get(f"/projects/{project.pk}/quality/job")
    assert poll.status_code == 200 and f'id="job-{job.pk}"' in poll.content.decode()
    job_run(job.pk)
    done = client.get(f"/projects/{project.pk}/quality/job")
    assert done["HX-Refresh"] == "true"
    page = client.get(f"/projects/{project.pk}/quality").content.decode()
    assert 'id="chart-agreement"' in page
    # Without htmx the form posts and comes back to the page.
    plain = client.post(f"/projects/{project.pk}/quality")
    assert plain.status_code == 302 and plain["Location"] == f"/projects/{project.pk}/quality"


def test_csv_download(world, client):
    project = world["project"]
    response = login(client, world["reviewer"]).get(f"/projects/{project.pk}/quality.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert f'filename="project-{project.pk}-quality.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["username"] for r in rows] == ["ann0", "ann1", "ann2"]
    assert rows[1]["gold_accuracy"] == "0.5" and rows[1]["median_lead_time_ms"] == "500.0"


# --- the API ----------------------------------------------------------------------------


def test_api_dashboard(world):
    project = world["project"]
    store_report(project)
    body = api_for(world["reviewer"]).get(f"/api/v1/projects/{project.pk}/dashboard?days=7")
    assert body.status_code == 200
    data = body.json()
    expected = dashboard.project_dashboard(project=project, days=7)
    data.pop("generated_at"), expected.pop("generated_at")
    assert data == expected
    bad = api_for(world["ops"]).get(f"/api/v1/projects/{project.pk}/dashboard?days=abc")
    assert bad.status_code == 400 and bad.json()["field"] == "days"


def test_api_quality_reports(world):
    from workers.services import job_run

    project = world["project"]
    api = api_for(world["ops"])
    latest = f"/api/v1/projects/{project.pk}/quality-reports/latest"
    missing = api.get(latest)
    assert missing.status_code == 404 and "no quality report yet" in missing.json()["detail"]
    posted = api.post(f"/api/v1/projects/{project.pk}/quality-reports")
    assert posted.status_code == 202
    job_id = posted.json()["job"]["id"]
    assert posted.json()["job"]["url"].endswith(job_id)
    job_run(job_id)
    body = api.get(latest).json()
    assert body["job"]["id"] == job_id and body["annotation_count"] == 12
    assert body["data"]["annotators"] and body["data"]["type"] == "image_class"


def test_api_permissions(world, outsider):
    project = world["project"]
    base = f"/api/v1/projects/{project.pk}"
    for user, code in [(outsider, 404), (world["users"][0], 403)]:
        api = api_for(user)
        assert api.get(f"{base}/dashboard").status_code == code
        assert api.post(f"{base}/quality-reports").status_code == code
        assert api.get(f"{base}/quality-reports/latest").status_code == code
    from rest_framework.test import APIClient

    assert APIClient().get(f"{base}/dashboard").status_code in (401, 403)
