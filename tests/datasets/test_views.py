"""Dataset pages: access (login, 404, 403), the create form's errors, the grid, the item
page, the import page and its report."""

from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from datasets.models import Asset, Dataset, Import
from storage.services import blob_put_bytes
from tests.datasets.builders import make_dataset, make_entries, make_import, make_items
from tests.datasets.images import image_bytes
from workers.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client, ops):
    client.force_login(ops)
    return client


def html(response) -> str:
    return response.content.decode()


# --- access -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/datasets/", "/datasets/new", "/datasets/1", "/datasets/1/import"]
)
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_other_peoples_datasets_are_404_for_non_managers(client, ops, owner):
    theirs = make_dataset(ops)
    item = make_items(theirs, 1)[0]
    imp = make_import(theirs, ops)
    client.force_login(owner)
    for path in (
        f"/datasets/{theirs.pk}",
        f"/datasets/{theirs.pk}/edit",
        f"/datasets/{theirs.pk}/import",
        f"/datasets/{theirs.pk}/items/{item.pk}",
        f"/datasets/{theirs.pk}/imports/{imp.pk}",
        f"/datasets/{theirs.pk}/imports/{imp.pk}/summary",
        "/datasets/999999",
    ):
        assert client.get(path).status_code == 404, path
    assert theirs.name not in html(client.get("/datasets/"))


def test_items_and_imports_of_another_dataset_are_404(ops_client, ops):
    dataset, other = make_dataset(ops), make_dataset(ops)
    item = make_items(other, 1)[0]
    imp = make_import(other, ops)
    assert ops_client.get(f"/datasets/{dataset.pk}/items/{item.pk}").status_code == 404
    assert ops_client.get(f"/datasets/{dataset.pk}/imports/{imp.pk}").status_code == 404


def test_only_managers_may_create(client, owner):
    client.force_login(owner)
    assert client.get("/datasets/new").status_code == 403
    response = client.post("/datasets/new", {"name": "x", "kind": "image"})
    assert response.status_code == 403
    assert not Dataset.objects.exists()
    assert "New dataset" not in html(client.get("/datasets/"))


def test_a_creator_without_ops_may_still_import_into_their_own_dataset(client, owner):
    mine = make_dataset(owner)
    client.force_login(owner)
    assert client.get(f"/datasets/{mine.pk}/import").status_code == 200
    assert client.get(f"/datasets/{mine.pk}/edit").status_code == 200


# --- list and create --------------------------------------------------------------------


def test_list_shows_counts_and_sizes_without_counting(
    ops_client, ops, django_assert_max_num_queries
):
    for n in range(30):
        make_dataset(ops, name=f"set {n}", item_count=1_234_567 + n, total_bytes=5 * 1024**3)
    with django_assert_max_num_queries(4):  # session, user, groups, page
        response = ops_client.get("/datasets/")
    page = html(response)
    assert response.status_code == 200
    assert "1,234,596" in page and "5.0\xa0GB" in page
    assert 'href="/datasets/new"' in page


def test_create_then_land_on_the_import_page(ops_client):
    schema = {"type": "object", "properties": {"camera": {"type": "string"}}}
    response = ops_client.post(
        "/datasets/new",
        {
            "name": "Street",
            "kind": "image",
            "description": "Cars",
            "metadata_schema": json.dumps(schema),
        },
    )
    dataset = Dataset.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/datasets/{dataset.pk}/import"
    assert (dataset.name, dataset.kind, dataset.metadata_schema) == ("Street", "image", schema)
    page = html(ops_client.get(response["Location"]))
    assert "Dataset &#x27;Street&#x27; created" in page


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "kind": "image"}, "name", "This field is required."),
        ({"name": "x", "kind": "video"}, "kind", "Select a valid choice."),
        (
            {"name": "x", "kind": "image", "metadata_schema": "{nope"},
            "metadata_schema",
            "Not valid JSON",
        ),
        (
            {"name": "x", "kind": "image", "metadata_schema": '{"type": "strng"}'},
            "metadata_schema",
            "Not a valid JSON Schema",
        ),
        (
            {"name": "x", "kind": "text", "metadata_schema": '{"type": "array"}'},
            "metadata_schema",
            "top-level &quot;type&quot; must be &quot;object&quot;",
        ),
    ],
)
def test_form_errors_are_shown_by_their_field(ops_client, data, field, message):
    response = ops_client.post("/datasets/new", data)
    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    page = html(response)
    error = re.search(
        rf'<p class="field-error" id="id_{field}_error" role="alert">([^<]*)</p>', page
    )
    assert error and message in error.group(1), page
    assert not Dataset.objects.exists()
    if data.get("metadata_schema"):  # what was typed is kept
        assert data["metadata_schema"].replace('"', "&quot;") in page


