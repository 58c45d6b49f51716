"""What the benchmarks share: checking the services, a Celery worker of their own,
an RSS sampler, and the clean-up of what they wrote."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from datasets.models import Asset, Dataset, Import, ImportEntry
from storage.client import ping
from storage.errors import StorageError
from workers.celery_app import app
from workers.models import Job
from workers.processes import database_url, worker_argv

# A worker (Django set-up, broker connection, pool fork) is ready in ~2-4 s here.
WORKER_READY_TIMEOUT = 60.0
# Celery's warm shutdown finishes the running task; a chunk of 20 kB images takes seconds.
WORKER_STOP_GRACE = 30.0
RSS_SAMPLE_SECONDS = 0.2
POLL_SECONDS = 0.2
# Slowest rate we wait for before calling an import stuck: 5 files/s, at least 2 minutes.
MIN_RATE = 5.0
MIN_WAIT = 120.0


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the bench's own Celery worker, and --keep."""
    parser.add_argument(
        "--workers", type=int, default=2, help="jobs run at once (Celery --concurrency, 2)"
    )
    parser.add_argument(
        "--pool",
        choices=("prefork", "threads", "solo"),
        default="solo",
        help="Celery worker pool: solo (--workers processes of one job each, as deployed), "
        "threads (one process running --workers jobs) or prefork (a parent and children)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench user, dataset, items, imports and jobs in the database",
    )


class Log:
    """Progress lines for a person: `[bench NAME  12.3 s] message`."""

    def __init__(self, out: IO[str], *, name: str = "ingest") -> None:
        self.out = out
        self.name = name
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        self.out.write(f"[bench {self.name} {time.monotonic() - self.t0:7.1f} s] {message}\n")
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self.out.flush()


# --- preconditions ----------------------------------------------------------------------


def check_services() -> None:
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
        raise CommandError(f"the Celery broker at {broker_url()} is not reachable: {exc}") from exc


def broker_url() -> str:
    return str(app.conf.broker_url or settings.CELERY_BROKER_URL)


def bench_user(tag: str) -> Any:
    return get_user_model().objects.create_user(
        username=f"bench-{tag}", password=None, is_superuser=True
    )


def import_wait(
    imp: Import, *, started: float, pool: WorkerSet, count: int
) -> tuple[float, Import]:
    """Wait until the import ends; return (seconds since `started`, the Import).

    Fails with a CommandError when the worker dies, the import fails, or it runs
    slower than MIN_RATE entries a second (at least MIN_WAIT).
    """
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


def drain(*, user: Any, pool: WorkerSet, count: int) -> float:
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


def forget(*, user: Any, log: Log) -> None:
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


def worker_env(*, queue: str, extra: dict[str, str]) -> dict[str, str]:
    """The command's environment, with what the workers must share with it spelled out."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "DATABASE_URL": _database_url(),
        # Workers run as deployed: with DEBUG on, Django keeps every query's SQL in memory
        # (up to 9,000 per connection) and peak RSS would measure that log.
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,  # shared: it also keys the stored credentials
        "CELERY_BROKER_URL": broker_url(),
        "CELERY_QUEUE": queue,  # retries and spawned chunks go to this queue too
        "CELERY_RESULT_BACKEND": "cache+memory://",  # results are ignored anyway
        "S3_ENDPOINT": settings.S3_ENDPOINT,
        "S3_ACCESS_KEY": settings.S3_ACCESS_KEY,
        "S3_SECRET_KEY": settings.S3_SECRET_KEY,
        "S3_BUCKET": settings.S3_BUCKET,
        "S3_SECURE": "1" if settings.S3_SECURE else "0",
        **extra,
        "PYTHONUNBUFFERED": "1",
    }


@contextlib.contextmanager
def sending_to(queue: str) -> Iterator[None]:
    """Publish this process's jobs on the bench's queue, then restore the default."""
    saved = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield
    finally:
        app.conf.task_default_queue = saved


def forget_queue(queue: str) -> None:
    """Drop what kombu left in Redis for the bench's (now empty) queue: its bindings."""
    url = broker_url()
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
class WorkerPool:
    """One `celery worker` process (prefork, `concurrency` children), its own session."""

    hostname: str
    queue: str
    concurrency: int
    pool: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        argv = worker_argv(
            queue=self.queue, hostname=self.hostname, pool=self.pool, concurrency=self.concurrency
        )
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


@dataclass
class WorkerSet:
    """The bench's workers: one `celery worker` running `jobs` jobs at once (threads or
    prefork), or `jobs` solo workers of one job each."""

    members: list[WorkerPool]

    @classmethod
    def build(
        cls, *, tag: str, queue: str, jobs: int, pool: str, root: Path, env: dict[str, str]
    ) -> WorkerSet:
        solo = pool == "solo"
        return cls(
            [
                WorkerPool(
                    hostname=f"lvbench-{tag}-{n}@localhost",
                    queue=queue,
                    concurrency=1 if solo else jobs,
                    pool=pool,
                    log_path=root / f"worker-{n}.log",
                    env=env,
                )
                for n in range(jobs if solo else 1)
            ]
        )

    def start(self) -> None:
        for member in self.members:
            member.start()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def check_alive(self) -> None:
        for member in self.members:
            member.check_alive()

    @property
    def pids(self) -> list[int]:
        return [member.pid for member in self.members]

    @property
    def log_path(self) -> Path:
        return self.members[0].log_path


class RssSampler:
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

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- a PostgreSQL database of the bench's own -------------------------------------------

DATABASE_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def admin_execute(settings_dict: dict[str, Any], sql: str) -> None:
    """Run one statement outside any transaction on the server's `postgres` database."""
    params = {
        "dbname": "postgres",
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
    }
    with psycopg.connect(
        autocommit=True, **{k: v for k, v in params.items() if v is not None}
    ) as admin:
        admin.execute(sql)


@contextlib.contextmanager
def own_database(name: str, *, keep: bool, log: Log, bench: str) -> Iterator[None]:
    """Create database `name` (dropping a leftover one), point this process's default
    connection at it and migrate it; on the way out point the connection back and drop
    it unless `keep`. The way Django's test runner switches to a test database."""
    if not DATABASE_NAME_RE.fullmatch(name):
        raise CommandError(f"--database {name!r}: use lowercase letters, digits and _")
    settings_dict = connection.settings_dict
    in_use = settings_dict["NAME"]
    if name == in_use:
        raise CommandError(f"--database {name!r} is the database in use; name another one")
    if connection.in_atomic_block:
        raise CommandError(f"bench {bench} cannot switch databases inside a transaction")
    admin_execute(settings_dict, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_execute(settings_dict, f'CREATE DATABASE "{name}"')
    connection.close()
    settings_dict["NAME"] = name
    try:
        call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
        yield
    finally:
        connection.close()
        settings_dict["NAME"] = in_use
        if keep:
            log(f"kept database {name}")
        else:
            admin_execute(settings_dict, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped database {name}")
