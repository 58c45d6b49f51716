"""The label import API: a file goes to staging, a worker validates every record and
writes only when all are valid (or when asked for the valid ones); bad requests are
400s naming the field; every problem is listed by row, field and reason."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.models import Label
from labeling.models import LabelImport, Prediction
from tests.labeling.conftest import api_for, make_project

pytestmark = pytest.mark.django_db


def box_line(external_id, label="car", x=1):
    region = {
        "type": "rectanglelabels",
        "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
    }
    return json.dumps({"external_id": external_id, "label": [region]})


def upload(lines, name="labels.jsonl"):
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), "application/jsonl")


def post(api, project, **data):
    return api.post(f"/api/v1/projects/{project.pk}/label-imports", data, format="multipart")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"format": "xml"}, "format", "Unknown label format"),
        ({"format": "conll"}, "format", "texts"),
        ({"format": "jsonl", "mode": "silver"}, "mode", "ground_truth"),
        ({"format": "jsonl", "match": "name"}, "match", "file_name"),
    ],
)
def test_bad_import_requests_are_400_naming_the_field(ops, annotator, data, field, words):
    project, items = make_project(ops, [annotator])
    response = post(api_for(ops), project, file=upload([box_line(items[0].external_id)]), **data)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field and words in response.json()["detail"]
    assert not LabelImport.objects.exists()


def test_an_empty_file_or_no_file_is_400(ops, annotator):
    project, _ = make_project(ops, [annotator])
    api = api_for(ops)
    empty = SimpleUploadedFile("labels.jsonl", b"", "application/jsonl")
    response = post(api, project, file=empty, format="jsonl")
    assert response.status_code == 400 and "empty" in json.dumps(response.json())
    response = post(api, project, format="jsonl")
    assert response.status_code == 400 and response.json()["field"] == "file"
    assert not LabelImport.objects.exists()


def test_only_ops_import_labels(ops, annotator):
    project, items = make_project(ops, [annotator])
    response = post(
        api_for(annotator), project, file=upload([box_line(items[0].external_id)]), format="jsonl"
    )
    assert response.status_code == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_import_job_validates_then_writes(
    ops, annotator, celery_redis_broker, celery_worker_factory, wait_for_job
):
    project, items = make_project(ops, [annotator])
    celery_worker_factory(celery_redis_broker)
    api = api_for(ops)
    bad = upload([box_line(items[0].external_id), box_line(items[1].external_id, label="truck")])
    response = post(api, project, file=bad, format="jsonl")
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["job"]["id"], timeout=60)
    assert job.state == "succeeded", job.error
    failed = api.get(response.json()["url"]).json()
    assert failed["state"] == "failed" and failed["imported"] == 0 and failed["problem_count"] == 1
    assert "nothing was imported" in failed["error"]
    problems = api.get(failed["problems_url"]).json()["results"]
    assert problems[0]["row"] == "2" and "truck" in problems[0]["reason"]
    assert not Label.objects.exists()
    # The same file, valid records only: one label published, the bad row reported.
    again = post(
        api,
        project,
        file=upload(
            [box_line(items[0].external_id), box_line(items[1].external_id, label="truck")]
        ),
        format="jsonl",
        valid_only="true",
    )
    wait_for_job(again.json()["job"]["id"], timeout=60)
    done = api.get(again.json()["url"]).json()
    assert (done["state"], done["imported"], done["rejected"]) == ("done", 1, 1)
    label = Label.objects.get(item=items[0])
    assert label.source == f"import:{done['id']}" and label.value[0]["id"] == "r1"
    # As pre-annotations of a model.
    preds = post(
        api,
        project,
        file=upload([box_line(items[2].external_id, x=5)]),
        format="jsonl",
        mode="predictions",
        model_name="detector-v2",
    )
    wait_for_job(preds.json()["job"]["id"], timeout=60)
    assert api.get(preds.json()["url"]).json()["state"] == "done"
    prediction = Prediction.objects.get(item=items[2])
    assert prediction.model_name == "detector-v2" and prediction.result[0]["value"]["x"] == 5
    listed = api.get(f"/api/v1/projects/{project.pk}/label-imports").json()["results"]
    assert [row["id"] for row in listed] == [preds.json()["id"], done["id"], failed["id"]]


def test_project_export_snapshots_its_dataset_first(ops, annotator):
    from workers.models import Job

    project, _ = make_project(ops, [annotator])
    url = f"/api/v1/projects/{project.pk}/exports"
    assert api_for(annotator).post(url, {"format": "jsonl"}, format="json").status_code == 403
    bad = api_for(ops).post(url, {"format": "conll"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "format"
    bad = api_for(ops).post(url, {"format": "jsonl", "options": {"splits": "all"}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "options.splits"
    response = api_for(ops).post(url, {"format": "jsonl"}, format="json")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert job.kind == "dataset_export" and job.params["dataset_id"] == project.dataset_id
