"""Gold items: marked by ops with a known answer, mixed into annotators' queues, never
shown as gold to annotators, scored, and an annotator under the threshold is flagged
and paused until ops resume them."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from datasets.models import Label
from labeling.models import GoldAnswer, GoldItem, Project, ProjectMember, Task
from labeling.services.quality import project_quality
from tests.factories import UserFactory
from tests.labeling.conftest import api_for, box, make_project

pytestmark = pytest.mark.django_db

CLASS_SCHEMA = {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]}


def choice(name):
    return [{"type": "choices", "value": {"choices": [name]}}]


def mark(ops, project, item, result):
    return api_for(ops).post(
        f"/api/v1/projects/{project.pk}/gold", {"item": item.pk, "result": result}, format="json"
    )


def next_task(user, project):
    response = api_for(user).post(f"/api/v1/projects/{project.pk}/next")
    assert response.status_code == 200, response.content
    return response.json()


def submit(user, got, result):
    return api_for(user).post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": result, "lease": got["lease"]["id"]},
        format="json",
    )


def keys(value):
    """The shape of a JSON value: dict keys recursively, list items merged."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        merged = {}
        for v in value:
            shape = keys(v)
            if isinstance(shape, dict):
                merged.update(shape)
        return [merged]
    return type(value).__name__ if value is not None else "null-or-value"


def loose(shape):
    """Keys only (types of leaves may differ between two items: null vs text)."""
    if isinstance(shape, dict):
        return {k: loose(v) for k, v in shape.items()}
    if isinstance(shape, list):
        return [loose(v) for v in shape]
    return "leaf"


def test_marking_gold_validates_and_publishes(ops, annotator):
    project, items = make_project(ops, [annotator], count=3, gold_rate=0.0)
    assert mark(ops, project, items[0], [box(x=60, w=10)]).status_code == 400
    assert not GoldItem.objects.exists()
    other, other_items = make_project(ops, [annotator], count=1)
    response = mark(ops, project, other_items[0], [box()])
    assert response.status_code == 400
    assert response.json()["field"] == "item"
    assert mark(annotator, project, items[0], [box()]).status_code == 403

    response = mark(ops, project, items[0], [box(x=4)])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["item"] == items[0].pk
    assert body["answers"] == 0
    task = Task.objects.get(project=project, item=items[0])
    assert task.status == "gold"
    project.refresh_from_db()
    assert (project.task_count, project.done_count) == (2, 0)
    label = Label.objects.get(item=items[0])
    assert label.provenance["gold"] is True
    assert label.value[0]["value"]["x"] == 4
    listed = api_for(ops).get(f"/api/v1/projects/{project.pk}/gold").json()["results"]
    assert [g["item"] for g in listed] == [items[0].pk]
    assert api_for(annotator).get(f"/api/v1/projects/{project.pk}/gold").status_code == 403


