"""Inter-annotator agreement: pure functions over annotation results, no database.

Classification (one label per item and annotator):
- Krippendorff's alpha (nominal), the project figure that copes with missing ratings;
- Fleiss' kappa, generalised to a varying number of raters per item (with the same
  number on every item it is exactly Fleiss 1971, as statsmodels computes it);
- Cohen's kappa for every annotator pair that shares items (as scikit-learn computes it);
- per item: the share of agreeing rater pairs (Fleiss' P_i).

The three statistics are computed in numpy from an items x classes count table (memory
O(items x classes), no per-item Python loop), and the tests check them against the
reference implementations (`krippendorff.alpha`, `statsmodels.stats.inter_rater.
fleiss_kappa`, `sklearn.metrics.cohen_kappa_score`) to 1e-9. The `krippendorff` package
itself builds an items x classes x classes array, gigabytes for a 1M-item project with a
few dozen classes, which is why alpha is the closed form for nominal data here.

Regions (labeling.results shape, image pixels): `region_f1` matches two annotators'
boxes/polygons one-to-one with the Hungarian algorithm (scipy's linear_sum_assignment)
maximising the summed IoU over pairs of the same label with IoU >= the threshold. Box
IoU is computed in plain Python for the few boxes of a typical image (SMALL_PAIRS) and
in numpy beyond; polygons (and boxes compared with polygons) use shapely, with invalid
(self-crossing) polygons repaired by `shapely.make_valid`.

Spans (character offsets, `[start, end)`): `span_f1` in "exact" mode counts a span as
found when the other side has the same label and the same bounds; in "overlap" mode
when it has the same label and at least one character in common, matched one-to-one
(Hungarian, maximising the overlapping characters) so one long span cannot account for
several short ones.

`pairwise_f1` turns either F1 into agreement per item, per annotator pair and per
project (micro-averaged counts).

Undefined values (a statistic whose chance agreement is 1, e.g. every rating is the
same class; an item with fewer than two ratings) are NaN, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

Rating = tuple[Hashable, Hashable, Hashable]  # (item key, annotator key, label)
Region = dict[str, Any]

# --------------------------------------------------------------------------------------
# Classification


@dataclass(frozen=True)
class EncodedRatings:
    """Ratings as integer codes: `item[r]`, `annotator[r]`, `label[r]` index the key tuples.

    Items, annotators and labels are in order of first appearance unless `labels` was
    given (then that order). One rating per (item, annotator) pair is guaranteed.
    """

    items: tuple[Hashable, ...]
    annotators: tuple[Hashable, ...]
    labels: tuple[Hashable, ...]
    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray

    def counts(self) -> np.ndarray:
        """Return the items x classes table of how many annotators chose each class."""
        n_items, n_labels = len(self.items), len(self.labels)
        flat = np.bincount(self.item * n_labels + self.label, minlength=n_items * n_labels)
        return flat.reshape(n_items, n_labels)


def ratings_encode(
    ratings: Sequence[Rating], *, labels: Sequence[Hashable] | None = None
) -> EncodedRatings:
    """Return the ratings as integer codes (see EncodedRatings).

    `labels`, when given, fixes the class order (classes nobody chose keep a column).
    Raises ValueError when an annotator rated the same item twice, a key is None/NaN or
    a label is not in `labels`.
    """
    frame = pd.DataFrame.from_records(
        list(ratings), columns=["item", "annotator", "label"], coerce_float=False
    )
    item_codes, items = pd.factorize(frame["item"], sort=False)
    annotator_codes, annotators = pd.factorize(frame["annotator"], sort=False)
    if labels is None:
        label_codes, label_keys = pd.factorize(frame["label"], sort=False)
        label_tuple = tuple(label_keys)
    else:
        label_tuple = tuple(labels)
        label_codes = pd.Index(label_tuple).get_indexer(frame["label"])
        if (label_codes < 0).any():
            row = int(np.flatnonzero(label_codes < 0)[0])
            raise ValueError(
                f"ratings[{row}]: label {frame['label'].iloc[row]!r} is not one of the labels"
            )
    for name, codes in (
        ("item", item_codes),
        ("annotator", annotator_codes),
        ("label", label_codes),
    ):
        # pandas codes a missing key (None, NaN) as -1.
        if labels is None or name != "label":
            missing = np.flatnonzero(np.asarray(codes) < 0)
            if len(missing):
                raise ValueError(f"ratings[{int(missing[0])}]: the {name} is missing")
    pair = item_codes.astype(np.int64) * max(len(annotators), 1) + annotator_codes
    if len(pair) and len(np.unique(pair)) != len(pair):
        _, first, counts = np.unique(pair, return_index=True, return_counts=True)
        dup = pair == pair[first[np.argmax(counts > 1)]]
        row = int(np.flatnonzero(dup)[1])
        raise ValueError(
            f"ratings[{row}]: annotator {frame['annotator'].iloc[row]!r} rated item "
            f"{frame['item'].iloc[row]!r} twice"
        )
    return EncodedRatings(
        items=tuple(items),
        annotators=tuple(annotators),
        labels=label_tuple,
        item=item_codes.astype(np.int64),
        annotator=annotator_codes.astype(np.int64),
        label=np.asarray(label_codes, dtype=np.int64),
    )


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Return Krippendorff's nominal alpha of an items x classes count table.

    Items with fewer than two ratings are not pairable and do not count. NaN when fewer
    than two pairable values exist or every pairable value is the same class.
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    n = m.sum()
    if n < 2:
        return float("nan")
    # Observed disagreement: within-item pairs of different classes, each item weighted
    # 1 / (m_i - 1) (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
    observed = ((counts * (m[:, None] - counts)).sum(axis=1) / (m - 1)).sum()
    n_c = counts.sum(axis=0)
    expected = (n_c * (n - n_c)).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * observed / expected)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Return Fleiss' kappa of an items x classes count table.

    Items with fewer than two ratings are left out. With m_i raters on item i,
    P_i = (sum_c n_ic^2 - m_i) / (m_i (m_i - 1)), P = mean P_i, p_c = class share of
    all ratings, P_e = sum p_c^2, kappa = (P - P_e) / (1 - P_e): with the same number
    of raters on every item this is Fleiss (1971). NaN when P_e = 1 or no item counts.
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    if not len(m):
        return float("nan")
    p_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_class = counts.sum(axis=0) / m.sum()
    p_e = float((p_class * p_class).sum())
    if p_e >= 1.0:
        return float("nan")
    return float((p_item.mean() - p_e) / (1.0 - p_e))


def item_agreement(counts: np.ndarray) -> np.ndarray:
    """Return per item the share of agreeing rater pairs (Fleiss' P_i); NaN below 2 ratings."""
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    p_item[m < 2] = np.nan
    return p_item


@dataclass(frozen=True)
class PairKappa:
    """Cohen's kappa of every annotator pair that shares at least one item.

    `kappa[a, b]` (symmetric, NaN on the diagonal and for pairs without shared items or
    with an undefined kappa) and `shared[a, b]` (items both rated) are indexed by
    positions in `annotators`.
    """

    annotators: tuple[Hashable, ...]
    kappa: np.ndarray
    shared: np.ndarray

    def of(self, a: Hashable, b: Hashable) -> float:
        """Return the kappa of annotators `a` and `b` (NaN when undefined)."""
        return float(self.kappa[self.annotators.index(a), self.annotators.index(b)])


def rating_pairs(encoded: EncodedRatings) -> tuple[np.ndarray, np.ndarray]:
    """Return (first, second): row indices of every two ratings of one item, first's
    annotator code lower than second's. Vectorised: one pass per offset within an item,
    so the cost is ratings x (largest number of ratings of one item)."""
    order = np.lexsort((encoded.annotator, encoded.item))
    item_sorted = encoded.item[order]
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    offset = 1
    while offset < len(order):
        same = item_sorted[offset:] == item_sorted[:-offset]
        if not same.any():
            break
        idx = np.flatnonzero(same)
        firsts.append(order[idx])
        seconds.append(order[idx + offset])
        offset += 1
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(firsts), np.concatenate(seconds)


def pair_cohen_kappa(encoded: EncodedRatings) -> PairKappa:
    """Return Cohen's kappa of every annotator pair over the items both rated.

    kappa = (p_o - p_e) / (1 - p_e) with p_e from each annotator's own class shares on
    the shared items, as sklearn.metrics.cohen_kappa_score. Vectorised over all pairs.
    """
    n_ann, n_lab = len(encoded.annotators), len(encoded.labels)
    first, second = rating_pairs(encoded)
    kappa = np.full((n_ann, n_ann), np.nan)
    shared = np.zeros((n_ann, n_ann), dtype=np.int64)
    if not len(first):
        return PairKappa(encoded.annotators, kappa, shared)
    a, b = encoded.annotator[first], encoded.annotator[second]
    pair_codes, pair_index = np.unique(a * n_ann + b, return_inverse=True)
    n_pairs = len(pair_codes)
    la, lb = encoded.label[first], encoded.label[second]
    table = np.bincount(
        (pair_index * n_lab + la) * n_lab + lb, minlength=n_pairs * n_lab * n_lab
    ).reshape(n_pairs, n_lab, n_lab)
    n = table.sum(axis=(1, 2)).astype(np.float64)
    p_o = np.trace(table, axis1=1, axis2=2) / n
    p_e = (table.sum(axis=2) * table.sum(axis=1)).sum(axis=1) / (n * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(p_e < 1.0, (p_o - p_e) / (1.0 - p_e), np.nan)
    pa, pb = pair_codes // n_ann, pair_codes % n_ann
    kappa[pa, pb] = kappa[pb, pa] = values
    shared[pa, pb] = shared[pb, pa] = n.astype(np.int64)
    return PairKappa(encoded.annotators, kappa, shared)


@dataclass(frozen=True)
class ClassificationAgreement:
    """Agreement of a classification project (see classification_agreement)."""

    alpha: float
    fleiss_kappa: float
    pairs: PairKappa
    items: tuple[Hashable, ...]
    per_item: np.ndarray  # share of agreeing rater pairs, aligned with `items`
    labels: tuple[Hashable, ...]


def classification_agreement(
    *, ratings: Sequence[Rating] | EncodedRatings, labels: Sequence[Hashable] | None = None
) -> ClassificationAgreement:
    """Return alpha, Fleiss' kappa, per-pair Cohen's kappa and per-item agreement.

    `ratings` are (item, annotator, label) tuples, at most one per (item, annotator)
    (or an EncodedRatings). Pure and deterministic; O(ratings) memory and time, plus
    annotators^2 for the pair matrix. Raises ValueError on a repeated (item, annotator).
    """
    encoded = (
        ratings if isinstance(ratings, EncodedRatings) else ratings_encode(ratings, labels=labels)
    )
    counts = encoded.counts()
    return ClassificationAgreement(
        alpha=krippendorff_alpha_nominal(counts),
        fleiss_kappa=fleiss_kappa(counts),
        pairs=pair_cohen_kappa(encoded),
        items=encoded.items,
        per_item=item_agreement(counts),
        labels=encoded.labels,
    )


# --------------------------------------------------------------------------------------
# Regions and spans


@dataclass(frozen=True)
class F1:
    """Matching counts of two annotations: `tp` matched pairs, `fp` regions only in the
    second (b), `fn` regions only in the first (a); `matches` are (index in a, index in
    b). Precision/recall/F1 treat `a` as the reference; two empty annotations agree (1.0).
    """

    tp: int
    fp: int
    fn: int
    matches: tuple[tuple[int, int], ...] = field(default=())

    @property
    def precision(self) -> float:
        return 1.0 if self.tp + self.fp == 0 else self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        return 1.0 if self.tp + self.fn == 0 else self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 1.0 if total == 0 else 2 * self.tp / total


def region_label(region: Region) -> str:
    """Return the one label of a region (results.py: exactly one per region)."""
    value = region["value"]
    return value[region["type"]][0]


def _box_xyxy(regions: Sequence[Region]) -> np.ndarray:
    out = np.empty((len(regions), 4), dtype=np.float64)
    for i, r in enumerate(regions):
        v = r["value"]
        out[i] = (v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"])
    return out


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of every box in `a` with every box in `b` ([x1, y1, x2, y2] rows)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.maximum(bottom_right - top_left, 0.0)
    inter = overlap[..., 0] * overlap[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    # Zero-area boxes on both sides: IoU 0, not a division by zero.
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _shapes(regions: Sequence[Region]) -> np.ndarray:
    import shapely  # only polygons need it

    shapes = []
    for r in regions:
        v = r["value"]
        if r["type"] == "rectanglelabels":
            shapes.append(shapely.box(v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"]))
        else:
            shapes.append(shapely.make_valid(shapely.Polygon(v["points"])))
    return np.array(shapes, dtype=object)


def region_iou_matrix(a: Sequence[Region], b: Sequence[Region]) -> np.ndarray:
    """Return the IoU of every region of `a` with every region of `b` (labels ignored).

    Boxes against boxes in numpy; anything involving a polygon through shapely.
    Raises ValueError on a region type without an area (keypoints, choices, spans).
    """
    for r in (*a, *b):
        if r.get("type") not in ("rectanglelabels", "polygonlabels"):
            raise ValueError(
                f"region {r.get('id')!r}: IoU needs boxes or polygons, got {r.get('type')!r}"
            )
    if not a or not b:
        return np.zeros((len(a), len(b)))
    if all(r["type"] == "rectanglelabels" for r in (*a, *b)):
        return box_iou_matrix(_box_xyxy(a), _box_xyxy(b))
    import shapely

    sa, sb = _shapes(a), _shapes(b)
    inter = shapely.area(shapely.intersection(sa[:, None], sb[None, :]))
    union = shapely.area(sa)[:, None] + shapely.area(sb)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(score: np.ndarray, ok: np.ndarray) -> list[tuple[int, int]]:
    """Return the one-to-one pairs maximising the summed score among allowed pairs."""
    if not ok.any():
        return []
    # Disallowed pairs get a score of 0 while allowed ones are > 0, so the maximising
    # assignment never prefers one; they are filtered out afterwards.
    rows, cols = linear_sum_assignment(np.where(ok, score, 0.0), maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if ok[i, j]]


def _f1(n_a: int, n_b: int, matches: list[tuple[int, int]]) -> F1:
    matches.sort()
    tp = len(matches)
    return F1(tp=tp, fp=n_b - tp, fn=n_a - tp, matches=tuple(matches))


# Up to this many region pairs, boxes are compared in plain Python: a few dozen float
# operations beat numpy's per-call overhead (~40 us for a 3 x 3 IoU matrix here).
SMALL_PAIRS = 64


def _match_edges(edges: list[tuple[int, int, float]], n_a: int, n_b: int) -> list[tuple[int, int]]:
    """Return the maximum-score one-to-one matching of allowed (i, j, score) edges."""
    rows = {i for i, _, _ in edges}
    cols = {j for _, j, _ in edges}
    if len(rows) == len(cols) == len(edges):  # no edge competes with another
        return [(i, j) for i, j, _ in edges]
    score = np.zeros((n_a, n_b))
    ok = np.zeros((n_a, n_b), dtype=bool)
    for i, j, value in edges:
        score[i, j] = value
        ok[i, j] = True
    return _match(score, ok)


def region_f1(a: Sequence[Region], b: Sequence[Region], *, iou_threshold: float = 0.5) -> F1:
    """Return the IoU-matched F1 of two annotations of one image (boxes and/or polygons).

    A pair can match when both regions have the same label and IoU >= iou_threshold;
    the one-to-one matching maximises the summed IoU (Hungarian). Deterministic.
    Raises ValueError on a region without an area (keypoints, choices, spans).
    """
    # A tiny epsilon keeps IoU = threshold matchable despite float rounding.
    threshold = iou_threshold - 1e-12
    if (
        len(a) * len(b) <= SMALL_PAIRS
        and all(r.get("type") == "rectanglelabels" for r in a)
        and all(r.get("type") == "rectanglelabels" for r in b)
    ):
        boxes_a = [(region_label(r), *_corners(r["value"])) for r in a]
        boxes_b = [(region_label(r), *_corners(r["value"])) for r in b]
        edges: list[tuple[int, int, float]] = []
        for i, (la, ax1, ay1, ax2, ay2) in enumerate(boxes_a):
            area_a = (ax2 - ax1) * (ay2 - ay1)
            for j, (lb, bx1, by1, bx2, by2) in enumerate(boxes_b):
                if la != lb:
                    continue
                iw = min(ax2, bx2) - max(ax1, bx1)
                ih = min(ay2, by2) - max(ay1, by1)
                if iw <= 0 or ih <= 0:
                    continue
                inter = iw * ih
                iou = inter / (area_a + (bx2 - bx1) * (by2 - by1) - inter)
                if iou >= threshold:
                    edges.append((i, j, iou))
        return _f1(len(a), len(b), _match_edges(edges, len(a), len(b)))
    iou = region_iou_matrix(a, b)
    la_arr = np.array([region_label(r) for r in a], dtype=object)
    lb_arr = np.array([region_label(r) for r in b], dtype=object)
    if len(a) and len(b):
        same = la_arr[:, None] == lb_arr[None, :]
    else:
        same = np.zeros((len(a), len(b)), dtype=bool)
    ok = same & (iou >= threshold) & (iou > 0)
    return _f1(len(a), len(b), _match(iou, ok))


def _corners(value: dict[str, Any]) -> tuple[float, float, float, float]:
    x, y = value["x"], value["y"]
    return (x, y, x + value["width"], y + value["height"])


def span_f1(
    a: Sequence[Region], b: Sequence[Region], *, mode: Literal["exact", "overlap"] = "exact"
) -> F1:
    """Return the F1 of two span annotations of one text (`labels` regions).

    exact: same label and same [start, end). overlap: same label and at least one
    character in common, matched one-to-one maximising the overlapping characters.
    """
    if mode not in ("exact", "overlap"):
        raise ValueError(f"mode must be 'exact' or 'overlap', got {mode!r}")
    if not a or not b:
        return _f1(len(a), len(b), [])
    if len(a) * len(b) <= SMALL_PAIRS:
        spans_b = [(region_label(r), r["value"]["start"], r["value"]["end"]) for r in b]
        edges: list[tuple[int, int, float]] = []
        for i, r in enumerate(a):
            label, start, end = region_label(r), r["value"]["start"], r["value"]["end"]
            for j, (label_b, start_b, end_b) in enumerate(spans_b):
                if label != label_b:
                    continue
                if mode == "exact":
                    if start == start_b and end == end_b:
                        edges.append((i, j, float(end - start)))
                else:
                    overlap = min(end, end_b) - max(start, start_b)
                    if overlap > 0:
                        edges.append((i, j, float(overlap)))
        return _f1(len(a), len(b), _match_edges(edges, len(a), len(b)))
    sa = np.array([(r["value"]["start"], r["value"]["end"]) for r in a], dtype=np.int64)
    sb = np.array([(r["value"]["start"], r["value"]["end"]) for r in b], dtype=np.int64)
    la = np.array([region_label(r) for r in a], dtype=object)
    lb = np.array([region_label(r) for r in b], dtype=object)
    same = la[:, None] == lb[None, :]
    overlap = np.minimum(sa[:, None, 1], sb[None, :, 1]) - np.maximum(
        sa[:, None, 0], sb[None, :, 0]
    )
    if mode == "exact":
        ok = same & (sa[:, None, 0] == sb[None, :, 0]) & (sa[:, None, 1] == sb[None, :, 1])
    else:
        ok = same & (overlap > 0)
    return _f1(len(a), len(b), _match(overlap.astype(np.float64), ok))


@dataclass(frozen=True)
class PairwiseF1:
    """F1 agreement of region or span annotations.

    `overall`: micro F1 over every annotator pair of every item; `pair_f1[a, b]`
    (symmetric, NaN without shared items) indexed by `annotators`; `per_item`: mean F1
    over the item's annotator pairs (NaN with fewer than two annotations), aligned with
    `items`.
    """

    overall: float
    annotators: tuple[Hashable, ...]
    pair_f1: np.ndarray
    items: tuple[Hashable, ...]
    per_item: np.ndarray


def pairwise_f1(
    *,
    annotations: Sequence[tuple[Hashable, Hashable, Sequence[Region]]],
    score: Callable[[Sequence[Region], Sequence[Region]], F1],
) -> PairwiseF1:
    """Return F1 agreement per project, annotator pair and item.

    `annotations` are (item, annotator, regions) with one per (item, annotator);
    `score` compares two annotations of one item, e.g. `region_f1` or
    `functools.partial(span_f1, mode="overlap")`. F1 is symmetric in its arguments,
    so each unordered pair is scored once. Raises ValueError on a repeated pair.
    """
    encoded = ratings_encode([(i, a, 0) for i, a, _ in annotations])
    first, second = rating_pairs(encoded)
    n_ann = len(encoded.annotators)
    counts = np.zeros((len(first), 3), dtype=np.int64)  # tp, fp, fn
    for k, (x, y) in enumerate(zip(first.tolist(), second.tolist(), strict=True)):
        result = score(annotations[x][2], annotations[y][2])
        counts[k] = (result.tp, result.fp, result.fn)
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)
    total = int(denom.sum())
    overall = float("nan") if not len(first) else (1.0 if total == 0 else 2 * int(tp.sum()) / total)

    a, b = encoded.annotator[first], encoded.annotator[second]
    pair_sum = np.zeros((n_ann, n_ann, 3), dtype=np.int64)
    np.add.at(pair_sum, (a, b), counts)
    pair_sum = pair_sum + pair_sum.transpose(1, 0, 2)
    has = np.zeros((n_ann, n_ann), dtype=bool)
    has[a, b] = has[b, a] = True
    p_denom = 2 * pair_sum[..., 0] + pair_sum[..., 1] + pair_sum[..., 2]
    pair_f1 = np.where(p_denom > 0, 2 * pair_sum[..., 0] / np.maximum(p_denom, 1), 1.0)
    pair_f1[~has] = np.nan

    items = encoded.item[first]
    n_items = len(encoded.items)
    n_pairs = np.bincount(items, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_item = np.bincount(items, weights=f1, minlength=n_items) / n_pairs
    return PairwiseF1(
        overall=overall,
        annotators=encoded.annotators,
        pair_f1=pair_f1,
        items=encoded.items,
        per_item=per_item,
    )
