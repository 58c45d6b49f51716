"""`bench ingest`: import N generated images through the real path and compare with the floor.

The real path: a server-folder import (Import row, plan job, chunk jobs on Celery
workers started here, Pillow inspection, blobs in the object store, rows in the
database), then the same import again (every file unchanged). The floor: SHA-256 plus
one S3 PUT per file, with the same client and as many parallel streams as the real path
has (worker processes x IMPORT_THREADS), and nothing else (no Django ORM, no database).

Why a server folder: the files reach the workers without an HTTP upload or an archive
being unpacked and staged by a single plan job, so what is measured is the per-file
work every source shares (fetch to a temp file, inspect, store, commit).

Result keys: bench, count, seconds, assets_per_s, floor_assets_per_s, ratio_to_floor,
peak_rss_mb (command + every worker process, sampled every 0.2 s), reingest_seconds;
and for context size_kb, workers, streams (of the floor), peak_pss_mb (the same sum in PSS, which counts the
pages a prefork child shares with its parent once), thumbnails_seconds (how long the thumbnail jobs the
first import spawned ran on after it).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import math
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management.base import CommandError
from django.test.utils import override_settings
from PIL import Image

from datasets.bench._common import (
    Log,
    RssSampler,
    WorkerSet,
    add_worker_arguments,
    bench_user,
    check_services,
    drain,
    forget,
    forget_queue,
    import_wait,
    sending_to,
    worker_env,
)
from datasets.models import Dataset, Import, ImportEntry
from datasets.services.datasets import dataset_create
from datasets.services.imports import import_submit_source
from storage.client import get_client
from storage.keys import staging_key, staging_prefix
from storage.services import staging_delete

HELP = (
    "Import N generated images through the real path (job, Celery workers, storage, "
    "database), then again (all unchanged), and measure the floor (SHA-256 + S3 PUT)."
)
# Files per generated sub-folder: keeps directory listings short.
FILES_PER_FOLDER = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1000, help="images to ingest (1000)")
    parser.add_argument("--size-kb", type=int, default=20, help="size of each image, kB (20)")
    add_worker_arguments(parser)


def summary(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"ingest of {result['count']} images of {result['size_kb']} kB with "
            f"{result['workers']} worker process(es):",
            f"  real path  {result['seconds']:.1f} s, {result['assets_per_s']:.1f} assets/s",
            f"  floor      {result['floor_assets_per_s']:.1f} assets/s (SHA-256 + S3 PUT)",
            f"  ratio      {result['ratio_to_floor']:.2f} of the floor",
            f"  re-ingest  {result['reingest_seconds']:.1f} s (all unchanged)",
            f"  thumbnails ran {result['thumbnails_seconds']:.1f} s after the import",
            f"  peak RSS   {result['peak_rss_mb']:.0f} MB (command + workers; PSS "
            f"{result['peak_pss_mb']:.0f} MB)",
        ]
    )


def run(
    *,
    out: IO[str],
    count: int,
    size_kb: int,
    workers: int,
    pool: str = "solo",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    if count < 1 or size_kb < 1 or workers < 1:
        raise CommandError("--count, --size-kb and --workers must be at least 1")
    check_services()
    tag = uuid.uuid4().hex[:10]
    log = Log(out)
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix=f"lv-bench-{tag}-", dir=settings.FILE_UPLOAD_TEMP_DIR))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        root = root.resolve()
        folder = root / "images"
        log(f"generating {count} images of ~{size_kb} kB in {folder}")
        started = time.monotonic()
        files = _generate(folder, count=count, size_kb=size_kb)
        log(f"generated in {time.monotonic() - started:.1f} s")

        rss = RssSampler()
        stack.enter_context(rss)
        queue = f"lvbench-{tag}"
        worker_pool = WorkerSet.build(
            tag=tag,
            queue=queue,
            jobs=workers,
            pool=pool,
            root=root,
            env=worker_env(queue=queue, extra={"IMPORT_FOLDER_ROOTS": str(root)}),
        )
        # Undone in reverse: workers stopped, then the rows and the queue removed.
        stack.callback(forget_queue, queue)
        made: dict[str, Any] = {}
        if not keep:
            stack.callback(lambda: "user" in made and forget(user=made["user"], log=log))
        stack.callback(worker_pool.stop)
        log(f"starting {workers} worker process(es) on queue {queue}")
        worker_pool.start()
        for pid in worker_pool.pids:
            rss.watch(pid)
        stack.enter_context(override_settings(IMPORT_FOLDER_ROOTS=[str(root)]))
        stack.enter_context(sending_to(queue))

        # Each worker process uploads from IMPORT_THREADS threads: the floor gets as many
        # parallel streams as the real path has.
        streams = workers * settings.IMPORT_THREADS
        floor_seconds = _floor(files, streams=streams, tag=tag, log=log, stack=stack)

        user = made["user"] = bench_user(tag)
        dataset = dataset_create(created_by=user, name=f"bench ingest {tag}", kind="image")
        log("import 1 (all new)")
        seconds, imp = _import(
            dataset=dataset, user=user, folder=folder, pool=worker_pool, count=count
        )
        if imp.created != count:
            raise CommandError(_wrong_counts(imp, expected="created", count=count))
        log(f"import 1: {seconds:.1f} s; waiting for its thumbnail jobs")
        thumbnails_seconds = drain(user=user, pool=worker_pool, count=count)
        log("import 2 (all unchanged)")
        reingest_seconds, imp = _import(
            dataset=dataset, user=user, folder=folder, pool=worker_pool, count=count
        )
        if imp.unchanged != count:
            raise CommandError(_wrong_counts(imp, expected="unchanged", count=count))
        log(f"import 2: {reingest_seconds:.1f} s")
        worker_pool.stop()
        peak_rss, peak_pss = rss.peak_bytes, rss.peak_pss_bytes

    assets_per_s = count / seconds
    floor_assets_per_s = count / floor_seconds
    return {
        "bench": "ingest",
        "count": count,
        "seconds": round(seconds, 3),
        "assets_per_s": round(assets_per_s, 1),
        "floor_assets_per_s": round(floor_assets_per_s, 1),
        "ratio_to_floor": round(assets_per_s / floor_assets_per_s, 3),
        "peak_rss_mb": round(peak_rss / 1_000_000, 1),
        "peak_pss_mb": round(peak_pss / 1_000_000, 1),
        "reingest_seconds": round(reingest_seconds, 3),
        "size_kb": size_kb,
        "workers": workers,
        "pool": pool,
        "streams": streams,
        "thumbnails_seconds": round(thumbnails_seconds, 3),
    }


# --- files ------------------------------------------------------------------------------


def _generate(folder: Path, *, count: int, size_kb: int) -> list[Path]:
    """Write `count` distinct PNGs of random pixels, each about `size_kb` kB, one at a time.

    Random pixels do not compress, so the file is the pixel bytes plus ~100 bytes of
    PNG structure; every file is a valid image that Pillow fully decodes.
    """
    side = max(1, round(math.sqrt(size_kb * 1000 / 3)))
    paths = []
    for n in range(count):
        sub = folder / f"{n // FILES_PER_FOLDER:04d}"
        if n % FILES_PER_FOLDER == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img-{n:07d}.png"
        image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        image.save(path, format="PNG", compress_level=1)
        paths.append(path)
    return paths


# --- floor ------------------------------------------------------------------------------


def _floor(
    files: list[Path], *, streams: int, tag: str, log: Log, stack: contextlib.ExitStack
) -> float:
    """Time SHA-256 + one S3 PUT per file over `streams` threads.

    What was put is deleted when the bench ends, not now: deleting 20,000 objects
    leaves the store work (index updates, garbage) that would slow the run measured
    next.
    """
    client = get_client()
    bucket = settings.S3_BUCKET
    scratch = f"bench-{tag}"

    def put(numbered: tuple[int, Path]) -> None:
        n, path = numbered
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        client.put_object(
            bucket, staging_key(scratch, n), io.BytesIO(data), len(data), content_type="image/png"
        )

    log(f"floor: SHA-256 + S3 PUT of {len(files)} files over {streams} stream(s)")
    stack.callback(staging_delete, staging_prefix(scratch))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=streams) as executor:
        for _ in executor.map(put, enumerate(files)):
            pass
    elapsed = time.monotonic() - started
    log(f"floor: {elapsed:.1f} s, {len(files) / elapsed:.1f} files/s")
    return elapsed


# --- the real path ----------------------------------------------------------------------


def _import(
    *, dataset: Dataset, user: Any, folder: Path, pool: WorkerSet, count: int
) -> tuple[float, Import]:
    """Submit a folder import and wait until it ends; return (seconds, the Import)."""
    started = time.monotonic()
    imp = import_submit_source(
        dataset=dataset,
        source=Import.Source.FOLDER,
        created_by=user,
        options={"folder": str(folder)},
    )
    return import_wait(imp, started=started, pool=pool, count=count)


def _wrong_counts(imp: Import, *, expected: str, count: int) -> str:
    reasons = list(
        ImportEntry.objects.filter(import_run=imp)
        .exclude(status=expected)
        .values_list("name", "status", "reason")[:5]
    )
    return (
        f"import {imp.pk}: expected {count} {expected}, got created={imp.created} "
        f"unchanged={imp.unchanged} duplicates={imp.duplicates} rejected={imp.rejected}; "
        f"first others: {reasons}"
    )
