"""`bench quality`: agreement and consensus of N items x K annotations, timed.

1. A PostgreSQL database of the bench's own (`--database`, created, migrated, dropped at
   the end unless --keep; datasets.bench._common.own_database).
2. N image items COPY-loaded as in `bench queue` (its _copy_items), an image_class
   project of 5 classes with overlap K made by `project_create` (its tasks job goes to
   a private Celery queue nobody reads) and `project_tasks_create`; then, COPY-loaded,
   K annotations per task (distinct annotators drawn from a pool of --annotators) with
   one revision each. Every item has a true class (class shares 40/25/15/12/8 %), each
   annotator a known accuracy (evenly from 0.55 to 0.95; a wrong answer is one of the
   other classes at random). numpy's generator with a fixed seed: the same data each run.
3. VACUUM ANALYZE, then `project_quality(project=..., items=True)` is timed: the one
   streamed query, alpha, Fleiss' and Cohen's kappas, majority vote, Dawid-Skene and
   the review list, plus the per-task list (used below to score the consensus).

`--kind bbox`: a bbox project instead; every image has 3 true boxes, each annotator
draws each with probability = their accuracy (corners jittered by up to (1 - accuracy)
x 20 % of the box), else misses it or gives it another label (half and half).
project_quality computes pairwise F1 (region_f1) and box consensus task by task.

Result keys: bench, kind, items, annotations, annotators, seconds (project_quality),
load_seconds, peak_rss_mb (this process, sampled every 0.2 s during the timed call),
alpha, fleiss_kappa, mv_accuracy and ds_accuracy (share of items whose consensus is
the true class), ds_accuracy_error (mean |estimated - true| annotator accuracy),
ds_iterations, review_count; with --kind bbox instead of alpha ... ds_iterations: f1
(pairwise), consensus_f1 (consensus boxes against the true boxes, IoU >= 0.5),
consensus_boxes, mean_task_confidence. The issue's acceptance: seconds < 60 at 100,000 x 3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from datasets.bench._common import Log, RssSampler, forget_queue, own_database, sending_to
from datasets.models import Dataset
from datasets.services.datasets import dataset_create
from labeling.bench.queue import COPY_CHUNK, HEIGHT, WIDTH, _copy_items
from labeling.models import Annotation, AnnotationRevision, Project, Task
from labeling.quality.agreement import region_f1
from labeling.services.projects import Member, project_create, project_tasks_create
from labeling.services.quality import project_quality

HELP = (
    "Load N items with K classification annotations each (annotators of known "
    "accuracy) into a database of its own, then time project_quality: agreement, "
    "majority vote and Dawid-Skene."
)
LABELS = ("car", "person", "bicycle", "truck", "bus")
CLASS_SHARES = (0.40, 0.25, 0.15, 0.12, 0.08)
SEED = 20261126
BOXES = 3  # true objects per image (--kind bbox)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=100_000, help="items/tasks (100000)")
    parser.add_argument(
        "--annotations-per-item", type=int, default=3, help="annotations per task (3)"
    )
    parser.add_argument("--annotators", type=int, default=10, help="annotator pool (10)")
    parser.add_argument(
        "--database",
        default="lv_bench_quality",
        help="name of the bench's own PostgreSQL database, dropped first (lv_bench_quality)",
    )
    parser.add_argument(
        "--kind",
        choices=("class", "bbox"),
        default="class",
        help="class: one image_class label per annotation (default); bbox: boxes",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")


def summary(result: dict[str, Any]) -> str:
    if result["kind"] == "bbox":
        return (
            f"box quality of {result['items']} items x {result['annotations_per_item']} "
            f"annotations: {result['seconds']:.1f} s (load {result['load_seconds']:.1f} s, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB); pairwise F1 {result['f1']}, "
            f"consensus F1 against the truth {result['consensus_f1']}, "
            f"{result['review_count']} tasks for review"
        )
    return (
        f"quality of {result['items']} items x {result['annotations_per_item']} annotations: "
        f"{result['seconds']:.1f} s (load {result['load_seconds']:.1f} s, peak RSS "
        f"{result['peak_rss_mb']:.0f} MB); alpha {result['alpha']}, majority vote accuracy "
        f"{result['mv_accuracy']}, Dawid-Skene accuracy {result['ds_accuracy']} "
        f"({result['ds_iterations']} iterations), {result['review_count']} tasks for review"
    )


def run(
    *,
    out: IO[str],
    items: int,
    annotations_per_item: int,
    annotators: int = 10,
    database: str = "lv_bench_quality",
    kind: str = "class",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing."""
    if items < 1 or annotations_per_item < 2 or annotators < annotations_per_item:
        raise CommandError(
            "--items must be at least 1, --annotations-per-item at least 2 and "
            "--annotators at least --annotations-per-item"
        )
    if connection.vendor != "postgresql":
        raise CommandError(
            f"bench quality needs PostgreSQL (COPY, a database of its own); this process "
            f"uses {connection.vendor}. Set DATABASE_URL=postgres://user@host:5432/name."
        )
    log = Log(out, name="quality")
    queue = f"lvbench-{uuid.uuid4().hex[:10]}"
    with contextlib.ExitStack() as stack:
        stack.callback(forget_queue, queue)
        stack.enter_context(own_database(database, keep=keep, log=log, bench="quality"))
        stack.enter_context(sending_to(queue))
        started = time.monotonic()
        project_id, truth, accuracy, names = _load(
            items=items, per_item=annotations_per_item, annotators=annotators, kind=kind, log=log
        )
        load_seconds = time.monotonic() - started
        log(f"loaded {items} x {annotations_per_item} annotations in {load_seconds:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        project = Project.objects.select_related("schema_revision").get(pk=project_id)
        with RssSampler() as rss:
            started = time.monotonic()
            quality = project_quality(project=project, items=True)
            seconds = time.monotonic() - started
            rss.sample()
        log(f"project_quality: {seconds:.1f} s")
    common = {
        "bench": "quality",
        "kind": kind,
        "items": items,
        "annotations": quality["annotations"],
        "annotations_per_item": annotations_per_item,
        "annotators": annotators,
        "seconds": round(seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "peak_rss_mb": round(rss.peak_bytes / 2**20, 1),
    }
    if kind == "bbox":
        return common | _box_scores(quality, truth)
    per_task = quality["items"]
    # Tasks were made in item order, so the i-th task (by id) is the i-th item.
    mv = np.array([LABELS.index(t["majority_vote"]) for t in per_task])
    ds = np.array([LABELS.index(t["dawid_skene"]) for t in per_task])
    estimated = np.array([quality["dawid_skene"]["accuracy"][name] for name in names])
    return common | {
        "alpha": quality["alpha"],
        "fleiss_kappa": quality["fleiss_kappa"],
        "mv_accuracy": round(float((mv == truth).mean()), 4),
        "ds_accuracy": round(float((ds == truth).mean()), 4),
        "ds_accuracy_error": round(float(np.abs(estimated - accuracy).mean()), 4),
        "ds_iterations": quality["dawid_skene"]["iterations"],
        "review_count": quality["review"]["count"],
    }


def _box_scores(quality: dict[str, Any], truth: Any) -> dict[str, Any]:
    """Micro F1 of the consensus boxes against the true boxes (IoU >= 0.5, same label)."""
    tp = fp = fn = 0
    for row, true_boxes in zip(quality["items"], truth, strict=True):
        fused = [{k: v for k, v in c.items() if k != "confidence"} for c in row["consensus"]]
        score = region_f1(true_boxes, fused)
        tp, fp, fn = tp + score.tp, fp + score.fp, fn + score.fn
    return {
        "f1": quality["f1"],
        "consensus_f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "consensus_boxes": quality["consensus"]["regions"],
        "mean_task_confidence": quality["mean_task_confidence"],
        "review_count": quality["review"]["count"],
    }


def _load(
    *, items: int, per_item: int, annotators: int, kind: str, log: Log
) -> tuple[int, Any, np.ndarray, list[str]]:
    """Return (project id, true class per task in id order, annotator accuracies, names)."""
    User = get_user_model()
    owner = User.objects.create_user(username="bench-owner", password=None, is_superuser=True)
    dataset = dataset_create(created_by=owner, name="bench quality", kind=Dataset.Kind.IMAGE)
    _copy_items(dataset_id=dataset.pk, count=items)
    names = [f"annotator{n:03d}" for n in range(annotators)]
    users = User.objects.bulk_create(
        [User(username=name, password="!", is_active=True) for name in names]  # noqa: S106 - "!" is Django's unusable password
    )
    project = project_create(
        created_by=owner,
        name="bench quality",
        dataset=dataset,
        label_schema={
            "type": "image_class" if kind == "class" else "bbox",
            "labels": [{"name": n} for n in LABELS],
        },
        overlap=per_item,
        members=[Member(name) for name in names],
    )
    made = project_tasks_create(project=project)
    if made != items:
        raise CommandError(f"project_tasks_create made {made} tasks, not {items}")
    task_ids = np.array(
        Task.objects.filter(project=project).order_by("id").values_list("id", flat=True)
    )
    rng = np.random.default_rng(SEED)
    accuracy = np.linspace(0.55, 0.95, annotators)
    who = np.argsort(rng.random((items, annotators)), axis=1)[:, :per_item]
    annotator_ids = np.array([u.pk for u in users])[who]
    if kind == "bbox":
        true_boxes, results = _boxes(rng, items=items, accuracy=accuracy[who])
        _copy_annotations(
            project=project,
            task_ids=task_ids,
            annotator_ids=annotator_ids,
            result_of=lambda n, k: results[n][k],
            owner_id=owner.pk,
        )
        log(f"COPY of {items * per_item} annotations and revisions ({BOXES} boxes each)")
        return project.pk, true_boxes, accuracy, names
    n_labels = len(LABELS)
    truth = rng.choice(n_labels, size=items, p=CLASS_SHARES)
    right = rng.random((items, per_item)) < accuracy[who]
    wrong = (truth[:, None] + rng.integers(1, n_labels, size=(items, per_item))) % n_labels
    given = np.where(right, truth[:, None], wrong)
    results = [
        json.dumps([{"id": "r1", "type": "choices", "value": {"choices": [name]}}])
        for name in LABELS
    ]
    codes = given.tolist()
    _copy_annotations(
        project=project,
        task_ids=task_ids,
        annotator_ids=annotator_ids,
        result_of=lambda n, k: results[codes[n][k]],
        owner_id=owner.pk,
    )
    log(f"COPY of {items * per_item} annotations and revisions")
    return project.pk, truth, accuracy, names


def _copy_annotations(
    *,
    project: Project,
    task_ids: np.ndarray,
    annotator_ids: np.ndarray,
    result_of: Callable[[int, int], str],
    owner_id: int,
) -> None:
    """COPY one annotation (slot k, explicit id) and one revision per (task, k)."""
    now = timezone.now().isoformat()
    per_item = annotator_ids.shape[1]
    schema_revision_id = project.schema_revision_id
    annotation_sql = (
        f"COPY {Annotation._meta.db_table} (id, task_id, slot, annotator_id, project_id, "
        "revision_count, created_at, updated_at) FROM STDIN"
    )
    revision_sql = (
        f"COPY {AnnotationRevision._meta.db_table} (annotation_id, number, result, "
        "schema_revision_id, created_by_id, created_at) FROM STDIN"
    )
    tasks = task_ids.tolist()
    who = annotator_ids.tolist()
    count = len(tasks)
    rows_per_chunk = max(1, COPY_CHUNK // per_item)
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(annotation_sql) as copy:
            for start in range(0, count, rows_per_chunk):
                copy.write(
                    "".join(
                        f"{n * per_item + k + 1}\t{tasks[n]}\t{k}\t{who[n][k]}\t{project.pk}"
                        f"\t1\t{now}\t{now}\n"
                        for n in range(start, min(count, start + rows_per_chunk))
                        for k in range(per_item)
                    )
                )
        with raw.copy(revision_sql) as copy:
            for start in range(0, count, rows_per_chunk):
                copy.write(
                    "".join(
                        f"{n * per_item + k + 1}\t1\t{result_of(n, k)}\t"
                        f"{schema_revision_id}\t{who[n][k]}\t{now}\n"
                        for n in range(start, min(count, start + rows_per_chunk))
                        for k in range(per_item)
                    )
                )
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{Annotation._meta.db_table}', 'id'), %s)",
            [count * per_item],
        )
        # The tasks are fully annotated: what the queue would have recorded.
        Task.objects.filter(project=project).update(status=Task.Status.DONE, remaining=0)
        Project.objects.filter(pk=project.pk).update(done_count=count)


def _boxes(
    rng: np.random.Generator, *, items: int, accuracy: np.ndarray
) -> tuple[list[list[dict[str, Any]]], list[list[str]]]:
    """Return (true boxes per item, result JSON per item and annotator).

    BOXES true boxes per image (20-120 px wide and high, anywhere in 640x480, a random
    label). An annotator of accuracy p draws each one with probability p, its corners
    moved by up to (1 - p) x 20 % of its size; otherwise misses it (half the time) or
    draws it with another label.
    """
    per_item = accuracy.shape[1]
    n_labels = len(LABELS)
    size = rng.uniform(20, 120, (items, BOXES, 2))
    corner = rng.uniform(0, 1, (items, BOXES, 2)) * ([WIDTH, HEIGHT] - size)
    label = rng.integers(0, n_labels, (items, BOXES))
    draw = rng.random((items, per_item, BOXES))
    right = draw < accuracy[:, :, None]
    missed = ~right & (draw < accuracy[:, :, None] + (1 - accuracy[:, :, None]) / 2)
    other = (label[:, None, :] + rng.integers(1, n_labels, (items, per_item, BOXES))) % n_labels
    given = np.where(right, label[:, None, :], other)
    jitter = rng.uniform(-1, 1, (items, per_item, BOXES, 4)) * (1 - accuracy[:, :, None, None])
    x1 = corner[:, None, :, 0] + jitter[..., 0] * 0.2 * size[:, None, :, 0]
    y1 = corner[:, None, :, 1] + jitter[..., 1] * 0.2 * size[:, None, :, 1]
    x2 = corner[:, None, :, 0] + size[:, None, :, 0] * (1 + jitter[..., 2] * 0.2)
    y2 = corner[:, None, :, 1] + size[:, None, :, 1] * (1 + jitter[..., 3] * 0.2)
    x1, y1 = np.clip(x1, 0, WIDTH - 1).round(1), np.clip(y1, 0, HEIGHT - 1).round(1)
    w = (np.clip(x2, 0, WIDTH) - x1).clip(min=1).round(1)
    h = (np.clip(y2, 0, HEIGHT) - y1).clip(min=1).round(1)
    truth = [
        [
            {
                "type": "rectanglelabels",
                "value": {
                    "x": cx,
                    "y": cy,
                    "width": sw,
                    "height": sh,
                    "rectanglelabels": [LABELS[lab]],
                },
            }
            for (cx, cy), (sw, sh), lab in zip(c, s, lb, strict=True)
        ]
        for c, s, lb in zip(corner.tolist(), size.tolist(), label.tolist(), strict=True)
    ]
    keep = (~missed).tolist()
    gx, gy, gw, gh, gl = x1.tolist(), y1.tolist(), w.tolist(), h.tolist(), given.tolist()
    results = [
        [
            "["
            + ", ".join(
                f'{{"id": "r{b + 1}", "type": "rectanglelabels", "value": {{"x": {gx[n][k][b]}, '
                f'"y": {gy[n][k][b]}, "width": {gw[n][k][b]}, "height": {gh[n][k][b]}, '
                f'"rectanglelabels": ["{LABELS[gl[n][k][b]]}"]}}}}'
                for b in range(BOXES)
                if keep[n][k][b]
            )
            + "]"
            for k in range(per_item)
        ]
        for n in range(items)
    ]
    return truth, results