def test_gold_tasks_look_like_any_other_task(ops, annotator, annotator2):
    project, items = make_project(ops, [annotator, annotator2], count=2, gold_rate=1.0)
    assert mark(ops, project, items[0], [box(x=4)]).status_code == 201
    gold_task = Task.objects.get(project=project, item=items[0])

    got_gold = next_task(annotator, project)
    assert got_gold["task"]["id"] == gold_task.pk  # rate 1: the gold task first
    submitted_gold = submit(annotator, got_gold, [box(x=4)])
    assert submitted_gold.status_code == 201, submitted_gold.content
    got_plain = next_task(annotator, project)
    assert got_plain["task"]["id"] != gold_task.pk
    submitted_plain = submit(annotator, got_plain, [box(x=4)])
    assert submitted_plain.status_code == 201

    # Same keys, same values where they could tell: status, slot, task_status.
    assert loose(keys(got_gold)) == loose(keys(got_plain))
    assert got_gold["task"]["status"] == got_plain["task"]["status"] == "open"
    assert got_gold["lease"]["slot"] == got_plain["lease"]["slot"] == 0
    assert loose(keys(submitted_gold.json())) == loose(keys(submitted_plain.json()))
    assert submitted_gold.json()["task_status"] == submitted_plain.json()["task_status"] == "done"
    assert submitted_gold.json()["annotation"]["slot"] == 0
    api = api_for(annotator)
    detail = api.get(f"/api/v1/tasks/{gold_task.pk}").json()
    annotations = api.get(f"/api/v1/tasks/{gold_task.pk}/annotations/").json()
    history = api.get(f"/api/v1/projects/{project.pk}/history").json()
    browser = Client()
    browser.force_login(annotator)
    page = browser.get(f"/projects/{project.pk}/annotate")
    assert page.status_code == 200
    for answer in (got_gold, submitted_gold.json(), detail, annotations, history):
        assert "gold" not in json.dumps(answer).lower(), answer
    assert "gold" not in page.content.decode().lower()
    assert detail["status"] == "open"
    assert annotations["annotations"][0]["slot"] == 0

    # A gold task takes any number of annotators, whatever the overlap.
    second = next_task(annotator2, project)
    assert second["task"]["id"] == gold_task.pk
    assert submit(annotator2, second, [box(x=40)]).status_code == 201
    scores = dict(GoldAnswer.objects.values_list("annotator__username", "score"))
    assert scores == {annotator.username: 1.0, annotator2.username: 0.0}
    # Gold answers never replace the gold label, count as work, or enter agreement.
    assert Label.objects.get(item=items[0]).provenance["gold"] is True
    project.refresh_from_db()
    assert project.done_count == 1
    assert project_quality(project=project)["tasks"] == 1


def test_editing_a_gold_answer_rescores_it(ops, annotator):
    project, items = make_project(ops, [annotator], count=1, gold_rate=1.0)
    mark(ops, project, items[0], [box(x=4)])
    got = next_task(annotator, project)
    submit(annotator, got, [box(x=40)])
    assert GoldAnswer.objects.get().score == 0.0
    edited = api_for(annotator).post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/", {"result": [box(x=4)]}, format="json"
    )
    assert edited.status_code == 201, edited.content  # a new revision
    assert GoldAnswer.objects.get().score == 1.0
    # Changing the known answer scores every answer again.
    mark(ops, project, items[0], [box(x=30)])
    assert GoldAnswer.objects.get().score == 0.0


def test_low_gold_accuracy_flags_and_pauses_until_resumed(ops, annotator):
    project, items = make_project(
        ops,
        [annotator],
        schema=CLASS_SCHEMA,
        count=6,
        gold_rate=1.0,
        gold_min_answers=3,
        gold_threshold=0.6,
    )
    for item in items[:4]:
        assert mark(ops, project, item, choice("cat")).status_code == 201
    answers = ["cat", "dog", "dog"]  # 1/3 right after three gold answers
    for name in answers:
        got = next_task(annotator, project)
        assert submit(annotator, got, choice(name)).status_code == 201
    member = ProjectMember.objects.get(project=project, user=annotator)
    assert member.flagged_at is not None
    assert member.paused_at is not None
    assert "33%" in member.flag_reason
    paused = api_for(annotator).post(f"/api/v1/projects/{project.pk}/next")
    assert paused.status_code == 403
    assert paused.json()["error"] == "annotator_paused"
    assert "gold accuracy" in paused.json()["detail"].lower()
    shown = api_for(ops).get(f"/api/v1/projects/{project.pk}").json()["members"]
    assert shown[0]["paused_at"] is not None
    # Another member does not see it; the annotator sees their own.
    other = UserFactory(roles=["annotator"])
    project.memberships.create(user=other, role="annotator")
    seen = api_for(other).get(f"/api/v1/projects/{project.pk}").json()["members"]
    flags = {m["username"]: m["paused_at"] for m in seen}
    assert flags[annotator.username] is None
    own = api_for(annotator).get(f"/api/v1/projects/{project.pk}").json()["members"]
    assert next(m for m in own if m["username"] == annotator.username)["paused_at"] is not None

    assert (
        api_for(annotator)
        .post(f"/api/v1/projects/{project.pk}/members/{annotator.username}/resume")
        .status_code
        == 403
    )
    resumed = api_for(ops).post(
        f"/api/v1/projects/{project.pk}/members/{annotator.username}/resume"
    )
    assert resumed.status_code == 200, resumed.content
    assert resumed.json()["paused_at"] is None
    assert api_for(annotator).post(f"/api/v1/projects/{project.pk}/next").status_code == 200
    missing = api_for(ops).post(f"/api/v1/projects/{project.pk}/members/nobody/resume")
    assert missing.status_code == 404


