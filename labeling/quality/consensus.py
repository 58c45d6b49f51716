"""Consensus labels from several annotators: pure functions, no database.

Classification:
- `majority_vote`: the most chosen class; confidence = its vote share. Ties go to the
  class chosen most often in the whole project, then to the first in `labels` order
  (by default the order of first appearance).
- `dawid_skene`: the EM estimate of Dawid & Skene (1979), "Maximum likelihood
  estimation of observer error-rates using the EM algorithm". Each annotator has a
  confusion matrix pi[a, true, given]; the classes have a prior. Initialised from the
  soft majority vote (each item's vote shares as its class posterior), then
  M-step (prior and confusion matrices from the posteriors, with a small pseudo-count so
  that a class an annotator never gave keeps a nonzero probability) and E-step
  (posterior of each item's class, in log space) alternate until no posterior moves by
  more than `tol`. Vectorised: every step is a handful of numpy bincounts over the
  ratings, O(ratings x classes). Confidence = posterior of the chosen class.
  Implemented here rather than taken from crowd-kit (1.4.2 installs transformers,
  nltk and scikit-learn, ~780 MB in a fresh venv, and `import crowdkit.aggregation`
  takes ~3 s on the 2-core reference machine).

Boxes: `box_consensus` clusters the annotators' boxes of one image by IoU (an annotator
adds at most one box to a cluster) and fuses each cluster by weighted box fusion
(Solovyev et al. 2021, "Weighted boxes fusion", as the ensemble-boxes package does
with every score 1 or the annotator weight): the fused box is the weight-averaged
corner coordinates of its members. IoU does not depend on scale, so pixel coordinates
are used directly (ensemble-boxes needs [0, 1] coordinates only for its own reasons).

Spans: `span_consensus` keeps, per label, the characters that more than half of the
annotators put in a span of that label; contiguous runs become spans, split where more
than half of the annotators start a new span (two adjacent entities stay two). It
sweeps over span boundaries, so a long text costs no more than a short one.

`items_for_review` lists the items whose consensus confidence is below a threshold.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeling.quality.agreement import (
    EncodedRatings,
    Rating,
    Region,
    ratings_encode,
    region_f1,
    region_label,
    span_f1,
)

# --------------------------------------------------------------------------------------
# Classification


@dataclass(frozen=True)
class ClassConsensus:
    """One consensus label per item: `label[i]` (an index into `labels`) and
    `confidence[i]` in [0, 1], aligned with `items`."""

    items: tuple[Hashable, ...]
    labels: tuple[Hashable, ...]
    label: np.ndarray
    confidence: np.ndarray

    def as_dict(self) -> dict[Hashable, tuple[Hashable, float]]:
        """Return {item: (label, confidence)}."""
        labels = self.labels
        return {
            item: (labels[k], c)
            for item, k, c in zip(
                self.items, self.label.tolist(), self.confidence.tolist(), strict=True
            )
        }


def _encode(
    ratings: Sequence[Rating] | EncodedRatings, labels: Sequence[Hashable] | None
) -> EncodedRatings:
    if isinstance(ratings, EncodedRatings):
        return ratings
    return ratings_encode(ratings, labels=labels)


def majority_vote(
    *, ratings: Sequence[Rating] | EncodedRatings, labels: Sequence[Hashable] | None = None
) -> ClassConsensus:
    """Return the majority label of each item with its vote share as confidence.

    Ties go to the class with more ratings in the whole project, then to the earlier
    class in `labels` (or order of first appearance). Pure, deterministic, vectorised.
    Raises ValueError on a repeated (item, annotator).
    """
    encoded = _encode(ratings, labels)
    if not encoded.items:
        return ClassConsensus((), encoded.labels, np.zeros(0, np.int64), np.zeros(0))
    counts = encoded.counts()
    n_labels = counts.shape[1]
    totals = counts.sum(axis=0)
    # rank[c]: n_labels - 1 for the most frequent class ... 0 for the least; stable sort
    # keeps `labels` order among classes with equal totals.
    order = np.argsort(-totals, kind="stable")
    rank = np.empty(n_labels, dtype=np.int64)
    rank[order] = np.arange(n_labels - 1, -1, -1)
    label = np.argmax(counts.astype(np.int64) * (n_labels + 1) + rank, axis=1)
    votes = counts.sum(axis=1)
    confidence = counts[np.arange(len(label)), label] / np.maximum(votes, 1)
    return ClassConsensus(encoded.items, encoded.labels, label, confidence.astype(np.float64))


@dataclass(frozen=True)
class DawidSkene(ClassConsensus):
    """Dawid-Skene consensus plus what EM learnt about the annotators.

    `posterior[i, k]`: P(item i is class k); `prior[k]`; `confusion[a, k, l]`:
    P(annotator a says l | true class k), rows sum to 1, indexed by `annotators`;
    `accuracy[a]` = sum_k prior[k] * confusion[a, k, k] (the chance the annotator is right
    on an item drawn from the estimated class prior).
    """

    posterior: np.ndarray
    prior: np.ndarray
    annotators: tuple[Hashable, ...]
    confusion: np.ndarray
    accuracy: np.ndarray
    iterations: int
    converged: bool


def _soft_votes(encoded: EncodedRatings) -> np.ndarray:
    counts = encoded.counts().astype(np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def dawid_skene(
    *,
    ratings: Sequence[Rating] | EncodedRatings,
    labels: Sequence[Hashable] | None = None,
    max_iter: int = 500,
    tol: float = 1e-5,
    pseudo_count: float = 0.01,
) -> DawidSkene:
    """Return the Dawid-Skene consensus of classification ratings (see module doc).

    Deterministic (no random start). `pseudo_count` is added to every confusion-matrix
    cell and class count before normalising. Stops after `max_iter` iterations even if
    not converged (`converged` says which). Raises ValueError on a repeated
    (item, annotator) or bad arguments.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if pseudo_count < 0:
        raise ValueError(f"pseudo_count must not be negative, got {pseudo_count}")
    encoded = _encode(ratings, labels)
    n_items, n_ann, n_lab = len(encoded.items), len(encoded.annotators), len(encoded.labels)
    if not n_items:
        return DawidSkene(
            items=(),
            labels=encoded.labels,
            label=np.zeros(0, np.int64),
            confidence=np.zeros(0),
            posterior=np.zeros((0, n_lab)),
            prior=np.full(n_lab, 1.0 / n_lab) if n_lab else np.zeros(0),
            annotators=(),
            confusion=np.zeros((0, n_lab, n_lab)),
            accuracy=np.zeros(0),
            iterations=0,
            converged=True,
        )
    item, ann, given = encoded.item, encoded.annotator, encoded.label
    ann_given = ann * n_lab + given
    posterior = _soft_votes(encoded)
    prior = np.full(n_lab, 1.0 / max(n_lab, 1))
    confusion = np.zeros((n_ann, n_lab, n_lab))
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        # M-step: prior and each annotator's confusion matrix from the posteriors.
        class_mass = posterior.sum(axis=0) + pseudo_count
        prior = class_mass / class_mass.sum()
        weights = posterior[item]  # ratings x classes
        for k in range(n_lab):
            confusion[:, k, :] = np.bincount(
                ann_given, weights=weights[:, k], minlength=n_ann * n_lab
            ).reshape(n_ann, n_lab)
        confusion += pseudo_count
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log P(class k) + sum over the item's ratings of log pi[a, k, given].
        log_conf = np.log(confusion)
        log_post = np.empty((n_items, n_lab))
        for k in range(n_lab):
            log_post[:, k] = np.bincount(item, weights=log_conf[ann, k, given], minlength=n_items)
        log_post += np.log(prior)
        log_post -= log_post.max(axis=1, keepdims=True)
        new = np.exp(log_post)
        new /= new.sum(axis=1, keepdims=True)
        change = float(np.abs(new - posterior).max()) if n_items else 0.0
        posterior = new
        if change < tol:
            converged = True
            break
    label = np.argmax(posterior, axis=1)
    confidence = posterior[np.arange(n_items), label]
    accuracy = np.einsum("k,akk->a", prior, confusion)
    return DawidSkene(
        items=encoded.items,
        labels=encoded.labels,
        label=label,
        confidence=confidence,
        posterior=posterior,
        prior=prior,
        annotators=encoded.annotators,
        confusion=confusion.copy(),
        accuracy=accuracy,
        iterations=iterations,
        converged=converged,
    )


