"""A review round trip in real Chromium: an annotator draws a box and submits; a
reviewer, in another browser, sees it proposed and rejects it with a comment; the
annotator gets the task back with the comment and their box, adds the missing box and
submits again; the reviewer accepts, and the label is published to the dataset.

The annotator and the reviewer each have their own browser context (their own session);
the project reviews every task (review_mode "all"), so nothing is published before the
reviewer accepts.
"""

from __future__ import annotations

from typing import Any

import pytest

from datasets.models import Label
from labeling.management.commands.seed_demo import demo_scene_png
from labeling.models import Annotation, ProjectMember, Review, Task
from labeling.services.annotations import annotation_submit
from labeling.services.projects import project_create, project_tasks_create
from labeling.services.queue import task_lease_next
from tests.e2e.conftest import DEFAULT_TIMEOUT_MS, VIEWPORT
from tests.e2e.test_labeling_ui import (
    BOX_SCHEMA,
    CAR,
    IMAGE_SIZE,
    NER_SCHEMA,
    PERSON,
    TEXT,
    drag,
    log_in,
    regions,
    wait_for_task,
)
from tests.factories import UserFactory, dataset_with_items

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMMENT = "The person on the right has no box: add one."


def review_project(ops: Any, annotator: Any, reviewer: Any):
    dataset, items = dataset_with_items(
        owner=ops, kind="image", contents=[demo_scene_png(0, IMAGE_SIZE)]
    )
    project = project_create(
        created_by=ops,
        name="Reviewed street boxes",
        dataset=dataset,
        label_schema=BOX_SCHEMA,
        instructions="Box every car and person.",
        members=[
            {"username": annotator.username, "role": "annotator"},
            {"username": reviewer.username, "role": "reviewer"},
        ],
        review_mode="all",
    )
    project_tasks_create(project=project)
    return project, items[0]


def image_point(page: Any):
    box = page.locator("img.task-image").bounding_box()
    scale = box["width"] / IMAGE_SIZE[0]
    return lambda x, y: (box["x"] + x * scale, box["y"] + y * scale)


def wait_for_regions(page: Any, count: int) -> None:
    page.wait_for_function(
        "n => { const a = document.getElementById('annotator');"
        " return a.annotator && a.annotator.app.regions.length === n; }",
        arg=count,
    )


def wait_for_review_task(page: Any) -> str:
    page.wait_for_selector("#annotator[data-state=task]")
    page.wait_for_function("() => document.querySelector('.canvas-wrap svg') !== null")
    page.wait_for_selector("#btn-accept:not([disabled])")
    return page.locator("#annotator").get_attribute("data-task-id")


