"""The export API: a version's export is built by a worker, cached by (version, format,
options), downloaded through a presigned URL; bad requests are 400s naming the field;
the stable item URLs of an export redirect to a fresh presigned URL; the CLI command."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from datasets.models import Export, Version
from tests.datasets.conftest import api_for
from tests.datasets.formats.conftest import export_bytes, version_of
from tests.factories import UserFactory, png_bytes

pytestmark = pytest.mark.django_db

BOX = {
    "id": "r1",
    "type": "rectanglelabels",
    "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": ["car"]},
}


@pytest.fixture
def version(ops):
    return version_of(ops, labels=[[BOX], None], splits=["train", "val"])


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"format": "nope"}, "format", "Unknown export format 'nope'"),
        ({"format": "conll"}, "format", "text"),
        ({"format": "jsonl", "options": {"splits": ["dev"]}}, "options.splits", "train, val, test"),
        ({"format": "jsonl", "options": {"splits": []}}, "options.splits", "non-empty"),
        ({"format": "jsonl", "options": {"classes": [1]}}, "options.classes[0]", "label name"),
        ({"format": "jsonl", "options": {"classes": ["a", "a"]}}, "options.classes", "twice"),
        ({"format": "jsonl", "options": {"images": "yes"}}, "options.images", "true"),
        ({"format": "jsonl", "options": {"colour": 1}}, "options.colour", "Unknown option"),
        ({"format": "jsonl", "options": [1]}, "options", "object"),
    ],
)
def test_bad_export_requests_are_400_naming_the_field(ops, version, body, field, words):
    response = api_for(ops).post(f"/api/v1/versions/{version.pk}/exports", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert not Export.objects.exists()


def test_an_export_is_asked_once_per_version_format_and_options(ops, version):
    api = api_for(ops)
    url = f"/api/v1/versions/{version.pk}/exports"
    first = api.post(url, {"format": "jsonl"}, format="json")
    assert first.status_code == 202 and first.json()["building"] is True
    assert first.json()["state"] == "queued" and first.json()["job"]["id"]
    again = api.post(
        url, {"format": "jsonl", "options": {"splits": ["test", "val", "train"]}}, format="json"
    )
    assert again.status_code == 202 and again.json()["building"] is False
    assert again.json()["id"] == first.json()["id"]
    other = api.post(url, {"format": "jsonl", "options": {"splits": ["train"]}}, format="json")
    assert other.json()["id"] != first.json()["id"]
    listed = api.get(url).json()["results"]
    assert {row["id"] for row in listed} == {first.json()["id"], other.json()["id"]}
    assert api.get(f"/api/v1/exports/{first.json()['id']}").json()["download_url"] is None


def test_exports_of_someone_elses_dataset_are_404(ops, version):
    stranger = UserFactory(roles=["annotator"])
    api = api_for(stranger)
    assert (
        api.post(
            f"/api/v1/versions/{version.pk}/exports", {"format": "jsonl"}, format="json"
        ).status_code
        == 404
    )
    export = Export.objects.create(
        version=version, format="jsonl", options_hash="0" * 32, created_by=ops
    )
    assert api.get(f"/api/v1/exports/{export.pk}").status_code == 404


def test_item_urls_of_an_export_redirect_to_the_asset(ops, version):
    files = zipfile.ZipFile(io.BytesIO(export_bytes(version, "jsonl")))
    line = json.loads(files.read("data.jsonl").splitlines()[0])
    path = f"/api/v1/versions/{version.pk}/assets/{line['sha256']}"
    response = api_for(ops).get(path)
    assert response.status_code == 302
    fetched = requests.get(response["Location"], timeout=10)
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")
    other = version_of(ops, labels=[None], contents=[png_bytes(9, 9, (1, 2, 3))])
    sha_elsewhere = json.loads(
        zipfile.ZipFile(io.BytesIO(export_bytes(other, "jsonl"))).read("data.jsonl")
    )["sha256"]
    assert (
        api_for(ops).get(f"/api/v1/versions/{version.pk}/assets/{sha_elsewhere}").status_code == 404
    )
    stranger = UserFactory(roles=["annotator"])
    assert api_for(stranger).get(path).status_code == 404


def test_export_formats_are_listed(ops):
    body = api_for(ops).get("/api/v1/export-formats").json()
    names = {row["format"] for row in body["exports"]}
    assert {"jsonl", "coco", "yolo", "voc", "csv", "conll", "spacy", "parquet", "sql"} <= names
    assert {"coco", "yolo", "voc", "labelstudio", "conll", "csv", "jsonl"} <= {
        row["format"] for row in body["imports"]
    }


def test_export_command_writes_the_same_bytes_as_the_api_build(ops, version, tmp_path):
    out = tmp_path / "out" / "v.zip"
    call_command(
        "export", version.pk[:12], "--format", "jsonl", "--out", str(out), "--splits", "train"
    )
    expected = export_bytes(version, "jsonl", url_base=settings.PUBLIC_URL, splits=["train"])
    assert out.read_bytes() == expected
    with pytest.raises(CommandError, match="options.splits"):
        call_command(
            "export", version.pk, "--format", "jsonl", "--out", str(out), "--splits", "dev"
        )
    with pytest.raises(CommandError, match="no version"):
        call_command("export", "deadbeef", "--format", "jsonl", "--out", str(out))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_export_job_builds_stores_and_serves_the_file(
    ops, celery_redis_broker, celery_worker_factory, wait_for_job
):
    version = version_of(ops, labels=[[BOX], None], splits=["train", "val"])
    celery_worker_factory(celery_redis_broker)
    api = api_for(ops)
    created = api.post(f"/api/v1/versions/{version.pk}/exports", {"format": "jsonl"}, format="json")
    job = wait_for_job(created.json()["job"]["id"], timeout=60)
    assert job.state == "succeeded", job.error
    detail = api.get(created.json()["url"]).json()
    assert detail["state"] == "done" and detail["counts"]["items"] == 2
    downloaded = requests.get(detail["download_url"], timeout=10)
    assert downloaded.content == export_bytes(version, "jsonl", url_base=settings.PUBLIC_URL)
    assert zipfile.ZipFile(io.BytesIO(downloaded.content)).namelist()[-1] == "labelvault.lock.json"
    assert len(downloaded.content) == detail["size"]
    again = api.post(f"/api/v1/versions/{version.pk}/exports", {"format": "jsonl"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == detail["id"]
    # The dataset's current state: snapshotted (the same version: nothing changed), exported.
    current = api.post(
        f"/api/v1/datasets/{version.dataset_id}/exports",
        {"format": "jsonl", "options": {"splits": ["val"]}, "code_commit": "abc1234"},
        format="json",
    )
    assert current.status_code == 202
    job = wait_for_job(current.json()["job"]["id"], timeout=60)
    assert job.state == "succeeded", job.error
    assert job.report["version"] == version.pk
    export = Export.objects.get(pk=job.report["export"])
    assert export.state == "done" and export.counts["items"] == 1
    assert Version.objects.count() == 1


def test_a_failed_or_abandoned_export_is_built_again_when_asked(ops, version):
    from datasets.services.exports import export_request
    from workers.models import Job

    export, building = export_request(version=version, fmt="jsonl", options={}, created_by=ops)
    assert building and export.job_id is not None
    same, building = export_request(version=version, fmt="jsonl", options={}, created_by=ops)
    assert same.pk == export.pk and not building  # its job is still queued
    Export.objects.filter(pk=export.pk).update(state="failed", error="disk full")
    again, building = export_request(version=version, fmt="jsonl", options={}, created_by=ops)
    assert again.pk == export.pk and building and again.state == "queued" and again.error == ""
    assert again.job_id != export.job_id
    Job.objects.filter(pk=again.job_id).update(state="cancelled")
    third, building = export_request(version=version, fmt="jsonl", options={}, created_by=ops)
    assert building and third.job_id not in (export.job_id, again.job_id)


def test_an_export_whose_build_fails_is_marked_failed_with_the_reason(ops, version):
    """The job runs in this process (workers.services.job_run): a version whose manifest
    is gone from storage fails its export, and the row says why."""
    from datasets.services.exports import export_request
    from workers.models import Job
    from workers.services import job_run

    lost = Version.objects.create(
        id="f" * 64,
        dataset=version.dataset,
        body_sha256="0" * 64,
        code_commit="none",
        created_by=ops,
        item_count=1,
        labelled_count=0,
        manifest_size=1,
    )
    export, building = export_request(version=lost, fmt="jsonl", options={}, created_by=ops)
    assert building
    job_run(export.job_id)
    export.refresh_from_db()
    assert export.state == "failed" and export.error and export.key == ""
    assert Job.objects.get(pk=export.job_id).state == "failed"
    detail = api_for(ops).get(f"/api/v1/exports/{export.pk}").json()
    assert detail["state"] == "failed" and detail["download_url"] is None