def items_for_review(
    *, items: Sequence[Hashable], confidence: Sequence[float] | np.ndarray, threshold: float
) -> list[Hashable]:
    """Return the items whose confidence is below `threshold`, least confident first
    (ties in the given order). NaN confidence counts as below any threshold."""
    conf = np.asarray(confidence, dtype=np.float64)
    if len(conf) != len(items):
        raise ValueError(f"{len(items)} items but {len(conf)} confidences")
    conf = np.where(np.isnan(conf), -np.inf, conf)
    low = np.flatnonzero(conf < threshold)
    low = low[np.argsort(conf[low], kind="stable")]
    return [items[i] for i in low.tolist()]


# --------------------------------------------------------------------------------------
# Boxes


@dataclass(frozen=True)
class FusedBox:
    """One consensus box: a rectanglelabels region (no id), the share of annotator
    weight that drew it (`confidence`) and which annotators did (`members`, indexes
    into the annotations list)."""

    region: Region
    confidence: float
    members: tuple[int, ...]


class _Cluster:
    """Boxes of one object: weighted and plain sums of the corners, and who drew them.

    The fused box is the weighted mean of the corners, or the plain mean while every
    member has weight 0 (so a zero-weight annotator's box is still a box).
    """

    __slots__ = ("members", "weighted", "plain", "weight")

    def __init__(self) -> None:
        self.members: list[int] = []
        self.weighted = [0.0, 0.0, 0.0, 0.0]
        self.plain = [0.0, 0.0, 0.0, 0.0]
        self.weight = 0.0

    def add(self, member: int, weight: float, *corners: float) -> None:
        self.members.append(member)
        self.weight += weight
        for k, c in enumerate(corners):
            self.weighted[k] += weight * c
            self.plain[k] += c

    def box(self) -> tuple[float, float, float, float]:
        if self.weight > 0:
            s, w = self.weighted, self.weight
        else:
            s, w = self.plain, float(len(self.members))
        return (s[0] / w, s[1] / w, s[2] / w, s[3] / w)


