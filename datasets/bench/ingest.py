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
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import override_settings
from PIL import Image

from datasets.models import Asset, Dataset, Import, ImportEntry
from datasets.services.datasets import dataset_create
from datasets.services.imports import import_submit_source
from storage.client import get_client, ping
from storage.errors import StorageError
from storage.keys import staging_key, staging_prefix
from storage.services import staging_delete
from workers.celery_app import app
from workers.models import Job
from workers.processes import database_url

HELP = (
    "Import N generated images through the real path (job, Celery workers, storage, "
    "database), then again (all unchanged), and measure the floor (SHA-256 + S3 PUT)."
)
# Files per generated sub-folder: keeps directory listings short.
FILES_PER_FOLDER = 1000
# A worker (Django set-up, broker connection, pool fork) is ready in ~2-4 s here.
WORKER_READY_TIMEOUT = 60.0
# Celery's warm shutdown finishes the running task; a chunk of 20 kB images takes seconds.
WORKER_STOP_GRACE = 30.0
RSS_SAMPLE_SECONDS = 0.2
POLL_SECONDS = 0.2
# Slowest rate we wait for before calling an import stuck: 5 files/s, at least 2 minutes.
MIN_RATE = 5.0
MIN_WAIT = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1000, help="images to ingest (1000)")
    parser.add_argument("--size-kb", type=int, default=20, help="size of each image, kB (20)")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (Celery --concurrency, 2)"
    )
    parser.add_argument(
        "--pool",
        choices=("prefork", "threads"),
        default="prefork",
        help="Celery worker pool: prefork (a process per job) or threads (one process)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench user, dataset, items, imports and jobs in the database",
    )


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
    pool: str = "prefork",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    if count < 1 or size_kb < 1 or workers < 1:
        raise CommandError("--count, --size-kb and --workers must be at least 1")
    _check_services()
    tag = uuid.uuid4().hex[:10]
    log = _Log(out)
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix=f"lv-bench-{tag}-", dir=settings.FILE_UPLOAD_TEMP_DIR))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        root = root.resolve()
        folder = root / "images"
        log(f"generating {count} images of ~{size_kb} kB in {folder}")
        started = time.monotonic()
        files = _generate(folder, count=count, size_kb=size_kb)
        log(f"generated in {time.monotonic() - started:.1f} s")

        rss = _RssSampler()
        stack.enter_context(rss)
        queue = f"lvbench-{tag}"
        worker_pool = _WorkerPool(
            hostname=f"lvbench-{tag}@localhost",
            queue=queue,
            concurrency=workers,
            pool=pool,
            log_path=root / "worker.log",
            env=_worker_env(queue=queue, folder_root=root),
        )
        stack.callback(_forget_queue, queue)
        stack.callback(worker_pool.stop)
        # Registered before the user exists, so it runs after the workers have stopped.
        made: dict[str, Any] = {}
        if not keep:
            stack.callback(lambda: "user" in made and _forget(user=made["user"], log=log))
        log(f"starting {workers} worker process(es) on queue {queue}")
        worker_pool.start()
        rss.watch(worker_pool.pid)
        stack.enter_context(override_settings(IMPORT_FOLDER_ROOTS=[str(root)]))
        stack.enter_context(_sending_to(queue))

        # Each worker process uploads from IMPORT_THREADS threads: the floor gets as many
        # parallel streams as the real path has.
        streams = workers * settings.IMPORT_THREADS
        floor_seconds = _floor(files, streams=streams, tag=tag, log=log)

        user = made["user"] = _bench_user(tag)
        dataset = dataset_create(created_by=user, name=f"bench ingest {tag}", kind="image")
        log("import 1 (all new)")
        seconds, imp = _import(
            dataset=dataset, user=user, folder=folder, pool=worker_pool, count=count
        )
        if imp.created != count:
            raise CommandError(_wrong_counts(imp, expected="created", count=count))
        log(f"import 1: {seconds:.1f} s; waiting for its thumbnail jobs")
        thumbnails_seconds = _drain(user=user, pool=worker_pool, count=count)
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


