"""Importing a label file from a project's page in real Chromium: a file with a bad row
imports nothing and lists the problem; the valid rows only import when asked."""

from __future__ import annotations

import json

import pytest

from datasets.models import Label
from labeling.models import LabelImport
from tests.e2e.test_labeling_ui import log_in
from tests.factories import UserFactory
from tests.labeling.conftest import make_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def line(external_id, label):
    region = {
        "type": "rectanglelabels",
        "value": {"x": 2, "y": 3, "width": 10, "height": 8, "rectanglelabels": [label]},
    }
    return json.dumps({"external_id": external_id, "label": [region]})


@pytest.mark.django_db(transaction=True)
def test_import_labels_from_the_project_page(
    live_server, page, screenshot, tmp_path, celery_redis_broker, celery_worker_factory
):
    ops = UserFactory(username="opal", roles=["ops"])
    project, items = make_project(ops, [])
    celery_worker_factory(celery_redis_broker)
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "\n".join([line(items[0].external_id, "car"), line(items[1].external_id, "truck")]) + "\n"
    )
    log_in(page, live_server, "opal", f"/projects/{project.pk}/imports")
    page.set_input_files("input[name=file]", str(labels))
    page.select_option("select[name=format]", "jsonl")
    page.click("[data-test=import-submit]")
    page.wait_for_selector(".label-import-detail[data-state=failed]", timeout=60_000)
    assert page.locator("[data-count=problems]").inner_text() == "1"
    assert "truck" in page.locator("table.problems").inner_text()
    assert "nothing was imported" in page.locator("[data-test=import-failed]").inner_text()
    assert not Label.objects.exists()
    screenshot("label-import-01-problems")

    page.goto(f"{live_server.url}/projects/{project.pk}/imports")
    page.set_input_files("input[name=file]", str(labels))
    page.select_option("select[name=format]", "jsonl")
    page.check("input[name=valid_only]")
    page.click("[data-test=import-submit]")
    page.wait_for_selector(".label-import-detail[data-state=done]", timeout=60_000)
    assert page.locator("[data-count=imported]").inner_text() == "1"
    assert Label.objects.get().item_id == items[0].pk
    page.goto(f"{live_server.url}/projects/{project.pk}/imports")
    assert page.locator("table.label-imports tbody tr").count() == 2
    assert LabelImport.objects.filter(state="done").count() == 1
    screenshot("label-import-02-list")
