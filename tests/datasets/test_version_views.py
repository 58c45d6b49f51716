"""Version pages: access (404 for users who cannot see the dataset), the version page's
checks, tags, lineage and commit link, the diff and contributors partials, the versions
list and its "Snapshot now" form."""

from __future__ import annotations

import pytest

from datasets.models import Version
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot, version_tag
from datasets.views import commit_url
from tests.factories import dataset_with_items, png_bytes
from workers.models import Job

pytestmark = pytest.mark.django_db

SCHEMA = "a" * 64
SHA = "0123456789abcdef0123456789abcdef01234567"


def box(label):
    return [
        {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
        }
    ]


def publish(item, label, annotator="ann"):
    label_publish(
        item=item,
        value=box(label),
        schema_hash=SCHEMA,
        source="project:7",
        provenance={"task": item.pk, "annotators": [annotator]},
    )


@pytest.fixture
def two_versions(ops):
    dataset, items = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(8, 8, (n, 3, 4)) for n in range(4)]
    )
    for item in items[:3]:
        publish(item, "car")
    first, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(code_commit="abc1234", code_repo="", message="first cut"),
        created_by_id=ops.pk,
    )
    publish(items[0], "bus", annotator="bea")
    second, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(
            code_commit=SHA, code_repo="https://github.com/acme/train.git", message="bus fix"
        ),
        created_by_id=ops.pk,
    )
    version_tag(version=second, name="v1.1", created_by=ops)
    return dataset, items, first, second


def page(client, path, status=200):
    response = client.get(path)
    assert response.status_code == status, path
    return response.content.decode()


def test_version_pages_are_404_for_users_who_cannot_see_the_dataset(client, owner, two_versions):
    dataset, _, first, second = two_versions
    client.force_login(owner)
    base = f"/datasets/{dataset.pk}/versions"
    for path in (
        base,
        f"{base}/{second.pk}",
        f"{base}/{second.pk}/diff",
        f"{base}/{second.pk}/contributors",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(base, {"code_commit": "abc1234"}).status_code == 404
    assert not Job.objects.exists()


def test_an_unknown_version_is_404(client, ops, two_versions):
    dataset, *_ = two_versions
    client.force_login(ops)
    page(client, f"/datasets/{dataset.pk}/versions/{'f' * 64}", status=404)


def test_the_versions_list_is_newest_first_with_badges_and_tags(client, ops, two_versions):
    dataset, _, first, second = two_versions
    client.force_login(ops)
    html = page(client, f"/datasets/{dataset.pk}/versions")
    assert html.index(second.pk[:12]) < html.index(first.pk[:12])
    badge = "passed" if second.checks_passed else "failed"
    assert "v1.1" in html and f'class="badge {badge}">{badge}<' in html and "bus fix" in html
    assert "Snapshot now" in html


def test_the_version_page_shows_counts_checks_tags_lineage_and_commit_link(
    client, ops, two_versions
):
    dataset, _, first, second = two_versions
    client.force_login(ops)
    html = page(client, f"/datasets/{dataset.pk}/versions/{second.pk}")
    assert f"https://github.com/acme/train/commit/{SHA}" in html
    assert "v1.1" in html and "bus fix" in html
    assert f'data-count="items">{second.item_count}<' in html
    assert f'data-count="labelled">{second.labelled_count}<' in html
    for check in second.checks:
        assert f'data-check="{check["check"]}"' in html
    assert f"/datasets/{dataset.pk}/versions/{first.pk}" in html  # lineage link
    assert 'id="version-charts"' in html and 'hx-trigger="load"' in html
    # The first version has no parent and a commit without a repository: plain text.
    html = page(client, f"/datasets/{dataset.pk}/versions/{first.pk}")
    assert "first version of this dataset" in html
    assert 'data-test="commit">abc1234<' in html


def test_a_failed_check_is_shown_with_its_detail(client, ops, two_versions):
    dataset, *_ = two_versions
    dataset.checks = {"every_item_labelled": True}
    dataset.save(update_fields=["checks"])
    version, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(code_commit="none", code_repo="", message=""),
        created_by_id=ops.pk,
    )
    assert not version.checks_passed
    client.force_login(ops)
    html = page(client, f"/datasets/{dataset.pk}/versions/{version.pk}")
    assert 'class="badge failed">checks failed' in html
    assert "1 of 4 items have no label" in html


def test_the_diff_partial_against_the_parent(client, ops, two_versions):
    dataset, items, first, second = two_versions
    client.force_login(ops)
    html = page(client, f"/datasets/{dataset.pk}/versions/{second.pk}/diff")
    assert 'data-diff="relabelled">1<' in html
    assert 'data-diff="added">0<' in html and 'data-diff="removed">0<' in html
    assert 'id="diff-chart"' in html and 'data-class="bus"' in html
    assert (
        f'#{items[0].pk}</a>: <span class="before">car</span> → <strong class="after">bus<' in html
    )
    assert "nothing to compare" in page(client, f"/datasets/{dataset.pk}/versions/{first.pk}/diff")


def test_the_contributors_partial_counts_annotators_and_sources(client, ops, two_versions):
    dataset, _, _, second = two_versions
    client.force_login(ops)
    html = page(client, f"/datasets/{dataset.pk}/versions/{second.pk}/contributors")
    assert 'data-annotator="ann"' in html and 'data-annotator="bea"' in html
    assert 'data-source="project:7"' in html


def test_snapshot_form_shows_a_bad_commit_as_a_400(client, ops, two_versions):
    dataset, *_ = two_versions
    client.force_login(ops)
    response = client.post(f"/datasets/{dataset.pk}/versions", {"code_commit": "main"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="field-error" role="alert">code_commit must be a git commit' in html
    assert 'value="main"' in html
    assert not Job.objects.exists()


def test_snapshot_form_submits_the_job_and_shows_its_progress(client, ops, two_versions):
    dataset, *_ = two_versions
    client.force_login(ops)
    response = client.post(
        f"/datasets/{dataset.pk}/versions", {"code_commit": "ABC1234", "message": "nightly"}
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.params["code_commit"] == "abc1234" and job.params["dataset_id"] == dataset.pk
    assert response["Location"] == f"/datasets/{dataset.pk}/versions?job={job.pk}"
    html = page(client, response["Location"])
    assert f'id="job-{job.pk}"' in html


def test_viewers_who_cannot_edit_get_no_snapshot_form(client, two_versions):
    from tests.factories import UserFactory

    dataset, *_ = two_versions
    admin_viewer = UserFactory(roles=["annotator"])
    dataset.created_by = admin_viewer  # creator sees and edits: form shown
    dataset.save(update_fields=["created_by"])
    client.force_login(admin_viewer)
    assert "Snapshot now" in page(client, f"/datasets/{dataset.pk}/versions")
    assert Version.objects.filter(dataset=dataset).count() == 2


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("https://github.com/o/r", f"https://github.com/o/r/commit/{SHA}"),
        ("https://github.com/o/r.git/", f"https://github.com/o/r/commit/{SHA}"),
        ("git@gitlab.com:group/sub/r.git", f"https://gitlab.com/group/sub/r/-/commit/{SHA}"),
        ("https://bitbucket.org/o/r", f"https://bitbucket.org/o/r/commits/{SHA}"),
        ("https://git.example.com/o/r", None),
        ("https://github.com/", None),
        ("javascript:alert(1)//github.com/o/r", None),
        ("", None),
    ],
)
def test_commit_links_only_for_known_forges(repo, expected):
    assert commit_url(repo, SHA) == expected
    assert commit_url(repo, "none") is None