def test_an_empty_post_is_bound_and_answered_with_errors(ops_client):
    response = ops_client.post("/datasets/new", {})
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"name", "kind"}


def test_a_duplicate_name_is_a_name_error(ops_client, ops):
    make_dataset(ops, name="Cats")
    response = ops_client.post("/datasets/new", {"name": "Cats", "kind": "image"})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == [
        "You already have a dataset named 'Cats'; choose another name."
    ]


def test_edit_keeps_the_kind_and_saves(ops_client, ops):
    dataset = make_dataset(ops, name="Old", kind="text", metadata_schema={"type": "object"})
    page = html(ops_client.get(f"/datasets/{dataset.pk}/edit"))
    assert 'name="kind"' not in page and "&quot;type&quot;: &quot;object&quot;" in page
    response = ops_client.post(
        f"/datasets/{dataset.pk}/edit", {"name": "New", "description": "d", "metadata_schema": ""}
    )
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert (dataset.name, dataset.kind, dataset.metadata_schema) == ("New", "text", None)


# --- grid -------------------------------------------------------------------------------


def test_grid_shows_thumbnails_when_ready_and_a_placeholder_otherwise(ops_client, ops):
    dataset = make_dataset(ops, item_count=3)
    ready = make_items(dataset, 2, thumbnail_ready=True, tags=["night"], split="val")
    pending = make_items(dataset, 1)
    page = html(ops_client.get(f"/datasets/{dataset.pk}"))
    for item in ready:
        assert re.search(
            rf'<img class="thumb" src="http://[^"]+/derived/thumb256/{item.asset_id}\?[^"]*X-Amz-Signature=',
            page,
        )
    assert page.count('class="thumb-pending"') == 1
    assert pending[0].external_id in page
    assert '<a class="tag" href="?tag=night">night</a>' in page
    assert '<span class="split val">val</span>' in page


def test_grid_of_texts_shows_previews(ops_client, ops):
    dataset = make_dataset(ops, kind="text")
    make_items(dataset, 2, preview="Once upon a time")
    page = html(ops_client.get(f"/datasets/{dataset.pk}"))
    assert page.count('<span class="text-preview">Once upon a time</span>') == 2
    assert "thumb" not in page


def test_grid_query_count_does_not_grow_with_the_page(
    ops_client, ops, django_assert_max_num_queries
):
    small, big = make_dataset(ops), make_dataset(ops)
    make_items(small, 2, tags=["a"], thumbnail_ready=True)
    make_items(big, 60, tags=["a", "b"], thumbnail_ready=True)
    # session, user, groups, dataset, items, tags
    for dataset in (small, big):
        with django_assert_max_num_queries(6):
            assert ops_client.get(f"/datasets/{dataset.pk}?tag=a").status_code == 200


def test_grid_pager_links_keep_the_filters(ops_client, ops):
    dataset = make_dataset(ops)
    items = make_items(dataset, 50, split="train")
    first = ops_client.get(f"/datasets/{dataset.pk}?split=train")
    pager = first.context["pager"]
    assert pager["prev"] is None and pager["first"] is None
    assert pager["next"].startswith("?split=train&cursor=")
    second = ops_client.get(f"/datasets/{dataset.pk}{pager['next']}")
    assert [i.pk for i in second.context["page"].items] == [items[48].pk, items[49].pk]
    last = ops_client.get(f"/datasets/{dataset.pk}{pager['last']}")
    assert [i.pk for i in last.context["page"].items] == [i.pk for i in items[2:]]
    assert 'rel="next"' not in html(last) and 'rel="prev"' in html(last)


