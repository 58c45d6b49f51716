"""Dataset versions: content-addressed ids, unchanged data returns the same version,
the manifest read back is what was hashed, versions cannot be changed, the snapshot
command ties a version to a clean git checkout."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datasets.manifest import canonical_line, split_for
from datasets.models import Asset, Version
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot
from storage.keys import manifest_key
from storage.services import object_open
from tests.datasets.conftest import api_for
from tests.factories import dataset_with_items, png_bytes

pytestmark = pytest.mark.django_db

SCHEMA = "a" * 64
REQUEST = SnapshotRequest(code_commit="abc1234", code_repo="", message="first")


def box(label="car", x=1):
    return [
        {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
        }
    ]


@pytest.fixture
def labelled(ops):
    dataset, items = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(8, 8, (n, 1, 2)) for n in range(4)]
    )
    for item in items[:3]:
        label_publish(
            item=item, value=box(), schema_hash=SCHEMA, source="project:1", provenance={"task": 1}
        )
    return dataset, items


def snap(dataset, ops, request=REQUEST):
    return version_snapshot(dataset=dataset, request=request, created_by_id=ops.pk)


def test_same_content_gives_the_same_version(labelled, ops):
    dataset, _ = labelled
    first, created = snap(dataset, ops)
    assert created and len(first.pk) == 64
    assert first.item_count == 4 and first.labelled_count == 3
    assert first.class_counts == {"car": 3}
    assert sum(first.split_counts.values()) == 4
    again, created_again = snap(dataset, ops)
    assert again.pk == first.pk and not created_again
    assert Version.objects.count() == 1


@pytest.mark.parametrize("change", ["label", "metadata", "asset", "commit"])
def test_any_change_gives_a_new_id(labelled, ops, change):
    dataset, items = labelled
    first, _ = snap(dataset, ops)
    request = REQUEST
    if change == "label":
        label_publish(
            item=items[0], value=box(x=2), schema_hash=SCHEMA, source="project:1", provenance={}
        )
    elif change == "metadata":
        items[1].metadata = {"camera": "b"}
        items[1].save()
    elif change == "asset":
        other = Asset.objects.create(
            sha256=hashlib.sha256(b"other").hexdigest(), size=5, media_type="image/png"
        )
        items[3].asset = other
        items[3].save()
    else:
        request = SnapshotRequest(code_commit="abc1235", code_repo="", message="")
    second, created = snap(dataset, ops, request)
    assert created and second.pk != first.pk
    assert second.parent_id == first.pk


def test_the_manifest_read_back_is_what_was_hashed(labelled, ops):
    dataset, items = labelled
    version, _ = snap(dataset, ops)
    with object_open(manifest_key(version.pk, "jsonl.gz")) as raw:
        data = gzip.decompress(raw.read())
    assert hashlib.sha256(data).hexdigest() == version.pk
    assert len(data) == version.manifest_size
    lines = data.splitlines(keepends=True)
    head, *rows = [json.loads(line) for line in lines]
    assert head["dataset"] == dataset.pk and head["code_commit"] == "abc1234"
    assert head["label_schemas"] == [SCHEMA] and head["parent"] is None
    assert [r["id"] for r in rows] == sorted(i.pk for i in items)
    assert all(canonical_line(obj) == line for obj, line in zip([head, *rows], lines, strict=True))
    assert rows[0]["label"] == box() and rows[0]["provenance"]["source"] == "project:1"
    assert rows[3]["label"] is None and rows[3]["provenance"] is None
    assert rows[3]["split"] == split_for(rows[3]["sha256"])  # assigned from the content
    # through the API, streamed
    response = api_for(ops).get(f"/api/v1/versions/{version.pk}/manifest")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data


def test_api_snapshot_needs_a_code_commit(labelled, ops):
    dataset, _ = labelled
    api = api_for(ops)
    url = f"/api/v1/datasets/{dataset.pk}/versions"
    response = api.post(url, {"code_commit": "main"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "code_commit" and "hex" in response.json()["detail"]
    assert api.post(url, {}, format="json").status_code == 400
    response = api.post(url, {"code_commit": "none", "message": "baseline"}, format="json")
    assert response.status_code == 202 and response.json()["job"]["url"].startswith("/api/v1/jobs/")


def test_versions_are_read_only(labelled, ops, owner):
    dataset, _ = labelled
    version, _ = snap(dataset, ops)
    api = api_for(ops)
    url = f"/api/v1/versions/{version.pk}"
    body = api.get(url).json()
    assert body["id"] == version.pk and body["manifest_url"].endswith("/manifest")
    for method in ("put", "patch", "delete"):
        assert getattr(api, method)(url, {"message": "x"}, format="json").status_code == 405
    assert (
        api.get(f"/api/v1/datasets/{dataset.pk}/versions").json()["results"][0]["id"] == version.pk
    )
    assert api_for(owner).get(url).status_code == 404  # not their dataset
    assert Version.objects.get().message == "first"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_snapshot_job_runs_in_a_worker(
    ops, celery_redis_broker, celery_worker_factory, wait_for_job
):
    dataset, _ = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(8, 8, (9, n, 2)) for n in range(3)]
    )
    celery_worker_factory(celery_redis_broker)
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/versions", {"code_commit": "abcdef1"}, format="json"
    )
    job = wait_for_job(response.json()["job"]["id"])
    assert job.state == "succeeded", job.error
    assert Version.objects.get(pk=job.report["version"]).item_count == 3


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_snapshot_command_takes_the_checkout_commit_and_refuses_a_dirty_tree(
    labelled, ops, tmp_path, monkeypatch
):
    dataset, _ = labelled
    repo = tmp_path / "train"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.email=a@b.c", "-c", "user.name=a", "commit", "-q", "-m", "init")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    out = io.StringIO()
    call_command("snapshot", str(dataset.pk), "--message", "v1", stdout=out, stderr=io.StringIO())
    version = Version.objects.get(pk=out.getvalue().strip())
    assert version.code_commit == head and version.message == "v1"
    (repo / "train.py").write_text("print('changed')\n")
    with pytest.raises(CommandError, match="uncommitted changes"):
        call_command("snapshot", str(dataset.pk), stdout=io.StringIO(), stderr=io.StringIO())
    call_command(
        "snapshot", str(dataset.pk), "--allow-dirty", stdout=io.StringIO(), stderr=io.StringIO()
    )


def checks_of(version):
    return {entry["check"]: entry for entry in version.checks}


def test_each_check_catches_its_fault(labelled, ops):
    dataset, items = labelled
    # items[3] has no label; items[2] gets a box outside its 8x8 image; items[1] a
    # label that is not a list of labelled regions; metadata breaks the schema
    label_publish(item=items[2], value=box(x=7), schema_hash=SCHEMA, source="s", provenance={})
    label_publish(
        item=items[1],
        value=[{"type": "rectanglelabels"}],
        schema_hash=SCHEMA,
        source="s",
        provenance={},
    )
    dataset.metadata_schema = {"type": "object", "required": ["camera"]}
    dataset.checks = {
        "min_items_per_class": 5,
        "split_proportions": {"train": 1.0, "val": 0.0, "test": 0.0, "tolerance": 0.0},
    }
    dataset.save()
    version, _ = snap(dataset, ops)
    found = checks_of(version)
    assert not version.checks_passed
    assert not found["every_item_labelled"]["passed"] and found["every_item_labelled"][
        "examples"
    ] == [items[3].pk]
    assert not found["boxes_inside_image"]["passed"] and found["boxes_inside_image"][
        "examples"
    ] == [items[2].pk]
    assert not found["labels_valid"]["passed"] and found["labels_valid"]["examples"] == [
        items[1].pk
    ]
    assert (
        not found["min_items_per_class"]["passed"]
        and "car" in found["min_items_per_class"]["detail"]
    )
    assert not found["metadata_valid"]["passed"] and "4 items" in found["metadata_valid"]["detail"]
    assert found["no_split_leakage"]["passed"]
    splits = version.split_counts
    assert found["split_proportions"]["passed"] == (splits.get("train") == 4)


def test_a_clean_version_passes_and_leakage_is_reported_when_found():
    from datasets.checks import Checker, checks_config_check

    checker = Checker(checks_config_check({}), metadata_schema=None)
    checker.feed({"id": 1, "split": "train", "label": box(), "metadata": {}}, width=10, height=10)
    assert all(entry["passed"] for entry in checker.report())
    checker.leaking = ["f" * 64]
    leak = {e["check"]: e for e in checker.report()}["no_split_leakage"]
    assert not leak["passed"] and "ffffffffffff" in leak["detail"]


def test_bad_checks_setting_is_400(labelled, ops):
    dataset, _ = labelled
    api = api_for(ops)
    for checks, words in (
        ({"colour": True}, "unknown checks colour"),
        ({"min_items_per_class": -1}, "min_items_per_class"),
        ({"split_proportions": {"train": 0.5, "val": 0.1, "test": 0.1}}, "add up to 1"),
    ):
        response = api.patch(f"/api/v1/datasets/{dataset.pk}", {"checks": checks}, format="json")
        assert response.status_code == 400 and words in response.json()["detail"], response.json()
    response = api.patch(
        f"/api/v1/datasets/{dataset.pk}", {"checks": {"min_items_per_class": 2}}, format="json"
    )
    assert response.status_code == 200 and response.json()["checks"] == {"min_items_per_class": 2}


def test_tags_never_move_and_release_needs_passed_checks(labelled, ops):
    dataset, items = labelled
    api = api_for(ops)
    failed, _ = snap(dataset, ops)
    assert not failed.checks_passed  # one item is unlabelled
    url = f"/api/v1/versions/{failed.pk}/tags"
    response = api.post(url, {"name": "release"}, format="json")
    assert response.status_code == 400 and "every_item_labelled" in response.json()["detail"]
    assert api.post(url, {"name": "v1.0"}, format="json").json()["tags"] == ["v1.0"]
    assert api.post(url, {"name": "v1.0"}, format="json").status_code == 201  # idempotent
    assert api.post(url, {"name": "bad name!"}, format="json").status_code == 400
    label_publish(item=items[3], value=box(), schema_hash=SCHEMA, source="s", provenance={})
    passed, _ = snap(dataset, ops)
    assert passed.checks_passed
    response = api.post(f"/api/v1/versions/{passed.pk}/tags", {"name": "v1.0"}, format="json")
    assert response.status_code == 400 and "never move" in response.json()["detail"]
    response = api.post(f"/api/v1/versions/{passed.pk}/tags", {"name": "release"}, format="json")
    assert response.status_code == 201 and response.json()["tags"] == ["release"]


def test_the_parquet_copy_equals_the_manifest(labelled, ops):
    import pyarrow.parquet as pq

    from datasets.services.parquet import version_parquet_write

    dataset, _ = labelled
    version, _ = snap(dataset, ops)
    api = api_for(ops)
    url = f"/api/v1/versions/{version.pk}/manifest"
    parquet_url = f"/api/v1/versions/{version.pk}/parquet"
    assert api.get(parquet_url).status_code == 404  # not written yet
    assert version_parquet_write(version) and not version_parquet_write(version)
    response = api.get(parquet_url)
    assert response.status_code == 200
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    lines = b"".join(api.get(url).streaming_content).splitlines()
    head, *items = [json.loads(line) for line in lines]
    assert json.loads(table.schema.metadata[b"labelvault.header"]) == head
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    for row, item in zip(rows, items, strict=True):
        assert row["sha256"] == item["sha256"] and row["split"] == item["split"]
        assert row["tags"] == item["tags"]
        assert json.loads(row["metadata"]) == item["metadata"]
        assert (json.loads(row["label"]) if row["label"] else None) == item["label"]
        assert row["label_names"] == (["car"] if item["label"] else [])
