"""project_quality on real projects: annotations made through the queue and the submit
service, numbers checked against the pure functions on the same annotations and against
a case worked by hand."""

from __future__ import annotations

import math
from functools import partial

import pytest

from labeling.models import Annotation, AnnotationRevision, Task
from labeling.quality.agreement import (
    classification_agreement,
    pairwise_f1,
    region_f1,
    span_f1,
)
from labeling.quality.consensus import (
    box_consensus,
    dawid_skene,
    items_for_review,
    majority_vote,
    span_consensus,
)
from labeling.services.annotations import annotation_submit
from labeling.services.quality import project_quality
from labeling.services.queue import task_lease_next
from tests.factories import UserFactory
from tests.labeling.conftest import box, make_project, span

pytestmark = pytest.mark.django_db

CLASSES = {"type": "image_class", "labels": [{"name": "cat"}, {"name": "dog"}, {"name": "bird"}]}


def close(a, b, tol=1e-6):
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return abs(a - b) <= tol


def annotate(project, items, users, result_of):
    """Each user leases every task in turn and submits result_of(user index, item index).
    Return {(task id, username): result}."""
    index = {item.pk: n for n, item in enumerate(items)}
    done = {}
    for u, user in enumerate(users):
        while (grant := task_lease_next(project=project, annotator=user)) is not None:
            result = result_of(u, index[grant.task.item_id])
            annotation_submit(
                task=grant.task, annotator=user, result=result, lease_id=grant.lease.pk
            )
            done[(grant.task.pk, user.username)] = result
    return done


def three_annotators(ops):
    return [UserFactory(roles=["annotator"]) for _ in range(3)]


def choice(name):
    return [{"type": "choices", "value": {"choices": [name]}}]


def test_hand_checked_classification(ops):
    users = three_annotators(ops)
    project, items = make_project(ops, users, schema=CLASSES, overlap=3, count=4)
    # Items 0-2: all agree (cat, dog, cat); item 3: cat, cat, dog.
    table = [["cat"] * 3, ["dog"] * 3, ["cat"] * 3, ["cat", "cat", "dog"]]
    annotate(project, items, users, lambda u, i: choice(table[i][u]))

    out = project_quality(project=project, items=True)

    # n = 12 values, n_cat = 8, n_dog = 4; disagreement only on item 3: (2*1 + 1*2)/2 = 2.
    # alpha = 1 - (n - 1) * 2 / (8*4 + 4*8) = 1 - 22/64.
    assert out["alpha"] == round(1 - 22 / 64, 6)
    # P_i = 1, 1, 1, 1/3; P = 5/6; P_e = (2/3)^2 + (1/3)^2 = 5/9; kappa = 5/8.
    assert out["fleiss_kappa"] == 0.625
    assert (out["tasks"], out["annotations"], out["empty"]) == (4, 12, 0)
    assert out["majority_vote"]["label_counts"] == {"cat": 3, "dog": 1, "bird": 0}
    by_item = {t.item_id: t.pk for t in Task.objects.filter(project=project)}
    last = next(t for t in out["items"] if t["task"] == by_item[items[3].pk])
    assert (last["majority_vote"], last["majority_confidence"]) == ("cat", round(2 / 3, 6))
    assert last["agreement"] == round(1 / 3, 6)
    # The third annotator disagrees with the other two once out of four items.
    third = out["annotators"].index(users[2].username)
    first = out["annotators"].index(users[0].username)
    assert out["shared_tasks"][first][third] == 4
    assert out["cohen_kappa"][first][first] is None


def test_classification_equals_the_pure_functions(ops):
    users = three_annotators(ops)
    project, items = make_project(ops, users, schema=CLASSES, overlap=3, count=9)
    names = ["cat", "dog", "bird"]
    done = annotate(project, items, users, lambda u, i: choice(names[(i + (u == 2) * (i % 2)) % 3]))
    ratings = sorted(
        (task, user, result[0]["value"]["choices"][0]) for (task, user), result in done.items()
    )

    out = project_quality(project=project, threshold=0.9, items=True)

    agreement = classification_agreement(ratings=ratings, labels=names)
    mv = majority_vote(ratings=ratings, labels=names)
    ds = dawid_skene(ratings=ratings, labels=names)
    assert close(out["alpha"], agreement.alpha)
    assert close(out["fleiss_kappa"], agreement.fleiss_kappa)
    for a in out["annotators"]:
        for b in out["annotators"]:
            i, j = out["annotators"].index(a), out["annotators"].index(b)
            assert close(out["cohen_kappa"][i][j], agreement.pairs.of(a, b))
    mv_of, ds_of = mv.as_dict(), ds.as_dict()
    for row in out["items"]:
        assert (row["majority_vote"], row["dawid_skene"]) == (
            mv_of[row["task"]][0],
            ds_of[row["task"]][0],
        )
        assert close(row["majority_confidence"], mv_of[row["task"]][1])
        assert close(row["dawid_skene_confidence"], ds_of[row["task"]][1])
    for name, acc in zip(ds.annotators, ds.accuracy.tolist(), strict=True):
        assert close(out["dawid_skene"]["accuracy"][name], acc)
    expected = items_for_review(items=ds.items, confidence=ds.confidence, threshold=0.9)
    assert out["review"] == {"threshold": 0.9, "count": len(expected), "tasks": expected}
    assert out["dawid_skene"]["converged"] is True


