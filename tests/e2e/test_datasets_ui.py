"""The dataset pages in real Chromium, with a real worker: create, import, browse."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from datasets.models import Dataset, Import, Item
from datasets.services.thumbnails import thumbnails_submit
from tests.datasets.images import image_bytes
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The import pipeline (datasets.services.imports) is built alongside these pages.
HAS_UPLOAD_IMPORT = importlib.util.find_spec("datasets.services.imports") is not None
WORKER_TIMEOUT_S = 60


def _wait(predicate, *, timeout: float = WORKER_TIMEOUT_S, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _seed_items(dataset: Dataset, folder: Path) -> None:
    """Without the upload pipeline: store the files and add their items with the
    services it will use."""
    from django.db import transaction

    from datasets.services.assets import asset_inspect, asset_store
    from datasets.services.datasets import dataset_counters_add
    from datasets.services.items import ItemRow, items_add

    rows = []
    files = sorted(folder.iterdir())
    for path in files:
        facts = asset_inspect(path, kind=dataset.kind)
        asset_store(path, facts)
        rows.append(ItemRow(key=path.name, external_id=path.name, sha256=facts.sha256))
    with transaction.atomic():
        outcomes = items_add(dataset=dataset, rows=rows)
        created = [o for o in outcomes if o.status == "created"]
        dataset_counters_add(
            dataset_id=dataset.pk, items=len(created), size=sum(p.stat().st_size for p in files)
        )


@pytest.mark.django_db(transaction=True)
def test_ops_creates_a_dataset_imports_two_pngs_and_browses_them(
    live_server, page, screenshot, tmp_path, celery_embedded_broker, celery_worker_factory
):
    celery_worker_factory(celery_embedded_broker)
    UserFactory(username="olga", roles=["ops"])
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "red.png").write_bytes(image_bytes(640, 480, color=(200, 40, 40)))
    (folder / "blue.png").write_bytes(image_bytes(300, 500, color=(40, 60, 200)))

    # Log in; land on the (empty) dataset list.
    page.goto(f"{live_server.url}/accounts/login/?next=/datasets/")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/datasets/")
    assert page.locator("h1").inner_text() == "Datasets"
    screenshot("01-dataset-list-empty")

    # Create: first with a broken schema (errors by field), then correctly.
    page.click("text=New dataset")
    page.fill("#id_name", "Street scenes")
    page.fill("#id_description", "Front camera, two test images.")
    page.check("input[name=kind][value=image]")
    page.fill("#id_metadata_schema", '{"type": "strng"}')
    page.click("button:has-text('Create dataset')")
    error = page.locator("#id_metadata_schema_error")
    assert "Not a valid JSON Schema" in error.inner_text()
    screenshot("02-dataset-create-errors")
    page.fill(
        "#id_metadata_schema", '{"type": "object", "properties": {"camera": {"type": "string"}}}'
    )
    page.click("button:has-text('Create dataset')")
    page.wait_for_url("**/import")
    dataset = Dataset.objects.get(name="Street scenes")
    assert dataset.metadata_schema["type"] == "object"

    if HAS_UPLOAD_IMPORT:
        # Drop two files on the zone (set_input_files fires the input's change event).
        page.set_input_files("#id_files", [str(folder / "red.png"), str(folder / "blue.png")])
        page.fill("#id_tags", "e2e, sunny")
        assert "2 files" in page.locator("#file-summary").inner_text()
        screenshot("03-import-files-chosen")
        page.click("#upload-submit")
        page.wait_for_url("**/imports/*")
        # The job's bar, then the report, reach their end (a real worker runs them).
        page.wait_for_selector(".job[data-job-state=succeeded]", timeout=WORKER_TIMEOUT_S * 1000)
        page.wait_for_selector(
            "#import-summary[data-import-state=done]", timeout=WORKER_TIMEOUT_S * 1000
        )
        imp = Import.objects.get(dataset=dataset)
        assert (imp.total, imp.created, imp.rejected) == (2, 2, 0)
        assert page.locator(".counts li.ok .n").inner_text() == "2"
        screenshot("04-import-report")
    else:
        _seed_items(dataset, folder)
        # What the import pipeline does after each chunk: one thumbnail job.
        shas = Item.objects.filter(dataset=dataset).values_list("asset_id", flat=True)
        thumbnails_submit(sha256s=list(shas))

    # The worker makes the thumbnails (the import's chunk job submitted them).
    _wait(
        lambda: Item.objects.filter(dataset=dataset, asset__thumbnail_ready=True).count() == 2,
        what="the thumbnails",
    )

    page.goto(f"{live_server.url}/datasets/{dataset.pk}")
    thumbs = page.locator("img.thumb")
    assert thumbs.count() == 2
    # The presigned URLs load from the object store: real pixels, at most 256 px.
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.thumb')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    sizes = thumbs.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert sorted(sizes) == [[154, 256], [256, 192]]
    screenshot("05-item-grid")

    # Filter by the tag given at upload (or see nothing, without it), then open an item.
    if HAS_UPLOAD_IMPORT:
        page.fill("input[name=tag]", "sunny")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**tag=sunny**")
        assert page.locator("img.thumb").count() == 2
    page.locator(".tile a.tile-view").first.click()
    page.wait_for_url("**/items/**")
    page.wait_for_function(
        "() => { const i = document.querySelector('img.full'); return i && i.complete && i.naturalWidth > 0; }"
    )
    assert page.locator("img.full").evaluate("i => i.naturalWidth") in (640, 300)
    screenshot("06-item-detail")

    page.goto(f"{live_server.url}/datasets/")
    assert page.locator("table.datasets a", has_text="Street scenes").count() == 1
    screenshot("07-dataset-list")