def box_consensus(
    annotations: Sequence[Sequence[Region]],
    *,
    iou_threshold: float = 0.5,
    min_share: float = 0.5,
    weights: Sequence[float] | None = None,
) -> list[FusedBox]:
    """Return the fused boxes of one image annotated by several annotators.

    `annotations[j]` is annotator j's list of rectanglelabels regions (an empty list
    counts: that annotator saw nothing). Boxes are visited annotator by annotator in
    region order; each joins the cluster of the same label whose fused box has the
    highest IoU >= iou_threshold and no box from that annotator yet, else starts a new
    cluster; the fused box is the weight-averaged [x1, y1, x2, y2] of its members.
    A cluster is kept when its weight share is > min_share (default: drawn by a
    majority); confidence = that share. Output is sorted by label, then y, then x.
    Deterministic; raises ValueError on a non-box region or bad weights.
    """
    n = len(annotations)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != n or (w < 0).any() or (n and w.sum() <= 0):
        raise ValueError("weights must give one non-negative weight per annotation, not all 0")
    total = float(w.sum()) if n else 1.0
    weight = w.tolist()
    # Per label, the clusters in creation order. Plain floats: an image has a handful of
    # boxes, where numpy's per-call overhead would cost more than the arithmetic.
    clusters: dict[str, list[_Cluster]] = {}
    for j, regions in enumerate(annotations):
        for r in regions:
            if r.get("type") != "rectanglelabels":
                raise ValueError(
                    f"annotations[{j}]: box consensus needs rectanglelabels regions, got {r.get('type')!r}"
                )
            v = r["value"]
            x1, y1 = float(v["x"]), float(v["y"])
            x2, y2 = x1 + float(v["width"]), y1 + float(v["height"])
            area = (x2 - x1) * (y2 - y1)
            candidates = clusters.setdefault(region_label(r), [])
            best, best_iou = None, 0.0
            for cluster in candidates:
                if j in cluster.members:
                    continue
                fx1, fy1, fx2, fy2 = cluster.box()
                iw = min(x2, fx2) - max(x1, fx1)
                ih = min(y2, fy2) - max(y1, fy1)
                if iw <= 0 or ih <= 0:
                    continue
                inter = iw * ih
                iou = inter / (area + (fx2 - fx1) * (fy2 - fy1) - inter)
                if iou > best_iou:  # strict: the first of equal clusters wins
                    best, best_iou = cluster, iou
            if best is None or best_iou < iou_threshold - 1e-12:
                best = _Cluster()
                candidates.append(best)
            best.add(j, weight[j], x1, y1, x2, y2)
    out: list[FusedBox] = []
    for label, candidates in clusters.items():
        for cluster in candidates:
            share = sum(weight[m] for m in cluster.members) / total
            if share <= min_share:
                continue
            x1, y1, x2, y2 = cluster.box()
            region = {
                "type": "rectanglelabels",
                "value": {
                    "x": x1,
                    "y": y1,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "rectanglelabels": [label],
                },
            }
            out.append(FusedBox(region, share, tuple(sorted(cluster.members))))
    out.sort(key=lambda f: (region_label(f.region), f.region["value"]["y"], f.region["value"]["x"]))
    return out


