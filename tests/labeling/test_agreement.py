"""Agreement metrics: equal to the reference implementations, and hand-checked cases."""

from __future__ import annotations

import functools
import math

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from labeling.quality.agreement import (
    classification_agreement,
    pairwise_f1,
    ratings_encode,
    region_f1,
    region_iou_matrix,
    span_f1,
)

LABELS = ["cat", "dog", "bird", "fish"]


def crowd_ratings(seed: int, *, n_items: int, n_annotators: int, per_item: int):
    """Ratings of `per_item` random annotators per item; annotators agree with a hidden
    truth 70% of the time, so the statistics are neither 0 nor 1."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(LABELS), size=n_items, p=[0.4, 0.3, 0.2, 0.1])
    who = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item]
    ratings = []
    for i in range(n_items):
        for a in who[i]:
            label = truth[i] if rng.random() < 0.7 else rng.integers(len(LABELS))
            ratings.append((f"item{i}", f"ann{a}", LABELS[label]))
    return ratings


def reliability_matrix(ratings):
    """annotators x items matrix of label codes, NaN where missing (krippendorff's input)."""
    items = sorted({i for i, _, _ in ratings})
    annotators = sorted({a for _, a, _ in ratings})
    data = np.full((len(annotators), len(items)), np.nan)
    for i, a, label in ratings:
        data[annotators.index(a), items.index(i)] = LABELS.index(label)
    return data


@pytest.mark.parametrize(("n_annotators", "per_item"), [(3, 3), (5, 3), (6, 2), (4, 4)])
def test_alpha_equals_krippendorff_package(n_annotators, per_item):
    ratings = crowd_ratings(7, n_items=400, n_annotators=n_annotators, per_item=per_item)
    result = classification_agreement(ratings=ratings)
    expected = krippendorff.alpha(
        reliability_data=reliability_matrix(ratings), level_of_measurement="nominal"
    )
    assert 0.2 < result.alpha < 0.9
    assert result.alpha == pytest.approx(expected, abs=1e-9)


def test_alpha_with_single_ratings_and_uneven_raters_equals_krippendorff_package():
    ratings = crowd_ratings(3, n_items=300, n_annotators=5, per_item=3)
    # Drop some ratings so items have 1, 2 or 3 ratings.
    ratings = [r for k, r in enumerate(ratings) if k % 7 != 0 and k % 11 != 0]
    result = classification_agreement(ratings=ratings)
    expected = krippendorff.alpha(
        reliability_data=reliability_matrix(ratings), level_of_measurement="nominal"
    )
    assert result.alpha == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("per_item", [2, 3, 5])
def test_fleiss_kappa_equals_statsmodels(per_item):
    ratings = crowd_ratings(11, n_items=500, n_annotators=6, per_item=per_item)
    result = classification_agreement(ratings=ratings, labels=LABELS)
    table = ratings_encode(ratings, labels=LABELS).counts()
    assert table.sum(axis=1).min() == per_item
    expected = sm_fleiss_kappa(table, method="fleiss")
    assert 0.2 < result.fleiss_kappa < 0.9
    assert result.fleiss_kappa == pytest.approx(expected, abs=1e-9)


def test_cohen_kappa_of_every_pair_equals_sklearn():
    ratings = crowd_ratings(5, n_items=600, n_annotators=5, per_item=3)
    result = classification_agreement(ratings=ratings)
    by_annotator: dict[str, dict[str, str]] = {}
    for item, annotator, label in ratings:
        by_annotator.setdefault(annotator, {})[item] = label
    checked = 0
    for a in by_annotator:
        for b in by_annotator:
            if a == b:
                assert math.isnan(result.pairs.of(a, b))
                continue
            shared = sorted(set(by_annotator[a]) & set(by_annotator[b]))
            expected = cohen_kappa_score(
                [by_annotator[a][i] for i in shared], [by_annotator[b][i] for i in shared]
            )
            assert result.pairs.of(a, b) == pytest.approx(expected, abs=1e-9)
            ia, ib = result.pairs.annotators.index(a), result.pairs.annotators.index(b)
            assert result.pairs.shared[ia, ib] == len(shared)
            checked += 1
    assert checked == 20


def test_per_item_agreement_is_the_share_of_agreeing_pairs():
    ratings = [
        ("i1", "a", "cat"),
        ("i1", "b", "cat"),
        ("i1", "c", "dog"),  # 1 agreeing pair of 3
        ("i2", "a", "dog"),
        ("i2", "b", "dog"),  # 1 of 1
        ("i3", "c", "cat"),  # one rating: undefined
    ]
    result = classification_agreement(ratings=ratings)
    assert result.items == ("i1", "i2", "i3")
    assert result.per_item[0] == pytest.approx(1 / 3)
    assert result.per_item[1] == 1.0
    assert math.isnan(result.per_item[2])


def test_statistics_are_nan_when_everyone_chose_one_class():
    ratings = [("i1", "a", "cat"), ("i1", "b", "cat"), ("i2", "a", "cat"), ("i2", "b", "cat")]
    result = classification_agreement(ratings=ratings)
    assert math.isnan(result.alpha)
    assert math.isnan(result.fleiss_kappa)
    assert math.isnan(result.pairs.of("a", "b"))
    assert result.per_item.tolist() == [1.0, 1.0]


def test_a_repeated_rating_and_an_unknown_label_are_refused():
    with pytest.raises(ValueError, match=r"ratings\[2\]: annotator 'a' rated item 'i1' twice"):
        classification_agreement(
            ratings=[("i1", "a", "cat"), ("i1", "b", "cat"), ("i1", "a", "dog")]
        )
    with pytest.raises(ValueError, match=r"ratings\[1\]: label 'cow' is not one of the labels"):
        classification_agreement(ratings=[("i1", "a", "cat"), ("i1", "b", "cow")], labels=LABELS)
    with pytest.raises(ValueError, match=r"ratings\[1\]: the label is missing"):
        classification_agreement(ratings=[("i1", "a", "cat"), ("i1", "b", None)])
    with pytest.raises(ValueError, match=r"ratings\[0\]: the annotator is missing"):
        classification_agreement(ratings=[("i1", None, "cat")])


# -- regions -------------------------------------------------------------------------


def box(x, y, w, h, label="car"):
    return {
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
    }


def polygon(points, label="road"):
    return {"type": "polygonlabels", "value": {"points": points, "polygonlabels": [label]}}


def span(start, end, label="PER"):
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [label]}}


