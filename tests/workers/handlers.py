"""Job handlers for the tests. A worker started from the repo root imports them as
`tests.workers.handlers.<name>`, exactly as it imports a domain service.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from storage.errors import StorageUnavailable
from workers.models import Job
from workers.types import JobContext

HERE = "tests.workers.handlers"


def add(ctx: JobContext) -> dict[str, Any]:
    """Add params a and b; report the sum."""
    ctx.progress(0, total=1)
    total = ctx.params["a"] + ctx.params["b"]
    ctx.progress(1)
    return {"sum": total}


def _record(marker: str, line: str) -> None:
    # O_APPEND: each short line lands whole even if two processes write at once.
    fd = os.open(marker, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def slow(ctx: JobContext) -> dict[str, Any]:
    """Count to params.steps, sleeping params.delay each step, reporting progress.

    Appends "start <attempt>" to params.marker when it starts and "done <attempt>" when
    it finishes (its output, written before the row flips), so a test can tell how many
    runs started and how many completed.
    """
    steps, delay, marker = ctx.params["steps"], ctx.params["delay"], ctx.params["marker"]
    _record(marker, f"start {ctx.attempt} pid={os.getpid()}")
    for step in range(steps):
        if ctx.should_stop():
            _record(marker, f"stopped {ctx.attempt}")
            return {"stopped_at": step}
        time.sleep(delay)
        ctx.progress(step + 1, total=steps)
    _record(marker, f"done {ctx.attempt}")
    return {"steps": steps}


def flaky_storage(ctx: JobContext) -> dict[str, Any]:
    """Fail like an unreachable object store on the first attempt; succeed after."""
    if ctx.attempt < ctx.params.get("succeed_on", 2):
        raise StorageUnavailable("object store at 127.0.0.1:9 refused the connection")
    return {"ok": True, "attempt": ctx.attempt}


def always_timeout(ctx: JobContext) -> None:
    raise TimeoutError("read timed out")


def broken(ctx: JobContext) -> None:
    ctx.update_report(rows_read=7)
    raise ValueError("row 7: label 'cat ' is not in the schema\nsecond line of detail")


def wait_for_cancel(ctx: JobContext) -> dict[str, Any]:
    """Beat until cancelled (or params.seconds pass); report whether it saw the stop."""
    deadline = time.monotonic() + ctx.params.get("seconds", 10)
    while time.monotonic() < deadline:
        if ctx.should_stop():
            Path(ctx.params["marker"]).write_text("stopped")
            return {"stopped": True}
        time.sleep(0.05)
        ctx.progress(1)
    return {"stopped": False}


def observe_heartbeats(ctx: JobContext) -> dict[str, Any]:
    """Sleep params.seconds without reporting progress, sampling the row's heartbeat."""
    beats = []
    deadline = time.monotonic() + ctx.params["seconds"]
    while time.monotonic() < deadline:
        beat = Job.objects.values_list("heartbeat_at", flat=True).get(pk=ctx.job_id)
        beats.append(beat.isoformat())
        time.sleep(0.1)
    return {"heartbeats": beats}


NOT_CALLABLE = 42
