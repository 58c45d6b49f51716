"""Job handlers for the tests. A worker started from the repo root imports them as
`tests.workers.handlers.<name>`, exactly as it imports a domain service.
"""

from __future__ import annotations

import os
import threading
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


# --- fan-out ------------------------------------------------------------------------------


def fan_out(ctx: JobContext) -> dict[str, Any]:
    """Spawn params.chunks chunk jobs (params.steps items each) and wait for them.

    Chunk number params.fail_chunk fails; params.depth > 1 makes each chunk a fan_out of
    its own (nested). on_done is fan_out_done unless params.on_done is False.
    """
    params = ctx.params
    depth = params.get("depth", 1)
    ctx.progress(1, total=1)  # the planning phase's own progress: replaced by the chunks'
    child = {k: v for k, v in params.items() if k not in ("chunks", "depth")}
    if depth > 1:
        children = [
            {**child, "chunks": params.get("sub_chunks", 2), "depth": depth - 1, "index": i}
            for i in range(params["chunks"])
        ]
        totals = None
        handler = f"{HERE}.fan_out"
    else:
        children = [{**child, "index": i} for i in range(params["chunks"])]
        totals = [params["steps"]] * params["chunks"]
        handler = f"{HERE}.chunk"
    ctx.spawn(
        kind="test.chunk",
        handler=handler,
        params_list=iter(children),  # any iterable will do
        totals=totals,
        on_done=f"{HERE}.fan_out_done" if params.get("on_done", True) else None,
    )
    if params.get("then_raise"):
        raise {"transient": StorageUnavailable, "bug": ValueError}[params["then_raise"]](
            "after spawning"
        )
    return {"chunks": params["chunks"]}


def chunk(ctx: JobContext) -> dict[str, Any]:
    """Count params.steps items, params.delay each; fail if this is params.fail_chunk.

    Appends "chunk-start <index> <attempt> <pid>", then "chunk-done ..." (or
    "chunk-stopped ...") to params.marker.
    """
    params = ctx.params
    index, marker = params["index"], params.get("marker")
    line = f"{index} {ctx.attempt} {os.getpid()}"
    if marker:
        _record(marker, f"chunk-start {line}")
    for step in range(params["steps"]):
        if ctx.should_stop():
            if marker:
                _record(marker, f"chunk-stopped {line}")
            return {"stopped_at": step}
        time.sleep(params.get("delay", 0))
        ctx.progress(step + 1, total=params["steps"])
    if index == params.get("fail_chunk"):
        raise ValueError(f"chunk {index}: bad row")
    if params.get("meet"):
        RACE_BARRIER.wait(timeout=10)  # return together with the other chunk
    if marker:
        _record(marker, f"chunk-done {line}")
    return {"index": index}


# Two chunks run by two threads of the test process wait here, so both finish at once.
RACE_BARRIER = threading.Barrier(2)


def fan_out_done(ctx: JobContext) -> dict[str, Any]:
    """The on_done of fan_out: append "on_done <pid>" to params.marker, report counts.

    params.on_done_fails: "bug" raises ValueError; "transient" raises StorageUnavailable
    on the first finishing run (attempt 2: the handler's run was attempt 1).
    """
    assert ctx.children is not None
    if ctx.params.get("marker"):
        _record(ctx.params["marker"], f"on_done {os.getpid()}")
    fails = ctx.params.get("on_done_fails")
    if fails == "bug":
        raise ValueError("on_done: totals do not add up")
    if fails == "transient" and ctx.attempt == 2:
        raise StorageUnavailable("object store away while closing the import")
    return {
        "chunks_succeeded": ctx.children.succeeded,
        "chunks_failed": ctx.children.failed + ctx.children.cancelled,
        "handler_said": ctx.report.get("chunks"),
    }