def test_box_iou_by_hand():
    # 10x10 boxes shifted by 5 in x: intersection 50, union 150.
    iou = region_iou_matrix([box(0, 0, 10, 10)], [box(5, 0, 10, 10), box(20, 20, 5, 5)])
    assert iou[0, 0] == pytest.approx(1 / 3)
    assert iou[0, 1] == 0.0


def test_region_f1_boxes_by_hand():
    a = [box(0, 0, 10, 10), box(100, 100, 20, 20), box(50, 50, 10, 10, "person")]
    b = [
        box(1, 1, 10, 10),  # IoU 81 / 119 = 0.68 with a[0]: match
        box(50, 50, 10, 10, "car"),  # on a[2] but another label: no match
        box(110, 100, 20, 20),  # IoU 200 / 600 = 0.33 with a[1]: below 0.5
    ]
    result = region_f1(a, b)
    assert (result.tp, result.fp, result.fn) == (1, 2, 2)
    assert result.matches == ((0, 0),)
    assert result.precision == pytest.approx(1 / 3)
    assert result.f1 == pytest.approx(2 / 6)
    # At a threshold of 0.3 the shifted box matches too.
    assert region_f1(a, b, iou_threshold=0.3).matches == ((0, 0), (1, 2))


def test_region_f1_matches_one_to_one_maximising_iou():
    # Greedy would give a[0] its best box b[0] (IoU 9/11) and leave a[1] with b[1]
    # (IoU 4/16, below 0.5): one match. The Hungarian matching pairs a[0]-b[1] (7/13)
    # and a[1]-b[0] (8/12): two.
    a = [box(3, 0, 10, 10), box(6, 0, 10, 10)]
    b = [box(4, 0, 10, 10), box(0, 0, 10, 10)]
    result = region_f1(a, b)
    assert result.matches == ((0, 1), (1, 0))
    assert result.f1 == 1.0


