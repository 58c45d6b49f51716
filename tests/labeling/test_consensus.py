"""Consensus: a simulated crowd for Dawid-Skene, hand-checked boxes and spans."""

from __future__ import annotations

import numpy as np
import pytest

from labeling.quality.consensus import (
    box_consensus,
    dawid_skene,
    gold_score,
    items_for_review,
    majority_vote,
    span_consensus,
    task_consensus,
)

K = 4
PRIOR = np.array([0.55, 0.25, 0.12, 0.08])


def symmetric_confusion(correct: float) -> np.ndarray:
    """Right with probability `correct`, else one of the other classes uniformly."""
    m = np.full((K, K), (1 - correct) / (K - 1))
    np.fill_diagonal(m, correct)
    return m


def simulated_crowd(seed: int = 20261126, n_items: int = 3000, per_item: int = 3):
    """Return (ratings, truth, confusions) of a seeded crowd of six annotators."""
    # Biased "poor" annotator: says class 0 (the common one) whenever unsure.
    lazy = np.full((K, K), 0.02)
    np.fill_diagonal(lazy, 0.55)
    lazy[:, 0] = 1 - (lazy.sum(axis=1) - lazy[:, 0])
    # Adversarial-ish: mostly names the next class.
    adversarial = np.full((K, K), 0.1)
    for k in range(K):
        adversarial[k, (k + 1) % K] = 0.7
    confusions = np.stack(
        [
            symmetric_confusion(0.92),
            symmetric_confusion(0.9),
            symmetric_confusion(0.88),
            symmetric_confusion(0.55),
            lazy,
            adversarial,
        ]
    )
    assert np.allclose(confusions.sum(axis=2), 1.0)
    rng = np.random.default_rng(seed)
    n_annotators = len(confusions)
    truth = rng.choice(K, size=n_items, p=PRIOR)
    who = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item]
    item = np.repeat(np.arange(n_items), per_item)
    annotator = who.ravel()
    # Inverse-CDF sampling of each rating from its annotator's row for the true class.
    cdf = np.cumsum(confusions[annotator, truth[item]], axis=1)
    given = (rng.random(len(item))[:, None] > cdf).sum(axis=1).clip(max=K - 1)
    ratings = [
        (f"item{i}", f"ann{a}", f"class{g}")
        for i, a, g in zip(item.tolist(), annotator.tolist(), given.tolist(), strict=True)
    ]
    return ratings, truth, confusions


LABELS = [f"class{k}" for k in range(K)]


def test_dawid_skene_beats_majority_vote_and_recovers_annotator_accuracy():
    ratings, truth, confusions = simulated_crowd()
    mv = majority_vote(ratings=ratings, labels=LABELS)
    ds = dawid_skene(ratings=ratings, labels=LABELS)
    order = np.array([int(item.removeprefix("item")) for item in ds.items])
    assert mv.items == ds.items
    mv_accuracy = float((mv.label == truth[order]).mean())
    ds_accuracy = float((ds.label == truth[order]).mean())
    assert ds.converged
    assert ds_accuracy > mv_accuracy + 0.03, (ds_accuracy, mv_accuracy)
    assert ds_accuracy > 0.9

    # Accuracy of an annotator = chance of being right on an item drawn from the class
    # prior: sum_k prior_k * confusion[k, k] (true prior and matrices for the simulated
    # value, EM's estimates for the recovered one).
    simulated = np.einsum("k,akk->a", PRIOR, confusions)
    for a, annotator in enumerate(ds.annotators):
        index = int(annotator.removeprefix("ann"))
        assert ds.accuracy[a] == pytest.approx(simulated[index], abs=0.05), annotator
    assert ds.prior == pytest.approx(PRIOR, abs=0.03)
    assert np.allclose(ds.confusion.sum(axis=2), 1.0)
    assert np.allclose(ds.posterior.sum(axis=1), 1.0)
    assert np.array_equal(ds.confidence, ds.posterior.max(axis=1))
    # The posterior is informative: confident items are mostly right.
    sure = ds.confidence > 0.9
    assert float((ds.label[sure] == truth[order][sure]).mean()) > 0.95


def test_dawid_skene_is_deterministic():
    ratings, _, _ = simulated_crowd(seed=3, n_items=500)
    first = dawid_skene(ratings=ratings)
    second = dawid_skene(ratings=ratings)
    assert np.array_equal(first.posterior, second.posterior)
    assert first.iterations == second.iterations


