"""`bench queue`: N tasks, C simulated annotators over HTTP, then the most submits per second.

1. A PostgreSQL database of the bench's own (`--database`, created, migrated, dropped at
   the end unless --keep), so a million rows never land in the database in use and
   VACUUM ANALYZE sees only them (autovacuum may be off).
2. A fresh image dataset of N items bulk-loaded with COPY: distinct fake assets
   (640x480 JPEGs that are never read: the queue only presigns their URLs, offline); a
   bbox project made by `project_create` with C annotators as members, each with a DRF
   token; its tasks made by `project_tasks_create` (the INSERT ... SELECT the tasks job
   runs). The job `project_create` submits goes to a private Celery queue nobody reads.
3. The app under gunicorn (gthread) on a free port, DEBUG off, as deployed.
4. Phase one: C annotators for S seconds, each looping POST /projects/{id}/next -> sleep
   T -> POST /tasks/{id}/annotations/ with a valid box, its lease and a fresh
   idempotency key. Client processes (labeling/bench/_client.py), several annotator
   threads each, keep-alive connections, so the client's GIL does not add to latency.
5. Saturation: the same loop with no think time; max_submits_per_s is the submits
   answered 2xx per second over the phase after its first quarter (at most 2 s of
   warm-up), when every annotator is busy.
6. From the database: double_leases, the pairs of leases of one (task, slot) whose live
   intervals [leased_at, min(ended_at, expires_at)) overlap; lost_submits, the submits a
   client saw answered 200/201 whose idempotency key is not stored exactly once as a
   revision of that annotator on that task (with the revision id the client was given).

Result keys: bench, tasks, annotators, lease_p50_ms, lease_p99_ms, submit_p50_ms,
submit_p99_ms, max_submits_per_s, double_leases, lost_submits; for context: seconds,
think, leases, submits, submits_per_s, errors ({"<lease|submit> <status>": count} of
every answer that is not the expected 200/201 in phase one, 204 "nothing left" and 0 "no
answer" included), saturation_* (the same for the saturation phase, and its latencies),
load_seconds (dataset, project, tasks, users), migrate_seconds, vacuum_seconds,
server_workers, server_threads, client_processes, and the CPU each side used per
second of each phase (server = gunicorn, postgres = the bench database's backends,
client = the annotator processes, machine = every process of the box, whoever runs it;
1.0 = one core; machine_cores says how many there are). The box may be shared, so the
saturation phase also reports what one submit (with its lease) costs in CPU on each side,
*_cpu_ms_per_submit, and cpu_bound_submits_per_s, the rate those costs allow on
machine_cores cores with nothing else running: numbers that neighbours do not move.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from datasets.bench._common import Log, forget_queue, own_database, sending_to, worker_env
from datasets.models import Asset, Dataset, Item
from datasets.services.datasets import dataset_counters_add, dataset_create
from labeling.models import AnnotationRevision, Lease
from labeling.services.projects import Member, project_create, project_tasks_create

HELP = (
    "Load N tasks into a database of its own, serve the app with gunicorn, run C "
    "annotators over HTTP (lease, think, submit), then a saturation phase; count double "
    "leases and lost submits from the database."
)
WIDTH, HEIGHT = 640, 480
ASSET_SIZE = 48_000  # bytes a 640x480 JPEG of a street scene takes, roughly
LABELS = ("car", "person", "bicycle")
# Rows per COPY write: ~5 MB of text, so the client never holds the whole table.
COPY_CHUNK = 50_000
SERVER_READY_TIMEOUT = 60.0
SERVER_STOP_GRACE = 15.0
# Longer than any think time: a keep-alive connection must not be dropped between a
# lease and its submit (a proxy in front would keep it open too).
SERVER_KEEPALIVE = 75
CLIENT_READY_TIMEOUT = 60.0
CPU_SAMPLE_SECONDS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to load (1000000)")
    parser.add_argument(
        "--annotators", type=int, default=50, help="concurrent simulated annotators (50)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of phase one (60)")
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds between lease and submit (1.0)"
    )
    parser.add_argument(
        "--saturation-seconds",
        type=float,
        default=20.0,
        help="length of the saturation phase, no think time (20; 0 skips it)",
    )
    parser.add_argument(
        "--saturation-annotators",
        type=int,
        default=None,
        help="annotators in the saturation phase (default: --annotators)",
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=2,
        help="gunicorn worker processes (2: one per core of this box)",
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        default=4,
        help="threads per gunicorn worker (4: a request waits on PostgreSQL about "
        "half of its time, so a few threads keep a core busy)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes the annotators are spread over (2)",
    )
    parser.add_argument(
        "--database",
        default="lv_bench_queue",
        help="name of the bench's own PostgreSQL database, dropped first if it exists "
        "(lv_bench_queue)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench database and the server's log (their names go to stderr)",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write every request as a JSON line [phase, kind, ended_at, ms, status] here",
    )


def summary(result: dict[str, Any]) -> str:
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "none"
    sat_errors = ", ".join(f"{k}: {v}" for k, v in result["saturation_errors"].items()) or "none"
    return "\n".join(
        [
            f"queue of {result['tasks']} tasks, {result['annotators']} annotators thinking "
            f"{result['think']} s for {result['seconds']} s; gunicorn {result['server_workers']}"
            f"x{result['server_threads']} threads:",
            f"  lease      p50 {result['lease_p50_ms']:.1f} ms, p99 {result['lease_p99_ms']:.1f} ms"
            f" ({result['leases']} leases)",
            f"  submit     p50 {result['submit_p50_ms']:.1f} ms, p99 "
            f"{result['submit_p99_ms']:.1f} ms ({result['submits']} submits, "
            f"{result['submits_per_s']:.1f}/s)",
            f"  errors     {errors}",
            f"  saturation {result['max_submits_per_s']:.1f} submits/s with "
            f"{result['saturation_annotators']} annotators (lease p99 "
            f"{result['saturation_lease_p99_ms']:.1f} ms, submit p99 "
            f"{result['saturation_submit_p99_ms']:.1f} ms; errors {sat_errors})",
            f"  CPU        server {result['saturation_server_cpu']:.2f}, postgres "
            f"{result['saturation_postgres_cpu']:.2f}, client "
            f"{result['saturation_client_cpu']:.2f} cores at saturation",
            f"  CPU/submit server {result['server_cpu_ms_per_submit']:.1f} ms, postgres "
            f"{result['postgres_cpu_ms_per_submit']:.1f} ms, client "
            f"{result['client_cpu_ms_per_submit']:.1f} ms: {result['cpu_bound_submits_per_s']:.0f} "
            f"submits/s if the {result['machine_cores']} cores were the bench's alone",
            f"  checks     {result['double_leases']} double leases, "
            f"{result['lost_submits']} lost submits",
            f"  load       {result['load_seconds']:.1f} s (+ migrate "
            f"{result['migrate_seconds']:.1f} s, VACUUM ANALYZE {result['vacuum_seconds']:.1f} s)",
        ]
    )


def run(
    *,
    out: IO[str],
    tasks: int,
    annotators: int,
    seconds: float,
    think: float,
    saturation_seconds: float = 20.0,
    saturation_annotators: int | None = None,
    server_workers: int = 2,
    server_threads: int = 4,
    client_processes: int = 2,
    database: str = "lv_bench_queue",
    keep: bool = False,
    trace: Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    saturation_annotators = saturation_annotators or annotators
    if min(tasks, annotators, saturation_annotators, server_workers, server_threads) < 1:
        raise CommandError(
            "--tasks, --annotators, --saturation-annotators, --server-workers and "
            "--server-threads must be at least 1"
        )
    if seconds <= 0 or think < 0 or saturation_seconds < 0 or client_processes < 1:
        raise CommandError(
            "--seconds must be positive, --think and --saturation-seconds not negative, "
            "--client-processes at least 1"
        )
    if connection.vendor != "postgresql":
        raise CommandError(
            f"bench queue needs PostgreSQL (COPY, a database of its own, VACUUM ANALYZE, "
            f"row locks under concurrency); this process uses {connection.vendor}. Set "
            "DATABASE_URL=postgres://user@host:5432/name."
        )
    tag = uuid.uuid4().hex[:10]
    log = Log(out, name="queue")
    queue = f"lvbench-{tag}"
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix=f"lv-bench-queue-{tag}-"))
        if keep:
            log(f"the server's log goes to {root / 'gunicorn.log'}")
        else:
            stack.callback(shutil.rmtree, root, ignore_errors=True)
        stack.callback(forget_queue, queue)
        started = time.monotonic()
        stack.enter_context(own_database(database, keep=keep, log=log, bench="queue"))
        migrate_seconds = time.monotonic() - started
        log(f"database {database} created and migrated in {migrate_seconds:.1f} s")

        stack.enter_context(sending_to(queue))
        started = time.monotonic()
        loaded = _load(tasks=tasks, annotators=max(annotators, saturation_annotators), log=log)
        load_seconds = time.monotonic() - started
        log(f"loaded {tasks} tasks and {len(loaded.annotators)} annotators in {load_seconds:.1f} s")
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        vacuum_seconds = time.monotonic() - started
        log(f"VACUUM ANALYZE: {vacuum_seconds:.1f} s")

        server = _Server(
            workers=server_workers,
            threads=server_threads,
            env=worker_env(queue=queue, extra={}),
            log_path=root / "gunicorn.log",
        )
        stack.callback(server.stop)
        server.start()
        log(f"gunicorn {server_workers}x{server_threads} threads serving on port {server.port}")

        phase = _Phase(server=server, project_id=loaded.project_id, processes=client_processes)
        log(f"phase one: {annotators} annotators, think {think} s, {seconds} s")
        first = phase.run(
            annotators=loaded.annotators[:annotators], seconds=seconds, think=think, log=log
        )
        log(first.describe())
        if saturation_seconds > 0:
            log(
                f"saturation: {saturation_annotators} annotators, no think time, {saturation_seconds} s"
            )
            saturated = phase.run(
                annotators=loaded.annotators[:saturation_annotators],
                seconds=saturation_seconds,
                think=0.0,
                log=log,
            )
            log(saturated.describe())
        else:
            saturated = _PhaseResult(seconds=0.0)
        server.stop()
        server.check_log(log)

        if trace is not None:
            with open(trace, "w") as fh:
                for name, phase_result in (("one", first), ("saturation", saturated)):
                    for request in phase_result.requests:
                        fh.write(json.dumps([name, *request]) + "\n")
            log(f"wrote {len(first.requests) + len(saturated.requests)} requests to {trace}")

        double_leases = _double_leases(loaded.project_id)
        lost_submits = _lost_submits(first.submits + saturated.submits, log=log)
        log(f"checks: {double_leases} double leases, {lost_submits} lost submits")

    warm = min(2.0, saturation_seconds / 4)
    return {
        "bench": "queue",
        "tasks": tasks,
        "annotators": annotators,
        "lease_p50_ms": first.percentile("lease", 50),
        "lease_p99_ms": first.percentile("lease", 99),
        "submit_p50_ms": first.percentile("submit", 50),
        "submit_p99_ms": first.percentile("submit", 99),
        "max_submits_per_s": saturated.rate(after=warm),
        "double_leases": double_leases,
        "lost_submits": lost_submits,
        "seconds": seconds,
        "think": think,
        "leases": first.ok("lease"),
        "submits": first.ok("submit"),
        "submits_per_s": first.rate(after=0.0),
        "errors": first.errors(),
        "saturation_seconds": saturation_seconds,
        "saturation_annotators": saturation_annotators,
        "saturation_lease_p50_ms": saturated.percentile("lease", 50),
        "saturation_lease_p99_ms": saturated.percentile("lease", 99),
        "saturation_submit_p50_ms": saturated.percentile("submit", 50),
        "saturation_submit_p99_ms": saturated.percentile("submit", 99),
        "saturation_best_1s": saturated.best_second(after=warm),
        "saturation_errors": saturated.errors(),
        "server_cpu": first.cpu("server"),
        "postgres_cpu": first.cpu("postgres"),
        "client_cpu": first.cpu("client"),
        "machine_cpu": first.cpu("machine"),
        "saturation_server_cpu": saturated.cpu("server"),
        "saturation_postgres_cpu": saturated.cpu("postgres"),
        "saturation_client_cpu": saturated.cpu("client"),
        "saturation_machine_cpu": saturated.cpu("machine"),
        "machine_cores": psutil.cpu_count(),
        # Neighbours on the box move the rates; the CPU one submit (with its lease) costs
        # does not, and says what the two cores could sustain with nothing else running.
        "server_cpu_ms_per_submit": saturated.cpu_ms_per_submit("server"),
        "postgres_cpu_ms_per_submit": saturated.cpu_ms_per_submit("postgres"),
        "client_cpu_ms_per_submit": saturated.cpu_ms_per_submit("client"),
        "cpu_bound_submits_per_s": saturated.cpu_bound_rate(psutil.cpu_count() or 1),
        "load_seconds": round(load_seconds, 1),
        "migrate_seconds": round(migrate_seconds, 1),
        "vacuum_seconds": round(vacuum_seconds, 1),
        "server_workers": server_workers,
        "server_threads": server_threads,
        "client_processes": client_processes,
        "database": database,
    }


# --- the database of the bench ----------------------------------------------------------


@dataclass
class _Loaded:
    project_id: int
    # (username, token) of each annotator, in creation order.
    annotators: list[tuple[str, str]]


def _load(*, tasks: int, annotators: int, log: Log) -> _Loaded:
    """Dataset, items, project, members with tokens, tasks; return what the clients need."""
    User = get_user_model()
    owner = User.objects.create_user(username="bench-owner", password=None, is_superuser=True)
    dataset = dataset_create(created_by=owner, name="bench queue", kind=Dataset.Kind.IMAGE)
    started = time.monotonic()
    _copy_items(dataset_id=dataset.pk, count=tasks)
    log(f"COPY of {tasks} assets and items: {time.monotonic() - started:.1f} s")

    names = [f"annotator{n:03d}" for n in range(annotators)]
    with transaction.atomic():
        users = User.objects.bulk_create(
            [User(username=name, password="!", is_active=True) for name in names]  # noqa: S106 - "!" is Django's unusable password
        )
        tokens = Token.objects.bulk_create(
            [Token(key=Token.generate_key(), user=user) for user in users]
        )
    project = project_create(
        created_by=owner,
        name="bench queue",
        dataset=dataset,
        label_schema={"type": "bbox", "labels": [{"name": name} for name in LABELS]},
        members=[Member(name) for name in names],
    )
    started = time.monotonic()
    made = project_tasks_create(project=project)
    if made != tasks:
        raise CommandError(f"project_tasks_create made {made} tasks, not {tasks}")
    log(f"project_tasks_create: {made} tasks in {time.monotonic() - started:.1f} s")
    return _Loaded(
        project_id=project.pk,
        annotators=[(user.username, token.key) for user, token in zip(users, tokens, strict=True)],
    )


def _copy_items(*, dataset_id: int, count: int) -> None:
    """COPY `count` distinct fake 640x480 JPEG assets and one item of each into the
    dataset, in one transaction, and add them to the dataset's totals."""
    now = timezone.now().isoformat()
    # Sorted hashes: the primary key's B-tree grows at its right edge, page after page.
    shas = sorted(
        hashlib.sha256(f"bench queue asset {n}".encode()).hexdigest() for n in range(count)
    )
    asset_sql = (
        f"COPY {Asset._meta.db_table} (sha256, size, media_type, width, height, "
        "thumbnail_ready, preview, created_at) FROM STDIN"
    )
    item_sql = (
        f"COPY {Item._meta.db_table} (dataset_id, asset_id, external_id, metadata, split, "
        "created_at) FROM STDIN"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor: Django's wrapper has no copy()
        with raw.copy(asset_sql) as copy:
            for start in range(0, count, COPY_CHUNK):
                copy.write(
                    "".join(
                        f"{sha}\t{ASSET_SIZE}\timage/jpeg\t{WIDTH}\t{HEIGHT}\tf\t\t{now}\n"
                        for sha in shas[start : start + COPY_CHUNK]
                    )
                )
        with raw.copy(item_sql) as copy:
            for start in range(0, count, COPY_CHUNK):
                copy.write(
                    "".join(
                        f"{dataset_id}\t{shas[n]}\timg_{n:07d}.jpg\t{{}}\t\t{now}\n"
                        for n in range(start, min(count, start + COPY_CHUNK))
                    )
                )
        dataset_counters_add(dataset_id=dataset_id, items=count, size=count * ASSET_SIZE)


# --- the server -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _Server:
    """gunicorn (gthread) serving config.wsgi on 127.0.0.1, in a process group of its own."""

    workers: int
    threads: int
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.port = _free_port()
        env = {
            k: v for k, v in self.env.items() if k not in ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")
        }
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--worker-class",
            "gthread",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--keep-alive",
            str(SERVER_KEEPALIVE),
            "--timeout",
            "120",
            "--graceful-timeout",
            str(int(SERVER_STOP_GRACE)),
            "--no-control-socket",
            "--error-logfile",
            "-",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: one killpg reaches the workers
            )
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while not self._ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise CommandError(
                    f"gunicorn did not answer /healthz after {SERVER_READY_TIMEOUT:.0f} s; "
                    f"log: {self.log_tail()}"
                )
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 - a fixed http URL on loopback
                f"http://127.0.0.1:{self.port}/healthz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise CommandError(
                f"gunicorn exited with code {self.process.returncode}; its log ends:\n"
                + self.log_tail()
            )

    def processes(self) -> list[psutil.Process]:
        """The master and its workers."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers gracefully), SIGKILL what is left of
        the group after the grace period. Idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=SERVER_STOP_GRACE + 5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_log(self, log: Log) -> None:
        """Say how many tracebacks the server logged (a 500 leaves one)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return
        count = text.count("Traceback (most recent call last)")
        if count:
            last = text[text.rindex("Traceback (most recent call last)") :]
            log(f"the server logged {count} traceback(s); the last one:\n{last[-3000:]}")


