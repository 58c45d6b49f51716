"""Fixtures of the labelling tests: users, small image and text datasets with real
blobs in the session's S3 server, and projects on them with their tasks made."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.services.projects import project_create, project_tasks_create
from tests.factories import UserFactory, dataset_with_items, png_bytes

BOX_SCHEMA = {
    "type": "bbox",
    "labels": [{"name": "car", "hotkey": "1"}, {"name": "person", "hotkey": "2"}],
    "attributes": [{"name": "occluded", "type": "bool", "default": False}],
}
NER_SCHEMA = {"type": "ner", "labels": [{"name": "PER"}, {"name": "ORG"}]}
TEXTS = ["Alice works at Acme in Paris.", "Bob met Carol.", "Nothing to see here."]


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def ops():
    return UserFactory(roles=["ops"])


@pytest.fixture
def annotator():
    return UserFactory(roles=["annotator"])


@pytest.fixture
def annotator2():
    return UserFactory(roles=["annotator"])


@pytest.fixture
def outsider():
    return UserFactory(roles=["annotator"])


def make_project(ops, members, *, kind="image", schema=None, overlap=1, count=3, **extra):
    if kind == "image":
        contents = [png_bytes(64, 48, (n * 40 % 256, 90, 200)) for n in range(count)]
    else:
        contents = [TEXTS[n % len(TEXTS)].encode() + f" #{n}".encode() for n in range(count)]
    dataset, items = dataset_with_items(owner=ops, kind=kind, contents=contents)
    project = project_create(
        created_by=ops,
        name=f"{kind} project",
        dataset=dataset,
        label_schema=schema or (BOX_SCHEMA if kind == "image" else NER_SCHEMA),
        overlap=overlap,
        members=[{"username": m.username, "role": "annotator"} for m in members],
        **extra,
    )
    project_tasks_create(project=project)
    project.refresh_from_db()
    return project, items


@pytest.fixture
def image_project(ops, annotator, annotator2):
    return make_project(ops, [annotator, annotator2])


@pytest.fixture
def text_project(ops, annotator):
    return make_project(ops, [annotator], kind="text")


def box(x=1, y=2, w=10, h=8, label="car", **extra):
    region = {
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
    }
    region.update(extra)
    return region


def span(start, end, label="PER"):
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [label]}}
