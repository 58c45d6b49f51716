"""Importing pre-annotations: all rows valid or nothing stored, each bad row named;
shown to annotators as a starting point, never counted as annotations."""

from __future__ import annotations

import pytest

from labeling.models import Annotation, Prediction
from tests.labeling.conftest import api_for, box

pytestmark = pytest.mark.django_db


def post(api, project, rows):
    return api.post(
        f"/api/v1/projects/{project.pk}/predictions/", {"predictions": rows}, format="json"
    )


def test_import_then_shown_in_the_task(image_project, ops, annotator):
    project, items = image_project
    rows = [
        {"item": items[0].pk, "model_name": "yolo-v8", "score": 0.9, "result": [box()]},
        {"external_id": items[1].external_id, "model_name": "yolo-v8", "result": [box(x=5)]},
    ]
    response = post(api_for(ops), project, rows)
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "updated": 0}
    rows[0]["score"] = 0.95
    assert post(api_for(ops), project, rows[:1]).json() == {"created": 0, "updated": 1}
    assert Prediction.objects.get(item=items[0]).score == 0.95
    got = api_for(annotator).post(f"/api/v1/projects/{project.pk}/next").json()
    shown = got["task"]["predictions"]
    assert shown and shown[0]["model_name"] == "yolo-v8"
    assert shown[0]["result"][0]["value"]["rectanglelabels"] == ["car"]
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"item": 10**9, "model_name": "m", "result": [box()]}, "predictions[1].item", "no item"),
        ({"model_name": "m", "result": [box()]}, "predictions[1].item", "external_id"),
        ({"external_id": "x", "model_name": "", "result": [box()]}, "predictions[1]", ""),
        (
            {"item": "ITEM", "model_name": "m", "score": "high", "result": [box()]},
            "predictions[1].score",
            "score",
        ),
        (
            {"item": "ITEM", "model_name": "m", "result": [box(label="tank")]},
            "predictions[1]",
            "tank",
        ),
        ({"item": "ITEM", "model_name": "m", "result": [box(x=100)]}, "predictions[1]", "outside"),
        (
            {"item": "ITEM", "model_name": "m", "result": [box()], "extra": 1},
            "predictions[1]",
            "extra",
        ),
    ],
)
def test_a_bad_row_is_named_and_nothing_stored(image_project, ops, row, field, words):
    project, items = image_project
    if row.get("item") == "ITEM":
        row = {**row, "item": items[1].pk}
    good = {"item": items[0].pk, "model_name": "m", "result": [box()]}
    response = post(api_for(ops), project, [good, row])
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_prediction"
    assert any(e["field"].startswith(field) for e in body["errors"]), body
    assert words in " ".join(e["detail"] for e in body["errors"])
    assert not Prediction.objects.exists()


def test_not_a_list_and_not_ops(image_project, ops, annotator):
    project, items = image_project
    assert post(api_for(ops), project, {"a": 1}).status_code == 400
    assert post(api_for(ops), project, []).status_code == 400
    row = {"item": items[0].pk, "model_name": "m", "result": [box()]}
    assert post(api_for(annotator), project, [row]).status_code == 403