class _Log:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        self.out.write(f"[bench ingest {time.monotonic() - self.t0:7.1f} s] {message}\n")
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self.out.flush()


# --- preconditions ----------------------------------------------------------------------


def _check_services() -> None:
    """Fail with a clear message when the database, the object store or the broker is down."""
    try:
        connection.ensure_connection()
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to the user
        raise CommandError(f"the database is not reachable: {exc}") from exc
    try:
        ping(timeout=5.0)
    except StorageError as exc:
        raise CommandError(f"the object store is not usable: {exc}") from exc
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # noqa: BLE001 - kombu raises transport-specific errors
        raise CommandError(f"the Celery broker at {_broker_url()} is not reachable: {exc}") from exc


def _broker_url() -> str:
    return str(app.conf.broker_url or settings.CELERY_BROKER_URL)


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


def _floor(files: list[Path], *, streams: int, tag: str, log: _Log) -> float:
    """Time SHA-256 + one S3 PUT per file over `streams` threads; delete what was put."""
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
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=streams) as executor:
            for _ in executor.map(put, enumerate(files)):
                pass
        elapsed = time.monotonic() - started
    finally:
        staging_delete(staging_prefix(scratch))
    log(f"floor: {elapsed:.1f} s, {len(files) / elapsed:.1f} files/s")
    return elapsed


# --- the real path ----------------------------------------------------------------------


def _bench_user(tag: str) -> Any:
    return get_user_model().objects.create_user(
        username=f"bench-{tag}", password=None, is_superuser=True
    )


def _import(
    *, dataset: Dataset, user: Any, folder: Path, pool: _WorkerPool, count: int
) -> tuple[float, Import]:
    """Submit a folder import and wait until it ends; return (seconds, the Import)."""
    started = time.monotonic()
    imp = import_submit_source(
        dataset=dataset,
        source=Import.Source.FOLDER,
        created_by=user,
        options={"folder": str(folder)},
    )
    deadline = started + max(MIN_WAIT, count / MIN_RATE)
    finished = (Import.State.DONE, Import.State.FAILED)
    while not Import.objects.filter(pk=imp.pk, state__in=finished).exists():
        pool.check_alive()
        if time.monotonic() > deadline:
            imp.refresh_from_db()
            raise CommandError(
                f"import {imp.pk} still {imp.state} after {time.monotonic() - started:.0f} s "
                f"({imp.created + imp.unchanged + imp.duplicates + imp.rejected}/{imp.total} "
                f"entries done); worker log: {pool.log_path}"
            )
        time.sleep(POLL_SECONDS)
    elapsed = time.monotonic() - started
    imp.refresh_from_db()
    if imp.state == Import.State.FAILED:
        raise CommandError(f"import {imp.pk} failed: {imp.error}")
    return elapsed, imp


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


def _drain(*, user: Any, pool: _WorkerPool, count: int) -> float:
    """Wait until every job of the bench user has finished (the thumbnail jobs the import
    spawned), so they do not run during the re-ingest; return how long that took."""
    started = time.monotonic()
    deadline = started + max(MIN_WAIT, count / MIN_RATE)
    while Job.objects.filter(created_by=user, state__in=Job.ACTIVE_STATES).exists():
        pool.check_alive()
        if time.monotonic() > deadline:
            raise CommandError(
                f"jobs of {user.username} still running after {time.monotonic() - started:.0f} s"
            )
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def _forget(*, user: Any, log: _Log) -> None:
    """Delete what the bench wrote to the database: its jobs, dataset (items, imports,
    entries), the assets no other item uses, and its user. Blobs stay (write-once)."""
    shas = set(
        ImportEntry.objects.filter(import_run__created_by=user)
        .exclude(asset=None)
        .values_list("asset_id", flat=True)
        .distinct()
    )
    Job.objects.filter(created_by=user, parent=None).delete()
    Import.objects.filter(created_by=user).delete()
    Dataset.objects.filter(created_by=user).delete()
    ordered = sorted(shas)
    for start in range(0, len(ordered), 900):  # under SQLite's 999 bound parameters
        Asset.objects.filter(sha256__in=ordered[start : start + 900], items=None).delete()
    user.delete()
    log(f"removed the bench dataset, imports, jobs and {len(shas)} asset rows")


