"""The labelling pages in real Chromium: annotators draw boxes and mark text spans and
submit by keyboard, a refused submit shows its errors, ops write a schema in the editor.

Tasks are made by calling the tasks service directly (the job would run it in a worker);
images and texts are real blobs in the session's S3 server, loaded by the browser from
presigned URLs.
"""

from __future__ import annotations

from typing import Any

import pytest

from labeling.management.commands.seed_demo import demo_scene_png
from labeling.models import Annotation, AnnotationRevision, Project, Task
from labeling.services.projects import project_create, project_tasks_create
from tests.factories import PASSWORD, UserFactory, dataset_with_items

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BOX_SCHEMA = {
    "type": "bbox",
    "labels": [{"name": "car", "hotkey": "1"}, {"name": "person", "hotkey": "2"}],
    "attributes": [{"name": "occluded", "type": "bool", "default": False}],
}
NER_SCHEMA = {"type": "ner", "labels": [{"name": "PER"}, {"name": "ORG"}, {"name": "LOC"}]}
TEXT = "Alice moved to Paris in 2019 and joined Acme Corp as an engineer."
IMAGE_SIZE = (640, 480)
# Where demo_scene_png(0) draws the car (with its wheels) and the person: x0, y0, x1, y1.
CAR = (40, 244, 250, 364)
PERSON = (418, 140, 462, 330)


def make_project(ops: Any, members: list[Any], *, kind: str, schema: dict, contents: list[bytes]):
    dataset, items = dataset_with_items(owner=ops, kind=kind, contents=contents)
    project = project_create(
        created_by=ops,
        name=f"{kind} e2e project",
        dataset=dataset,
        label_schema=schema,
        instructions="## What to label\n\nDraw a **tight** box around every car and person.",
        members=[{"username": m.username, "role": "annotator"} for m in members],
    )
    project_tasks_create(project=project)
    return project, items