def test_bad_filters_are_explained_and_ignored(ops_client, ops):
    dataset = make_dataset(ops)
    make_items(dataset, 2)
    response = ops_client.get(f"/datasets/{dataset.pk}?meta=justakey&split=bogus")
    page = html(response)
    assert response.status_code == 200
    assert "Metadata: Write key=value" in page and "Split: Select a valid choice" in page
    assert len(response.context["page"].items) == 2


def test_empty_states(ops_client, ops):
    dataset = make_dataset(ops)
    assert "has no items yet" in html(ops_client.get(f"/datasets/{dataset.pk}"))
    assert "No items match" in html(ops_client.get(f"/datasets/{dataset.pk}?tag=x"))
    assert "No datasets yet" not in html(ops_client.get("/datasets/"))


# --- item page --------------------------------------------------------------------------


def test_image_item_shows_the_full_image_by_presigned_url(ops_client, ops):
    dataset = make_dataset(ops)
    first, item, last = make_items(
        dataset, 3, tags=["b", "a"], split="test", metadata={"camera": "front", "n": 2}
    )
    response = ops_client.get(f"/datasets/{dataset.pk}/items/{item.pk}?back=split%3Dtest")
    page = html(response)
    assert response.status_code == 200
    blob_path = f"/blobs/sha256/{item.asset_id[:2]}/{item.asset_id[2:4]}/{item.asset_id}?"
    assert re.search(rf'<img class="full" src="http://[^"]+{re.escape(blob_path)}', page)
    assert "response-content-disposition=attachment" in page  # the download link
    assert "&quot;camera&quot;: &quot;front&quot;" in page
    assert page.index(">a</a>") < page.index(">b</a>")
    assert f'href="/datasets/{dataset.pk}/items/{first.pk}?back=split%3Dtest" rel="prev"' in page
    assert f'href="/datasets/{dataset.pk}?split=test">Back to the grid' in page


def test_text_item_shows_the_text_from_the_store(ops_client, ops):
    dataset = make_dataset(ops, kind="text")
    data = "Première ligne\n<b>pas du HTML</b>\n".encode()
    put = blob_put_bytes(data, content_type="text/plain")
    asset = Asset.objects.create(
        sha256=put.sha256, size=len(data), media_type="text/plain", char_count=34
    )
    item = dataset.items.create(asset=asset, external_id="notes/a.txt")
    page = html(ops_client.get(f"/datasets/{dataset.pk}/items/{item.pk}"))
    assert '<pre class="text-full">Première ligne\n&lt;b&gt;pas du HTML&lt;/b&gt;\n</pre>' in page
    assert "34 characters" in page


# --- import page and report ------------------------------------------------------------


def test_import_page_has_the_drop_zone_and_recent_imports(ops_client, ops):
    dataset = make_dataset(ops)
    make_import(dataset, ops, state="done", total=7, created=5, rejected=2)
    page = html(ops_client.get(f"/datasets/{dataset.pk}/import"))
    assert 'id="dropzone"' in page and 'type="file" name="files" id="id_files" multiple' in page
    assert 'enctype="multipart/form-data"' in page and "datasets/upload.js" in page
    assert '<span class="bad">2</span>' in page


def _job(user, **fields):
    now = timezone.now()
    defaults = {"state": "running", "attempts": 1, "heartbeat_at": now, "started_at": now}
    return Job.objects.create(
        kind="datasets.import",
        handler="tests.workers.handlers.add",
        created_by=user,
        **{**defaults, **fields},
    )