@pytest.mark.django_db(transaction=True)
def test_a_review_round_trip_in_the_browser(live_server, browser, page, screenshot, screenshot_dir):
    ops = UserFactory(username="olga", roles=["ops"])
    anna = UserFactory(username="anna", roles=["annotator"])
    rita = UserFactory(username="rita", roles=["reviewer"])
    project, item = review_project(ops, anna, rita)
    assert ProjectMember.objects.get(project=project, user=rita).role == "reviewer"

    # The reviewer's own browser, with the same check for JavaScript errors as `page`.
    reviewer_context = browser.new_context(viewport=VIEWPORT)
    reviewer_context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    rpage = reviewer_context.new_page()
    reviewer_errors: list[str] = []
    rpage.on("pageerror", lambda exc: reviewer_errors.append(str(exc)))

    try:
        # 1. Anna boxes the car only, and submits.
        log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
        task_id = wait_for_task(page)
        page.wait_for_function("() => document.querySelector('.canvas-wrap svg') !== null")
        at = image_point(page)
        page.keyboard.press("1")
        drag(page, at(*CAR[:2]), at(*CAR[2:]))
        wait_for_regions(page, 1)
        page.wait_for_timeout(150)
        page.keyboard.press("Enter")
        page.wait_for_selector("#annotator[data-state=empty]")
        task = Task.objects.get(pk=int(task_id))
        assert task.review == Task.Review.PENDING
        assert not Label.objects.filter(item=item).exists()  # not before review

        # 2. Rita opens the review page from the project's Review tab: Anna's box is
        # proposed, in the editor, with Anna in the list of annotations.
        log_in(rpage, live_server, "rita", f"/projects/{project.pk}/")
        rpage.click(f"nav.tabs a[href='/projects/{project.pk}/review']")
        assert wait_for_review_task(rpage) == task_id
        wait_for_regions(rpage, 1)
        assert [r["value"]["rectanglelabels"] for r in regions(rpage)] == [["car"]]
        assert rpage.locator("#review-annotations li").count() == 1
        assert "anna" in rpage.locator("#review-annotations").inner_text()
        assert "annotation of anna" in rpage.locator("#review-proposal").inner_text()
        assert rpage.locator("#review-pending").inner_text() == "1"
        assert rpage.locator("#btn-fix").is_disabled()  # nothing edited yet
        history = rpage.locator("#review-history")
        assert history.get_attribute("href") == f"/projects/{project.pk}/tasks/{task_id}/history"
        rpage.screenshot(path=str(screenshot_dir / "review-page.png"), full_page=True)

        # A reject needs a comment: the dialog says so and stays open.
        rpage.keyboard.press("r")
        rpage.wait_for_selector("#reject-dialog[open]")
        rpage.click("#reject-dialog button[type=submit]")
        assert rpage.locator("#reject-error").is_visible()
        assert rpage.locator("#reject-dialog").evaluate("d => d.open")
        rpage.fill("#reject-comment", COMMENT)
        rpage.click("#reject-dialog button[type=submit]")
        rpage.wait_for_selector("#annotator[data-state=empty]")
        assert "Nothing waits for review" in rpage.locator("#stage").inner_text()
        assert rpage.locator("#review-decided").inner_text() == "1"
        task.refresh_from_db()
        assert task.review == Task.Review.REJECTED
        annotation = Annotation.objects.get(task=task)
        assert annotation.needs_rework
        rejected = Review.objects.get(task=task)
        assert (rejected.decision, rejected.comment, rejected.reviewer) == ("reject", COMMENT, rita)

        # 3. Anna gets the task back: the comment in a banner, her box loaded.
        page.reload()
        assert wait_for_task(page) == task_id
        banner = page.locator("#returned")
        banner.wait_for(state="visible")
        assert banner.inner_text().startswith(f"Returned by rita: {COMMENT}")
        wait_for_regions(page, 1)
        assert [r["value"]["rectanglelabels"] for r in regions(page)] == [["car"]]
        page.wait_for_function("() => document.querySelector('.canvas-wrap svg') !== null")
        screenshot("review-returned")
        # She adds the person and submits again.
        at = image_point(page)
        page.keyboard.press("2")
        drag(page, at(*PERSON[:2]), at(*PERSON[2:]))
        wait_for_regions(page, 2)
        page.wait_for_timeout(150)
        page.keyboard.press("Enter")
        page.wait_for_selector("#annotator[data-state=empty]")
        assert not page.locator("#returned").is_visible()
        task.refresh_from_db()
        assert task.review == Task.Review.PENDING
        annotation.refresh_from_db()
        assert not annotation.needs_rework
        assert annotation.revision_count == 2

        # 4. Rita reviews it again: two boxes, revision 2, her earlier rejection listed.
        rpage.reload()
        assert wait_for_review_task(rpage) == task_id
        wait_for_regions(rpage, 2)
        assert "revision 2" in rpage.locator("#review-annotations").inner_text()
        earlier = rpage.locator("#review-earlier").inner_text()
        assert "Rejected by rita" in earlier and COMMENT in earlier
        # An edit turns Accept into Fix & accept; undoing it turns it back.
        rpage.locator("#regions li.region .region-delete").first.click()
        wait_for_regions(rpage, 1)
        assert rpage.locator("#btn-accept").is_disabled()
        assert not rpage.locator("#btn-fix").is_disabled()
        rpage.click("#btn-undo")
        wait_for_regions(rpage, 2)
        rpage.wait_for_selector("#btn-accept:not([disabled])")
        assert rpage.locator("#btn-fix").is_disabled()
        # "a" accepts; nothing else waits.
        rpage.keyboard.press("a")
        rpage.wait_for_selector("#annotator[data-state=empty]")
        assert "Nothing waits for review" in rpage.locator("#stage").inner_text()

        # 5. The label is published, with its provenance.
        task.refresh_from_db()
        assert task.review == Task.Review.ACCEPTED
        assert [r.decision for r in Review.objects.filter(task=task).order_by("created_at")] == [
            "reject",
            "accept",
        ]
        label = Label.objects.get(item=item)
        assert sorted(r["value"]["rectanglelabels"][0] for r in label.value) == ["car", "person"]
        assert label.source == f"project:{project.pk}"
        assert label.provenance["reviewer"] == "rita"
        assert label.provenance["annotators"] == ["anna"]

        # The task's history page, linked from the review page, tells the whole story.
        rpage.goto(f"{live_server.url}/projects/{project.pk}/tasks/{task_id}/history")
        kinds = rpage.locator("table.history tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.kind)"
        )
        assert kinds.count("revision") == 2
        assert kinds.count("review") == 2
        assert COMMENT in rpage.locator("table.history").inner_text()
    finally:
        reviewer_context.close()
    assert not reviewer_errors, f"JavaScript errors on the reviewer's page: {reviewer_errors}"


