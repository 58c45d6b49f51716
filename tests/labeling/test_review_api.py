"""Review through the API: what a finished task turns into (published, consensus, or
waiting for review), the reviewers' queue, accept / fix / reject with the annotation
going back to its annotator with the comment, and the task's full history."""

from __future__ import annotations

import pytest

from datasets.models import Label
from labeling.models import Annotation, AnnotationRevision, Review, ReviewLease, Task
from labeling.services.review import task_in_sample
from tests.factories import UserFactory
from tests.labeling.conftest import api_for, box, make_project

pytestmark = pytest.mark.django_db

CLASS_SCHEMA = {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}]}


def choice(name):
    return [{"type": "choices", "value": {"choices": [name]}}]


def lease_and_submit(user, project, result):
    api = api_for(user)
    got = api.post(f"/api/v1/projects/{project.pk}/next")
    assert got.status_code == 200, got.content
    body = got.json()
    response = api.post(
        f"/api/v1/tasks/{body['task']['id']}/annotations/",
        {"result": result, "lease": body["lease"]["id"], "lead_time_ms": 1200},
        format="json",
    )
    assert response.status_code == 201, response.content
    return body["task"]["id"]


@pytest.fixture
def reviewer():
    return UserFactory(roles=["annotator"])


def with_reviewer(project, reviewer):
    project.memberships.create(user=reviewer, role="reviewer")
    return project


def test_review_off_publishes_at_once(ops, annotator):
    project, items = make_project(ops, [annotator], count=1)
    task_id = lease_and_submit(annotator, project, [box()])
    assert Task.objects.get(pk=task_id).review == ""
    assert Label.objects.filter(item=items[0]).exists()


def test_review_all_holds_the_label_until_accepted(ops, annotator, reviewer):
    project, items = make_project(ops, [annotator], count=1, review_mode="all")
    with_reviewer(project, reviewer)
    task_id = lease_and_submit(annotator, project, [box(x=3)])
    assert Task.objects.get(pk=task_id).review == "pending"
    assert not Label.objects.filter(item=items[0]).exists()

    api = api_for(reviewer)
    got = api.post(f"/api/v1/projects/{project.pk}/review/next")
    assert got.status_code == 200, got.content
    body = got.json()
    assert body["task"]["id"] == task_id
    assert body["task"]["proposal"]["source"] == "annotation"
    assert body["task"]["proposal"]["result"][0]["value"]["x"] == 3
    [shown] = body["task"]["annotations"]
    assert shown["annotator"] == annotator.username
    assert shown["revision"]["lead_time_ms"] == 1200
    # Asking again returns the same lease, renewed.
    again = api.post(f"/api/v1/projects/{project.pk}/review/next").json()
    assert again["lease"]["id"] == body["lease"]["id"]

    decided = api.post(
        f"/api/v1/tasks/{task_id}/reviews",
        {"decision": "accept", "lease": body["lease"]["id"]},
        format="json",
    )
    assert decided.status_code == 201, decided.content
    assert decided.json()["task"]["review"] == "accepted"
    label = Label.objects.get(item=items[0])
    assert label.value[0]["value"]["x"] == 3
    assert label.provenance["review"] == "accept"
    assert label.provenance["reviewer"] == reviewer.username
    assert ReviewLease.objects.get(pk=body["lease"]["id"]).end_reason == "decided"
    assert api.post(f"/api/v1/projects/{project.pk}/review/next").status_code == 204


