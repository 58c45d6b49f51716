"""The review pages: who may open the reviewer's page and a task's history (reviewers and
ops; annotators 403, outsiders 404), what the reviewer's shell holds, the Review tab,
and the history of a task taken, submitted, rejected and accepted, in time order."""

from __future__ import annotations

import json
import re

import pytest

from labeling.models import ProjectMember, Task
from labeling.services.annotations import annotation_submit
from labeling.services.queue import task_lease_next
from labeling.services.review import review_decide, review_lease_next
from tests.factories import UserFactory
from tests.labeling.conftest import box, make_project

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


@pytest.fixture
def reviewer():
    return UserFactory(roles=["reviewer"])


@pytest.fixture
def project(ops, annotator, reviewer):
    project, _ = make_project(ops, [annotator], count=2, review_mode="all")
    ProjectMember.objects.create(project=project, user=reviewer, role="reviewer")
    return project


def page_config(response) -> dict:
    match = re.search(
        r'<script id="annotator-config" type="application/json">(.*?)</script>', html(response)
    )
    assert match, "the page carries its script's config"
    return json.loads(match.group(1))


# --- access -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/projects/1/review", "/projects/1/tasks/1/history"])
def test_review_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_an_annotator_of_the_project_may_not_review(client, project, annotator):
    task = Task.objects.filter(project=project).first()
    client.force_login(annotator)
    response = client.get(f"/projects/{project.pk}/review")
    assert response.status_code == 403
    assert client.get(f"/projects/{project.pk}/tasks/{task.pk}/history").status_code == 403


def test_someone_outside_the_project_gets_404(client, project, outsider):
    other_reviewer = UserFactory(roles=["reviewer"])
    task = Task.objects.filter(project=project).first()
    for user in (outsider, other_reviewer):
        client.force_login(user)
        assert client.get(f"/projects/{project.pk}/review").status_code == 404
        assert client.get(f"/projects/{project.pk}/tasks/{task.pk}/history").status_code == 404


def test_a_task_of_another_project_has_no_history_here(client, ops, project, annotator):
    other, _ = make_project(ops, [annotator], count=1)
    task = Task.objects.get(project=other)
    client.force_login(ops)
    assert client.get(f"/projects/{project.pk}/tasks/{task.pk}/history").status_code == 404
    assert client.get(f"/projects/{project.pk}/tasks/999999/history").status_code == 404


# --- the reviewer's page --------------------------------------------------------------------


@pytest.mark.parametrize("who", ["reviewer", "ops"])
def test_reviewers_and_ops_get_the_review_shell(client, project, request, who):
    client.force_login(request.getfixturevalue(who))
    response = client.get(f"/projects/{project.pk}/review")
    assert response.status_code == 200
    page = html(response)
    config = page_config(response)
    assert config["mode"] == "review"
    assert config["projectId"] == project.pk
    assert config["apiRoot"] == "/api/v1/"
    assert config["projectUrl"] == f"/projects/{project.pk}/"
    # The review mode's script comes before the editor, which looks it up by name.
    assert page.index("labeling/reviewer.js") < page.index("labeling/annotator.js")
    for control in ('id="btn-accept"', 'id="btn-reject"', 'id="btn-fix"', 'id="reject-dialog"'):
        assert control in page
    # The annotator's own actions are not on it.
    for absent in ('id="btn-submit"', 'id="btn-skip"', 'id="skip-dialog"'):
        assert absent not in page


def test_the_annotator_page_keeps_its_own_actions_and_has_the_returned_banner(
    client, project, annotator
):
    client.force_login(annotator)
    response = client.get(f"/projects/{project.pk}/annotate")
    assert response.status_code == 200
    page = html(response)
    assert "mode" not in page_config(response)
    assert 'id="returned"' in page
    assert 'id="btn-submit"' in page and 'id="skip-dialog"' in page
    assert "labeling/reviewer.js" not in page


def test_the_review_tab_is_shown_to_reviewers_and_ops_only(
    client, project, reviewer, annotator, ops
):
    link = f'href="/projects/{project.pk}/review"'
    for user, shown in ((reviewer, True), (ops, True), (annotator, False)):
        client.force_login(user)
        assert (link in html(client.get(f"/projects/{project.pk}/"))) is shown, user


# --- history --------------------------------------------------------------------------------


def test_history_of_a_task_nobody_took_is_empty(client, project, reviewer):
    task = Task.objects.filter(project=project).first()
    client.force_login(reviewer)
    response = client.get(f"/projects/{project.pk}/tasks/{task.pk}/history")
    assert response.status_code == 200
    page = html(response)
    assert "Nothing has happened to this task yet" in page
    assert 'aria-current="page">Review</a>' in page


def test_history_lists_leases_revisions_and_reviews_in_time_order(
    client, project, annotator, reviewer
):
    grant = task_lease_next(project=project, annotator=annotator)
    task = grant.task
    annotation_submit(task=task, annotator=annotator, result=[box()], lease_id=grant.lease.pk)
    lease = review_lease_next(project=project, reviewer=reviewer).lease
    review_decide(
        task=Task.objects.select_related("project__schema_revision", "item").get(pk=task.pk),
        reviewer=reviewer,
        decision="reject",
        comment="The box misses the wheels.",
        review_lease_id=lease.pk,
    )

    client.force_login(reviewer)
    response = client.get(f"/projects/{project.pk}/tasks/{task.pk}/history")
    assert response.status_code == 200
    page = html(response)
    kinds = re.findall(r'<tr data-kind="([a-z_]+)">', page)
    assert kinds == ["lease", "revision", "review_lease", "review"]
    rows = dict(re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', page, re.S))
    review_row = rows["review"]
    assert "review: rejected" in review_row
    assert reviewer.username in review_row
    assert "The box misses the wheels." in review_row
    assert "taken for review" in rows["review_lease"]
    assert "decided" in rows["review_lease"]  # how the reviewer's lease ended
    revision_row = rows["revision"]
    assert annotator.username in revision_row
    assert "rectanglelabels" in revision_row  # the result, as JSON
    assert "waiting for review" not in page  # the task is rejected now
    assert "rejected, back with its annotator" in page