def test_dawid_skene_refuses_bad_arguments():
    with pytest.raises(ValueError, match="max_iter"):
        dawid_skene(ratings=[("i", "a", "x")], max_iter=0)
    with pytest.raises(ValueError, match="pseudo_count"):
        dawid_skene(ratings=[("i", "a", "x")], pseudo_count=-1)


def test_majority_vote_confidence_is_the_vote_share_and_ties_go_to_the_common_class():
    ratings = [
        ("i1", "a", "cat"),
        ("i1", "b", "cat"),
        ("i1", "c", "dog"),
        ("i2", "a", "dog"),
        ("i2", "b", "bird"),  # tie dog/bird: dog has more votes overall
        ("i3", "a", "cat"),
        ("i3", "b", "dog"),  # tie cat/dog: cat has 4 votes overall, dog 3, bird 2
        ("i4", "a", "bird"),
        ("i4", "b", "cat"),  # tie cat/bird: cat is more common
    ]
    result = majority_vote(ratings=ratings).as_dict()
    assert result["i1"] == ("cat", pytest.approx(2 / 3))
    assert result["i2"] == ("dog", 0.5)
    assert result["i3"] == ("cat", 0.5)
    assert result["i4"] == ("cat", 0.5)
    # The order of the ratings does not change the answer.
    assert majority_vote(ratings=ratings[::-1]).as_dict() == result


def test_items_for_review_lists_the_unsure_items_least_confident_first():
    ratings = [
        ("i1", "a", "cat"),
        ("i1", "b", "cat"),
        ("i1", "c", "dog"),
        ("i2", "a", "dog"),
        ("i2", "b", "dog"),
        ("i2", "c", "dog"),
        ("i3", "a", "dog"),
        ("i3", "b", "bird"),
        ("i3", "c", "cat"),
    ]
    mv = majority_vote(ratings=ratings)
    assert items_for_review(items=mv.items, confidence=mv.confidence, threshold=0.7) == [
        "i3",
        "i1",
    ]
    assert items_for_review(items=["x", "y"], confidence=[float("nan"), 0.9], threshold=0.5) == [
        "x"
    ]
    with pytest.raises(ValueError, match="2 items but 1 confidences"):
        items_for_review(items=["x", "y"], confidence=[0.5], threshold=0.5)


# -- boxes ---------------------------------------------------------------------------


def box(x, y, w, h, label="car"):
    return {
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
    }


def test_box_consensus_three_annotators_two_objects_one_missed():
    annotations = [
        [box(10, 10, 100, 50), box(200, 40, 30, 80, "person")],
        [box(12, 8, 100, 50), box(204, 40, 30, 80, "person")],
        [box(14, 12, 100, 56), box(400, 400, 10, 10, "person")],  # missed the person; a stray box
    ]
    fused = box_consensus(annotations)
    assert len(fused) == 2
    car, person = fused
    # The car: corners averaged over the three boxes.
    assert car.region == {
        "type": "rectanglelabels",
        "value": {
            "x": pytest.approx(12.0),
            "y": pytest.approx(10.0),
            "width": pytest.approx(100.0),
            "height": pytest.approx(52.0),
            "rectanglelabels": ["car"],
        },
    }
    assert car.confidence == 1.0
    assert car.members == (0, 1, 2)
    # The person: two of three drew it; the stray box (1 of 3) is not a majority.
    assert person.region["value"]["x"] == pytest.approx(202.0)
    assert person.region["value"]["width"] == pytest.approx(30.0)
    assert person.region["value"]["rectanglelabels"] == ["person"]
    assert person.confidence == pytest.approx(2 / 3)
    assert person.members == (0, 1)
    # With min_share=0 every cluster is returned, the stray box with 1/3.
    everything = box_consensus(annotations, min_share=0)
    assert [round(f.confidence, 3) for f in everything] == [1.0, 0.667, 0.333]


def test_box_consensus_weights_and_one_box_per_annotator_per_cluster():
    # Annotator 0 drew the car twice: only one of its boxes joins the cluster.
    annotations = [
        [box(0, 0, 10, 10), box(1, 0, 10, 10)],
        [box(0, 0, 20, 10)],
    ]
    fused = box_consensus(annotations, min_share=0)
    assert [f.members for f in fused] == [(0, 1), (0,)]
    # Weighted: annotator 1 counts three times as much as annotator 0.
    weighted = box_consensus(annotations, weights=[1, 3], min_share=0.6)
    assert len(weighted) == 1
    assert weighted[0].region["value"]["width"] == pytest.approx((10 + 3 * 20) / 4)
    assert weighted[0].confidence == 1.0
    with pytest.raises(ValueError, match="weights"):
        box_consensus(annotations, weights=[1])
    with pytest.raises(ValueError, match="rectanglelabels"):
        box_consensus([[{"type": "labels", "value": {"start": 0, "end": 1, "labels": ["X"]}}]])