def test_the_latest_revision_counts_and_nothing_is_written(ops):
    users = three_annotators(ops)
    project, items = make_project(ops, users, schema=CLASSES, overlap=3, count=2)
    annotate(project, items, users, lambda u, i: choice("cat"))
    assert project_quality(project=project)["majority_vote"]["label_counts"]["cat"] == 2
    task = Task.objects.filter(project=project).order_by("id").first()
    for user in users:  # everybody goes back and changes their mind
        annotation_submit(task=task, annotator=user, result=choice("dog"))
    rows = (Annotation.objects.count(), AnnotationRevision.objects.count())

    out = project_quality(project=project)

    assert out["majority_vote"]["label_counts"] == {"cat": 1, "dog": 1, "bird": 0}
    assert out["annotations"] == 6
    # Every rating within an item agrees: perfect agreement on both classes.
    assert out["alpha"] == 1.0 and out["review"]["count"] == 0
    assert (Annotation.objects.count(), AnnotationRevision.objects.count()) == rows


def test_undefined_statistics_are_none_not_nan(ops):
    users = three_annotators(ops)
    project, items = make_project(ops, users, schema=CLASSES, overlap=3, count=2)
    annotate(project, items, users, lambda u, i: choice("cat"))

    out = project_quality(project=project)

    # Every rating is "cat": chance agreement is 1, alpha and kappas are undefined.
    assert out["alpha"] is None and out["fleiss_kappa"] is None
    assert all(v is None for row in out["cohen_kappa"] for v in row)


def test_boxes_equal_the_pure_functions(ops):
    users = three_annotators(ops)
    project, items = make_project(ops, users, overlap=3, count=3)

    def boxes(u, i):
        regions = [box(x=2, y=2, w=20, h=20)]
        if u != 1:
            regions.append(box(x=30 + u, y=10, w=10, h=12, label="person"))
        if i == 2 and u == 2:
            regions = [box(x=40, y=30, w=5, h=5)]  # a different car altogether
        return regions

    annotate(project, items, users, boxes)
    stored = sorted(
        (a.task_id, a.annotator.username, a.revisions.get(number=a.revision_count).result)
        for a in Annotation.objects.filter(project=project).select_related("annotator")
    )

    out = project_quality(project=project, items=True)

    expected = pairwise_f1(annotations=stored, score=region_f1)
    assert close(out["f1"], expected.overall)
    for a in out["annotators"]:
        for b in out["annotators"]:
            i, j = out["annotators"].index(a), out["annotators"].index(b)
            k, m = expected.annotators.index(a), expected.annotators.index(b)
            assert close(out["pair_f1"][i][j], float(expected.pair_f1[k, m]))
    per_item = dict(zip(expected.items, expected.per_item.tolist(), strict=True))
    order = out["annotators"]
    for row in out["items"]:
        assert close(row["confidence"], per_item[row["task"]])
        mine = sorted((order.index(u), r) for t, u, r in stored if t == row["task"])
        fused = box_consensus([r for _, r in mine])
        assert [{k: v for k, v in c.items() if k != "confidence"} for c in row["consensus"]] == [
            f.region for f in fused
        ]
        assert [c["confidence"] for c in row["consensus"]] == [
            round(f.confidence, 6) for f in fused
        ]
    low = [t for t, c in per_item.items() if c < 0.7]
    assert out["review"]["count"] == len(low) and set(out["review"]["tasks"]) == set(low)
    assert out["review"]["count"] >= 1  # the image where one annotator saw another car


def test_spans_equal_the_pure_functions(ops):
    users = three_annotators(ops)
    schema = {"type": "ner", "labels": [{"name": "PER"}, {"name": "ORG"}], "allow_empty": True}
    project, items = make_project(ops, users, kind="text", schema=schema, overlap=3, count=3)

    def spans(u, i):
        if u == 0:
            return [span(0, 5)]
        if u == 1:
            return [span(0, 4), span(6, 9, "ORG")]
        return [span(0, 5), span(6, 9, "ORG")] if i else []

    annotate(project, items, users, spans)
    stored = sorted(
        (a.task_id, a.annotator.username, a.revisions.get(number=a.revision_count).result)
        for a in Annotation.objects.filter(project=project).select_related("annotator")
    )

    out = project_quality(project=project, items=True)

    exact = pairwise_f1(annotations=stored, score=partial(span_f1, mode="exact"))
    overlap = pairwise_f1(annotations=stored, score=partial(span_f1, mode="overlap"))
    assert close(out["f1_exact"], exact.overall)
    assert close(out["f1_overlap"], overlap.overall)
    assert out["f1_overlap"] > out["f1_exact"]
    order = out["annotators"]
    for row in out["items"]:
        mine = sorted((order.index(u), r) for t, u, r in stored if t == row["task"])
        expected = span_consensus([r for _, r in mine])
        assert [{k: v for k, v in c.items() if k != "confidence"} for c in row["consensus"]] == [
            s.region for s in expected
        ]


def test_keypoints_and_bad_thresholds_are_refused(ops):
    users = three_annotators(ops)
    schema = {"type": "keypoint", "labels": [{"name": "nose"}]}
    project, _ = make_project(ops, users, schema=schema, count=1)
    with pytest.raises(ValueError, match="keypoint"):
        project_quality(project=project)
    with pytest.raises(ValueError, match="threshold"):
        project_quality(project=project, threshold=1.5)
