"""Projects through the API: who may create and see them, the 400s of bad fields,
schema revisions, the job that makes tasks, priority rules and item filters."""

from __future__ import annotations

import pytest

from datasets.models import ItemTag
from labeling.models import Annotation, AnnotationRevision, Project, SchemaRevision, Task
from labeling.services.projects import project_tasks_create
from tests.factories import dataset_with_items, png_bytes
from tests.labeling.conftest import BOX_SCHEMA, api_for, box, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def images(ops):
    return dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(32, 32, (n, 0, 0)) for n in range(4)]
    )


def create(api, dataset_, **fields):
    body = {"name": "Cars", "dataset": dataset_.pk, "label_schema": BOX_SCHEMA, **fields}
    return api.post("/api/v1/projects/", body, format="json")


def test_ops_create_a_project_and_its_task_job(ops, annotator, images):
    dataset, _ = images
    response = create(
        api_for(ops),
        dataset,
        instructions="# Draw boxes\nTight ones.",
        members=[{"username": annotator.username, "role": "annotator"}],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["schema_revision"] == 1 and len(body["schema_hash"]) == 64
    assert body["label_schema"]["labels"][0]["color"].startswith("#")
    assert body["members"] == [
        {
            "username": annotator.username,
            "role": "annotator",
            "flagged_at": None,
            "flag_reason": "",
            "paused_at": None,
        }
    ]
    # Review, consensus and gold settings start at the model's defaults.
    assert body["review_mode"] == "off"
    assert (body["gold_rate"], body["consensus_threshold"]) == (0.1, 0.7)
    assert body["tasks_job"]["url"].startswith("/api/v1/jobs/")
    project = Project.objects.get(pk=body["id"])
    assert project_tasks_create(project=project) == 4
    assert project_tasks_create(project=project) == 0  # idempotent
    project.refresh_from_db()
    assert project.task_count == 4


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_task_job_runs_in_a_worker(
    ops, celery_redis_broker, celery_worker_factory, wait_for_job
):
    dataset, _ = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(16, 16, (n, 9, 9)) for n in range(3)]
    )
    celery_worker_factory(celery_redis_broker)
    body = create(api_for(ops), dataset).json()
    job = wait_for_job(body["tasks_job"]["id"])
    assert job.state == "succeeded", job.error
    assert job.report == {"made": 3}
    assert Project.objects.get(pk=body["id"]).task_count == 3
    assert Task.objects.filter(project_id=body["id"], status="open", remaining=1).count() == 3


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": ""}, "name", "name"),
        ({"overlap": 0}, "overlap", "overlap"),
        ({"overlap": 21}, "overlap", "1 to 20"),
        ({"label_schema": {"type": "cuboid", "labels": [{"name": "a"}]}}, "label_schema", "cuboid"),
        (
            {"label_schema": {"type": "ner", "labels": [{"name": "PER"}]}},
            "label_schema.type",
            "text",
        ),
        ({"item_filter": {"split": "holdout"}}, "item_filter.split", "holdout"),
        ({"item_filter": {"colour": "red"}}, "item_filter", "colour"),
        ({"priority_rules": [{"tag": "night"}]}, "priority_rules[0]", "priority"),
        (
            {"priority_rules": [{"split": "train", "priority": "high"}]},
            "priority_rules[0].priority",
            "whole number",
        ),
        ({"members": [{"username": "nobody-here"}]}, "members", "nobody-here"),
        ({"members": [{"username": "x", "role": "boss"}]}, "members", "boss"),
        ({"dataset": 999999}, "dataset", "999999"),
    ],
)
def test_bad_project_fields_are_400_and_nothing_stored(ops, images, fields, field, words):
    dataset, _ = images
    response = create(api_for(ops), dataset, **fields)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"].startswith(field), body
    assert words in body["detail"], body
    assert not Project.objects.exists() and not SchemaRevision.objects.exists()


def test_only_ops_create_and_members_see_their_projects(ops, annotator, outsider, images):
    dataset, _ = images
    assert create(api_for(annotator), dataset).status_code in (400, 403)
    body = create(api_for(ops), dataset, members=[{"username": annotator.username}]).json()
    assert [p["id"] for p in api_for(annotator).get("/api/v1/projects/").json()["results"]] == [
        body["id"]
    ]
    assert api_for(outsider).get("/api/v1/projects/").json()["results"] == []
    assert api_for(outsider).get(f"/api/v1/projects/{body['id']}").status_code == 404
    response = api_for(annotator).patch(
        f"/api/v1/projects/{body['id']}", {"name": "Mine now"}, format="json"
    )
    assert response.status_code == 403


def test_schema_change_makes_a_revision_once_annotations_exist(ops, annotator):
    project, _ = make_project(ops, [annotator], count=2)
    api = api_for(ops)
    url = f"/api/v1/projects/{project.pk}"
    wider = {**BOX_SCHEMA, "labels": [*BOX_SCHEMA["labels"], {"name": "bike"}]}
    # no annotation yet: the revision is corrected in place
    assert api.patch(url, {"label_schema": wider}, format="json").json()["schema_revision"] == 1
    mine = api_for(annotator)
    got = mine.post(f"/api/v1/projects/{project.pk}/next").json()
    mine.post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": [box(label="bike")], "lease": got["lease"]["id"]},
        format="json",
    )
    narrower = {**BOX_SCHEMA, "labels": [{"name": "car"}]}
    body = api.patch(url, {"label_schema": narrower}, format="json").json()
    assert body["schema_revision"] == 2
    old = AnnotationRevision.objects.get()
    assert old.schema_revision.number == 1  # kept the revision it was made under
    assert "bike" in [label["name"] for label in old.schema_revision.schema["labels"]]
    # the same schema again changes nothing
    assert api.patch(url, {"label_schema": narrower}, format="json").json()["schema_revision"] == 2
    response = api.patch(url, {"overlap": 2}, format="json")
    assert response.status_code == 400 and "annotations" in response.json()["detail"]
    assert Annotation.objects.count() == 1


def test_item_filter_and_priority_rules_shape_the_tasks(ops, annotator, images):
    dataset, items = images
    items[0].split = "test"
    items[0].save()
    ItemTag.objects.create(item=items[1], dataset=dataset, tag="night")
    ItemTag.objects.create(item=items[2], dataset=dataset, tag="night")
    body = create(
        api_for(ops),
        dataset,
        priority_rules=[{"tag": "night", "priority": 10}, {"split": "test", "priority": 5}],
    ).json()
    project = Project.objects.get(pk=body["id"])
    project_tasks_create(project=project)
    priorities = dict(Task.objects.filter(project=project).values_list("item_id", "priority"))
    assert priorities == {items[0].pk: 5, items[1].pk: 10, items[2].pk: 10, items[3].pk: 0}

    sliced = create(
        api_for(ops), dataset, name="Night only", item_filter={"tags": ["night"]}
    ).json()
    project = Project.objects.get(pk=sliced["id"])
    project_tasks_create(project=project)
    assert set(Task.objects.filter(project=project).values_list("item_id", flat=True)) == {
        items[1].pk,
        items[2].pk,
    }