def log_in(page: Any, live_server: Any, username: str, next_path: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def wait_for_task(page: Any, *, other_than: str | None = None) -> str:
    """Wait until the annotator shows a task (another one than `other_than`); its id."""
    if other_than is None:
        page.wait_for_selector("#annotator[data-state=task]")
    else:
        page.wait_for_function(
            "id => { const a = document.getElementById('annotator');"
            " return a.dataset.state === 'task' && a.dataset.taskId !== id; }",
            arg=other_than,
        )
    return page.locator("#annotator").get_attribute("data-task-id")


def regions(page: Any) -> list[dict]:
    return page.evaluate("() => document.getElementById('annotator').annotator.app.regions")


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


@pytest.mark.django_db(transaction=True)
def test_annotator_draws_two_boxes_labels_them_by_key_and_submits_with_enter(
    live_server, page, screenshot
):
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, items = make_project(
        ops,
        [ann],
        kind="image",
        schema=BOX_SCHEMA,
        contents=[demo_scene_png(seed, IMAGE_SIZE) for seed in range(2)],
    )

    # The list shows the project to its member; Annotate opens the annotator.
    log_in(page, live_server, "anna", "/projects/")
    assert page.locator("table.projects a.strong", has_text=project.name).count() == 1
    screenshot("labeling-01-annotator-project-list")
    page.click(f"tr[data-project-id='{project.pk}'] a:has-text('Annotate')")
    first_task = wait_for_task(page)
    page.wait_for_function("() => document.querySelector('.canvas-wrap svg') !== null")
    page.evaluate("() => { window.__sameDocument = true; }")
    assert page.locator("#remaining").inner_text() == "2"
    assert page.locator(".label-btn").count() == 2

    # The image fills the stage; draw two boxes by dragging on it.
    box = page.locator("img.task-image").bounding_box()
    scale = box["width"] / IMAGE_SIZE[0]

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * scale, box["y"] + y * scale

    # The car: "1" picks its label (the first label is active already).
    page.keyboard.press("1")
    drag(page, at(*CAR[:2]), at(*CAR[2:]))
    page.wait_for_function(
        "() => document.getElementById('annotator').annotator.app.regions.length === 1"
    )
    # The person: drawn with the active label (car), then its key relabels it.
    page.wait_for_timeout(100)
    drag(page, at(*PERSON[:2]), at(*PERSON[2:]))
    page.wait_for_function(
        "() => document.getElementById('annotator').annotator.app.regions.length === 2"
    )
    page.keyboard.press("2")
    page.wait_for_timeout(150)
    drawn = regions(page)
    assert [r["value"]["rectanglelabels"] for r in drawn] == [["car"], ["person"]]
    # The canvas shows the same labels (their colours come from them).
    shown = page.evaluate(
        "() => document.getElementById('annotator').annotator.app.widget.anno.getAnnotations()"
        ".map(a => a.bodies.map(b => b.value))"
    )
    assert shown == [["car"], ["person"]]
    assert page.locator("#regions li.region").count() == 2
    # A click on a box selects it (for its key, Delete, arrows); outside, deselects.
    page.mouse.click(*at(CAR[0] + 100, CAR[1] + 40))
    page.wait_for_selector("#regions li.region.selected >> text=1. car")
    page.mouse.click(*at(600, 40))
    page.wait_for_selector("#regions li.region.selected", state="detached")
    screenshot("labeling-02-image-two-boxes")

    # Enter submits; the next task comes in without a page load.
    page.keyboard.press("Enter")
    second_task = wait_for_task(page, other_than=first_task)
    assert page.evaluate("() => window.__sameDocument === true")
    assert page.locator("#regions li.region").count() == 0
    assert page.locator("#done-today").inner_text() == "1"
    screenshot("labeling-03-image-next-task")

    annotation = Annotation.objects.get(task_id=int(first_task))
    assert annotation.annotator == ann
    revision = AnnotationRevision.objects.get(annotation=annotation)
    result = revision.result
    assert [r["type"] for r in result] == ["rectanglelabels", "rectanglelabels"]
    assert [r["value"]["rectanglelabels"] for r in result] == [["car"], ["person"]]
    width, height = IMAGE_SIZE
    for region, (x0, y0, x1, y1) in zip(result, [CAR, PERSON], strict=True):
        v = region["value"]
        assert v["x"] >= 0
        assert v["y"] >= 0
        assert v["x"] + v["width"] <= width and v["y"] + v["height"] <= height
        # Where the mouse went, in image pixels (a pixel or two of rounding on screen).
        assert abs(v["x"] - x0) <= 3 and abs(v["y"] - y0) <= 3
        assert abs(v["x"] + v["width"] - x1) <= 3 and abs(v["y"] + v["height"] - y1) <= 3
    assert revision.lead_time_ms and revision.lead_time_ms > 0
    assert Task.objects.get(pk=int(first_task)).status == Task.Status.DONE
    assert second_task != first_task

    # "b" goes back to the task just submitted, with its boxes; "?" shows the instructions.
    page.keyboard.press("b")
    page.wait_for_function(
        "id => document.getElementById('annotator').dataset.taskId === id", arg=first_task
    )
    assert page.locator("#regions li.region").count() == 2
    page.keyboard.press("?")
    assert page.locator("#instructions").is_visible()
    assert "What to label" in page.locator("#instructions").inner_text()
    screenshot("labeling-04-image-back-with-instructions")
    page.keyboard.press("Escape")
    assert not page.locator("#instructions").is_visible()


@pytest.mark.django_db(transaction=True)
def test_annotator_marks_two_spans_by_mouse_and_keyboard(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, _ = make_project(
        ops,
        [ann],
        kind="text",
        schema=NER_SCHEMA,
        contents=[TEXT.encode(), b"Bob met Carol in Rome."],
    )

    log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
    first_task = wait_for_task(page)
    page.wait_for_selector(".text-doc")
    # The queue hands out the oldest item first.
    assert page.locator(".text-doc").evaluate("d => d.textContent") == TEXT

    # "Alice": dragged with the mouse, with the active label (PER, the first).
    def char_box(index: int) -> dict:
        return page.evaluate(
            """i => { const node = document.querySelector('.text-doc').firstChild;
                      const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
                      const b = r.getBoundingClientRect();
                      return {x: b.x, y: b.y, width: b.width, height: b.height}; }""",
            index,
        )

    start, end = char_box(0), char_box(4)
    mid = start["y"] + start["height"] / 2
    drag(page, (start["x"] + 1, mid), (end["x"] + end["width"] - 1, mid))
    page.wait_for_function(
        "() => document.getElementById('annotator').annotator.app.regions.length === 1"
    )

    # "Paris" by keyboard: focus the text, move the caret, Shift+arrows, release Shift;
    # then its key relabels it LOC.
    page.keyboard.press("Escape")
    page.focus(".text-doc")
    page.keyboard.press("ArrowLeft")
    for _ in range(TEXT.index("Paris")):
        page.keyboard.press("ArrowRight")
    page.keyboard.down("Shift")
    for _ in range(len("Paris")):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(150)
    page.keyboard.up("Shift")
    page.wait_for_function(
        "() => document.getElementById('annotator').annotator.app.regions.length === 2"
    )
    page.keyboard.press("3")
    page.wait_for_timeout(150)
    screenshot("labeling-05-text-two-spans")
    page.keyboard.press("Enter")
    wait_for_task(page, other_than=first_task)

    revision = AnnotationRevision.objects.get(annotation__task_id=int(first_task))
    spans = sorted(
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"]) for r in revision.result
    )
    assert spans == [(0, 5, ["PER"]), (15, 20, ["LOC"])]
    assert {r["type"] for r in revision.result} == {"labels"}


@pytest.mark.django_db(transaction=True)
def test_a_refused_submit_shows_the_errors_and_keeps_the_task(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, _ = make_project(
        ops, [ann], kind="image", schema=BOX_SCHEMA, contents=[demo_scene_png(3, IMAGE_SIZE)]
    )

    log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
    task_id = wait_for_task(page)
    page.keyboard.press("Enter")  # nothing drawn, and the schema does not allow empty
    errors = page.locator("#submit-errors")
    errors.wait_for(state="visible")
    assert "Not submitted" in errors.inner_text()
    assert "empty" in errors.inner_text().lower()
    assert page.locator("#annotator").get_attribute("data-task-id") == task_id
    screenshot("labeling-06-refused-submit")
    assert not Annotation.objects.filter(task__project=project).exists()
    assert not AnnotationRevision.objects.exists()

    # Skip with a reason: the dialog, then the (empty) end of the queue.
    page.keyboard.press("s")
    dialog = page.locator("#skip-dialog")
    dialog.wait_for(state="visible")
    screenshot("labeling-07-skip-dialog")
    page.fill("#skip-other", "Too blurry to tell")
    page.click("#skip-dialog button[type=submit]")
    page.wait_for_selector("#annotator[data-state=empty]")
    assert project.tasks.get().skips.get().reason == "Too blurry to tell"
    screenshot("labeling-08-queue-empty")


@pytest.mark.django_db(transaction=True)
def test_ops_write_a_schema_see_its_errors_and_preview_and_create_the_project(
    live_server, page, screenshot
):
    ops = UserFactory(username="olga", roles=["ops"])
    UserFactory(username="anna", roles=["annotator"])
    dataset, _ = dataset_with_items(
        owner=ops, kind="image", contents=[demo_scene_png(1, (320, 240))], name="Street scenes"
    )

    log_in(page, live_server, "olga", "/projects/")
    page.click("text=New project")
    page.wait_for_url("**/projects/new")
    page.fill("#id_name", "Cars and people")
    page.select_option("#id_dataset", str(dataset.pk))
    page.fill("#id_instructions", "Box every **car** and **person**.")
    anna = UserFactory(username="anna")
    page.check(f"input[name=annotators][value='{anna.pk}']")
    bad = (
        '{"type": "bbox", "labels": [{"name": "car", "hotkey": "s"}, {"name": "car"},'
        ' {"name": "bus", "color": "red"}]}'
    )
    page.fill("#id_label_schema", bad)
    page.click("#btn-validate")
    verdict = page.locator("#schema-preview .bad-schema")
    verdict.wait_for()
    paths = page.locator("#schema-preview code.path").all_inner_texts()
    assert "labels[0].hotkey" in paths
    assert "labels[1].name" in paths
    assert "labels[2].color" in paths
    screenshot("labeling-09-schema-editor-errors")

    good = (
        '{"type": "bbox", "labels": [{"name": "car", "color": "#e6194b"}, {"name": "person"}],'
        ' "attributes": [{"name": "occluded", "type": "bool", "default": false}]}'
    )
    page.fill("#id_label_schema", good)
    page.click("#btn-validate")
    page.locator("#schema-preview .good-schema").wait_for()
    labels = page.locator("#schema-preview .preview-label").all_inner_texts()
    assert [" ".join(t.split()) for t in labels] == ["car 1", "person 2"]
    screenshot("labeling-10-schema-editor-preview")

    # A text schema on an image dataset is refused by the preview too.
    page.fill("#id_label_schema", '{"type": "ner", "labels": [{"name": "PER"}]}')
    page.click("#btn-validate")
    page.locator("#schema-preview .bad-schema").wait_for()
    assert "holds images" in page.locator("#schema-preview").inner_text()

    page.fill("#id_label_schema", good)
    page.click("button:has-text('Create project')")
    page.wait_for_url("**/projects/*/")
    project = Project.objects.get(name="Cars and people")
    assert project.schema_revision.schema["labels"][0]["name"] == "car"
    assert list(project.memberships.values_list("user__username", "role")) == [
        ("anna", "annotator")
    ]
    project_tasks_create(project=project)  # what the tasks job does in a worker
    page.reload()
    assert "0 of 1 task" in page.locator(".progress-head").inner_text()
    assert page.locator(".counts li").first.inner_text().split() == ["1", "tasks", "open"]
    screenshot("labeling-11-project-dashboard")


@pytest.mark.django_db(transaction=True)
def test_pre_annotations_undo_redo_and_a_draft_that_survives_a_reload(
    live_server, page, screenshot
):
    from labeling.models import Draft
    from labeling.services.predictions import predictions_import

    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, items = make_project(
        ops, [ann], kind="image", schema=BOX_SCHEMA, contents=[demo_scene_png(0, IMAGE_SIZE)]
    )
    x0, y0, x1, y1 = CAR
    predicted = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "rectanglelabels": ["car"]}
    predictions_import(
        project=project,
        rows=[
            {
                "item": items[0].pk,
                "model_name": "detector-v2",
                "score": 0.9,
                "result": [{"type": "rectanglelabels", "value": predicted}],
            }
        ],
    )

    log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
    task_id = wait_for_task(page)
    assert "detector-v2" in page.locator("#notice").inner_text()
    assert len(regions(page)) == 1

    # Keyboard: select the box, delete it, undo, redo, undo.
    page.keyboard.press("]")
    page.keyboard.press("Delete")
    assert regions(page) == []
    page.keyboard.press("Control+z")
    assert len(regions(page)) == 1
    page.keyboard.press("Control+Shift+z")
    assert regions(page) == []
    page.keyboard.press("Control+z")
    assert [r["value"]["rectanglelabels"] for r in regions(page)] == [["car"]]

    # n adds a box in the middle of the view; "2" makes it a person; arrows move it.
    page.keyboard.press("Escape")
    page.keyboard.press("n")
    page.keyboard.press("2")
    added = regions(page)[1]["value"]
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("ArrowDown")
    moved = regions(page)[1]["value"]
    assert (moved["x"], moved["y"]) == (added["x"] + 10, added["y"] + 1)
    assert moved["rectanglelabels"] == ["person"]

    # The draft is saved by itself, and comes back after a reload.
    page.wait_for_function(
        "() => document.getElementById('save-status').textContent.startsWith('Draft saved')"
    )
    draft = Draft.objects.get(task_id=int(task_id), annotator=ann)
    assert len(draft.result) == 2
    page.reload()
    assert wait_for_task(page) == task_id
    assert "Restored your draft" in page.locator("#notice").inner_text()
    assert [r["value"] for r in regions(page)] == [predicted, moved]
    screenshot("labeling-12-draft-restored")

    page.keyboard.press("Enter")
    page.wait_for_selector("#annotator[data-state=empty]")
    revision = AnnotationRevision.objects.get(annotation__task_id=int(task_id))
    assert [r["value"] for r in revision.result] == [predicted, moved]
    assert not Draft.objects.filter(task_id=int(task_id)).exists()


@pytest.mark.django_db(transaction=True)
def test_keypoints_by_click_and_choices_by_key(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    points, _ = make_project(
        ops,
        [ann],
        kind="image",
        schema={"type": "keypoint", "labels": [{"name": "head"}, {"name": "wheel"}]},
        contents=[demo_scene_png(0, IMAGE_SIZE)],
    )
    topics, _ = make_project(
        ops,
        [ann],
        kind="text",
        schema={
            "type": "text_class",
            "multiple": True,
            "labels": [{"name": "people"}, {"name": "travel"}, {"name": "money"}],
        },
        contents=[TEXT.encode()],
    )

    log_in(page, live_server, "anna", f"/projects/{points.pk}/annotate")
    task_id = wait_for_task(page)
    box = page.locator("img.task-image").bounding_box()
    scale = box["width"] / IMAGE_SIZE[0]
    page.mouse.click(box["x"] + 440 * scale, box["y"] + 162 * scale)  # the head
    page.keyboard.press("2")  # the active label is wheel from now on
    page.keyboard.press("1")  # and the head is a head again
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    page.mouse.click(box["x"] + 65 * scale, box["y"] + 339 * scale)  # a wheel
    assert page.locator(".kp").count() == 2
    screenshot("labeling-13-keypoints")
    page.keyboard.press("Enter")
    page.wait_for_selector("#annotator[data-state=empty]")
    result = AnnotationRevision.objects.get(annotation__task_id=int(task_id)).result
    assert [r["value"]["keypointlabels"] for r in result] == [["head"], ["wheel"]]
    assert abs(result[0]["value"]["x"] - 440) <= 2 and abs(result[0]["value"]["y"] - 162) <= 2

    page.goto(f"{live_server.url}/projects/{topics.pk}/annotate")
    task_id = wait_for_task(page)
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.keyboard.press("3")  # toggled off again
    assert page.locator(".label-btn[aria-pressed=true]").all_inner_texts() == [
        "people\n1",
        "travel\n2",
    ]
    screenshot("labeling-14-text-classification")
    page.keyboard.press("Enter")
    page.wait_for_selector("#annotator[data-state=empty]")
    result = AnnotationRevision.objects.get(annotation__task_id=int(task_id)).result
    assert [r["value"] for r in result] == [{"choices": ["people", "travel"]}]


@pytest.mark.django_db(transaction=True)
def test_a_polygon_by_clicks_and_zoom_keeps_image_coordinates(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, _ = make_project(
        ops,
        [ann],
        kind="image",
        schema={"type": "polygon", "labels": [{"name": "road"}, {"name": "sky"}]},
        contents=[demo_scene_png(0, IMAGE_SIZE)],
    )
    log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
    task_id = wait_for_task(page)
    page.wait_for_function("() => document.querySelector('.canvas-wrap svg') !== null")

    # Zoom in twice (around the middle), then draw: coordinates stay in image pixels.
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.locator("#zoom-level").inner_text() != "100%"
    corners = [(300, 280), (380, 280), (380, 340), (300, 340)]

    def at(x: float, y: float) -> tuple[float, float]:
        box = page.locator("img.task-image").bounding_box()
        scale = box["width"] / IMAGE_SIZE[0]
        return box["x"] + x * scale, box["y"] + y * scale

    for corner in corners:
        page.mouse.click(*at(*corner))
        page.wait_for_timeout(60)
    page.mouse.click(*at(*corners[0]))  # back on the first point closes it
    page.wait_for_function(
        "() => document.getElementById('annotator').annotator.app.regions.length === 1"
    )
    screenshot("labeling-15-polygon-zoomed")
    page.keyboard.press("0")  # fit again
    page.keyboard.press("Enter")
    page.wait_for_selector("#annotator[data-state=empty]")
    (region,) = AnnotationRevision.objects.get(annotation__task_id=int(task_id)).result
    assert region["type"] == "polygonlabels"
    assert region["value"]["polygonlabels"] == ["road"]
    points = region["value"]["points"]
    assert len(points) == 4
    for (x, y), (ex, ey) in zip(points, corners, strict=True):
        assert abs(x - ex) <= 2 and abs(y - ey) <= 2


@pytest.mark.django_db(transaction=True)
def test_the_page_renews_its_lease_while_the_task_is_open(live_server, page, settings):
    from labeling.models import Lease

    settings.LABELING_LEASE_SECONDS = 25  # a heartbeat every 5 s
    ops = UserFactory(username="olga", roles=["ops"])
    ann = UserFactory(username="anna", roles=["annotator"])
    project, _ = make_project(ops, [ann], kind="text", schema=NER_SCHEMA, contents=[TEXT.encode()])
    log_in(page, live_server, "anna", f"/projects/{project.pk}/annotate")
    wait_for_task(page)
    lease = Lease.objects.get(annotator=ann, ended_at__isnull=True)
    first_expiry = lease.expires_at
    page.wait_for_timeout(6_000)
    lease.refresh_from_db()
    assert lease.ended_at is None
    assert lease.expires_at > first_expiry