def test_region_f1_of_two_empty_annotations_is_one():
    assert region_f1([], []).f1 == 1.0
    assert region_f1([box(0, 0, 5, 5)], []).f1 == 0.0


def test_polygon_iou_and_f1_by_hand():
    square = polygon([[0, 0], [10, 0], [10, 10], [0, 10]])
    # The lower-left half of the square: IoU 50 / 100.
    triangle = polygon([[0, 0], [10, 0], [0, 10]])
    # A square shifted by 2: intersection 8 * 10 = 80, union 120.
    shifted = polygon([[2, 0], [12, 0], [12, 10], [2, 10]])
    iou = region_iou_matrix([square], [triangle, shifted])
    assert iou[0, 0] == pytest.approx(0.5)
    assert iou[0, 1] == pytest.approx(80 / 120)
    assert region_f1([square], [shifted]).tp == 1
    assert region_f1([square], [triangle], iou_threshold=0.6).tp == 0
    # A box compared with a polygon goes through shapely too.
    mixed = region_iou_matrix([box(0, 0, 10, 10, "road")], [triangle])
    assert mixed[0, 0] == pytest.approx(0.5)


def test_self_crossing_polygon_is_repaired_not_refused():
    bowtie = polygon([[0, 0], [10, 10], [10, 0], [0, 10]])  # two triangles of area 25
    square = polygon([[0, 0], [10, 0], [10, 10], [0, 10]])
    assert region_iou_matrix([bowtie], [square])[0, 0] == pytest.approx(0.5)


def test_iou_of_a_keypoint_is_refused():
    keypoint = {"type": "keypointlabels", "value": {"x": 1, "y": 2, "keypointlabels": ["nose"]}}
    with pytest.raises(ValueError, match="IoU needs boxes or polygons"):
        region_f1([keypoint], [box(0, 0, 1, 1)])


# -- spans ---------------------------------------------------------------------------


def test_span_f1_exact_and_overlap_by_hand():
    a = [span(0, 5), span(10, 20, "ORG"), span(30, 35)]
    b = [span(0, 5), span(12, 18, "ORG"), span(33, 40, "ORG"), span(50, 55)]
    exact = span_f1(a, b, mode="exact")
    assert (exact.tp, exact.fp, exact.fn) == (1, 3, 2)
    overlap = span_f1(a, b, mode="overlap")
    # [10, 20) and [12, 18) overlap; [30, 35) PER vs [33, 40) ORG differ in label.
    assert (overlap.tp, overlap.fp, overlap.fn) == (2, 2, 1)
    assert overlap.f1 == pytest.approx(4 / 7)


def test_span_f1_overlap_is_one_to_one():
    # One long span cannot count for two short ones.
    result = span_f1([span(0, 20)], [span(0, 8), span(10, 20)], mode="overlap")
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    assert result.matches == ((0, 1),)  # the larger overlap (10 > 8)
    # Touching is not overlapping: [0, 5) and [5, 9) share no character.
    assert span_f1([span(0, 5)], [span(5, 9)], mode="overlap").tp == 0


def test_span_f1_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be"):
        span_f1([span(0, 1)], [span(0, 1)], mode="fuzzy")


