"""Session-wide test infrastructure: a real SeaweedFS S3 server on free ports.

The database is whatever DATABASE_URL names (PostgreSQL in CI, SQLite otherwise; see
the Makefile), the broker whatever CELERY_BROKER_URL names. The S3 server is always
real: started here once per session on free ports and stopped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test.utils import override_settings

from storage.embedded import SeaweedServer


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Hash test passwords with MD5: the production hasher costs about 1 s per user here."""
    # override_settings sends setting_changed, which clears Django's cached hashers.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A live SeaweedFS S3 gateway with fresh credentials, for the whole session."""
    data_dir = Path(tmp_path_factory.mktemp("seaweedfs"))
    server = SeaweedServer(
        data_dir=data_dir,
        access_key="lv-test-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(24),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=2)  # throwaway data: no need to wait for a clean shutdown


@pytest.fixture(scope="session", autouse=True)
def _s3_settings(s3_server: SeaweedServer) -> Iterator[None]:
    """Point settings (and any process a test starts) at the session's S3 server."""
    values = {
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "S3_BUCKET": "lv-test-" + secrets.token_hex(4),
        "S3_SECURE": False,
        "S3_PUBLIC_ENDPOINT": "",
    }
    saved_settings = {name: getattr(settings, name) for name in values}
    saved_env = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
        os.environ[name] = "1" if value is True else "0" if value is False else str(value)
    from storage import client as storage_client

    storage_client.reset_client()
    storage_client.bucket_ensure()
    try:
        yield
    finally:
        for name, value in saved_settings.items():
            setattr(settings, name, value)
        for name, env_value in saved_env.items():
            if env_value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = env_value
        storage_client.reset_client()


# =======================================================================================
# Worker processes (owned by workers/; reuse them for any feature that runs jobs).
#
# Real `celery -A config worker` subprocesses, no eager mode: a test picks a broker
# fixture (which also points this process's Celery app at that broker and a queue of its
# own), starts workers with `celery_worker_factory(broker)`, submits jobs and waits:
#
#     @pytest.mark.django_db(transaction=True)   # the worker must see committed rows
#     def test_import(celery_embedded_broker, celery_worker_factory, wait_for_job):
#         celery_worker_factory(celery_embedded_broker)
#         job = job_submit(kind="x", handler="pkg.module.func")
#         assert wait_for_job(job.id).state == "succeeded"
#
# Workers share the test database pytest-django created (DATABASE_URL built from the
# live connection), the session's S3 server (S3_* already in os.environ) and the repo
# root as working directory (so `tests.*` handlers import). Each is stopped at teardown
# (SIGTERM to its process group, SIGKILL after a grace period); its log is kept in
# tmp_path and its tail printed, which pytest shows when the test failed.
# =======================================================================================

import contextlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
# A worker (Django set-up, broker connection, pool fork) is ready in ~2-4 s here.
WORKER_READY_TIMEOUT_SECONDS = 60.0
WORKER_STOP_GRACE_SECONDS = 15.0
# Redis for broker tests when CELERY_BROKER_URL is not Redis: a db number of its own.
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass(frozen=True)
class CeleryBroker:
    """A broker URL and a queue name used by one test only."""

    kind: str  # "redis" or "embedded"
    url: str
    queue: str


def _unique_queue() -> str:
    return "lvtest-" + uuid.uuid4().hex[:12]


@contextlib.contextmanager
def celery_app_sending_to(broker: CeleryBroker) -> Iterator[None]:
    """Make this process's Celery app publish to `broker.url`, on `broker.queue`.

    job_submit / jobs_sweep send through the app's default connection and queue, which
    Celery fixes at first use: swap the URL (the CELERY_BROKER_URL variable wins over
    conf), the default queue and the transport options, and drop the cached connection
    and producer pools, as Celery itself does after a fork.
    """
    from workers.celery_app import app, transport_options_for

    def reset_pools() -> None:
        import kombu.pools

        kombu.pools.reset()  # closes and forgets the process-wide pools, keyed by URL
        app._pool = None
        app.amqp._producer_pool = None

    conf = app.conf
    saved = {
        "broker_url": conf.broker_url,
        "task_default_queue": conf.task_default_queue,
        "broker_transport_options": dict(conf.broker_transport_options or {}),
    }
    saved_env = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker.url
    conf.broker_url = broker.url
    conf.task_default_queue = broker.queue
    conf.broker_transport_options = transport_options_for(
        broker.url, saved["broker_transport_options"]
    )
    reset_pools()
    try:
        yield
    finally:
        reset_pools()
        for name, value in saved.items():
            setattr(conf, name, value)
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env


@pytest.fixture
def celery_embedded_broker(tmp_path: Path) -> Iterator[CeleryBroker]:
    """The embedded broker (kombu's SQLAlchemy transport on a SQLite file of this test)."""
    broker = CeleryBroker(
        kind="embedded", url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}", queue=_unique_queue()
    )
    with celery_app_sending_to(broker):
        yield broker


