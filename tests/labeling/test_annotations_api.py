"""Submitting annotations through the API: every validation rule answers 400 naming
the region and the problem, nothing stored; idempotent re-sends; revisions; drafts;
labels published into datasets."""

from __future__ import annotations

import pytest

from datasets.models import Label
from labeling.models import Annotation, AnnotationRevision, Draft, Task
from tests.labeling.conftest import api_for, box, make_project, span

pytestmark = pytest.mark.django_db


def leased(api, project):
    got = api.post(f"/api/v1/projects/{project.pk}/next").json()
    return got["task"], got["lease"]["id"]


def submit(api, task, lease_id, result, **extra):
    return api.post(
        f"/api/v1/tasks/{task['id']}/annotations/",
        {"result": result, "lease": lease_id, **extra},
        format="json",
    )


def polygon(points, label="car"):
    return {"type": "polygonlabels", "value": {"points": points, "polygonlabels": [label]}}


def keypoint(x, y, label="nose"):
    return {"type": "keypointlabels", "value": {"x": x, "y": y, "keypointlabels": [label]}}


BAD_BOXES = [
    # (result, field that must be named, words the message must contain)
    ([box(label="truck")], "result[0].value.rectanglelabels", "truck"),
    ([box(x=60, w=10)], "result[0].value", "outside the image"),
    ([box(y=-1)], "result[0].value", "y"),
    ([box(w=0)], "result[0].value.width", "width"),
    ([box(), {"type": "polygonlabels", "value": {}}], "result[1].type", "polygonlabels"),
    ([box(attributes={"occluded": "yes"})], "result[0].attributes.occluded", "occluded"),
    ([box(attributes={"colour": "red"})], "result[0].attributes", "colour"),
    ([], "result", "empty"),
    ("not a list", "result", "list"),
]


@pytest.mark.parametrize(("result", "field", "words"), BAD_BOXES)
def test_bad_box_submit_is_400_naming_the_problem(image_project, annotator, result, field, words):
    project, _ = image_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    response = submit(api, task, lease_id, result)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_annotation"
    assert body["field"].startswith(field.split(".value")[0]) or body["field"] == field
    assert any(field in (e["field"] or "") for e in body["errors"]) or body["field"] == field
    assert words.lower() in body["detail"].lower() + " ".join(
        e["detail"].lower() for e in body["errors"]
    )
    assert not Annotation.objects.exists() and not AnnotationRevision.objects.exists()
    assert Task.objects.get(pk=task["id"]).remaining == 1


def test_every_problem_is_listed(image_project, annotator):
    project, _ = image_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    response = submit(api, task, lease_id, [box(label="truck"), box(x=63, w=5)])
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith("result[0]") for f in fields)
    assert any(f.startswith("result[1]") for f in fields)


def test_polygons_and_keypoints_inside_the_image(ops, annotator):
    poly_project, _ = make_project(
        ops, [annotator], schema={"type": "polygon", "labels": [{"name": "car"}]}, count=1
    )
    api = api_for(annotator)
    task, lease_id = leased(api, poly_project)
    response = submit(api, task, lease_id, [polygon([[1, 1], [70, 1], [5, 40]])])
    assert response.status_code == 400
    assert response.json()["field"].startswith("result[0].value.points")
    response = submit(api, task, lease_id, [polygon([[1, 1], [5, 1]])])
    assert response.status_code == 400 and "3" in response.json()["detail"]
    assert submit(api, task, lease_id, [polygon([[1, 1], [60, 1], [5, 40]])]).status_code == 201

    kp_project, _ = make_project(
        ops, [annotator], schema={"type": "keypoint", "labels": [{"name": "nose"}]}, count=1
    )
    task, lease_id = leased(api, kp_project)
    response = submit(api, task, lease_id, [keypoint(65, 10)])
    assert response.status_code == 400
    assert response.json()["field"].startswith("result[0].value")
    assert submit(api, task, lease_id, [keypoint(63, 47)]).status_code == 201