# --------------------------------------------------------------------------------------
# Spans


@dataclass(frozen=True)
class ConsensusSpan:
    """One consensus span: a `labels` region (no id) and its confidence, the mean share
    of annotators that put each of its characters in a span of its label."""

    region: Region
    confidence: float


def span_consensus(
    annotations: Sequence[Sequence[Region]], *, text: str | None = None
) -> list[ConsensusSpan]:
    """Return the majority spans of one text annotated by several annotators.

    A character is in a consensus span of label L when more than half of the
    annotators (len(annotations), empty annotations included) cover it with an L span
    (an annotator's overlapping spans count once). Contiguous runs of such characters
    become spans, split at a position where more than half of the annotators start an
    L span while also covering the character before it. `text`, when given, fills each
    span's "text". Sorted by start, then label. Raises ValueError on a non-span region.
    """
    n = len(annotations)
    if n == 0:
        return []
    # label -> annotator -> [(start, end)]
    by_label: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for j, regions in enumerate(annotations):
        for r in regions:
            if r.get("type") != "labels":
                raise ValueError(
                    f"annotations[{j}]: span consensus needs labels regions, got {r.get('type')!r}"
                )
            v = r["value"]
            by_label.setdefault(region_label(r), {}).setdefault(j, []).append(
                (int(v["start"]), int(v["end"]))
            )
    out: list[ConsensusSpan] = []
    for label, spans_of in by_label.items():
        for start, end, votes in _majority_runs(spans_of, n):
            value: dict[str, Any] = {"start": start, "end": end}
            if text is not None:
                value["text"] = text[start:end]
            value["labels"] = [label]
            out.append(
                ConsensusSpan(
                    region={"type": "labels", "value": value},
                    confidence=votes / ((end - start) * n),
                )
            )
    out.sort(key=lambda s: (s.region["value"]["start"], region_label(s.region)))
    return out


def _majority_runs(
    spans_of: dict[int, list[tuple[int, int]]], n: int
) -> list[tuple[int, int, int]]:
    """Return (start, end, character votes) of the majority runs of one label.

    A sweep over span boundaries, so the cost depends on the number of spans, not on
    the length of the text. `character votes` sums, over the run's characters, how many
    annotators cover each.
    """
    delta: dict[int, int] = {}  # coverage change at a position
    split_votes: dict[int, int] = {}
    for spans in spans_of.values():
        spans.sort()
        merged: list[list[int]] = []  # the annotator's union; touching spans stay apart
        for s, e in spans:
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        starts = [m[0] for m in merged]
        splits = set()
        for s, _ in spans:
            # A start where the annotator also covers the character before: a boundary.
            k = bisect_right(starts, s - 1) - 1
            if s > 0 and k >= 0 and merged[k][1] > s - 1:
                splits.add(s)
        for s, e in merged:
            delta[s] = delta.get(s, 0) + 1
            delta[e] = delta.get(e, 0) - 1
        for p in splits:
            split_votes[p] = split_votes.get(p, 0) + 1
    cuts = {p for p, v in split_votes.items() if 2 * v > n}
    points = sorted(delta.keys() | cuts)
    runs: list[tuple[int, int, int]] = []
    count = 0
    run_start: int | None = None
    run_votes = 0
    for here, following in zip(points, [*points[1:], None], strict=True):
        count += delta.get(here, 0)
        if run_start is not None and (2 * count <= n or here in cuts):
            runs.append((run_start, here, run_votes))
            run_start = None
        if run_start is None and 2 * count > n:
            run_start, run_votes = here, 0
        if run_start is not None and following is not None:
            run_votes += count * (following - here)
    return runs


# --------------------------------------------------------------------------------------
# One task, as it finishes


@dataclass(frozen=True)
class TaskConsensus:
    """The consensus of one task's annotations: the `result` to publish, its
    `confidence` (0..1) and, when the result is one annotator's own, which (`chosen`,
    an index into the annotations; None for fused boxes and majority spans)."""

    result: list[Region]
    confidence: float
    chosen: int | None
    method: str


def _class_key(result: Sequence[Region]) -> str:
    """A classification result as one comparable key ("" is "nothing here")."""
    if not result:
        return ""
    return "+".join(sorted(result[0]["value"].get("choices") or []))


def _comparable(result: Sequence[Region]) -> str:
    regions = [{k: v for k, v in region.items() if k != "id"} for region in result]
    return json.dumps(sorted(json.dumps(r, sort_keys=True) for r in regions))


