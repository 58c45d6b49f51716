"""The simulated annotators of `bench queue`: one process running several annotator threads.

Run as `python -m labeling.bench._client` by labeling/bench/queue.py, several at once, so
the client's GIL does not queue the responses it times. Standard library only (no
Django): the process starts in ~50 ms and spends its CPU on HTTP alone.

Protocol on stdin/stdout, one JSON object a line:
1. the parent writes the configuration (below);
2. the child opens one keep-alive connection per annotator, warms it with GET
   /api/v1/me (so the server's workers and their database connections are warm), and
   writes {"ready": true, "warmup_errors": n};
3. the parent writes "go"; each annotator loops lease -> think -> submit until
   `seconds` have passed (a submit already leased is finished after that);
4. the child writes its results and exits.

Configuration: {"host", "port", "project", "annotators": [[username, token], ...],
"seconds", "think", "labels": [...], "stagger": bool, "timeout"}.
Results: {"requests": [[kind, ended_at (time.time()), ms, status], ...] (status 0: no
response), "submits": [[username, idempotency_key, revision_id, task_id], ...] (every
submit answered 200/201), "samples": {"lease 409": "first body", ...}, "cpu_seconds",
"wall_seconds"}.
"""

from __future__ import annotations

import http.client
import json
import random
import resource
import socket
import sys
import threading
import time
import uuid
from typing import Any

# Keep at most this many bodies of unexpected answers per (kind, status): enough to
# tell what went wrong without shipping thousands of copies back.
SAMPLE_BYTES = 500
# After "nothing left for you" (204) or an error, wait before asking again, as a client
# would, instead of spinning on the server.
RETRY_PAUSE = 0.05


class Annotator(threading.Thread):
    def __init__(self, config: dict[str, Any], username: str, token: str, out: Results) -> None:
        super().__init__(name=f"annotator-{username}", daemon=True)
        self.config = config
        self.username = username
        self.out = out
        self.headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.conn = self._connect()
        self.rng = random.Random(username)
        self.go = threading.Event()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self.config["host"], self.config["port"], timeout=self.config.get("timeout", 60)
        )

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, float]:
        """One request on the keep-alive connection: (status, body, ms); status 0 when no
        answer came (the connection is then replaced)."""
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
            if response.will_close:
                self.conn.close()
                self.conn = self._connect()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = self._connect()
            status, data = 0, f"{type(exc).__name__}: {exc}".encode()
        return status, data, (time.perf_counter() - started) * 1000

    def warm(self) -> bool:
        status, _, _ = self.call("GET", "/api/v1/me")
        return status == 200

    def run(self) -> None:
        config = self.config
        self.go.wait()
        deadline = time.monotonic() + config["seconds"]
        think = config["think"]
        if config.get("stagger") and think > 0:
            # Annotators do not all start in the same millisecond.
            time.sleep(self.rng.uniform(0, think))
        lease_path = f"/api/v1/projects/{config['project']}/next"
        while time.monotonic() < deadline:
            status, data, ms = self.call("POST", lease_path)
            self.out.request("lease", ms, status, data)
            if status != 200:
                time.sleep(RETRY_PAUSE)
                continue
            grant = json.loads(data)
            lease_id, task = grant["lease"]["id"], grant["task"]
            if think > 0:
                time.sleep(think)
            self.submit(task, lease_id)

    def submit(self, task: dict[str, Any], lease_id: Any) -> None:
        item = task.get("item") or {}
        width, height = item.get("width") or 640, item.get("height") or 480
        key = str(uuid.uuid4())
        body = json.dumps(
            {
                "result": [self.box(width, height)],
                "lease": lease_id,
                "idempotency_key": key,
            }
        ).encode()
        path = f"/api/v1/tasks/{task['id']}/annotations/"
        status, data, ms = self.call("POST", path, body)
        if status == 0:
            # No answer: the submit may or may not have been stored. Sending it again
            # with the same key is what the idempotency key is for.
            self.out.request("submit", ms, status, data)
            status, data, ms = self.call("POST", path, body)
        self.out.request("submit", ms, status, data)
        if status in (200, 201):
            answer = json.loads(data)["annotation"]
            self.out.submitted(self.username, key, answer["revision"]["id"], task["id"])

    def box(self, width: int, height: int) -> dict[str, Any]:
        rng = self.rng
        w = rng.randint(8, max(8, width // 3))
        h = rng.randint(8, max(8, height // 3))
        return {
            "id": "r1",
            "type": "rectanglelabels",
            "value": {
                "x": rng.randint(0, width - w),
                "y": rng.randint(0, height - h),
                "width": w,
                "height": h,
                "rectanglelabels": [rng.choice(self.config["labels"])],
            },
        }


class Results:
    """What the annotators of this process saw, gathered under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[list[Any]] = []
        self.submits: list[list[Any]] = []
        self.samples: dict[str, str] = {}

    def request(self, kind: str, ms: float, status: int, body: bytes) -> None:
        ended = time.time()
        with self.lock:
            self.requests.append([kind, ended, round(ms, 3), status])
            label = f"{kind} {status}"
            if status not in (200, 201) and label not in self.samples:
                self.samples[label] = body[:SAMPLE_BYTES].decode(errors="replace")

    def submitted(self, username: str, key: str, revision_id: Any, task_id: Any) -> None:
        with self.lock:
            self.submits.append([username, key, revision_id, task_id])


def main() -> None:
    socket.setdefaulttimeout(120)
    config = json.loads(sys.stdin.readline())
    results = Results()
    annotators = [
        Annotator(config, username, token, results) for username, token in config["annotators"]
    ]
    warm_ok = sum(a.warm() for a in annotators)
    for annotator in annotators:
        annotator.start()
    print(json.dumps({"ready": True, "warmup_errors": len(annotators) - warm_ok}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    for annotator in annotators:
        annotator.go.set()
    for annotator in annotators:
        annotator.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "requests": results.requests,
                "submits": results.submits,
                "samples": results.samples,
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime - cpu0, 3),
                "wall_seconds": round(time.monotonic() - started, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