def submit_boxes(project: Any, annotator: Any, boxes: list[tuple[str, tuple]]) -> None:
    """An annotation made through the services (what the annotator's page would send)."""
    grant = task_lease_next(project=project, annotator=annotator)
    result = [
        {
            "type": "rectanglelabels",
            "value": {
                "x": x0,
                "y": y0,
                "width": x1 - x0,
                "height": y1 - y0,
                "rectanglelabels": [label],
            },
        }
        for label, (x0, y0, x1, y1) in boxes
    ]
    annotation_submit(task=grant.task, annotator=annotator, result=result, lease_id=grant.lease.pk)


@pytest.mark.django_db(transaction=True)
def test_a_reviewer_compares_two_annotations_and_fixes_one(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    anna = UserFactory(username="anna", roles=["annotator"])
    bob = UserFactory(username="bob", roles=["annotator"])
    rita = UserFactory(username="rita", roles=["reviewer"])
    dataset, (item,) = dataset_with_items(
        owner=ops, kind="image", contents=[demo_scene_png(0, IMAGE_SIZE)]
    )
    # No review by default: the two annotators disagree (bob misses the person), so the
    # consensus is below the threshold and the task goes to review on its own.
    project = project_create(
        created_by=ops,
        name="Two annotators per image",
        dataset=dataset,
        label_schema=BOX_SCHEMA,
        overlap=2,
        members=[
            {"username": "anna", "role": "annotator"},
            {"username": "bob", "role": "annotator"},
            {"username": "rita", "role": "reviewer"},
        ],
    )
    project_tasks_create(project=project)
    submit_boxes(project, anna, [("car", CAR), ("person", PERSON)])
    submit_boxes(project, bob, [("car", CAR)])
    task = Task.objects.get(project=project)
    assert task.review == Task.Review.PENDING
    assert not Label.objects.filter(item=item).exists()
    anna_annotation = Annotation.objects.get(task=task, annotator=anna)
    bob_annotation = Annotation.objects.get(task=task, annotator=bob)

    log_in(page, live_server, "rita", f"/projects/{project.pk}/review")
    assert wait_for_review_task(page) == str(task.pk)
    proposal = page.locator("#review-proposal").inner_text()
    assert "Consensus of the annotations" in proposal
    assert "low" in proposal  # the confidence under the threshold is flagged
    assert page.locator("#review-annotations li").count() == 2

    # "View" switches the editor between the annotations.
    page.click(f"#review-annotations li[data-annotation-id='{bob_annotation.pk}'] button")
    wait_for_regions(page, 1)
    page.click(f"#review-annotations li[data-annotation-id='{anna_annotation.pk}'] button")
    wait_for_regions(page, 2)
    pressed = page.locator("#review-annotations button[aria-pressed=true]")
    assert "anna" in pressed.inner_text()
    # A reject of a task with several annotations asks which one (the one viewed first).
    page.keyboard.press("r")
    page.wait_for_selector("#reject-dialog[open]")
    assert page.locator("#reject-target-row").is_visible()
    assert page.locator("#reject-annotation").input_value() == str(anna_annotation.pk)
    page.click("#reject-dialog [data-cancel]")
    page.wait_for_selector("#reject-dialog[open]", state="detached")

    # Bob's annotation, with the person box the reviewer draws: Fix & accept.
    page.click(f"#review-annotations li[data-annotation-id='{bob_annotation.pk}'] button")
    wait_for_regions(page, 1)
    page.wait_for_timeout(150)
    at = image_point(page)
    page.keyboard.press("2")
    drag(page, at(*PERSON[:2]), at(*PERSON[2:]))
    wait_for_regions(page, 2)
    page.wait_for_selector("#btn-fix:not([disabled])")
    assert page.locator("#btn-accept").is_disabled()
    # Viewing another annotation now would drop the edit: the page asks first.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click(f"#review-annotations li[data-annotation-id='{anna_annotation.pk}'] button")
    page.wait_for_timeout(200)
    assert asked == ["Discard your edits to the label shown?"]
    wait_for_regions(page, 2)
    assert "bob" in page.locator("#review-annotations button[aria-pressed=true]").inner_text()
    screenshot("review-fix")
    page.keyboard.press("f")
    page.wait_for_selector("#annotator[data-state=empty]")

    fixed = Review.objects.get(task=task)
    assert fixed.decision == "fix"
    assert fixed.annotation_id == bob_annotation.pk
    assert fixed.revision.created_by == rita
    assert fixed.revision.number == 2
    label = Label.objects.get(item=item)
    assert sorted(r["value"]["rectanglelabels"][0] for r in label.value) == ["car", "person"]
    person = next(r["value"] for r in label.value if r["value"]["rectanglelabels"] == ["person"])
    assert abs(person["x"] - PERSON[0]) <= 3 and abs(person["y"] - PERSON[1]) <= 3
    task.refresh_from_db()
    assert task.review == Task.Review.ACCEPTED


@pytest.mark.django_db(transaction=True)
def test_a_span_task_is_reviewed_with_its_lease_renewed_after_an_empty_queue(
    live_server, page, settings
):
    from labeling.models import ReviewLease

    settings.LABELING_LEASE_SECONDS = 25  # a heartbeat every 5 s
    ops = UserFactory(username="olga", roles=["ops"])
    anna = UserFactory(username="anna", roles=["annotator"])
    UserFactory(username="rita", roles=["reviewer"])
    dataset, (item,) = dataset_with_items(owner=ops, kind="text", contents=[TEXT.encode()])
    project = project_create(
        created_by=ops,
        name="Reviewed entities",
        dataset=dataset,
        label_schema=NER_SCHEMA,
        members=[
            {"username": "anna", "role": "annotator"},
            {"username": "rita", "role": "reviewer"},
        ],
        review_mode="all",
    )
    project_tasks_create(project=project)

    # Nothing submitted yet: a friendly empty state, and no lease taken.
    log_in(page, live_server, "rita", f"/projects/{project.pk}/review")
    page.wait_for_selector("#annotator[data-state=empty]")
    stage = page.locator("#stage").inner_text()
    assert "Nothing waits for review" in stage and "Check back later" in stage
    assert page.locator("#btn-accept").is_disabled()
    assert not ReviewLease.objects.exists()

    grant = task_lease_next(project=project, annotator=anna)
    spans = [
        {"type": "labels", "value": {"start": 0, "end": 5, "labels": ["PER"]}},
        {"type": "labels", "value": {"start": 15, "end": 20, "labels": ["LOC"]}},
    ]
    annotation_submit(task=grant.task, annotator=anna, result=spans, lease_id=grant.lease.pk)

    page.reload()
    page.wait_for_selector("#annotator[data-state=task]")
    page.wait_for_selector("#btn-accept:not([disabled])")
    assert page.locator(".text-doc").evaluate("d => d.textContent") == TEXT
    wait_for_regions(page, 2)
    assert page.locator("#regions li.region").count() == 2
    lease = ReviewLease.objects.get(ended_at__isnull=True)
    first_expiry = lease.expires_at
    page.wait_for_timeout(6_000)
    lease.refresh_from_db()
    assert lease.ended_at is None
    assert lease.expires_at > first_expiry

    page.click("#btn-accept")
    page.wait_for_selector("#annotator[data-state=empty]")
    lease.refresh_from_db()
    assert lease.end_reason == ReviewLease.End.DECIDED
    label = Label.objects.get(item=item)
    assert sorted((r["value"]["start"], r["value"]["labels"][0]) for r in label.value) == [
        (0, "PER"),
        (15, "LOC"),
    ]