def test_flag_without_pause_clears_itself(ops, annotator):
    project, items = make_project(
        ops,
        [annotator],
        schema=CLASS_SCHEMA,
        count=6,
        gold_rate=1.0,
        gold_min_answers=2,
        gold_threshold=0.6,
        gold_pause=False,
    )
    for item in items[:5]:
        mark(ops, project, item, choice("cat"))
    for name in ["dog", "dog"]:
        submit(annotator, next_task(annotator, project), choice(name))
    member = ProjectMember.objects.get(project=project, user=annotator)
    assert member.flagged_at is not None and member.paused_at is None
    for name in ["cat", "cat", "cat"]:
        submit(annotator, next_task(annotator, project), choice(name))
    member.refresh_from_db()
    assert member.flagged_at is None  # 3/5 = 60%: back at the threshold


def test_no_gold_served_at_rate_zero(ops, annotator):
    project, items = make_project(ops, [annotator], count=2, gold_rate=0.0)
    mark(ops, project, items[0], [box()])
    got = next_task(annotator, project)
    assert got["task"]["id"] == Task.objects.get(project=project, item=items[1]).pk
    submit(annotator, got, [box()])
    assert api_for(annotator).post(f"/api/v1/projects/{project.pk}/next").status_code == 204


def test_quality_settings_are_checked(ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    api = api_for(ops)
    for field, value in [
        ("review_mode", "sometimes"),
        ("review_fraction", 1.5),
        ("gold_rate", "lots"),
        ("gold_min_answers", 0),
        ("gold_pause", "yes"),
        ("consensus_threshold", -0.1),
    ]:
        response = api.patch(f"/api/v1/projects/{project.pk}", {field: value}, format="json")
        assert response.status_code == 400, (field, response.content)
        assert response.json()["field"] == field
    ok = api.patch(
        f"/api/v1/projects/{project.pk}",
        {"review_mode": "sampled", "review_fraction": 0.25, "gold_rate": 0.05},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["review_mode"] == "sampled"
    stored = Project.objects.get(pk=project.pk)
    assert (stored.review_fraction, stored.gold_rate) == (0.25, 0.05)
    user = UserFactory(roles=["annotator"])
    assert api_for(user).patch(
        f"/api/v1/projects/{project.pk}", {"gold_rate": 0.2}
    ).status_code in (
        403,
        404,
    )


def test_a_gold_set_is_imported_like_labels(
    ops, annotator, celery_redis_broker, celery_worker_factory, wait_for_job
):
    from tests.labeling.test_label_imports_api import box_line, post, upload

    project, items = make_project(ops, [annotator], count=3)
    celery_worker_factory(celery_redis_broker)
    api = api_for(ops)
    response = post(
        api,
        project,
        file=upload([box_line(items[0].external_id, x=7), box_line(items[1].external_id)]),
        format="jsonl",
        mode="gold",
    )
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["job"]["id"], timeout=60)
    assert job.state == "succeeded", job.error
    done = api.get(response.json()["url"]).json()
    assert (done["state"], done["imported"]) == ("done", 2), done
    gold = {g.task.item_id: g.result for g in GoldItem.objects.select_related("task")}
    assert set(gold) == {items[0].pk, items[1].pk}
    assert gold[items[0].pk][0]["value"]["x"] == 7
    assert Task.objects.filter(project=project, status="gold").count() == 2
    project.refresh_from_db()
    assert project.task_count == 1
