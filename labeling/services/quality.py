"""Labelling quality of a project: agreement and consensus from its stored annotations.

`project_quality(project=...)` reads the latest revision of every annotation of the
project (an Annotation's content is its revision number `revision_count`) and feeds the
pure functions of labeling.quality. What it guarantees:

- It writes nothing and takes no lock: a read-only summary (review and publishing of
  consensus labels are separate steps).
- One query, streamed through a server-side cursor (`.iterator(chunk_size=...)`) in
  task order, as `values_list` tuples (no model instances). Classification keeps only
  integer arrays (three int64 per annotation); region and span schemas keep only the
  current task's annotations plus fixed-size counters, so memory does not grow with
  the number of tasks beyond those arrays and the review list.
- Deterministic: the same annotations give the same dict (tasks in id order,
  annotators in first-appearance order by task id then slot, no clock, no random).
- The result is plain JSON: floats rounded to 6 decimals, NaN (an undefined
  statistic, e.g. every rating the same class) becomes None; annotators are named by
  username; tasks by id.
- Tasks with fewer than two annotations count in consensus but not in agreement (as
  the pure functions define it); a region or span task with one annotation has no
  confidence (None) and is listed for review, as items_for_review treats NaN. An empty classification result ("nothing here") is
  not a rating and is left out (counted in `empty`).

Classification (image_class / text_class): Krippendorff's alpha, Fleiss' kappa, Cohen's
kappa of every annotator pair (matrix over `annotators`), majority vote and Dawid-Skene
consensus; Dawid-Skene's estimated annotator accuracies; the review list is the tasks
whose Dawid-Skene confidence is below `threshold`, least confident first. With
`multiple` choices, a rating is the sorted set of choices ("a+b"), one class per set.

Regions (bbox / polygon): F1 of every annotator pair of a task (region_f1, IoU >=
`iou_threshold`), micro-averaged overall and per annotator pair exactly as
labeling.quality.agreement.pairwise_f1 defines them, but accumulated task by task;
a task's confidence is its mean pairwise F1. For boxes, box_consensus per task.

Spans (ner): span F1 exact and overlap the same way; a task's confidence is its mean
exact-match F1; span_consensus per task.

Review lists hold the first REVIEW_LIMIT task ids (least confident first) and the count.
With `items=True` the dict also lists every task's consensus and confidence (large).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import F

from labeling.models import AnnotationRevision, Project
from labeling.quality.agreement import (
    F1,
    EncodedRatings,
    classification_agreement,
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

REVIEW_LIMIT = 1000
CHUNK_SIZE = 5000
DIGITS = 6
CLASSIFICATION = ("image_class", "text_class")
REGIONS = ("bbox", "polygon")


def _num(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, DIGITS)


def _rows(project: Project) -> Iterator[tuple[int, int, Any]]:
    """(task id, annotator id, result) of the latest revision of every annotation of the
    project's tasks (gold tasks aside)."""
    return (
        AnnotationRevision.objects.filter(
            annotation__project=project, number=F("annotation__revision_count")
        )
        # Gold tasks measure annotators against a known answer, not against each other.
        .exclude(annotation__task__status="gold")
        .order_by("annotation__task_id", "annotation__slot")
        .values_list("annotation__task_id", "annotation__annotator_id", "result")
        .iterator(chunk_size=CHUNK_SIZE)
    )


def _usernames(ids: Sequence[int]) -> list[str]:
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    return [names[i] for i in ids]


def _review(items: Sequence[int], confidence: np.ndarray, threshold: float) -> dict[str, Any]:
    low = items_for_review(items=items, confidence=confidence, threshold=threshold)
    return {"threshold": threshold, "count": len(low), "tasks": low[:REVIEW_LIMIT]}