# --- workers ----------------------------------------------------------------------------


def _database_url() -> str:
    """DATABASE_URL of the database this process uses, for the workers."""
    try:
        return database_url()
    except ValueError as exc:
        raise CommandError(f"bench ingest cannot pass its database to its workers: {exc}") from None


def _worker_env(*, queue: str, folder_root: Path) -> dict[str, str]:
    """The command's environment, with what the workers must share with it spelled out."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "DATABASE_URL": _database_url(),
        # Workers run as deployed: with DEBUG on, Django keeps every query's SQL in memory
        # (up to 9,000 per connection) and peak RSS would measure that log.
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,  # shared: it also keys the stored credentials
        "CELERY_BROKER_URL": _broker_url(),
        "CELERY_QUEUE": queue,  # retries and spawned chunks go to this queue too
        "CELERY_RESULT_BACKEND": "cache+memory://",  # results are ignored anyway
        "S3_ENDPOINT": settings.S3_ENDPOINT,
        "S3_ACCESS_KEY": settings.S3_ACCESS_KEY,
        "S3_SECRET_KEY": settings.S3_SECRET_KEY,
        "S3_BUCKET": settings.S3_BUCKET,
        "S3_SECURE": "1" if settings.S3_SECURE else "0",
        "IMPORT_FOLDER_ROOTS": str(folder_root),
        "PYTHONUNBUFFERED": "1",
    }


@contextlib.contextmanager
def _sending_to(queue: str) -> Iterator[None]:
    """Publish this process's jobs on the bench's queue, then restore the default."""
    saved = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield
    finally:
        app.conf.task_default_queue = saved


def _forget_queue(queue: str) -> None:
    """Drop what kombu left in Redis for the bench's (now empty) queue: its bindings."""
    url = _broker_url()
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
    except redis.RedisError:
        pass  # a few stale binding keys are harmless
    finally:
        client.close()


@dataclass
class _WorkerPool:
    """One `celery worker` process (prefork, `concurrency` children), its own session."""

    hostname: str
    queue: str
    concurrency: int
    pool: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={self.concurrency}",
            f"--pool={self.pool}",
            "-Q",
            self.queue,
            f"--hostname={self.hostname}",
            # No broadcast chatter with other workers: faster start, no cross-talk.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: one killpg reaches the pool
            )
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while f"{self.hostname} ready." not in self._log_text():
            self.check_alive()
            if time.monotonic() > deadline:
                raise CommandError(f"the worker was not ready after {WORKER_READY_TIMEOUT:.0f} s")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise CommandError(
                f"the worker exited with code {self.process.returncode}; its log ends:\n"
                + "\n".join(self._log_text().splitlines()[-30:])
            )

    def stop(self) -> None:
        """SIGTERM the main process only (a warm shutdown: it stops its own pool; SIGTERM
        to the pool too makes Celery report lost processes and hang), SIGKILL the group
        after the grace period. Idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=WORKER_STOP_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever of the group is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class _RssSampler:
    """Sample the summed RSS of this process and the watched worker trees every 0.2 s."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self._roots: list[psutil.Process] = [psutil.Process()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def watch(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self._roots.append(psutil.Process(pid))

    def sample(self) -> None:
        rss = pss = 0
        me = self._roots[0]
        for root in self._roots:
            try:
                procs = [root] + ([] if root is me else root.children(recursive=True))
            except psutil.Error:
                continue
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    memory = proc.memory_full_info()
                    rss += memory.rss
                    # PSS shares each page among the processes mapping it: the prefork
                    # children's copy-on-write pages are counted once, not per process.
                    pss += getattr(memory, "pss", memory.rss)
        self.peak_bytes = max(self.peak_bytes, rss)
        self.peak_pss_bytes = max(self.peak_pss_bytes, pss)

    def _loop(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.sample()

    def __enter__(self) -> _RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
