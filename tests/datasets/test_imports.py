"""Imports end to end: API → plan job → chunk jobs on a real Celery worker → items,
against the real database, broker and S3 server; every rejection reported by name."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datasets.models import Asset, Dataset, Import, ImportEntry, Item, ItemTag
from storage.keys import staging_key
from storage.services import blob_exists, object_exists
from tests.conftest import celery_app_sending_to
from tests.datasets.conftest import api_for
from tests.datasets.images import image_bytes

PNG_RED = image_bytes(30, 20, color=(200, 0, 0))
PNG_BLUE = image_bytes(16, 16, color=(0, 0, 200))
PNG_GREEN = image_bytes(8, 40, color=(0, 150, 0))
TRUNCATED = image_bytes(200, 200, fmt="JPEG")[:300]


@pytest.fixture
def worker(celery_worker_factory, celery_embedded_broker):
    """One real worker on the embedded broker, and this process sending to it."""
    w = celery_worker_factory(
        celery_embedded_broker,
        env={"IMPORT_URL_ALLOWED_NETWORKS": "127.0.0.0/8", "JOB_RETRY_BACKOFF_SECONDS": "0.2"},
    )
    with celery_app_sending_to(celery_embedded_broker):
        yield w


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def run_import(api, dataset, wait_for_job, **data):
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", data)
    assert response.status_code == 202, response.json()
    body = response.json()
    job = wait_for_job(body["job"]["id"], timeout=90)
    assert job.state == "succeeded", (job.error, job.report)
    return Import.objects.get(pk=body["id"])


def rejected(imp: Import) -> dict[str, str]:
    return dict(
        ImportEntry.objects.filter(import_run=imp, status="rejected").values_list("name", "reason")
    )


@pytest.mark.django_db(transaction=True)
def test_upload_stores_each_file_once_and_reports_every_rejection(worker, ops, wait_for_job):
    dataset = Dataset.objects.create(name="shapes", kind="image", created_by=ops)
    api = api_for(ops)
    imp = run_import(
        api,
        dataset,
        wait_for_job,
        files=[
            upload("red.png", PNG_RED),
            upload("blue.png", PNG_BLUE),
            upload("red-again.png", PNG_RED),
            upload("broken.jpg", TRUNCATED),
            upload("notes.png", b"not an image"),
        ],
        tags="batch1,day",
        split="train",
    )
    assert (imp.state, imp.total, imp.created, imp.duplicates, imp.rejected) == (
        "done",
        5,
        2,
        1,
        2,
    )
    reasons = rejected(imp)
    assert reasons["broken.jpg"].startswith("corrupt or truncated image")
    assert reasons["notes.png"] == "not an image Pillow can read"
    dup = ImportEntry.objects.get(import_run=imp, name="red-again.png")
    assert (dup.status, dup.reason) == ("duplicate", "same content as 'red.png' in this import")

    items = {i.external_id: i for i in Item.objects.filter(dataset=dataset)}
    assert set(items) == {"red.png", "blue.png"}
    red = items["red.png"]
    assert (red.split, red.asset.width, red.asset.height, red.asset.media_type) == (
        "train",
        30,
        20,
        "image/png",
    )
    assert sorted(ItemTag.objects.filter(item=red).values_list("tag", flat=True)) == [
        "batch1",
        "day",
    ]
    assert all(blob_exists(i.asset_id) for i in items.values())
    # Nothing partial for the rejected files; staging is cleaned up.
    assert Asset.objects.count() == 2
    assert not object_exists(staging_key(str(imp.pk), 0))
    dataset.refresh_from_db()
    assert (dataset.item_count, dataset.total_bytes) == (2, len(PNG_RED) + len(PNG_BLUE))

    # The same upload again adds nothing.
    again = run_import(
        api,
        dataset,
        wait_for_job,
        files=[upload("red.png", PNG_RED), upload("blue.png", PNG_BLUE)],
    )
    assert (again.created, again.unchanged, again.rejected) == (0, 2, 0)
    assert Item.objects.filter(dataset=dataset).count() == 2

    report = api.get(f"/api/v1/imports/{imp.pk}/rejected").json()["results"]
    assert [r["name"] for r in report] == ["broken.jpg", "notes.png"]


@pytest.mark.django_db(transaction=True)
def test_zip_archive_members_become_items_and_unsafe_members_are_refused(worker, ops, wait_for_job):
    buffer = io.BytesIO()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("x.png", PNG_RED)
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("cars/front.png", PNG_RED)
        z.writestr("cars/rear.png", PNG_GREEN)
        z.writestr("../evil.png", PNG_BLUE)
        z.writestr("more.zip", inner.getvalue())
        z.writestr("__MACOSX/._front.png", b"junk")
    dataset = Dataset.objects.create(name="cars", kind="image", created_by=ops)
    imp = run_import(
        api_for(ops), dataset, wait_for_job, files=[upload("cars.zip", buffer.getvalue())]
    )
    assert set(Item.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {
        "cars/front.png",
        "cars/rear.png",
    }
    reasons = rejected(imp)
    assert len(reasons) == 2, reasons
    assert any("nested archive" in r for r in reasons.values())
    assert any(".." in name or "outside" in reason for name, reason in reasons.items())
    assert imp.created == 2


class _Images(BaseHTTPRequestHandler):
    routes = {"/a.png": PNG_RED, "/b.png": PNG_BLUE}

    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_url_list_import(worker, ops, wait_for_job, image_server):
    dataset = Dataset.objects.create(name="web", kind="image", created_by=ops)
    urls = [
        {"url": f"{image_server}/a.png", "external_id": "a", "metadata": {"source": "cdn"}},
        {"url": f"{image_server}/b.png", "split": "val"},
        {"url": f"{image_server}/missing.png", "external_id": "gone"},
        {"url": "http://169.254.169.254/latest/meta-data", "external_id": "metadata"},
        {"url": "ftp://example.org/x.png", "external_id": "ftp"},
    ]
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {"source": "urls", "urls": urls},
        format="json",
    )
    assert response.status_code == 202, response.json()
    job = wait_for_job(response.json()["job"]["id"], timeout=90)
    assert job.state == "succeeded", job.error
    imp = Import.objects.get(pk=response.json()["id"])
    items = {i.external_id: i for i in Item.objects.filter(dataset=dataset)}
    port = image_server.rsplit(":", 1)[1]
    assert set(items) == {"a", f"127.0.0.1:{port}/b.png"}
    assert items[f"127.0.0.1:{port}/b.png"].split == "val"
    assert items["a"].metadata == {"source": "cdn"}
    reasons = rejected(imp)
    assert reasons == {
        "gone": "HTTP 404 Not Found (only 200 is accepted)",
        # Refused while reading the list, before any connection is made.
        "http://169.254.169.254/latest/meta-data": (
            "row 4: url points to a cloud metadata address 169.254.169.254"
        ),
        "ftp://example.org/x.png": "row 5: url is not http(s)",
    }
    assert imp.created == 2 and imp.rejected == 3


@pytest.mark.django_db(transaction=True)
def test_text_records_import(worker, ops, wait_for_job):
    dataset = Dataset.objects.create(name="reviews", kind="text", created_by=ops)
    lines = [
        {"id": "r1", "text": "Great phone, terrible battery.", "lang": "en"},
        {"id": "r2", "text": "שלום עולם — מוצר מצוין", "lang": "he"},
        {"id": "r3", "text": ""},
    ]
    records = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {"source": "records", "format": "jsonl", "list": upload("reviews.jsonl", records)},
    )
    assert response.status_code == 202, response.json()
    job = wait_for_job(response.json()["job"]["id"], timeout=90)
    assert job.state == "succeeded", job.error
    items = {i.external_id: i for i in Item.objects.filter(dataset=dataset).select_related("asset")}
    assert set(items) == {"r1", "r2"}
    assert items["r2"].asset.char_count == len("שלום עולם — מוצר מצוין")
    assert items["r2"].metadata == {"lang": "he"}
    imp = Import.objects.get(pk=response.json()["id"])
    assert list(rejected(imp)) == ["r3"]


def test_records_into_an_image_dataset_is_400(db, ops):
    dataset = Dataset.objects.create(name="pics", kind="image", created_by=ops)
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {"source": "records", "format": "jsonl", "list": upload("r.jsonl", b'{"text": "x"}')},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "source"
    assert not Import.objects.exists()


def test_folder_import_disabled_by_default_is_400(db, ops):
    dataset = Dataset.objects.create(name="pics", kind="image", created_by=ops)
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {"source": "folder", "options": {"folder": "/etc"}},
        format="json",
    )
    assert response.status_code == 400
    assert "disabled" in response.json()["detail"]
    assert not Import.objects.exists()


def test_unknown_source_is_400(db, ops):
    dataset = Dataset.objects.create(name="pics", kind="image", created_by=ops)
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/", {"source": "ftp"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["field"] == "source"


@pytest.mark.django_db(transaction=True)
def test_s3_prefix_import_with_credentials_for_this_import_only(
    worker, ops, wait_for_job, s3_server
):
    from minio import Minio  # the test seeds a bucket the way any S3 user would

    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    bucket = "lv-src-" + ops.username.replace("_", "-")[:20]
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    for name, data in (
        ("cams/a.png", PNG_RED),
        ("cams/b.png", PNG_GREEN),
        ("other/c.png", PNG_BLUE),
    ):
        client.put_object(bucket, name, io.BytesIO(data), len(data))
    dataset = Dataset.objects.create(name="bucket", kind="image", created_by=ops)
    response = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {
            "source": "s3",
            "options": {"bucket": bucket, "prefix": "cams"},
            "credentials": {
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
            },
        },
        format="json",
    )
    assert response.status_code == 202, response.json()
    imp = Import.objects.get(pk=response.json()["id"])
    assert imp.secret and s3_server.secret_key not in imp.secret  # encrypted at rest
    job = wait_for_job(response.json()["job"]["id"], timeout=90)
    assert job.state == "succeeded", job.error
    assert set(Item.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {
        "a.png",
        "b.png",
    }
    imp.refresh_from_db()
    assert imp.secret == ""  # erased when the import ended


@pytest.mark.django_db(transaction=True)
def test_server_folder_import_under_an_allowed_root(
    celery_worker_factory, celery_embedded_broker, ops, wait_for_job, settings, tmp_path
):
    root = tmp_path / "mounted"
    (root / "batch" / "sub").mkdir(parents=True)
    (root / "batch" / "one.png").write_bytes(PNG_RED)
    (root / "batch" / "sub" / "two.png").write_bytes(PNG_BLUE)
    (root / "secret.png").write_bytes(PNG_GREEN)
    (root / "batch" / "escape.png").symlink_to(root / "secret.png")
    settings.IMPORT_FOLDER_ROOTS = [str(root / "batch")]
    celery_worker_factory(celery_embedded_broker, env={"IMPORT_FOLDER_ROOTS": str(root / "batch")})
    dataset = Dataset.objects.create(name="mounted", kind="image", created_by=ops)
    with celery_app_sending_to(celery_embedded_broker):
        response = api_for(ops).post(
            f"/api/v1/datasets/{dataset.pk}/imports/",
            {"source": "folder", "options": {"folder": str(root / "batch")}},
            format="json",
        )
        assert response.status_code == 202, response.json()
        job = wait_for_job(response.json()["job"]["id"], timeout=90)
    assert job.state == "succeeded", job.error
    assert set(Item.objects.filter(dataset=dataset).values_list("external_id", flat=True)) == {
        "one.png",
        "sub/two.png",
    }
    imp = Import.objects.get(pk=response.json()["id"])
    assert list(rejected(imp)) == ["escape.png"]

    outside = api_for(ops).post(
        f"/api/v1/datasets/{dataset.pk}/imports/",
        {"source": "folder", "options": {"folder": str(root)}},
        format="json",
    )
    assert outside.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_import_resumes_and_imports_each_file_exactly_once(
    celery_worker_factory, celery_embedded_broker, ops, wait_for_job, settings
):
    from workers.models import Job
    from workers.services import jobs_sweep

    env = {"IMPORT_CHUNK_SIZE": "5", "JOB_STALE_AFTER": "2", "JOB_HEARTBEAT_SECONDS": "0.5"}
    settings.JOB_STALE_AFTER = 2
    # The killed worker may hold a chunk's message it received but had not started: on
    # the embedded broker that message dies with it, and the sweep re-sends a job queued
    # longer than JOB_REQUEUE_AFTER (10 minutes by default).
    settings.JOB_REQUEUE_AFTER = 2
    first = celery_worker_factory(celery_embedded_broker, env=env)
    dataset = Dataset.objects.create(name="crash", kind="image", created_by=ops)
    files = [upload(f"{n:03}.png", image_bytes(20 + n, 20, color=(n, 2 * n, 3))) for n in range(40)]
    with celery_app_sending_to(celery_embedded_broker):
        response = api_for(ops).post(f"/api/v1/datasets/{dataset.pk}/imports/", {"files": files})
        assert response.status_code == 202
        imp_id = response.json()["id"]
        job_id = response.json()["job"]["id"]
        # Kill while chunks are being worked on: some items exist, not all.
        wait_for_job(
            job_id,
            until=lambda job: Item.objects.filter(dataset=dataset).count() >= 5,
            timeout=90,
        )
        first.kill()
        assert Item.objects.filter(dataset=dataset).count() < 40
        time.sleep(2.5)  # let the killed chunk's heartbeat (and a lost message) go stale
        jobs_sweep()
        celery_worker_factory(celery_embedded_broker, env=env)
        job = wait_for_job(job_id, timeout=180)
    assert job.state == "succeeded", job.error
    imp = Import.objects.get(pk=imp_id)
    assert (imp.state, imp.total, imp.created, imp.rejected, imp.duplicates) == (
        "done",
        40,
        40,
        0,
        0,
    )
    assert Item.objects.filter(dataset=dataset).count() == 40
    assert not ImportEntry.objects.filter(import_run=imp).exclude(status="created").exists()
    chunks = Job.objects.filter(parent_id=job_id)
    assert chunks.count() == 8 and not chunks.exclude(state="succeeded").exists()
    dataset.refresh_from_db()
    assert dataset.item_count == 40


def test_a_folder_file_that_changes_between_hash_and_copy_is_refused(db, ops, settings, tmp_path):
    """A chunk hashes server-folder files in place and copies only new content: a file
    rewritten in between is refused rather than stored under the wrong hash."""
    from datasets.services.imports import _Fetcher

    root = tmp_path / "mounted"
    root.mkdir()
    (root / "a.png").write_bytes(PNG_RED)
    settings.IMPORT_FOLDER_ROOTS = [str(root)]
    dataset = Dataset.objects.create(name="changing", kind="image", created_by=ops)
    imp = Import.objects.create(
        dataset=dataset, source=Import.Source.FOLDER, options={"folder": str(root)}, created_by=ops
    )
    entry = ImportEntry(import_run=imp, seq=0, name="a.png", ref="a.png")
    work = tmp_path / "work"
    work.mkdir()
    fetcher = _Fetcher(imp, work)

    same = fetcher.fetch(entry)
    assert not same.path.exists() and same.reason == ""  # hashed in place, not copied
    assert fetcher.localize(same) == PNG_RED and same.reason == ""  # small: read once

    changing = fetcher.fetch(ImportEntry(import_run=imp, seq=1, name="a.png", ref="a.png"))
    (root / "a.png").write_bytes(PNG_BLUE)
    fetcher.localize(changing)
    assert changing.reason == "the file changed while it was being imported: import it again"


def test_in_parallel_keeps_the_order_handles_empty_and_short_lists_and_raises(settings):
    from concurrent.futures import ThreadPoolExecutor

    from datasets.services.imports import _in_parallel

    settings.IMPORT_THREADS = 4
    with ThreadPoolExecutor(4) as pool:
        assert _in_parallel(pool, lambda x: x * 2, []) == []
        assert _in_parallel(pool, lambda x: x * 2, [3]) == [6]
        assert _in_parallel(pool, lambda x: -x, list(range(201))) == [-x for x in range(201)]

        def boom(x: int) -> int:
            if x == 7:
                raise OSError("disk gone")
            return x

        with pytest.raises(OSError, match="disk gone"):
            _in_parallel(pool, boom, list(range(10)))