# -- spans ---------------------------------------------------------------------------


def span(start, end, label="PER"):
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [label]}}


TEXT = "Alice met Bob Smith in Paris."
#       0    5    10   15   20   25


def test_span_consensus_by_character_majority():
    annotations = [
        [span(0, 5), span(10, 19), span(23, 28, "LOC")],
        [span(0, 5), span(10, 13), span(23, 28, "LOC")],
        [span(0, 3), span(10, 19, "ORG")],
    ]
    spans = span_consensus(annotations, text=TEXT)
    assert [s.region for s in spans] == [
        {"type": "labels", "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]}},
        {"type": "labels", "value": {"start": 10, "end": 13, "text": "Bob", "labels": ["PER"]}},
        {"type": "labels", "value": {"start": 23, "end": 28, "text": "Paris", "labels": ["LOC"]}},
    ]
    # "Alice": 3 annotators on "Ali", 2 on "ce" -> (3 * 3 + 2 * 2) / (5 * 3).
    assert spans[0].confidence == pytest.approx(13 / 15)
    assert spans[1].confidence == pytest.approx(2 / 3)
    assert spans[2].confidence == pytest.approx(2 / 3)


def test_span_consensus_keeps_adjacent_entities_apart_and_counts_empty_annotations():
    adjacent = [
        [span(0, 5), span(5, 9)],
        [span(0, 5), span(5, 9)],
        [span(0, 9)],
    ]
    spans = span_consensus(adjacent)
    assert [(s.region["value"]["start"], s.region["value"]["end"]) for s in spans] == [
        (0, 5),
        (5, 9),
    ]
    assert "text" not in spans[0].region["value"]
    # Two of four annotators is not more than half.
    assert span_consensus([[span(0, 5)], [span(0, 5)], [], []]) == []
    assert span_consensus([]) == []


def test_no_ratings_give_empty_results_not_errors():
    assert majority_vote(ratings=[]).items == ()
    ds = dawid_skene(ratings=[], labels=["x", "y"])
    assert ds.items == () and ds.posterior.shape == (0, 2) and ds.converged
    assert items_for_review(items=[], confidence=[], threshold=0.5) == []
    assert box_consensus([]) == []
    assert box_consensus([[], []]) == []


def brute_force_span_consensus(annotations, length):
    """The documented rule, character by character: the oracle for the boundary sweep."""
    n = len(annotations)
    out = []
    labels = sorted({s["value"]["labels"][0] for spans in annotations for s in spans})
    for label in labels:
        cover = [[False] * length for _ in annotations]
        starts = [[False] * length for _ in annotations]
        for j, spans in enumerate(annotations):
            for s in spans:
                if s["value"]["labels"][0] != label:
                    continue
                starts[j][s["value"]["start"]] = True
                for p in range(s["value"]["start"], s["value"]["end"]):
                    cover[j][p] = True
        votes = [sum(cover[j][p] for j in range(n)) for p in range(length)]
        cut = [
            p > 0 and 2 * sum(starts[j][p] and cover[j][p - 1] for j in range(n)) > n
            for p in range(length)
        ]
        run = None
        for p in range(length + 1):
            inside = p < length and 2 * votes[p] > n
            if run is not None and (not inside or cut[p]):
                out.append((run, p, label, sum(votes[run:p]) / ((p - run) * n)))
                run = None
            if run is None and inside:
                run = p
    return sorted(out, key=lambda s: (s[0], s[2]))


def test_span_consensus_equals_the_character_rule_on_random_annotations():
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(1, 6))
        annotations = []
        for _ in range(n):
            spans = []
            for _ in range(int(rng.integers(0, 5))):
                start = int(rng.integers(0, 30))
                spans.append(
                    span(start, start + int(rng.integers(1, 8)), rng.choice(["PER", "ORG"]))
                )
            annotations.append(spans)
        got = [
            (
                s.region["value"]["start"],
                s.region["value"]["end"],
                s.region["value"]["labels"][0],
                pytest.approx(s.confidence),
            )
            for s in span_consensus(annotations)
        ]
        expected = brute_force_span_consensus(annotations, 40)
        assert got == expected
        checked += len(expected)
    assert checked > 100