def test_reject_sends_the_annotation_back_with_the_comment(ops, annotator, reviewer):
    project, items = make_project(ops, [annotator], count=2, review_mode="all")
    with_reviewer(project, reviewer)
    first = lease_and_submit(annotator, project, [box(x=1)])
    api = api_for(reviewer)
    lease = api.post(f"/api/v1/projects/{project.pk}/review/next").json()["lease"]

    no_comment = api.post(
        f"/api/v1/tasks/{first}/reviews",
        {"decision": "reject", "lease": lease["id"]},
        format="json",
    )
    assert no_comment.status_code == 400
    assert no_comment.json()["field"] == "comment"
    assert Task.objects.get(pk=first).review == "pending"  # nothing stored

    rejected = api.post(
        f"/api/v1/tasks/{first}/reviews",
        {"decision": "reject", "comment": "The box misses the wheels.", "lease": lease["id"]},
        format="json",
    )
    assert rejected.status_code == 201, rejected.content
    assert rejected.json()["task"]["review"] == "rejected"
    assert Annotation.objects.get(task_id=first).needs_rework

    # The annotator's queue serves the rejected task first, with the comment and their
    # previous result, before the task they have not done yet.
    mine = api_for(annotator)
    got = mine.post(f"/api/v1/projects/{project.pk}/next").json()
    assert got["task"]["id"] == first
    assert got["task"]["review"]["comment"] == "The box misses the wheels."
    assert got["task"]["review"]["reviewer"] == reviewer.username
    assert got["task"]["annotation"]["revision"]["result"][0]["value"]["x"] == 1
    resubmitted = mine.post(
        f"/api/v1/tasks/{first}/annotations/",
        {"result": [box(x=1, w=20)], "lease": got["lease"]["id"]},
        format="json",
    )
    assert resubmitted.status_code == 201, resubmitted.content
    assert resubmitted.json()["annotation"]["revision"]["number"] == 2
    annotation = Annotation.objects.get(task_id=first)
    assert not annotation.needs_rework
    assert Task.objects.get(pk=first).review == "pending"
    # Now the queue moves on to the next task.
    assert mine.post(f"/api/v1/projects/{project.pk}/next").json()["task"]["id"] != first

    accepted = api.post(f"/api/v1/tasks/{first}/reviews", {"decision": "accept"}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert Label.objects.get(item=items[0]).value[0]["value"]["width"] == 20

    history = api.get(f"/api/v1/tasks/{first}/history").json()["events"]
    kinds = [(e["kind"], e.get("decision") or e.get("end_reason")) for e in history]
    assert [k for k in kinds if k[0] in ("revision", "review")] == [
        ("revision", None),
        ("review", "reject"),
        ("revision", None),
        ("review", "accept"),
    ]
    assert ("lease", "submitted") in kinds
    assert any(e["kind"] == "review_lease" for e in history)
    # Annotators do not read histories.
    assert mine.get(f"/api/v1/tasks/{first}/history").status_code == 403


def test_fix_is_a_new_revision_by_the_reviewer(ops, annotator, reviewer):
    project, items = make_project(ops, [annotator], count=1, review_mode="all")
    with_reviewer(project, reviewer)
    task_id = lease_and_submit(annotator, project, [box(x=1)])
    api = api_for(reviewer)
    bad = api.post(
        f"/api/v1/tasks/{task_id}/reviews",
        {"decision": "fix", "result": [box(x=60, w=10)]},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_annotation"
    assert AnnotationRevision.objects.filter(annotation__task_id=task_id).count() == 1

    fixed = api.post(
        f"/api/v1/tasks/{task_id}/reviews",
        {"decision": "fix", "result": [box(x=5, label="person")]},
        format="json",
    )
    assert fixed.status_code == 201, fixed.content
    revision = AnnotationRevision.objects.get(pk=fixed.json()["review"]["revision"])
    assert revision.number == 2
    assert revision.created_by == reviewer
    assert revision.annotation.annotator == annotator
    label = Label.objects.get(item=items[0])
    assert label.value[0]["value"]["rectanglelabels"] == ["person"]
    assert label.provenance["review"] == "fix"
    # Decided: a second decision is a conflict.
    again = api.post(f"/api/v1/tasks/{task_id}/reviews", {"decision": "accept"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"] == "review_conflict"


def test_review_permissions_and_bad_input(ops, annotator, reviewer):
    project, _ = make_project(ops, [annotator], count=1, review_mode="all")
    with_reviewer(project, reviewer)
    task_id = lease_and_submit(annotator, project, [box()])
    # An annotator is no reviewer.
    assert api_for(annotator).post(f"/api/v1/projects/{project.pk}/review/next").status_code == 403
    assert (
        api_for(annotator)
        .post(f"/api/v1/tasks/{task_id}/reviews", {"decision": "accept"}, format="json")
        .status_code
        == 403
    )
    api = api_for(reviewer)
    bad = api.post(f"/api/v1/tasks/{task_id}/reviews", {"decision": "maybe"}, format="json")
    assert bad.status_code == 400
    assert "decision" in bad.json()["field"]
    wrong = api.post(
        f"/api/v1/tasks/{task_id}/reviews",
        {"decision": "accept", "annotation": 999999},
        format="json",
    )
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "annotation"
    # Another reviewer holding the task: a conflict, not a silent double decision.
    other = UserFactory(roles=["annotator"])
    with_reviewer(project, other)
    held = api_for(other).post(f"/api/v1/projects/{project.pk}/review/next").json()
    assert held["task"]["id"] == task_id
    assert api.post(f"/api/v1/projects/{project.pk}/review/next").status_code == 204
    clash = api.post(f"/api/v1/tasks/{task_id}/reviews", {"decision": "accept"}, format="json")
    assert clash.status_code == 409
    # Released, it is free again.
    assert api_for(other).delete(f"/api/v1/review-leases/{held['lease']['id']}").status_code == 204
    assert api.post(f"/api/v1/projects/{project.pk}/review/next").json()["task"]["id"] == task_id
    assert Review.objects.count() == 0


def test_a_reviewer_never_reviews_their_own_work(ops, annotator):
    project, _ = make_project(ops, [annotator], count=1, review_mode="all")
    project.memberships.filter(user=annotator).update(role="reviewer")
    lease_and_submit(annotator, project, [box()])
    assert api_for(annotator).post(f"/api/v1/projects/{project.pk}/review/next").status_code == 204


def test_sampled_review_is_a_reproducible_share(ops, annotator):
    sample = [task_in_sample(project_id=7, task_id=t, fraction=0.2) for t in range(20_000)]
    assert 0.19 < sum(sample) / len(sample) < 0.21
    assert sample == [task_in_sample(project_id=7, task_id=t, fraction=0.2) for t in range(20_000)]
    project, _ = make_project(ops, [annotator], count=6, review_mode="sampled", review_fraction=0.5)
    for _ in range(6):
        lease_and_submit(annotator, project, [box()])
    for task in Task.objects.filter(project=project):
        expected = task_in_sample(project_id=project.pk, task_id=task.pk, fraction=0.5)
        assert task.review == ("pending" if expected else "")
        assert Label.objects.filter(item_id=task.item_id).exists() is not expected


def test_overlap_consensus_publishes_or_sends_to_review(ops, annotator, annotator2, reviewer):
    third = UserFactory(roles=["annotator"])
    project, items = make_project(
        ops,
        [annotator, annotator2, third],
        schema=CLASS_SCHEMA,
        overlap=3,
        count=2,
        consensus_threshold=0.7,
    )
    with_reviewer(project, reviewer)
    # Task 1: cat, cat, dog -> 2/3 < 0.7: review. Task 2: all dog -> published.
    answers = {annotator: ["cat", "dog"], annotator2: ["cat", "dog"], third: ["dog", "dog"]}
    for user, labels in answers.items():
        for name in labels:
            lease_and_submit(user, project, choice(name))
    tasks = {t.item_id: t for t in Task.objects.filter(project=project)}
    first, second = tasks[items[0].pk], tasks[items[1].pk]
    assert first.status == second.status == "done"
    assert first.review == "pending"
    assert not Label.objects.filter(item=items[0]).exists()
    label = Label.objects.get(item=items[1])
    assert label.value[0]["value"]["choices"] == ["dog"]
    assert label.provenance["consensus"] == "majority_vote"
    assert label.provenance["confidence"] == 1.0
    assert len(label.provenance["annotators"]) == 3

    api = api_for(reviewer)
    body = api.post(f"/api/v1/projects/{project.pk}/review/next").json()["task"]
    assert body["proposal"]["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert body["proposal"]["result"][0]["value"]["choices"] == ["cat"]
    assert len(body["annotations"]) == 3
    # Reject needs to say which of the three goes back.
    unclear = api.post(
        f"/api/v1/tasks/{first.pk}/reviews", {"decision": "reject", "comment": "?"}, format="json"
    )
    assert unclear.status_code == 400
    assert unclear.json()["field"] == "annotation"
    dog = next(a for a in body["annotations"] if a["annotator"] == third.username)
    accepted = api.post(
        f"/api/v1/tasks/{first.pk}/reviews",
        {"decision": "accept", "annotation": dog["id"]},
        format="json",
    )
    assert accepted.status_code == 201, accepted.content
    assert Label.objects.get(item=items[0]).value[0]["value"]["choices"] == ["dog"]


def test_box_consensus_fuses_the_boxes(ops, annotator, annotator2):
    third = UserFactory(roles=["annotator"])
    project, items = make_project(ops, [annotator, annotator2, third], overlap=3, count=1)
    for user, x in ((annotator, 10), (annotator2, 12), (third, 14)):
        lease_and_submit(user, project, [box(x=x, y=10, w=20, h=20)])
    label = Label.objects.get(item=items[0])
    [fused] = label.value
    assert fused["value"]["x"] == pytest.approx(12)
    assert label.provenance["consensus"] == "weighted_box_fusion"


def test_dawid_skene_overrules_a_majority_of_unreliable_annotators(
    ops, annotator, annotator2, celery_redis_broker, celery_worker_factory, wait_for_job
):
    """Two reliable annotators and three who are right 60% of the time: where the three
    agree against the two, majority vote follows them; Dawid-Skene learns whom to trust
    (five annotators: with three, its model has as many parameters as there are answer
    patterns and cannot tell annotators apart)."""
    import random

    from labeling.models import Task as TaskModel
    from labeling.services.annotations import annotation_submit
    from labeling.services.queue import task_lease_next

    others = [UserFactory(roles=["annotator"]) for _ in range(3)]
    crowd = [(annotator, 0.95), (annotator2, 0.95)] + [(user, 0.6) for user in others]
    project, items = make_project(
        ops,
        [user for user, _ in crowd],
        kind="text",  # distinct contents for many items
        schema={**CLASS_SCHEMA, "type": "text_class"},
        overlap=5,
        count=40,
        consensus_threshold=0.5,
    )
    rng = random.Random(11)
    truth = {item.pk: rng.choice(["cat", "dog"]) for item in items}
    flip = {"cat": "dog", "dog": "cat"}
    for user, accuracy in crowd:
        while (grant := task_lease_next(project=project, annotator=user)) is not None:
            right = truth[grant.task.item_id]
            answer = right if rng.random() < accuracy else flip[right]
            task = TaskModel.objects.select_related("item__asset", "project").get(pk=grant.task.pk)
            annotation_submit(
                task=task, annotator=user, result=choice(answer), lease_id=grant.lease.pk
            )

    def labels():
        return {
            label.item_id: label.value[0]["value"]["choices"][0]
            for label in Label.objects.filter(item__in=items)
        }

    before = labels()
    wrong_before = sum(before[pk] != truth[pk] for pk in before)
    assert wrong_before, "the seed gives tasks where the unreliable three outvote"

    assert api_for(annotator).post(f"/api/v1/projects/{project.pk}/consensus").status_code == 403
    celery_worker_factory(celery_redis_broker)
    response = api_for(ops).post(f"/api/v1/projects/{project.pk}/consensus")
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["job"]["id"], timeout=60)
    assert job.state == "succeeded", job.error
    after = labels()
    changed = [pk for pk in after if after[pk] != before.get(pk)]
    assert job.report["republished"] == len(changed) > 0
    wrong_after = sum(after[pk] != truth[pk] for pk in after)
    assert wrong_after < wrong_before
    fixed = Label.objects.get(item_id=changed[0])
    assert fixed.provenance["consensus"] == "dawid_skene"
    assert fixed.provenance["confidence"] >= 0.5
    # Running it again changes nothing.
    again = api_for(ops).post(f"/api/v1/projects/{project.pk}/consensus")
    assert wait_for_job(again.json()["job"]["id"], timeout=60).report["republished"] == 0


def test_dawid_skene_is_for_classification_with_overlap(ops, annotator):
    project, _ = make_project(ops, [annotator], count=1)
    response = api_for(ops).post(f"/api/v1/projects/{project.pk}/consensus")
    assert response.status_code == 400
    assert "classification" in response.json()["detail"]


def test_span_consensus_publishes_the_majority_spans_with_their_text(ops, annotator, annotator2):
    from tests.labeling.conftest import span

    project, items = make_project(
        ops, [annotator, annotator2], kind="text", overlap=2, count=1, consensus_threshold=0.6
    )
    lease_and_submit(annotator, project, [span(0, 5), span(15, 19, "ORG")])
    lease_and_submit(annotator2, project, [span(0, 5)])
    label = Label.objects.get(item=items[0])
    # Both chose "Alice" (PER); only one chose "Acme": no majority, no span.
    assert [(r["value"]["text"], r["value"]["labels"]) for r in label.value] == [("Alice", ["PER"])]
    assert label.provenance["consensus"] == "span_majority"
    assert label.provenance["confidence"] == pytest.approx(2 / 3)  # exact span F1 of the pair


def test_review_lease_renewal_release_and_stale_leases(ops, annotator, reviewer):
    project, _ = make_project(ops, [annotator], count=1, review_mode="all")
    with_reviewer(project, reviewer)
    task_id = lease_and_submit(annotator, project, [box()])
    api = api_for(reviewer)
    lease = api.post(f"/api/v1/projects/{project.pk}/review/next").json()["lease"]
    renewed = api.patch(f"/api/v1/review-leases/{lease['id']}")
    assert renewed.status_code == 200
    assert renewed.json()["expires_at"] >= lease["expires_at"]
    # Someone else's lease is not found, whatever they do with it.
    other = UserFactory(roles=["annotator"])
    with_reviewer(project, other)
    assert api_for(other).patch(f"/api/v1/review-leases/{lease['id']}").status_code == 404
    assert api_for(other).delete(f"/api/v1/review-leases/{lease['id']}").status_code == 404
    # A decision sent with a lease that is not the sender's live one changes nothing.
    stolen = api_for(other).post(
        f"/api/v1/tasks/{task_id}/reviews",
        {"decision": "accept", "lease": lease["id"]},
        format="json",
    )
    assert stolen.status_code == 409
    assert stolen.json()["error"] == "lease_lost"
    # A fix needs its result.
    no_result = api.post(
        f"/api/v1/tasks/{task_id}/reviews", {"decision": "fix", "lease": lease["id"]}, format="json"
    )
    assert no_result.status_code == 400
    assert no_result.json()["field"] == "result"
    assert api.delete(f"/api/v1/review-leases/{lease['id']}").status_code == 204
    assert api.delete(f"/api/v1/review-leases/{lease['id']}").status_code == 204  # idempotent
    ended = api.patch(f"/api/v1/review-leases/{lease['id']}")
    assert ended.status_code == 409
    assert "released" in ended.json()["detail"]
    assert Review.objects.count() == 0
    assert Task.objects.get(pk=task_id).review == "pending"
