"""`bench urls`: import N URLs from a local HTTP server, then time the item list's pages.

The real path: a URL-list import (the list staged in the object store, a plan job,
chunk jobs on Celery workers started here fetching every URL with the SSRF checks,
Pillow inspection, blobs, rows). The server is a thread of this command on 127.0.0.1,
allow-listed for the workers only (IMPORT_URL_ALLOWED_NETWORKS in their environment);
it answers /img/<n>.png with a distinct 8x8 PNG made on the fly.

Then the item list of the new dataset is loaded through the whole Django stack
(middleware, session log-in, view, template or serializer), as a browser or API client
would: the API's first page and last page (`?last=1`) and the HTML grid's first and
last page, each once to warm up and then REPEAT times; the median is reported.

Result keys: bench, count, seconds, urls_per_s, created, rejected, api_first_page_ms,
api_last_page_ms, ui_first_page_ms, ui_last_page_ms, page_size, database, peak_rss_mb,
workers, pool. Thumbnail jobs the import spawned are cancelled at the end, not waited
for (they are not part of this measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from PIL import Image

from datasets.bench._common import (
    Log,
    RssSampler,
    WorkerSet,
    add_worker_arguments,
    bench_user,
    check_services,
    forget,
    forget_queue,
    import_wait,
    sending_to,
    worker_env,
)
from datasets.models import Dataset, Import
from datasets.selectors import item_page
from datasets.services.datasets import dataset_create
from datasets.services.imports import import_submit_source
from workers.models import Job
from workers.services import job_cancel

HELP = (
    "Import N URLs served by a local HTTP server through the real path, then time the "
    "item list's first and last page (API and HTML)."
)
REPEAT = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=100_000, help="URLs to import (100000)")
    add_worker_arguments(parser)


def summary(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"import of {result['count']} URLs with {result['workers']} worker(s), "
            f"{result['pool']} pool, on {result['database']}:",
            f"  import     {result['seconds']:.1f} s, {result['urls_per_s']:.1f} URLs/s "
            f"({result['created']} created, {result['rejected']} rejected)",
            f"  API page   first {result['api_first_page_ms']:.1f} ms, "
            f"last {result['api_last_page_ms']:.1f} ms ({result['page_size']} items)",
            f"  HTML grid  first {result['ui_first_page_ms']:.1f} ms, "
            f"last {result['ui_last_page_ms']:.1f} ms",
            f"  peak RSS   {result['peak_rss_mb']:.0f} MB (command + workers)",
        ]
    )


def run(
    *,
    out: IO[str],
    count: int,
    workers: int,
    pool: str = "solo",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    if count < 1 or workers < 1:
        raise CommandError("--count and --workers must be at least 1")
    check_services()
    tag = uuid.uuid4().hex[:10]
    log = Log(out, name="urls")
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix=f"lv-bench-{tag}-", dir=settings.FILE_UPLOAD_TEMP_DIR))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        server = stack.enter_context(_image_server())
        base = f"http://127.0.0.1:{server.server_address[1]}"
        log(f"serving {count} images at {base}/img/<n>.png")

        rss = stack.enter_context(RssSampler())
        queue = f"lvbench-{tag}"
        worker_pool = WorkerSet.build(
            tag=tag,
            queue=queue,
            jobs=workers,
            pool=pool,
            root=root,
            env=worker_env(queue=queue, extra={"IMPORT_URL_ALLOWED_NETWORKS": "127.0.0.1/32"}),
        )
        # Undone in reverse: jobs cancelled, workers stopped, then rows and queue removed.
        stack.callback(forget_queue, queue)
        made: dict[str, Any] = {}
        if not keep:
            stack.callback(lambda: "user" in made and forget(user=made["user"], log=log))
        stack.callback(worker_pool.stop)
        stack.callback(lambda: "user" in made and _cancel_jobs(made["user"]))
        log(f"starting {workers} worker process(es) ({pool}) on queue {queue}")
        worker_pool.start()
        for pid in worker_pool.pids:
            rss.watch(pid)
        stack.enter_context(sending_to(queue))

        user = made["user"] = bench_user(tag)
        dataset = dataset_create(created_by=user, name=f"bench urls {tag}", kind="image")
        listing = "".join(f'"{base}/img/{n}.png"\n' for n in range(count)).encode()
        log(f"importing a JSONL list of {count} URLs ({len(listing) / 1e6:.1f} MB)")
        started = time.monotonic()
        imp = import_submit_source(
            dataset=dataset,
            source=Import.Source.URLS,
            created_by=user,
            list_file=SimpleUploadedFile("urls.jsonl", listing),
            fmt="jsonl",
        )
        del listing
        seconds, imp = import_wait(imp, started=started, pool=worker_pool, count=count)
        log(f"import: {seconds:.1f} s ({imp.created} created, {imp.rejected} rejected)")
        if imp.created != count:
            raise CommandError(
                f"import {imp.pk}: expected {count} created, got {imp.created} "
                f"(rejected {imp.rejected}, duplicates {imp.duplicates}); worker log: "
                f"{worker_pool.log_path}"
            )
        pages = _time_pages(dataset, user)
        log(
            "item list: API first/last {api_first_page_ms:.1f}/{api_last_page_ms:.1f} ms, "
            "HTML first/last {ui_first_page_ms:.1f}/{ui_last_page_ms:.1f} ms".format(**pages)
        )
        peak_rss = rss.peak_bytes

    return {
        "bench": "urls",
        "count": count,
        "seconds": round(seconds, 3),
        "urls_per_s": round(count / seconds, 1),
        "created": imp.created,
        "rejected": imp.rejected,
        **pages,
        "database": connection.vendor,
        "peak_rss_mb": round(peak_rss / 1_000_000, 1),
        "workers": workers,
        "pool": pool,
    }


# --- the image server -------------------------------------------------------------------


def _png(n: int) -> bytes:
    """A distinct 8x8 PNG for every n < 2**48 (n spread over the pixels' bytes)."""
    raw = n.to_bytes(6, "big") * 32
    buffer = io.BytesIO()
    Image.frombytes("RGB", (8, 8), raw).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class _ImageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        name = self.path.removeprefix("/img/").removesuffix(".png")
        if not self.path.startswith("/img/") or not name.isdigit():
            self.send_error(404)
            return
        body = _png(int(name))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the API's name
        pass


@contextlib.contextmanager
def _image_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-images", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- the item list ----------------------------------------------------------------------


def _median_ms(client: Client, url: str) -> float:
    """Load `url` once to warm up, then REPEAT times; return the median in ms."""
    timings = []
    for attempt in range(REPEAT + 1):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise CommandError(f"GET {url} answered {response.status_code}")
        if attempt:
            timings.append(elapsed * 1000)
    return round(statistics.median(timings), 1)


def _time_pages(dataset: Dataset, user: Any) -> dict[str, Any]:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    first = item_page(dataset=dataset)
    api = f"/api/v1/datasets/{dataset.pk}/items/"
    ui = f"/datasets/{dataset.pk}"
    return {
        "api_first_page_ms": _median_ms(client, api),
        "api_last_page_ms": _median_ms(client, f"{api}?last=1"),
        "ui_first_page_ms": _median_ms(client, ui),
        "ui_last_page_ms": _median_ms(client, f"{ui}?cursor={first.last_cursor}"),
        "page_size": len(first.items),
    }


def _cancel_jobs(user: Any) -> None:
    """Cancel the bench user's jobs still queued or running (the import's thumbnails)."""
    for job in Job.objects.filter(created_by=user, parent=None, state__in=Job.ACTIVE_STATES):
        with contextlib.suppress(Exception):
            job_cancel(job.pk)
