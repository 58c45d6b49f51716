"""REST API of datasets, items, imports and assets (real database and S3 server)."""

from __future__ import annotations

import hashlib

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.models import Asset, Dataset, Import, Item, ItemTag
from storage.services import blob_put_bytes
from tests.datasets.conftest import api_for
from tests.datasets.images import image_bytes
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def make_items(dataset, n, *, split="", tag=None, meta=None):
    items = []
    for i in range(n):
        digest = hashlib.sha256(f"{dataset.pk}-{i}-{split}-{tag}".encode()).hexdigest()
        Asset.objects.get_or_create(sha256=digest, defaults={"size": 10, "media_type": "image/png"})
        item = Item.objects.create(
            dataset=dataset,
            asset_id=digest,
            external_id=f"{split or 'x'}-{tag}-{i}.png",
            split=split,
            metadata=meta or {},
        )
        if tag:
            ItemTag.objects.create(item=item, dataset=dataset, tag=tag)
        items.append(item)
    return items


def test_ops_creates_and_reads_a_dataset(ops):
    api = api_for(ops)
    response = api.post(
        "/api/v1/datasets/", {"name": "street scenes", "kind": "image"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["kind"], body["item_count"], body["created_by"]) == (
        "street scenes",
        "image",
        0,
        ops.username,
    )
    assert api.get(f"/api/v1/datasets/{body['id']}").json()["name"] == "street scenes"
    listed = api.get("/api/v1/datasets/").json()
    assert [d["name"] for d in listed["results"]] == ["street scenes"]


def test_create_errors_name_the_field(ops):
    api = api_for(ops)
    bad_kind = api.post("/api/v1/datasets/", {"name": "x", "kind": "video"}, format="json")
    assert bad_kind.status_code == 400
    assert bad_kind.json()["field"] == "kind"
    bad_schema = api.post(
        "/api/v1/datasets/",
        {"name": "x", "kind": "image", "metadata_schema": {"type": "nope"}},
        format="json",
    )
    assert bad_schema.status_code == 400
    assert bad_schema.json()["field"] == "metadata_schema"
    api.post("/api/v1/datasets/", {"name": "twice", "kind": "text"}, format="json")
    again = api.post("/api/v1/datasets/", {"name": "twice", "kind": "text"}, format="json")
    assert again.status_code == 400
    assert again.json()["field"] == "name"
    assert Dataset.objects.filter(name="twice").count() == 1


def test_annotator_cannot_create_and_cannot_see_others(ops):
    annotator = UserFactory(roles=["annotator"])
    denied = api_for(annotator).post(
        "/api/v1/datasets/", {"name": "mine", "kind": "image"}, format="json"
    )
    assert denied.status_code == 403
    assert denied.json()["error"] == "permission_denied"
    theirs = Dataset.objects.create(name="ops data", kind="image", created_by=ops)
    assert api_for(annotator).get(f"/api/v1/datasets/{theirs.pk}").status_code == 404
    assert api_for(annotator).get("/api/v1/datasets/").json()["results"] == []


def test_patch_renames(ops):
    ds = Dataset.objects.create(name="old", kind="image", created_by=ops)
    response = api_for(ops).patch(f"/api/v1/datasets/{ds.pk}", {"name": "new"}, format="json")
    assert response.status_code == 200
    assert Dataset.objects.get(pk=ds.pk).name == "new"


def test_items_filters_and_cursor_pages(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    make_items(ds, 30, split="train")
    make_items(ds, 20, split="val", tag="night", meta={"camera": {"side": "left"}, "speed": 3})
    api = api_for(ops)

    first = api.get(f"/api/v1/datasets/{ds.pk}/items/").json()
    assert len(first["results"]) == 48 and first["previous"] is None
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 2 and second["next"] is None
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert ids == sorted(ids) and len(set(ids)) == 50

    last = api.get(f"/api/v1/datasets/{ds.pk}/items/?last=1").json()
    assert [r["id"] for r in last["results"]] == ids[-48:]

    night = api.get(f"/api/v1/datasets/{ds.pk}/items/?tag=night").json()["results"]
    assert len(night) == 20 and all(r["tags"] == ["night"] for r in night)
    train = api.get(f"/api/v1/datasets/{ds.pk}/items/?split=train").json()["results"]
    assert len(train) == 30
    left = api.get(f"/api/v1/datasets/{ds.pk}/items/?meta=camera.side=left").json()["results"]
    assert len(left) == 20
    fast = api.get(f"/api/v1/datasets/{ds.pk}/items/?meta=speed=3").json()["results"]
    assert len(fast) == 20
    item = left[0]
    assert item["asset"]["media_type"] == "image/png"
    assert item["metadata"] == {"camera": {"side": "left"}, "speed": 3}


def test_items_bad_filters_are_400(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    api = api_for(ops)
    bad_split = api.get(f"/api/v1/datasets/{ds.pk}/items/?split=holdout")
    assert bad_split.status_code == 400 and bad_split.json()["field"] == "split"
    bad_meta = api.get(f"/api/v1/datasets/{ds.pk}/items/?meta=novalue")
    assert bad_meta.status_code == 400 and bad_meta.json()["field"] == "meta"


def test_asset_metadata_and_presigned_url_need_access(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    data = image_bytes(20, 10)
    put = blob_put_bytes(data, content_type="image/png")
    Asset.objects.create(
        sha256=put.sha256, size=len(data), media_type="image/png", width=20, height=10
    )
    Item.objects.create(dataset=ds, asset_id=put.sha256, external_id="a.png")

    response = api_for(ops).get(f"/api/v1/assets/{put.sha256}")
    assert response.status_code == 200
    body = response.json()
    assert (body["width"], body["height"], body["media_type"]) == (20, 10, "image/png")
    download = requests.get(body["url"], timeout=10)
    assert download.status_code == 200 and download.content == data

    stranger = UserFactory(roles=["annotator"])
    assert api_for(stranger).get(f"/api/v1/assets/{put.sha256}").status_code == 404
    assert api_for(ops).get(f"/api/v1/assets/{'0' * 64}").status_code == 404
    assert api_for(ops).get("/api/v1/assets/NOTAHASH").status_code == 404


def test_import_without_files_is_400_and_stores_nothing(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    response = api_for(ops).post(f"/api/v1/datasets/{ds.pk}/imports/", {}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_import",
        "detail": "no files were uploaded",
        "field": "files",
    }
    assert not Import.objects.exists()


def test_import_json_body_is_400(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    response = api_for(ops).post(f"/api/v1/datasets/{ds.pk}/imports/", {"a": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "files"


def test_import_bad_split_is_400_and_stores_nothing(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    upload = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
    response = api_for(ops).post(
        f"/api/v1/datasets/{ds.pk}/imports/", {"files": [upload], "split": "holdout"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "split"
    assert not Import.objects.exists()


def test_import_into_a_dataset_you_cannot_edit(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    stranger = UserFactory(roles=["annotator"])
    upload = SimpleUploadedFile("a.png", image_bytes(), content_type="image/png")
    response = api_for(stranger).post(f"/api/v1/datasets/{ds.pk}/imports/", {"files": [upload]})
    assert response.status_code == 404


def test_import_tags_that_are_not_a_list_or_string_are_400(ops):
    ds = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    response = api_for(ops).post(
        f"/api/v1/datasets/{ds.pk}/imports/",
        {"source": "urls", "urls": ["https://example.org/a.png"], "tags": {"a": 1}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "tags"
    assert not Import.objects.exists()