# --- one task as it finishes, and gold scores --------------------------------------------


def _choice(*names):
    return [{"id": "r1", "type": "choices", "value": {"choices": list(names)}}]


def _box(x, label="car"):
    value = {"x": x, "y": 0, "width": 10, "height": 10, "rectanglelabels": [label]}
    return {"id": f"b{x}", "type": "rectanglelabels", "value": value}


def _poly(points, label="road"):
    return {
        "id": "p",
        "type": "polygonlabels",
        "value": {"points": points, "polygonlabels": [label]},
    }


def _span(start, end, label="PER"):
    return {"id": "s", "type": "labels", "value": {"start": start, "end": end, "labels": [label]}}


def test_task_consensus_of_classes_is_the_first_majority_with_its_share():
    result = task_consensus("image_class", [_choice("dog"), _choice("cat"), _choice("cat")])
    assert (result.chosen, result.method) == (1, "majority_vote")
    assert result.confidence == pytest.approx(2 / 3)
    tie = task_consensus("text_class", [_choice("b", "a"), _choice("a", "b"), _choice("c"), []])
    assert (tie.chosen, tie.confidence) == (0, 0.5)  # a set of choices, in any order
    single = task_consensus("bbox", [[_box(1)]])
    assert (single.chosen, single.confidence, single.method) == (0, 1.0, "single")
    with pytest.raises(ValueError, match="at least one"):
        task_consensus("bbox", [])


def test_task_consensus_of_boxes_fuses_them_and_scores_pairwise_f1():
    result = task_consensus("bbox", [[_box(0)], [_box(2)], [_box(4), _box(50)]])
    [fused] = result.result
    assert fused["id"] == "c1" and fused["value"]["x"] == pytest.approx(2)
    # F1 of the pairs: x 0-2 match (1); 0-4 do not (IoU 6/14 < 0.5: 0); 2-4 match, with
    # the third annotator's extra box unmatched (2/3). The fused box still takes all three.
    assert result.confidence == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert result.chosen is None


def test_task_consensus_of_polygons_is_the_medoid():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    near = [[1, 0], [10, 0], [10, 10], [1, 10]]
    far = [[50, 50], [60, 50], [60, 60], [50, 60]]
    result = task_consensus("polygon", [[_poly(far)], [_poly(square)], [_poly(near)]])
    assert result.chosen in (1, 2) and result.method == "medoid"
    assert result.confidence == pytest.approx(1 / 3)


def test_task_consensus_of_spans_and_of_keypoints():
    text = "Alice met Bob"
    spans = task_consensus("ner", [[_span(0, 5)], [_span(0, 5)], [_span(10, 13)]], text=text)
    assert [s["value"]["text"] for s in spans.result] == ["Alice"]
    assert spans.confidence == pytest.approx(1 / 3)
    point = {
        "id": "k",
        "type": "keypointlabels",
        "value": {"x": 1, "y": 2, "keypointlabels": ["nose"]},
    }
    other = {**point, "id": "k2"}
    moved = {**point, "value": {**point["value"], "x": 5}}
    keypoints = task_consensus("keypoint", [[moved], [point], [other]])
    assert (keypoints.chosen, keypoints.method) == (1, "identical")
    assert keypoints.confidence == pytest.approx(2 / 3)


def test_gold_score_per_schema_type():
    assert gold_score("image_class", _choice("cat"), _choice("cat")) == 1.0
    assert gold_score("image_class", _choice("cat"), _choice("dog")) == 0.0
    assert gold_score("image_class", [], []) == 1.0
    assert gold_score("bbox", [_box(0), _box(50)], [_box(1)]) == pytest.approx(2 / 3)
    assert gold_score("bbox", [_box(0)], [_box(0, label="person")]) == 0.0
    assert gold_score("ner", [_span(0, 5)], [_span(0, 4)]) == 0.0
    assert gold_score("ner", [_span(0, 5)], [_span(0, 5)]) == 1.0
    point = {
        "id": "k",
        "type": "keypointlabels",
        "value": {"x": 1, "y": 2, "keypointlabels": ["nose"]},
    }
    assert gold_score("keypoint", [point], [{**point, "id": "other"}]) == 1.0