# --- the clients ------------------------------------------------------------------------


def _postgres_backends(database: str) -> list[psutil.Process]:
    """The PostgreSQL backends serving `database` (their title names it)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(process.info["cmdline"] or [])
            if process.info["name"] == "postgres" and f" {database} " in title:
                found.append(process)
    return found


class _CpuMeter:
    """CPU seconds used by a changing set of processes during a phase.

    PostgreSQL backends come and go (Django reconnects after CONN_MAX_AGE, 60 s), so the
    set is found again every CPU_SAMPLE_SECONDS: a process that exits loses at most its
    last interval; one that appears mid-phase counts from zero.
    """

    def __init__(self, find: Callable[[], list[psutil.Process]]) -> None:
        self.find = find
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-cpu", daemon=True)

    def _sample(self, *, baseline: bool) -> None:
        for process in self.find():
            with contextlib.suppress(psutil.Error):
                key = (process.pid, process.create_time())
                times = process.cpu_times()
                used = times.user + times.system
                self.first.setdefault(key, used if baseline else 0.0)
                self.last[key] = used

    def _loop(self) -> None:
        while not self._stop.wait(CPU_SAMPLE_SECONDS):
            self._sample(baseline=False)

    def __enter__(self) -> _CpuMeter:
        self._sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(baseline=False)

    @property
    def seconds(self) -> float:
        return sum(self.last[key] - self.first[key] for key in self.last)


@dataclass
class _PhaseResult:
    seconds: float
    requests: list[list[Any]] = field(default_factory=list)
    submits: list[list[Any]] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def latencies(self, kind: str) -> list[float]:
        return sorted(r[2] for r in self.requests if r[0] == kind and r[3] in (200, 201))

    def percentile(self, kind: str, q: float) -> float:
        """The q-th percentile (nearest rank) of the 2xx latencies of `kind`, ms."""
        values = self.latencies(kind)
        if not values:
            return 0.0
        rank = max(1, math.ceil(q / 100 * len(values)))
        return round(values[rank - 1], 1)

    def ok(self, kind: str) -> int:
        return sum(1 for r in self.requests if r[0] == kind and r[3] in (200, 201))

    def errors(self) -> dict[str, int]:
        counts = Counter(f"{r[0]} {r[3]}" for r in self.requests if r[3] not in (200, 201))
        return dict(sorted(counts.items()))

    def _submit_times(self, after: float) -> list[float]:
        start, end = self.started_at + after, self.started_at + self.seconds
        return [
            r[1]
            for r in self.requests
            if r[0] == "submit" and r[3] in (200, 201) and start <= r[1] <= end
        ]

    def rate(self, *, after: float) -> float:
        """Submits answered 2xx per second between `after` s into the phase and its end."""
        span = self.seconds - after
        return round(len(self._submit_times(after)) / span, 1) if span > 0 else 0.0

    def best_second(self, *, after: float) -> int:
        start = self.started_at + after
        buckets = Counter(int(t - start) for t in self._submit_times(after))
        return max(buckets.values(), default=0)

    def cpu(self, side: str) -> float:
        """Cores `side` used on average during the phase."""
        if not self.wall_seconds:
            return 0.0
        return round(self.cpu_seconds.get(side, 0.0) / self.wall_seconds, 2)

    def cpu_ms_per_submit(self, side: str) -> float:
        """CPU milliseconds `side` spent per submit answered 2xx (its lease included)."""
        submits = self.ok("submit")
        return round(self.cpu_seconds.get(side, 0.0) * 1000 / submits, 2) if submits else 0.0

    def cpu_bound_rate(self, cores: int) -> float:
        """Submits per second `cores` would sustain if server, PostgreSQL and client had
        them to themselves (their CPU per submit is the only limit)."""
        per_submit = sum(self.cpu_ms_per_submit(side) for side in ("server", "postgres", "client"))
        return round(cores * 1000 / per_submit, 1) if per_submit else 0.0

    def describe(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in self.errors().items()) or "no errors"
        text = (
            f"{self.ok('lease')} leases (p99 {self.percentile('lease', 99):.1f} ms), "
            f"{self.ok('submit')} submits (p99 {self.percentile('submit', 99):.1f} ms, "
            f"{self.rate(after=0.0):.1f}/s); {errors}; CPU server {self.cpu('server')}, "
            f"postgres {self.cpu('postgres')}, client {self.cpu('client')}, whole box "
            f"{self.cpu('machine')} of {psutil.cpu_count()}"
        )
        for label, body in sorted(self.samples.items()):
            text += f"\n    first {label}: {body[:300]}"
        return text


@dataclass
class _Phase:
    server: _Server
    project_id: int
    processes: int

    def run(
        self, *, annotators: list[tuple[str, str]], seconds: float, think: float, log: Log
    ) -> _PhaseResult:
        """Run the annotators in client processes for `seconds`; gather what they saw."""
        shares = [annotators[n :: self.processes] for n in range(self.processes)]
        shares = [share for share in shares if share]
        children: list[subprocess.Popen[str]] = []
        stack = contextlib.ExitStack()
        try:
            for share in shares:
                child = subprocess.Popen(
                    [sys.executable, "-m", "labeling.bench._client"],
                    cwd=settings.BASE_DIR,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                children.append(child)
                assert child.stdin is not None
                child.stdin.write(
                    json.dumps(
                        {
                            "host": "127.0.0.1",
                            "port": self.server.port,
                            "project": self.project_id,
                            "annotators": share,
                            "seconds": seconds,
                            "think": think,
                            "labels": list(LABELS),
                            "stagger": think > 0,
                        }
                    )
                    + "\n"
                )
                child.stdin.flush()
            warmup_errors = sum(self._ready(child)["warmup_errors"] for child in children)
            if warmup_errors:
                log(f"{warmup_errors} annotator(s) could not GET /api/v1/me before the start")
            database = connection.settings_dict["NAME"]
            server_cpu = _CpuMeter(self.server.processes)
            postgres_cpu = _CpuMeter(lambda: _postgres_backends(database))
            stack.enter_context(server_cpu)
            stack.enter_context(postgres_cpu)
            machine0 = psutil.cpu_times()
            result = _PhaseResult(seconds=seconds, started_at=time.time())
            wall0 = time.monotonic()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            client_cpu = 0.0
            for child in children:
                assert child.stdout is not None
                line = child.stdout.readline()
                if child.wait(timeout=60) != 0 or not line:
                    raise CommandError(f"a client process exited with code {child.returncode}")
                got = json.loads(line)
                result.requests += got["requests"]
                result.submits += got["submits"]
                for label, body in got["samples"].items():
                    result.samples.setdefault(label, body)
                client_cpu += got["cpu_seconds"]
            result.wall_seconds = time.monotonic() - wall0
            stack.close()
            machine1 = psutil.cpu_times()
            result.cpu_seconds = {
                "server": server_cpu.seconds,
                "postgres": postgres_cpu.seconds,
                "client": client_cpu,
                # Every process of the box, whoever runs it: how close to saturated it was.
                "machine": sum(machine1)
                - sum(machine0)
                - (machine1.idle - machine0.idle)
                - (getattr(machine1, "iowait", 0.0) - getattr(machine0, "iowait", 0.0)),
            }
            self.server.check_alive()
            return result
        finally:
            stack.close()
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()

    @staticmethod
    def _ready(child: subprocess.Popen[str]) -> dict[str, Any]:
        assert child.stdout is not None
        deadline = time.monotonic() + CLIENT_READY_TIMEOUT
        line = child.stdout.readline()  # the child answers within seconds or exits
        if not line or time.monotonic() > deadline:
            raise CommandError(f"a client process did not start (exit code {child.poll()})")
        return dict(json.loads(line))


# --- what the database says afterwards --------------------------------------------------


def _double_leases(project_id: int) -> int:
    """Pairs of leases of one (task, slot) that were live at the same moment."""
    table = Lease._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM {table} a JOIN {table} b
              ON a.task_id = b.task_id AND a.slot = b.slot AND a.id < b.id
            WHERE a.project_id = %s AND b.project_id = %s
              AND a.leased_at < LEAST(COALESCE(b.ended_at, 'infinity'), b.expires_at)
              AND b.leased_at < LEAST(COALESCE(a.ended_at, 'infinity'), a.expires_at)
            """,  # noqa: S608 - table names from the models
            [project_id, project_id],
        )
        return int(cursor.fetchone()[0])


