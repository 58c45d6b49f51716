"""Project pages: who sees what (login, 404, 403), the list, the create and edit forms
with their schema errors, the schema preview, the dashboard and the annotator shell."""

from __future__ import annotations

import json

import pytest

from labeling.models import Project, ProjectMember
from tests.factories import UserFactory
from tests.labeling.conftest import BOX_SCHEMA, make_project

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


@pytest.fixture
def image_dataset(ops):
    from tests.factories import dataset_with_items, png_bytes

    dataset, _ = dataset_with_items(owner=ops, kind="image", contents=[png_bytes()])
    return dataset


def form_data(dataset, **changes):
    data = {
        "name": "Street boxes",
        "dataset": dataset.pk,
        "description": "",
        "instructions": "Box **every** car.",
        "overlap": 1,
        "split": "",
        "tags": "",
        "label_schema": json.dumps(BOX_SCHEMA),
    }
    data.update(changes)
    return data


# --- access -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/projects/", "/projects/new", "/projects/1/", "/projects/1/annotate"]
)
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_annotators_see_only_their_projects(client, ops, annotator, outsider):
    mine, _ = make_project(ops, [annotator], count=1)
    theirs, _ = make_project(ops, [outsider], count=1)
    Project.objects.filter(pk=theirs.pk).update(name="Not yours")
    client.force_login(annotator)
    page = html(client.get("/projects/"))
    assert mine.name in page
    assert "Not yours" not in page
    assert "New project" not in page
    for path in (
        f"/projects/{theirs.pk}/",
        f"/projects/{theirs.pk}/annotate",
        f"/projects/{theirs.pk}/stats",
        "/projects/999999/",
    ):
        assert client.get(path).status_code == 404, path


