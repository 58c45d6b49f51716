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

Result keys: bench, items, annotations, annotators, seconds (project_quality),
load_seconds, peak_rss_mb (this process, sampled every 0.2 s during the timed call),
alpha, fleiss_kappa, mv_accuracy and ds_accuracy (share of items whose consensus is
the true class), ds_accuracy_error (mean |estimated - true| annotator accuracy),
ds_iterations, review_count. The issue's acceptance: seconds < 60 at 100,000 x 3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import uuid
from typing import IO, Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from datasets.bench._common import Log, RssSampler, forget_queue, own_database, sending_to
from datasets.models import Dataset
from datasets.services.datasets import dataset_create
from labeling.bench.queue import COPY_CHUNK, _copy_items
from labeling.models import Annotation, AnnotationRevision, Project, Task
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
    parser.add_argument("--keep", action="store_true", help="keep the bench database")


def summary(result: dict[str, Any]) -> str:
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
            items=items, per_item=annotations_per_item, annotators=annotators, log=log
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
    per_task = quality["items"]
    # Tasks were made in item order, so the i-th task (by id) is the i-th item.
    mv = np.array([LABELS.index(t["majority_vote"]) for t in per_task])
    ds = np.array([LABELS.index(t["dawid_skene"]) for t in per_task])
    estimated = np.array([quality["dawid_skene"]["accuracy"][name] for name in names])
    return {
        "bench": "quality",
        "items": items,
        "annotations": quality["annotations"],
        "annotations_per_item": annotations_per_item,
        "annotators": annotators,
        "seconds": round(seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "peak_rss_mb": round(rss.peak_bytes / 2**20, 1),
        "alpha": quality["alpha"],
        "fleiss_kappa": quality["fleiss_kappa"],
        "mv_accuracy": round(float((mv == truth).mean()), 4),
        "ds_accuracy": round(float((ds == truth).mean()), 4),
        "ds_accuracy_error": round(float(np.abs(estimated - accuracy).mean()), 4),
        "ds_iterations": quality["dawid_skene"]["iterations"],
        "review_count": quality["review"]["count"],
    }


def _load(
    *, items: int, per_item: int, annotators: int, log: Log
) -> tuple[int, np.ndarray, np.ndarray, list[str]]:
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
        label_schema={"type": "image_class", "labels": [{"name": n} for n in LABELS]},
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
    n_labels = len(LABELS)
    truth = rng.choice(n_labels, size=items, p=CLASS_SHARES)
    accuracy = np.linspace(0.55, 0.95, annotators)
    # K distinct annotators per task: the first K of a random permutation of the pool.
    who = np.argsort(rng.random((items, annotators)), axis=1)[:, :per_item]
    right = rng.random((items, per_item)) < accuracy[who]
    wrong = (truth[:, None] + rng.integers(1, n_labels, size=(items, per_item))) % n_labels
    given = np.where(right, truth[:, None], wrong)
    _copy_annotations(
        project=project,
        task_ids=task_ids,
        annotator_ids=np.array([u.pk for u in users])[who],
        given=given,
        owner_id=owner.pk,
    )
    log(f"COPY of {items * per_item} annotations and revisions")
    return project.pk, truth, accuracy, names


def _copy_annotations(
    *,
    project: Project,
    task_ids: np.ndarray,
    annotator_ids: np.ndarray,
    given: np.ndarray,
    owner_id: int,
) -> None:
    """COPY one annotation (slot k, explicit id) and one revision per (task, k)."""
    now = timezone.now().isoformat()
    per_item = given.shape[1]
    schema_revision_id = project.schema_revision_id
    results = [
        json.dumps([{"id": "r1", "type": "choices", "value": {"choices": [name]}}])
        for name in LABELS
    ]
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
    labels = given.tolist()
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
                        f"{n * per_item + k + 1}\t1\t{results[labels[n][k]]}\t"
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
