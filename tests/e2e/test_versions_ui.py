"""The version page in real Chromium: charts drawn, the diff loaded by htmx, the numbers
shown equal to the Version rows."""

from __future__ import annotations

import pytest

from datasets.models import Version
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot, version_tag
from tests.factories import PASSWORD, UserFactory, dataset_with_items, png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCHEMA = "b" * 64


def boxes(*labels):
    return [
        {
            "id": f"r{n}",
            "type": "rectanglelabels",
            "value": {"x": 1 + n, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
        }
        for n, label in enumerate(labels)
    ]


@pytest.mark.django_db(transaction=True)
def test_version_page_charts_lineage_and_diff(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    dataset, items = dataset_with_items(
        owner=ops,
        kind="image",
        name="Street scenes",
        contents=[png_bytes(8, 8, (n * 20, 3, 4)) for n in range(6)],
    )
    labels = [("car", "person"), ("car",), ("bus",), ("person", "person"), ("car",), ("bike",)]
    for item, names in zip(items, labels, strict=True):
        label_publish(
            item=item,
            value=boxes(*names),
            schema_hash=SCHEMA,
            source="project:3",
            provenance={"task": item.pk, "annotators": ["ana"], "batch": 11},
        )
    first, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(code_commit="abc1234", code_repo="", message="first labels"),
        created_by_id=ops.pk,
    )
    label_publish(
        item=items[1],
        value=boxes("bus", "bus"),
        schema_hash=SCHEMA,
        source="project:3",
        provenance={"task": items[1].pk, "annotators": ["ben"], "batch": 12},
    )
    second, created = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(
            code_commit="0123456789abcdef0123456789abcdef01234567",
            code_repo="https://github.com/acme/detector",
            message="Relabel item 2 as two buses",
        ),
        created_by_id=ops.pk,
    )
    assert created and second.parent_id == first.pk
    version_tag(version=second, name="v1.1", created_by=ops)

    page.goto(f"{live_server.url}/accounts/login/?next=/datasets/{dataset.pk}/versions")
    page.fill("#id_username", "olga")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/datasets/{dataset.pk}/versions")
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-version-id") == second.pk  # newest first

    rows.nth(0).locator("a").first.click()
    page.wait_for_url(f"**/versions/{second.pk}")
    page.wait_for_selector("#chart-classes[data-drawn]")
    page.wait_for_selector("#chart-splits[data-drawn]")
    page.wait_for_selector(".contributors[data-loaded]")
    second = Version.objects.get(pk=second.pk)
    assert page.locator("[data-count=items]").inner_text() == str(second.item_count)
    assert page.locator("[data-count=labelled]").inner_text() == str(second.labelled_count)
    assert page.locator("[data-count=classes]").inner_text() == str(len(second.class_counts))
    for split, count in second.split_counts.items():
        assert page.locator(f"[data-split={split}]").inner_text() == str(count)
    link = page.locator("[data-test=commit-link]")
    assert link.get_attribute("href") == (
        "https://github.com/acme/detector/commit/0123456789abcdef0123456789abcdef01234567"
    )
    assert page.locator("ol.lineage a").first.get_attribute("href").endswith(first.pk)
    assert page.locator("[data-annotator=ben]").count() == 1
    assert page.locator("li.check").count() == len(second.checks)
    # The class chart's canvas holds pixels (Chart.js drew the bars).
    assert page.evaluate(
        "() => Chart.getChart('chart-classes').data.datasets[0].data.reduce((a, b) => a + b)"
    ) == sum(second.class_counts.values())
    screenshot("versions-01-version-page")

    page.wait_for_selector("#chart-diff[data-drawn]")
    assert page.locator("[data-diff=relabelled]").inner_text() == "1"
    assert page.locator("[data-diff=added]").inner_text() == "0"
    assert page.locator("[data-diff=removed]").inner_text() == "0"
    assert page.locator("[data-diff=unchanged]").inner_text() == "5"
    for name in sorted({*first.class_counts, *second.class_counts}):
        row = page.locator(f"tr[data-class={name}] td")
        assert row.nth(1).inner_text() == str(first.class_counts.get(name, 0))
        assert row.nth(2).inner_text() == str(second.class_counts.get(name, 0))
    assert page.evaluate("() => Chart.getChart('chart-diff').data.datasets.length") == 2
    assert page.locator("li.relabelled .after").inner_text() == "bus, bus"
    page.locator("#diff").scroll_into_view_if_needed()
    screenshot("versions-02-diff")


@pytest.mark.django_db(transaction=True)
def test_export_a_version_from_its_page(
    live_server, page, screenshot, celery_redis_broker, celery_worker_factory
):
    from datasets.models import Export

    ops = UserFactory(username="omar", roles=["ops"])
    dataset, items = dataset_with_items(
        owner=ops,
        kind="image",
        name="Parking lot",
        contents=[png_bytes(16, 12, (n * 30, 9, 9)) for n in range(4)],
    )
    for item, names in zip(items, [("car",), ("car", "bus"), (), ("bus",)], strict=True):
        label_publish(item=item, value=boxes(*names), schema_hash=SCHEMA, source="t", provenance={})
    version, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(code_commit="abc1234", code_repo="", message="v1"),
        created_by_id=ops.pk,
    )
    celery_worker_factory(celery_redis_broker)
    page.goto(
        f"{live_server.url}/accounts/login/?next=/datasets/{dataset.pk}/versions/{version.pk}"
    )
    page.fill("#id_username", "omar")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("form.export-form")
    # No split chosen: the form comes back with the reason, nothing is stored.
    for split in ("train", "val", "test"):
        page.uncheck(f"input[name=splits][value={split}]")
    page.click("[data-test=export-submit]")
    page.wait_for_selector("[data-test=export-error]")
    assert "splits" in page.locator("[data-test=export-error]").inner_text()
    assert not Export.objects.exists()
    page.check("input[name=format][value=jsonl]")
    for split in ("train", "val", "test"):
        page.check(f"input[name=splits][value={split}]")
    page.click("[data-test=export-submit]")
    page.wait_for_selector("tr[data-state=done] [data-test=export-download]", timeout=60_000)
    export = Export.objects.get()
    assert export.state == "done" and export.counts["items"] == 4
    href = page.locator("[data-test=export-download]").get_attribute("href")
    assert href.endswith(f"/exports/{export.pk}/download")
    page.locator("#exports").scroll_into_view_if_needed()
    screenshot("exports-01-version-export")