def project_quality(
    *,
    project: Project,
    threshold: float = 0.7,
    iou_threshold: float = 0.5,
    items: bool = False,
) -> dict[str, Any]:
    """Return the agreement and consensus summary of `project` (see the module doc).

    Raises ValueError when the project has no schema or its type has no quality
    measure here (keypoint).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    revision = project.schema_revision
    if revision is None:
        raise ValueError(f"project {project.pk} has no label schema")
    schema = revision.schema
    kind = schema["type"]
    base = {"project": project.pk, "type": kind}
    if kind in CLASSIFICATION:
        return base | _classification(project, schema, threshold, items)
    if kind in REGIONS:
        score = partial(region_f1, iou_threshold=iou_threshold)
        consensus = _box_consensus(iou_threshold) if kind == "bbox" else None
        return base | _pairwise(project, {"f1": score}, "f1", consensus, threshold, items)
    if kind == "ner":
        scores = {
            "f1_exact": partial(span_f1, mode="exact"),
            "f1_overlap": partial(span_f1, mode="overlap"),
        }
        return base | _pairwise(project, scores, "f1_exact", _span_consensus, threshold, items)
    raise ValueError(f"project {project.pk}: no quality measure for {kind!r} schemas")


# --------------------------------------------------------------------------------------
# Classification


def _classification(
    project: Project, schema: dict[str, Any], threshold: float, with_items: bool
) -> dict[str, Any]:
    names = [label["name"] for label in schema["labels"]]
    multiple = bool(schema.get("multiple"))
    code_of: dict[Any, int] = {name: k for k, name in enumerate(names)}
    labels: list[str] = list(names)
    annotator_code: dict[int, int] = {}
    annotator_ids: list[int] = []
    task_ids = array("q")
    item, annotator, label = array("q"), array("q"), array("q")
    empty = 0
    last_task = None
    for task_id, annotator_id, result in _rows(project):
        choices = result[0]["value"]["choices"] if result else None
        if not choices:
            empty += 1
            continue
        key = "+".join(sorted(choices)) if multiple else choices[0]
        code = code_of.get(key)
        if code is None:  # a set of choices (multiple), or a label since removed
            code = code_of[key] = len(labels)
            labels.append(key)
        a = annotator_code.get(annotator_id)
        if a is None:
            a = annotator_code[annotator_id] = len(annotator_ids)
            annotator_ids.append(annotator_id)
        if task_id != last_task:
            task_ids.append(task_id)
            last_task = task_id
        item.append(len(task_ids) - 1)
        annotator.append(a)
        label.append(code)
    usernames = _usernames(annotator_ids)
    encoded = EncodedRatings(
        items=tuple(task_ids),
        annotators=tuple(usernames),
        labels=tuple(labels),
        item=np.frombuffer(item, dtype=np.int64),
        annotator=np.frombuffer(annotator, dtype=np.int64),
        label=np.frombuffer(label, dtype=np.int64),
    )
    del item, annotator, label
    agreement = classification_agreement(ratings=encoded)
    mv = majority_vote(ratings=encoded)
    ds = dawid_skene(ratings=encoded)
    out: dict[str, Any] = {
        "tasks": len(encoded.items),
        "annotations": len(encoded.item),
        "empty": empty,
        "labels": labels,
        "annotators": usernames,
        "alpha": _num(agreement.alpha),
        "fleiss_kappa": _num(agreement.fleiss_kappa),
        "cohen_kappa": [[_num(v) for v in row] for row in agreement.pairs.kappa.tolist()],
        "shared_tasks": agreement.pairs.shared.tolist(),
        "majority_vote": {
            "mean_confidence": _num(mv.confidence.mean()) if len(mv.items) else None,
            "label_counts": _label_counts(mv.label, labels),
        },
        "dawid_skene": {
            "mean_confidence": _num(ds.confidence.mean()) if len(ds.items) else None,
            "label_counts": _label_counts(ds.label, labels),
            "prior": {name: _num(p) for name, p in zip(labels, ds.prior.tolist(), strict=True)},
            "accuracy": {
                name: _num(acc) for name, acc in zip(usernames, ds.accuracy.tolist(), strict=True)
            },
            "iterations": ds.iterations,
            "converged": ds.converged,
            "agrees_with_majority": _num((ds.label == mv.label).mean()) if len(ds.items) else None,
        },
        "review": _review(encoded.items, ds.confidence, threshold),
    }
    if with_items:
        out["items"] = [
            {
                "task": task,
                "agreement": _num(agree),
                "majority_vote": labels[m],
                "majority_confidence": _num(mc),
                "dawid_skene": labels[d],
                "dawid_skene_confidence": _num(dc),
            }
            for task, agree, m, mc, d, dc in zip(
                encoded.items,
                agreement.per_item.tolist(),
                mv.label.tolist(),
                mv.confidence.tolist(),
                ds.label.tolist(),
                ds.confidence.tolist(),
                strict=True,
            )
        ]
    return out


def _label_counts(codes: np.ndarray, labels: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(codes, minlength=len(labels)).tolist()
    return dict(zip(labels, counts, strict=True))


# --------------------------------------------------------------------------------------
# Regions and spans


def _box_consensus(iou_threshold: float) -> Callable[[list[list[dict]]], list[dict]]:
    def fuse(annotations: list[list[dict]]) -> list[dict]:
        fused = box_consensus(annotations, iou_threshold=iou_threshold)
        return [{"region": f.region, "confidence": f.confidence} for f in fused]

    return fuse


def _span_consensus(annotations: list[list[dict]]) -> list[dict]:
    return [{"region": s.region, "confidence": s.confidence} for s in span_consensus(annotations)]


def _pairwise(
    project: Project,
    scores: dict[str, Callable[[Sequence[dict], Sequence[dict]], F1]],
    review_by: str,
    consensus: Callable[[list[list[dict]]], list[dict]] | None,
    threshold: float,
    with_items: bool,
) -> dict[str, Any]:
    annotator_code: dict[int, int] = {}
    annotator_ids: list[int] = []
    # per score: tp, fp, fn summed over all pairs, and per annotator pair (grown lazily)
    totals = {name: np.zeros(3, dtype=np.int64) for name in scores}
    pair_sums: dict[str, dict[tuple[int, int], list[int]]] = {name: {} for name in scores}
    task_ids = array("q")
    confidence = array("d")
    consensus_regions = 0
    consensus_confidence = 0.0
    annotations = 0
    per_item: list[dict[str, Any]] = []

    def finish(task_id: int, group: list[tuple[int, list[dict]]]) -> None:
        nonlocal consensus_regions, consensus_confidence
        group.sort()  # by annotator code: pairs (a, b) with a < b, as pairwise_f1
        f1_sum = 0.0
        pairs = 0
        for i in range(len(group)):
            a, ra = group[i]
            for j in range(i + 1, len(group)):
                b, rb = group[j]
                pairs += 1
                for name, score in scores.items():
                    res = score(ra, rb)
                    totals[name] += (res.tp, res.fp, res.fn)
                    sums = pair_sums[name].setdefault((a, b), [0, 0, 0])
                    sums[0] += res.tp
                    sums[1] += res.fp
                    sums[2] += res.fn
                    if name == review_by:
                        f1_sum += res.f1
        task_ids.append(task_id)
        confidence.append(f1_sum / pairs if pairs else math.nan)
        fused = consensus([r for _, r in group]) if consensus is not None else None
        if fused is not None:
            consensus_regions += len(fused)
            consensus_confidence += sum(f["confidence"] for f in fused)
        if with_items:
            per_item.append(
                {
                    "task": task_id,
                    "annotations": len(group),
                    "confidence": _num(confidence[-1]),
                    "consensus": None
                    if fused is None
                    else [f["region"] | {"confidence": _num(f["confidence"])} for f in fused],
                }
            )

    group: list[tuple[int, list[dict]]] = []
    last_task = None
    for task_id, annotator_id, result in _rows(project):
        if task_id != last_task:
            if group:
                finish(last_task, group)
            group, last_task = [], task_id
        a = annotator_code.get(annotator_id)
        if a is None:
            a = annotator_code[annotator_id] = len(annotator_ids)
            annotator_ids.append(annotator_id)
        group.append((a, result or []))
        annotations += 1
    if group:
        finish(last_task, group)

    usernames = _usernames(annotator_ids)
    n = len(usernames)
    conf = np.frombuffer(confidence, dtype=np.float64) if len(confidence) else np.zeros(0)
    out: dict[str, Any] = {
        "tasks": len(task_ids),
        "annotations": annotations,
        "annotators": usernames,
    }
    for name in scores:
        tp, fp, fn = totals[name].tolist()
        denom = 2 * tp + fp + fn
        any_pair = bool(pair_sums[name])
        out[name] = (None if not any_pair else 1.0) if denom == 0 else _num(2 * tp / denom)
        matrix: list[list[float | None]] = [[None] * n for _ in range(n)]
        for (a, b), (ptp, pfp, pfn) in pair_sums[name].items():
            d = 2 * ptp + pfp + pfn
            matrix[a][b] = matrix[b][a] = 1.0 if d == 0 else _num(2 * ptp / d)
        out[f"pair_{name}"] = matrix
    out["mean_task_confidence"] = _num(np.nanmean(conf)) if np.isfinite(conf).any() else None
    if consensus is not None:
        out["consensus"] = {
            "regions": consensus_regions,
            "mean_confidence": _num(consensus_confidence / consensus_regions)
            if consensus_regions
            else None,
        }
    out["review"] = _review(tuple(task_ids), conf, threshold)
    if with_items:
        out["items"] = per_item
    return out