def test_classification_rules(ops, annotator):
    project, _ = make_project(
        ops,
        [annotator],
        schema={"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]},
        count=1,
    )
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    two = [{"type": "choices", "value": {"choices": ["cat", "dog"]}}]
    response = submit(api, task, lease_id, two)
    assert response.status_code == 400 and "one" in response.json()["detail"]
    unknown = [{"type": "choices", "value": {"choices": ["cow"]}}]
    response = submit(api, task, lease_id, unknown)
    assert response.status_code == 400 and "cow" in response.json()["detail"]
    ok = [{"type": "choices", "value": {"choices": ["dog"]}}]
    assert submit(api, task, lease_id, ok).status_code == 201
    assert Label.objects.get().value[0]["value"]["choices"] == ["dog"]


def test_nothing_here_only_when_the_schema_allows_it(ops, annotator):
    schema = {"type": "bbox", "labels": [{"name": "car"}], "allow_empty": True}
    project, items = make_project(ops, [annotator], schema=schema, count=1)
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    assert submit(api, task, lease_id, []).status_code == 201
    assert Label.objects.get(item=items[0]).value == []


def test_spans_on_valid_offsets(text_project, annotator):
    project, items = text_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    text = task["item"]["text"]
    assert text.startswith(("Alice", "Bob", "Nothing"))
    response = submit(api, task, lease_id, [span(0, len(text) + 5)])
    assert response.status_code == 400
    assert response.json()["field"].startswith("result[0].value")
    response = submit(api, task, lease_id, [span(3, 2)])
    assert response.status_code == 400
    bad_text = [
        {"type": "labels", "value": {"start": 0, "end": 3, "text": "xyz", "labels": ["PER"]}}
    ]
    response = submit(api, task, lease_id, bad_text)
    assert response.status_code == 400 and "xyz" in response.json()["detail"]
    response = submit(api, task, lease_id, [span(0, 3), span(4, 6, "ORG")])
    assert response.status_code == 201, response.content
    stored = AnnotationRevision.objects.get().result
    assert [r["value"]["text"] for r in stored] == [text[0:3], text[4:6]]


def test_idempotent_resend_stores_once(image_project, annotator):
    project, _ = image_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    first = submit(api, task, lease_id, [box()], idempotency_key="k-1")
    again = submit(api, task, lease_id, [box()], idempotency_key="k-1")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["annotation"] == again.json()["annotation"]
    assert AnnotationRevision.objects.count() == 1
    by_header = api.post(
        f"/api/v1/tasks/{task['id']}/annotations/",
        {"result": [box(label="person")]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-2",
    )
    assert by_header.status_code == 201
    assert AnnotationRevision.objects.get(idempotency_key="k-2").number == 2


def test_editing_keeps_every_revision_and_republishes(image_project, annotator):
    project, items = image_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    assert submit(api, task, lease_id, [box()], lead_time_ms=1200).status_code == 201
    label = Label.objects.get(item_id=task["item"]["id"])
    assert label.value[0]["value"]["rectanglelabels"] == ["car"]
    assert label.schema_hash == project.schema_revision.schema_hash
    assert label.source == f"project:{project.pk}"
    # go back: my history lists it, and I can open and edit it without a lease
    history = api.get(f"/api/v1/projects/{project.pk}/history").json()["results"]
    assert history[0]["task"] == task["id"]
    opened = api.get(f"/api/v1/tasks/{task['id']}").json()
    assert opened["annotation"]["revision"]["number"] == 1
    response = api.post(
        f"/api/v1/tasks/{task['id']}/annotations/",
        {"result": [box(label="person")], "lead_time_ms": 800},
        format="json",
    )
    assert response.status_code == 201
    revisions = api.get(f"/api/v1/tasks/{task['id']}/annotations/").json()["annotations"][0][
        "revisions"
    ]
    assert [r["number"] for r in revisions] == [1, 2]
    assert revisions[0]["result"][0]["value"]["rectanglelabels"] == ["car"]
    assert revisions[1]["lead_time_ms"] == 800
    label.refresh_from_db()
    assert label.value[0]["value"]["rectanglelabels"] == ["person"]
    assert len(label.provenance["annotation_revisions"]) == 1


def test_submit_without_a_lease_is_refused(image_project, annotator):
    project, _ = image_project
    task_id = Task.objects.filter(project=project).first().pk
    response = api_for(annotator).post(
        f"/api/v1/tasks/{task_id}/annotations/", {"result": [box()]}, format="json"
    )
    assert response.status_code == 409
    assert "lease" in response.json()["detail"]


def test_someone_elses_task_is_hidden(image_project, annotator, annotator2):
    project, _ = image_project
    task, _ = leased(api_for(annotator), project)
    assert api_for(annotator2).get(f"/api/v1/tasks/{task['id']}").status_code == 404


def test_draft_autosave_and_restore(image_project, annotator):
    project, _ = image_project
    api = api_for(annotator)
    task, lease_id = leased(api, project)
    url = f"/api/v1/tasks/{task['id']}/draft"
    assert api.get(url).status_code == 404
    assert api.put(url, {"result": [box(x=3)]}, format="json").status_code == 204
    assert api.put(url, {"result": "nope"}, format="json").status_code == 400
    assert api.get(url).json()["result"][0]["value"]["x"] == 3
    # the task comes back with its draft after a reload
    again = api.post(f"/api/v1/projects/{project.pk}/next").json()
    assert again["task"]["draft"][0]["value"]["x"] == 3
    assert submit(api, task, lease_id, [box()]).status_code == 201
    assert not Draft.objects.exists()  # submitted: the draft is gone


def test_the_submit_sql_names_the_real_tables():
    from labeling.models import Draft as DraftModel
    from labeling.models import Lease, Project

    names = {
        Task: "labeling_task",
        Lease: "labeling_lease",
        Annotation: "labeling_annotation",
        AnnotationRevision: "labeling_annotationrevision",
        DraftModel: "labeling_draft",
        Project: "labeling_project",
    }
    assert {model._meta.db_table for model in names} == set(names.values())