def test_report_of_a_running_import_polls_and_lists_rejected_files(ops_client, ops):
    dataset = make_dataset(ops)
    imp = make_import(
        dataset,
        ops,
        state="running",
        job=_job(ops, progress_total=9, progress_done=4),
        total=9,
        created=2,
        unchanged=1,
        duplicates=1,
        rejected=2,
    )
    make_entries(imp, ["created", "rejected", "created", "unchanged", "rejected", "duplicate"])
    page = html(ops_client.get(f"/datasets/{dataset.pk}/imports/{imp.pk}"))
    assert f'hx-get="/jobs/{imp.job_id}/progress"' in page  # the workers progress bar
    assert f'hx-get="/datasets/{dataset.pk}/imports/{imp.pk}/summary"' in page
    assert '<li class="ok"><span class="n">2</span><span class="label">created</span></li>' in page
    assert (
        '<li class="bad"><span class="n">2</span><span class="label">rejected</span></li>' in page
    )
    assert "folder/file-0001.png</td><td>reason 1</td>" in page
    assert "folder/file-0004.png</td><td>reason 4</td>" in page
    assert "file-0000" not in page


def test_report_partial_stops_polling_when_done_and_pages_rejected_files(ops_client, ops):
    dataset = make_dataset(ops)
    imp = make_import(
        dataset, ops, state="done", total=60, rejected=60, job=_job(ops, state="succeeded")
    )
    make_entries(imp, ["rejected"] * 60)
    response = ops_client.get(f"/datasets/{dataset.pk}/imports/{imp.pk}/summary")
    page = html(response)
    assert response["Cache-Control"] == "no-store"
    assert page.startswith('<section class="import-summary"') and "hx-get" not in page
    assert page.count('<tr><td class="num muted">') == 50
    # Pager links point at the report page, not at the partial.
    assert f'href="/datasets/{dataset.pk}/imports/{imp.pk}?cursor=' in page
    nxt = response.context["pager"]["next"]
    rest = ops_client.get(f"/datasets/{dataset.pk}/imports/{imp.pk}{nxt}")
    assert [e.seq for e in rest.context["rejected"].items] == list(range(50, 60))


def test_upload_posts_to_the_import_service(ops_client, ops, monkeypatch):
    """The view's contract with datasets.services.imports.import_submit_upload."""
    from datasets.services import imports

    dataset = make_dataset(ops)
    calls = []

    def submit(*, dataset, files, created_by, tags=(), split=""):
        calls.append(([f.name for f in files], created_by, list(tags), split))
        return make_import(dataset, created_by, job=_job(created_by))

    monkeypatch.setattr(imports, "import_submit_upload", submit)
    files = [
        SimpleUploadedFile("a.png", image_bytes(), content_type="image/png"),
        SimpleUploadedFile("b.png", image_bytes(color=(0, 0, 255)), content_type="image/png"),
    ]
    response = ops_client.post(
        f"/datasets/{dataset.pk}/import",
        {"files": files, "tags": "night, wet ,", "split": "val"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201
    imp = Import.objects.get()
    assert response.json() == {
        "import_id": imp.pk,
        "url": f"/datasets/{dataset.pk}/imports/{imp.pk}",
    }
    assert calls == [(["a.png", "b.png"], ops, ["night", "wet"], "val")]

    # Without JavaScript: a plain form post is redirected to the report.
    plain = ops_client.post(
        f"/datasets/{dataset.pk}/import", {"files": [SimpleUploadedFile("c.png", b"x")]}
    )
    assert plain.status_code == 302 and plain["Location"].startswith(
        f"/datasets/{dataset.pk}/imports/"
    )


def test_upload_errors_of_the_import_service_are_shown(ops_client, ops):
    """The real service refuses an empty upload before storing anything."""
    dataset = make_dataset(ops)
    response = ops_client.post(
        f"/datasets/{dataset.pk}/import", {"tags": ""}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["field"] == "files" and "no files" in response.json()["detail"]
    page = ops_client.post(f"/datasets/{dataset.pk}/import", {})
    assert page.status_code == 400 and "no files were uploaded" in html(page)
    assert not Import.objects.exists()