def _lost_submits(submits: list[list[Any]], *, log: Log) -> int:
    """Submits answered 200/201 whose key is not stored exactly once, as a revision of
    that annotator on that task with the id the client was given."""
    if not submits:
        return 0
    User = get_user_model()
    user_ids = dict(User.objects.values_list("username", "id"))
    revision = AnnotationRevision._meta.db_table
    annotation = AnnotationRevision._meta.get_field("annotation").related_model._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_submit (user_id bigint, key text, revision_id bigint, "
            "task_id bigint) ON COMMIT DROP"
        )
        with cursor.cursor.copy("COPY bench_submit FROM STDIN") as copy:
            for username, key, revision_id, task_id in submits:
                copy.write_row((user_ids[username], key, revision_id, task_id))
        cursor.execute(
            f"""
            SELECT count(*) FROM bench_submit s
            WHERE (SELECT count(*) FROM {revision} r JOIN {annotation} a ON a.id = r.annotation_id
                   WHERE r.created_by_id = s.user_id AND r.idempotency_key = s.key
                     AND r.id = s.revision_id AND a.task_id = s.task_id) <> 1
               OR (SELECT count(*) FROM {revision} r
                   WHERE r.created_by_id = s.user_id AND r.idempotency_key = s.key) <> 1
            """  # noqa: S608 - table names from the models
        )
        lost = int(cursor.fetchone()[0])
        cursor.execute("SELECT count(*) - count(DISTINCT (user_id, key)) FROM bench_submit")
        repeated = int(cursor.fetchone()[0])
    if repeated:
        log(f"{repeated} submit(s) were answered 2xx twice under one key (a resend)")
    return lost