def _redis_test_url() -> str:
    configured = os.environ.get("CELERY_BROKER_URL", "")
    if configured.startswith(("redis://", "rediss://")):
        return configured
    return os.environ.get("TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)


def _redis_forget_queue(client: Any, queue: str) -> None:
    """Delete what kombu keeps in Redis for `queue`, including unacked messages."""
    for key in client.scan_iter(match=f"{queue}*"):
        client.delete(key)
    client.delete(f"_kombu.binding.{queue}")
    for tag, raw in client.hgetall("unacked").items():
        try:
            _payload, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if queue in (exchange, routing_key):
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


@pytest.fixture
def celery_redis_broker() -> Iterator[CeleryBroker]:
    """Redis (CELERY_BROKER_URL when it is Redis, else TEST_REDIS_URL or db 15).

    Skipped when Redis does not answer, unless CI is set: then the test fails.
    """
    import redis

    url = _redis_test_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {url} does not answer: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so Redis tests must run)")
        pytest.skip(message)
    broker = CeleryBroker(kind="redis", url=url, queue=_unique_queue())
    try:
        with celery_app_sending_to(broker):
            yield broker
    finally:
        _redis_forget_queue(client, broker.queue)
        client.close()


@pytest.fixture
def celery_unreachable_broker() -> Iterator[CeleryBroker]:
    """A broker URL nobody answers on (port 1): sends fail as when Redis is down."""
    broker = CeleryBroker(kind="redis", url="redis://127.0.0.1:1/0", queue=_unique_queue())
    with celery_app_sending_to(broker):
        yield broker


@pytest.fixture(params=["embedded", "redis"])
def celery_broker(request: pytest.FixtureRequest) -> CeleryBroker:
    """Each broker in turn (parametrised): the embedded one, then Redis."""
    return request.getfixturevalue(f"celery_{request.param}_broker")


def worker_database_url() -> str:
    """DATABASE_URL of the database this test session uses (the test database)."""
    from workers.processes import database_url

    return database_url()


@dataclass
class CeleryWorkerProcess:
    """One `celery -A config worker` subprocess, leader of its own process group."""

    broker: CeleryBroker
    hostname: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        from workers.processes import worker_argv

        return worker_argv(
            queue=self.broker.queue, hostname=self.hostname, pool="prefork", concurrency=1
        )

    def start(self, timeout: float = WORKER_READY_TIMEOUT_SECONDS) -> CeleryWorkerProcess:
        """Start the worker and wait for its "ready." log line."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the pool
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.hostname} exited with {self.process.returncode} "
                    f"before it was ready:\n{self.log_tail()}"
                )
            if f"{self.hostname} ready." in self.log_text():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker {self.hostname} not ready after {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group at once, like a container's OOM kill."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self._wait_group_gone(10.0)

    def stop(self, grace: float = WORKER_STOP_GRACE_SECONDS) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL whatever is left after `grace`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        if not self._wait_group_gone(grace):
            self._signal_group(signal.SIGKILL)
            if not self._wait_group_gone(10.0):
                raise RuntimeError(f"worker {self.hostname}: processes left in group {self.pid}")

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def _group_members(self) -> list[int]:
        import psutil

        members = []
        for proc in psutil.process_iter(["pid", "status"]):
            with contextlib.suppress(psutil.Error):
                if os.getpgid(proc.pid) == self.pid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    members.append(proc.pid)
        return members

    def _wait_group_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._group_members():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


WorkerFactory = Callable[..., CeleryWorkerProcess]


@pytest.fixture
def celery_worker_factory(transactional_db: None, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start real workers: `factory(broker, env={...}) -> CeleryWorkerProcess` (ready).

    `env` adds or overrides variables of the worker, e.g. {"JOB_STALE_AFTER": "2"}.
    Needs a transactional test (the worker must see committed rows); every worker is
    stopped before the database is flushed.
    """
    workers: list[CeleryWorkerProcess] = []

    def start(broker: CeleryBroker, *, env: dict[str, str] | None = None) -> CeleryWorkerProcess:
        name = f"lvtest{len(workers) + 1}-{uuid.uuid4().hex[:6]}"
        worker_env = {
            **os.environ,  # S3_* of the session's server, VAR_DIR, PATH ...
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": broker.url,
            "CELERY_QUEUE": broker.queue,  # retries and sweeps re-send to this queue
            "CELERY_RESULT_BACKEND": "cache+memory://",  # results are ignored anyway
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        worker = CeleryWorkerProcess(
            broker=broker,
            hostname=f"{name}@localhost",
            log_path=tmp_path / f"worker-{name}.log",
            env=worker_env,
        )
        workers.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        errors = []
        for worker in workers:
            try:
                worker.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others, then report
                errors.append(exc)
            print(f"\n----- log of worker {worker.hostname} (last 60 lines) -----")
            print(worker.log_tail())
        if errors:
            raise errors[0]


@pytest.fixture
def wait_for_job() -> Callable[..., Any]:
    """`wait_for_job(job_id, until=predicate, timeout=30)`: poll the row until the
    predicate holds (default: the job finished); return the Job. Fails on timeout."""
    from workers.models import Job

    def wait(
        job_id: Any, *, until: Callable[[Any], bool] | None = None, timeout: float = 30.0
    ) -> Any:
        check = until or (lambda job: job.is_finished)
        deadline = time.monotonic() + timeout
        while True:
            job = Job.objects.get(pk=job_id)
            if check(job):
                return job
            if time.monotonic() > deadline:
                pytest.fail(
                    f"job {job_id} still {job.state} after {timeout}s "
                    f"(progress {job.progress_done}/{job.progress_total}, "
                    f"attempts {job.attempts}, error {job.error!r})"
                )
            time.sleep(0.1)

    return wait