def test_pairwise_f1_per_item_pair_and_project():
    annotations = [
        ("img1", "a", [box(0, 0, 10, 10)]),
        ("img1", "b", [box(0, 0, 10, 10)]),
        ("img1", "c", []),
        ("img2", "a", [box(0, 0, 10, 10), box(50, 50, 10, 10)]),
        ("img2", "b", [box(0, 0, 10, 10)]),
        ("img3", "c", [box(0, 0, 10, 10)]),  # alone: no pair
    ]
    result = pairwise_f1(annotations=annotations, score=region_f1)
    # img1: a-b 1.0, a-c 0.0, b-c 0.0; img2: a-b 2*1/(2+0+1) = 2/3.
    assert result.items == ("img1", "img2", "img3")
    assert result.per_item[0] == pytest.approx(1 / 3)
    assert result.per_item[1] == pytest.approx(2 / 3)
    assert math.isnan(result.per_item[2])
    idx = result.annotators.index
    # a-b over img1 and img2: tp 2, fp 0, fn 1 -> 4/5.
    assert result.pair_f1[idx("a"), idx("b")] == pytest.approx(4 / 5)
    assert result.pair_f1[idx("b"), idx("a")] == pytest.approx(4 / 5)
    assert result.pair_f1[idx("a"), idx("c")] == 0.0
    # All pairs: tp 2, fp+fn 1 (img1 a-c) + 1 (img1 b-c) + 1 (img2) -> 4 / 7.
    assert result.overall == pytest.approx(4 / 7)

    spans = [
        ("t1", "a", [span(0, 5), span(6, 9)]),
        ("t1", "b", [span(0, 4), span(6, 9)]),
    ]
    exact = pairwise_f1(annotations=spans, score=functools.partial(span_f1, mode="exact"))
    overlap = pairwise_f1(annotations=spans, score=functools.partial(span_f1, mode="overlap"))
    assert exact.overall == pytest.approx(0.5)
    assert overlap.overall == 1.0


def test_region_f1_plain_python_and_numpy_paths_agree(monkeypatch):
    rng = np.random.default_rng(42)
    cases = []
    for _ in range(200):
        n_a, n_b = rng.integers(0, 6, size=2)
        a = [
            box(*rng.uniform(0, 50, 2), *rng.uniform(5, 30, 2), rng.choice(["car", "bus"]))
            for _ in range(n_a)
        ]
        b = [
            box(*rng.uniform(0, 50, 2), *rng.uniform(5, 30, 2), rng.choice(["car", "bus"]))
            for _ in range(n_b)
        ]
        cases.append((a, b))
    small = [region_f1(a, b, iou_threshold=0.3) for a, b in cases]
    monkeypatch.setattr("labeling.quality.agreement.SMALL_PAIRS", -1)
    large = [region_f1(a, b, iou_threshold=0.3) for a, b in cases]
    assert small == large
    assert sum(f.tp for f in small) > 20
    assert any(len(f.matches) > 1 for f in small)


def test_span_f1_plain_python_and_numpy_paths_agree(monkeypatch):
    rng = np.random.default_rng(8)
    cases = []
    for _ in range(300):
        sides = []
        for _ in range(2):
            spans = []
            for _ in range(int(rng.integers(0, 6))):
                start = int(rng.integers(0, 8))
                spans.append(
                    span(start, start + int(rng.integers(1, 4)), rng.choice(["PER", "ORG"]))
                )
            sides.append(spans)
        cases.append(tuple(sides))
    modes = ("exact", "overlap")
    small = [span_f1(a, b, mode=m) for a, b in cases for m in modes]
    monkeypatch.setattr("labeling.quality.agreement.SMALL_PAIRS", -1)
    large = [span_f1(a, b, mode=m) for a, b in cases for m in modes]
    assert small == large
    assert sum(f.tp for f in small[0::2]) > 20
    assert sum(f.tp for f in small[1::2]) > sum(f.tp for f in small[0::2])