def _most_common(keys: Sequence[str]) -> tuple[int, float]:
    """The index of the first key among the most common ones, and their share."""
    counts = Counter(keys)
    best = max(counts.values())
    return next(i for i, key in enumerate(keys) if counts[key] == best), best / len(keys)


def _mean_pairwise(results: Sequence[Sequence[Region]], score: Any) -> tuple[float, list[float]]:
    """The mean pairwise score and, per annotation, its summed score with the others."""
    n = len(results)
    sums = [0.0] * n
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            value = score(results[i], results[j])
            sums[i] += value
            sums[j] += value
            total += value
            pairs += 1
    return (total / pairs if pairs else 1.0), sums


def _with_ids(regions: Sequence[Region]) -> list[Region]:
    return [{"id": f"c{k + 1}", **region} for k, region in enumerate(regions)]


def task_consensus(
    kind: str,
    results: Sequence[Sequence[Region]],
    *,
    iou_threshold: float = 0.5,
    text: str | None = None,
) -> TaskConsensus:
    """Return the consensus of the annotations of one task under a schema of type
    `kind`, as labelling publishes it when a task with overlap > 1 is finished.

    - image_class / text_class: the majority class (ties: the class of the earliest
      annotation among the tied); confidence = its vote share; the result is the first
      annotation that chose it.
    - bbox: the fused boxes of box_consensus; confidence = the mean pairwise IoU-matched
      F1 of the annotations (how far the annotators agree on the whole image).
    - ner: span_consensus; confidence = the mean pairwise exact span F1.
    - polygon: the medoid annotation (highest summed F1 with the others); confidence =
      the mean pairwise F1. Polygons are not averaged: their vertices do not correspond.
    - anything else (keypoints): the most common identical result (region ids aside);
      confidence = its share.
    One annotation is its own consensus with confidence 1.
    """
    if not results:
        raise ValueError("a task consensus needs at least one annotation")
    results = [list(r) for r in results]
    if len(results) == 1:
        return TaskConsensus(result=results[0], confidence=1.0, chosen=0, method="single")
    if kind in ("image_class", "text_class"):
        chosen, share = _most_common([_class_key(r) for r in results])
        return TaskConsensus(
            result=results[chosen], confidence=share, chosen=chosen, method="majority_vote"
        )
    if kind == "bbox":
        confidence, _ = _mean_pairwise(
            results, lambda a, b: region_f1(a, b, iou_threshold=iou_threshold).f1
        )
        fused = box_consensus(results, iou_threshold=iou_threshold)
        return TaskConsensus(
            result=_with_ids([f.region for f in fused]),
            confidence=confidence,
            chosen=None,
            method="weighted_box_fusion",
        )
    if kind == "ner":
        confidence, _ = _mean_pairwise(results, lambda a, b: span_f1(a, b, mode="exact").f1)
        spans = span_consensus(results, text=text)
        return TaskConsensus(
            result=_with_ids([s.region for s in spans]),
            confidence=confidence,
            chosen=None,
            method="span_majority",
        )
    if kind == "polygon":
        confidence, sums = _mean_pairwise(
            results, lambda a, b: region_f1(a, b, iou_threshold=iou_threshold).f1
        )
        chosen = max(range(len(results)), key=lambda i: (sums[i], -i))
        return TaskConsensus(
            result=results[chosen], confidence=confidence, chosen=chosen, method="medoid"
        )
    chosen, share = _most_common([_comparable(r) for r in results])
    return TaskConsensus(
        result=results[chosen], confidence=share, chosen=chosen, method="identical"
    )


def gold_score(
    kind: str,
    gold: Sequence[Region],
    answer: Sequence[Region],
    *,
    iou_threshold: float = 0.5,
) -> float:
    """Return how well `answer` matches the known answer `gold` of a gold task, 0..1.

    Classification: 1 for the same class (set of classes with `multiple`), else 0.
    Boxes and polygons: the IoU-matched F1 (same label, IoU >= iou_threshold).
    Spans: the exact span F1. Anything else: 1 when identical (region ids aside).
    "Nothing here" against "nothing here" is 1.
    """
    if kind in ("image_class", "text_class"):
        return 1.0 if _class_key(gold) == _class_key(answer) else 0.0
    if kind in ("bbox", "polygon"):
        return region_f1(gold, answer, iou_threshold=iou_threshold).f1
    if kind == "ner":
        return span_f1(gold, answer, mode="exact").f1
    return 1.0 if _comparable(gold) == _comparable(answer) else 0.0