def test_ops_see_every_project_and_may_create(client, ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    client.force_login(ops)
    page = html(client.get("/projects/"))
    assert project.name in page
    assert "New project" in page


def test_only_ops_create_edit_and_preview(client, ops, annotator, image_dataset):
    project, _ = make_project(ops, [annotator], count=1)
    client.force_login(annotator)
    assert client.get("/projects/new").status_code == 403
    assert client.post("/projects/new", form_data(image_dataset)).status_code == 403
    assert client.get(f"/projects/{project.pk}/edit").status_code == 403
    preview = client.post("/projects/schema-preview", {"label_schema": "{}"})
    assert preview.status_code == 403
    assert Project.objects.count() == 1


def test_the_annotator_page_is_for_members(client, ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    client.force_login(ops)  # sees the project, is not a member
    assert client.get(f"/projects/{project.pk}/annotate").status_code == 403
    client.force_login(annotator)
    response = client.get(f"/projects/{project.pk}/annotate")
    assert response.status_code == 200
    page = html(response)
    config = json.loads(
        page.split('id="annotator-config" type="application/json">')[1].split("<")[0]
    )
    assert config["projectId"] == project.pk
    assert config["apiRoot"] == "/api/v1/"
    assert config["csrfToken"]
    assert "vendor/annotorious/annotorious.js" in page
    assert "text-annotator.umd.js" not in page


def test_the_annotator_page_of_a_text_project_loads_the_text_annotator(client, ops, annotator):
    project, _ = make_project(ops, [annotator], kind="text", count=1)
    client.force_login(annotator)
    page = html(client.get(f"/projects/{project.pk}/annotate"))
    assert "vendor/text-annotator/text-annotator.umd.js" in page
    assert "vendor/annotorious/annotorious.js" not in page


def test_instructions_are_rendered_markdown_with_html_escaped(client, ops, annotator):
    project, _ = make_project(
        ops, [annotator], count=1, instructions="Box **cars**. <script>alert(1)</script>"
    )
    client.force_login(annotator)
    for path in (f"/projects/{project.pk}/", f"/projects/{project.pk}/annotate"):
        page = html(client.get(path))
        assert "<strong>cars</strong>" in page
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;" in page


# --- create -----------------------------------------------------------------------------


def test_create_shows_every_schema_problem_under_the_field(client, ops, image_dataset):
    client.force_login(ops)
    bad = {"type": "bbox", "labels": [{"name": "car", "hotkey": "s"}, {"name": "car"}]}
    response = client.post("/projects/new", form_data(image_dataset, label_schema=json.dumps(bad)))
    assert response.status_code == 400
    page = html(response)
    assert 'id="id_label_schema_error"' in page
    assert "labels[0].hotkey" in page
    assert "labels[1].name" in page
    assert not Project.objects.exists()


def test_create_refuses_json_that_does_not_parse(client, ops, image_dataset):
    client.force_login(ops)
    response = client.post("/projects/new", form_data(image_dataset, label_schema='{"type": '))
    assert response.status_code == 400
    assert "Not valid JSON" in html(response)


def test_create_refuses_a_text_schema_on_an_image_dataset(client, ops, image_dataset):
    client.force_login(ops)
    schema = {"type": "ner", "labels": [{"name": "PER"}]}
    response = client.post(
        "/projects/new", form_data(image_dataset, label_schema=json.dumps(schema))
    )
    assert response.status_code == 400
    assert "holds images" in html(response)
    assert not Project.objects.exists()


def test_create_makes_the_project_with_members_filter_and_schema(
    client, ops, annotator, annotator2, image_dataset
):
    client.force_login(ops)
    response = client.post(
        "/projects/new",
        {
            **form_data(image_dataset, split="train", tags="night, rain"),
            "annotators": [annotator.pk],
            "reviewers": [annotator2.pk],
        },
    )
    project = Project.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/"
    assert project.item_filter == {"split": "train", "tags": ["night", "rain"]}
    assert project.schema_revision.schema["labels"][0]["name"] == "car"
    roles = dict(project.memberships.values_list("user__username", "role"))
    assert roles == {annotator.username: "annotator", annotator2.username: "reviewer"}
    assert project.tasks_job is not None


def test_a_member_has_one_role(client, ops, annotator, image_dataset):
    client.force_login(ops)
    response = client.post(
        "/projects/new",
        {**form_data(image_dataset), "annotators": [annotator.pk], "reviewers": [annotator.pk]},
    )
    assert response.status_code == 400
    assert "one role" in html(response)


def test_the_dataset_list_is_the_datasets_the_user_sees(client, ops, image_dataset):
    client.force_login(ops)
    page = html(client.get(f"/projects/new?dataset={image_dataset.pk}"))
    assert f'<option value="{image_dataset.pk}" selected>' in page


# --- schema preview ---------------------------------------------------------------------


def test_preview_lists_problems_with_their_paths(client, ops):
    client.force_login(ops)
    raw = {"type": "box", "labels": [{"name": "a", "color": "red"}]}
    page = html(client.post("/projects/schema-preview", {"label_schema": json.dumps(raw)}))
    assert 'data-valid="false"' in page
    assert '<code class="path">type</code>' in page
    assert '<code class="path">labels[0].color</code>' in page


def test_preview_shows_the_label_buttons(client, ops, image_dataset):
    client.force_login(ops)
    schema = {"type": "bbox", "labels": [{"name": "car", "color": "#ff0000"}, {"name": "bus"}]}
    response = client.post(
        "/projects/schema-preview",
        {"label_schema": json.dumps(schema), "dataset": image_dataset.pk},
    )
    assert response.status_code == 200
    page = html(response)
    assert 'data-valid="true"' in page
    assert "--label-color: #ff0000" in page
    assert "<kbd" in page and ">1</kbd>" in page and ">2</kbd>" in page


def test_preview_checks_the_schema_fits_the_dataset(client, ops, image_dataset):
    client.force_login(ops)
    schema = {"type": "ner", "labels": [{"name": "PER"}]}
    page = html(
        client.post(
            "/projects/schema-preview",
            {"label_schema": json.dumps(schema), "dataset": image_dataset.pk},
        )
    )
    assert 'data-valid="false"' in page
    assert "holds images" in page


def test_preview_warns_when_a_label_takes_a_page_key(client, ops):
    client.force_login(ops)
    labels = [{"name": f"l{i}"} for i in range(10)]  # the tenth gets key 0
    page = html(
        client.post(
            "/projects/schema-preview",
            {"label_schema": json.dumps({"type": "bbox", "labels": labels})},
        )
    )
    assert "fit the image" in page
    review_key = html(
        client.post(
            "/projects/schema-preview",
            {
                "label_schema": json.dumps(
                    {"type": "bbox", "labels": [{"name": "road", "hotkey": "r"}]}
                )
            },
        )
    )
    assert "reject on the review page" in review_key


# --- edit -------------------------------------------------------------------------------


def test_edit_shows_the_current_settings_and_saves_changes(client, ops, annotator, annotator2):
    project, _ = make_project(ops, [annotator], count=1)
    client.force_login(ops)
    page = html(client.get(f"/projects/{project.pk}/edit"))
    assert "&quot;car&quot;" in page
    assert 'name="dataset"' not in page  # fixed once tasks exist
    schema = {**BOX_SCHEMA, "labels": [*BOX_SCHEMA["labels"], {"name": "bus", "hotkey": "3"}]}
    response = client.post(
        f"/projects/{project.pk}/edit",
        {
            "name": "Renamed",
            "description": "d",
            "instructions": "i",
            "overlap": 1,
            "label_schema": json.dumps(schema),
            "annotators": [annotator2.pk],
            "review_mode": "sampled",
            "review_percent": 25,
            "consensus_percent": 80,
            "gold_percent": 5,
            "gold_threshold_percent": 90,
            "gold_min_answers": 10,
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Renamed"
    assert (project.review_mode, project.review_fraction, project.consensus_threshold) == (
        "sampled",
        0.25,
        0.8,
    )
    assert (project.gold_rate, project.gold_threshold, project.gold_min_answers) == (0.05, 0.9, 10)
    assert project.gold_pause is False  # an unticked checkbox
    assert 'name="review_percent" value="25"' in html(client.get(f"/projects/{project.pk}/edit"))
    assert [label["name"] for label in project.schema_revision.schema["labels"]] == [
        "car",
        "person",
        "bus",
    ]
    assert list(project.memberships.values_list("user_id", flat=True)) == [annotator2.pk]


def test_edit_errors_stay_on_the_form(client, ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    client.force_login(ops)
    response = client.post(
        f"/projects/{project.pk}/edit",
        {"name": "", "overlap": 1, "label_schema": json.dumps(BOX_SCHEMA), "gold_percent": 150},
    )
    assert response.status_code == 400
    assert 'id="id_name_error"' in html(response)
    assert 'id="id_gold_percent_error"' in html(response)
    project.refresh_from_db()
    assert project.name != ""


# --- dashboard --------------------------------------------------------------------------


def test_dashboard_shows_progress_and_per_annotator_counts_to_ops(client, ops, annotator):
    from tests.labeling.conftest import api_for, box

    project, _ = make_project(ops, [annotator], count=2)
    api = api_for(annotator)
    got = api.post(f"/api/v1/projects/{project.pk}/next").json()
    submitted = api.post(
        f"/api/v1/tasks/{got['task']['id']}/annotations/",
        {"result": [box()], "lease": got["lease"]["id"]},
        format="json",
    )
    assert submitted.status_code == 201
    client.force_login(ops)
    page = html(client.get(f"/projects/{project.pk}/"))
    assert "50%" in page
    assert 'value="1"' in page  # the progress bar: 1 of 2
    assert annotator.username in page
    stats = html(client.get(f"/projects/{project.pk}/stats"))
    assert 'id="project-stats"' in stats
    assert "annotations today" in stats

    # A member sees the progress, not the others' counts.
    client.force_login(annotator)
    page = html(client.get(f"/projects/{project.pk}/"))
    assert "50%" in page
    assert "<h2>Annotators</h2>" not in page
    assert "Start annotating" in page


def test_reviewers_see_per_annotator_counts(client, ops, annotator, annotator2):
    project, _ = make_project(ops, [annotator], count=1)
    ProjectMember.objects.create(project=project, user=annotator2, role="reviewer")
    client.force_login(annotator2)
    assert "<h2>Annotators</h2>" in html(client.get(f"/projects/{project.pk}/"))


# --- demo data --------------------------------------------------------------------------


def test_seed_demo_makes_a_box_and_an_entity_project_to_label_once(settings, tmp_path, client):
    from django.core.management import call_command

    from labeling.models import Prediction, Task

    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--force")  # the test runner turns DEBUG off
    call_command("seed_demo", "--force")  # and again: nothing new
    boxes = Project.objects.get(name="Demo: cars and people")
    entities = Project.objects.get(name="Demo: named entities")
    assert boxes.schema_revision.schema["type"] == "bbox"
    assert entities.schema_revision.schema["type"] == "ner"
    assert Task.objects.filter(project=boxes).count() == boxes.dataset.item_count == 8
    assert Task.objects.filter(project=entities).count() == entities.dataset.item_count == 8
    assert Prediction.objects.filter(project=boxes).count() == 2
    from datasets.models import Version

    version = Version.objects.get(dataset=boxes.dataset)  # the second run made no other
    assert version.labelled_count == 3 and set(version.class_counts) == {
        "car",
        "person",
        "traffic sign",
    }
    assert version.checks_passed is False  # five scenes are still unlabelled
    for project in (boxes, entities):
        members = dict(project.memberships.values_list("user__username", "role"))
        assert members == {
            "annotator1": "annotator",
            "annotator2": "annotator",
            "reviewer": "reviewer",
        }
    client.login(
        username="annotator1",
        password=json.loads((tmp_path / "demo-users.json").read_text())["annotator1"],
    )
    page = html(client.get("/projects/"))
    assert "Demo: cars and people" in page and "Demo: named entities" in page


def test_ops_see_a_paused_annotator_and_resume_them(client, ops, annotator):
    from django.utils import timezone

    from labeling.models import ProjectMember

    project, _ = make_project(ops, [annotator], count=1)
    ProjectMember.objects.filter(project=project, user=annotator).update(
        flagged_at=timezone.now(),
        paused_at=timezone.now(),
        flag_reason="Gold accuracy 40% over the last 10 gold tasks is under the project's 70%.",
    )
    client.force_login(annotator)
    assert (
        client.post(f"/projects/{project.pk}/members/{annotator.username}/resume").status_code
        == 403
    )
    assert "Gold accuracy 40%" in html(client.get(f"/projects/{project.pk}/"))  # their own
    other = UserFactory(roles=["annotator"])
    project.memberships.create(user=other, role="annotator")
    client.force_login(other)
    assert "Gold accuracy 40%" not in html(client.get(f"/projects/{project.pk}/"))
    client.force_login(ops)
    page = html(client.get(f"/projects/{project.pk}/"))
    assert "paused" in page and "Gold accuracy 40%" in page
    response = client.post(f"/projects/{project.pk}/members/{annotator.username}/resume")
    assert response.status_code == 302
    member = ProjectMember.objects.get(project=project, user=annotator)
    assert member.paused_at is None and member.flagged_at is None
    assert client.post(f"/projects/{project.pk}/members/nobody/resume").status_code == 404
