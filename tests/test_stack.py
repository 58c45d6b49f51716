"""`python -m config.stack` (what `make run` runs), for real: SeaweedFS, migrate, bucket,
demo users, a Celery worker and beat, runserver; then Ctrl-C must leave nothing behind.

Runs beside a developer's `make run`: its own VAR_DIR, web port and SeaweedFS ports, and
the embedded mode (SQLite, SQLAlchemy broker) whatever database the suite itself uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from config import stack
from storage.embedded import DEFAULT_PORTS, ports_free

BASE_DIR = Path(__file__).resolve().parent.parent
# A fresh stack is ready in about 20 s here (SeaweedFS ~6 s, migrations ~10 s on SQLite).
READY_TIMEOUT = 240.0
# Children get STOP_GRACE_SECONDS, SIGKILL takes KILL_WAIT_SECONDS at most, then SeaweedFS
# gets its own grace (15 s); the rest is slack for a loaded CI machine.
STOP_TIMEOUT = stack.STOP_GRACE_SECONDS + stack.KILL_WAIT_SECONDS + 15.0 + 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_s3_port() -> int:
    """An S3 port whose derived SeaweedFS port set (and gRPC twins) is free."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 44000)
        if ports_free(stack.seaweed_ports(port)):
            return port
    raise RuntimeError("no free SeaweedFS port set")


def _stack_env(var_dir: Path, web_port: int, s3_port: int) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        # The suite's own services (and the session's S3 server) are not the stack's.
        if not name.startswith(("S3_", "CELERY_", "DATABASE_"))
    }
    env.update(
        {
            "DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "VAR_DIR": str(var_dir),
            "LABELVAULT_PORT": str(web_port),
            "LABELVAULT_S3_PORT": str(s3_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "config.stack"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill_all(procs: list[psutil.Process]) -> None:
    """Last resort after a failure: leave nothing of this test running."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict, Path]]:
    var_dir = tmp_path / "var"
    log = tmp_path / "stack.log"
    web_port, s3_port = _free_port(), _free_s3_port()
    env = _stack_env(var_dir, web_port, s3_port)
    proc = _start(env, log)
    seen: list[psutil.Process] = []
    info = {"env": env, "url": f"http://127.0.0.1:{web_port}", "seen": seen}
    try:
        yield proc, info, log
    finally:
        if proc.poll() is None:
            seen.extend(psutil.Process(proc.pid).children(recursive=True))
            seen.append(psutil.Process(proc.pid))
            _kill_all(seen)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"stack exited with {proc.returncode}:\n{log.read_text()[-6000:]}")
        try:
            resp = requests.get(url + "/readyz", timeout=10)
            if resp.status_code == 200:
                return
            last = f"{resp.status_code} {resp.text[:500]}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(1)
    pytest.fail(
        f"/readyz not green after {READY_TIMEOUT:.0f} s ({last}):\n{log.read_text()[-6000:]}"
    )


def _login(url: str, username: str, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(url + "/accounts/login/", timeout=10)
    assert page.status_code == 200
    return session.post(
        url + "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/",
        },
        headers={"Referer": url + "/accounts/login/"},
        timeout=10,
    )


@pytest.mark.slow
@pytest.mark.timeout(READY_TIMEOUT + STOP_TIMEOUT + 120)
def test_stack_serves_the_demo_and_ctrl_c_stops_everything(running_stack) -> None:
    proc, info, log = running_stack
    url = info["url"]
    _wait_ready(proc, url, log)

    descendants = psutil.Process(proc.pid).children(recursive=True)
    info["seen"].extend(descendants)
    cmdlines = [" ".join(p.cmdline()) for p in descendants]
    for part in ("weed server", "celery -A config worker", "celery -A config beat", "runserver"):
        assert any(part in line for line in cmdlines), f"no {part!r} among {cmdlines}"

    # seed_demo printed the demo users, and keeps them in VAR_DIR/demo-users.json.
    users = json.loads((Path(info["env"]["VAR_DIR"]) / "demo-users.json").read_text())
    output = log.read_text()
    assert users["admin"] in output
    resp = _login(url, "admin", users["admin"])
    assert resp.status_code == 200 and resp.url == url + "/", resp.url
    assert "Welcome, admin" in resp.text
    assert "didn't match" in _login(url, "admin", users["admin"] + "x").text

    # A second stack on the same VAR_DIR refuses to start and says why.
    second = subprocess.run(
        [sys.executable, "-m", "config.stack"],
        cwd=BASE_DIR,
        env=info["env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert f"another stack (pid {proc.pid}) is running" in second.stdout

    # Ctrl-C under make: SIGINT to the foreground group, i.e. to the stack alone (each child
    # runs in its own session).
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=STOP_TIMEOUT)
    output = log.read_text()
    assert proc.returncode == 0, output[-4000:]
    assert "processes started here is running" in output
    gone, alive = psutil.wait_procs(descendants, timeout=1)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[(p.pid, p.cmdline()) for p in alive]}"


def test_busy_ports_are_named(tmp_path: Path) -> None:
    """A second `make run` beside a running one says which port and who holds it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = _stack_env(tmp_path / "var", port, _free_s3_port())
        result = subprocess.run(
            [sys.executable, "-m", "config.stack"],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port(s) {port} already in use" in result.stdout
    assert f"pid {os.getpid()}" in result.stdout  # the holder: this test process
    assert "LABELVAULT_PORT" in result.stdout


def test_seaweed_ports_derive_from_the_s3_port() -> None:
    assert stack.seaweed_ports(DEFAULT_PORTS.s3) == DEFAULT_PORTS
    other = stack.seaweed_ports(30000)
    assert other.s3 == 30000
    assert len(set(other.all_ports())) == 8
    with pytest.raises(stack.StackError):
        stack.seaweed_ports(60000)  # its gRPC twins would pass 65535
