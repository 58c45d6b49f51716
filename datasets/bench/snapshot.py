"""`bench snapshot`: snapshot, re-snapshot, relabel 1 %, diff and pull on PostgreSQL.

1. A PostgreSQL database of the bench's own (`--database`, created, migrated, dropped at
   the end unless --keep), so a million rows never land in the database in use and
   VACUUM ANALYZE sees only them (autovacuum may be off).
2. A labelled image dataset of N items generated inside PostgreSQL (INSERT ... SELECT
   over generate_series: no row passes through this process, so its peak RSS is the
   snapshot's): distinct fake assets (never read: a snapshot reads rows only), one item
   of each with a little metadata and no split (so every item gets its split from its
   hash, as most do), a tag on every tenth item, and a published box label on every item.
3. snapshot_s: version_snapshot of the dataset, in this process (as the job runs it);
   resnapshot_s: the same again with nothing changed, same_id: it returned the same
   version; then 1 % of the labels change and it is snapshotted a third time; diff_s:
   version_diff of the last two (streamed from object storage).
4. Pull: a second dataset of --pull-items items whose assets are real blobs (4-20 KB,
   distinct, deterministic, so a re-run stores nothing new), put with blob_put_bytes in
   threads, snapshotted, then pulled with version_pull(LocalSource) into a temporary
   directory (--pull-workers threads, each file verified). The floor: the same presigned
   GETs (signed beforehand, not timed) with bare `requests` sessions, one per thread,
   the same number of threads writing the files, no verification.
   pull_ratio_to_floor = pull_assets_per_s / pull_floor_assets_per_s.

peak_rss_mb is this process's peak RSS over the whole run (getrusage ru_maxrss).
The object store is the configured one (S3_*); manifests and blobs stay there
(content-addressed and write-once, like the blobs of bench ingest).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import requests
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from datasets.bench._common import Log, own_database
from datasets.models import Asset, Dataset, Item, Label
from datasets.services.datasets import dataset_counters_add
from datasets.services.diffs import version_diff
from datasets.services.pull import LocalSource, version_pull
from datasets.services.versions import SnapshotRequest, version_snapshot
from storage.client import ping
from storage.errors import StorageError
from storage.keys import blob_key
from storage.services import blob_put_bytes, presign_get

HELP = (
    "Snapshot a labelled dataset of N items on PostgreSQL, re-snapshot it unchanged, "
    "relabel 1 %, snapshot and diff; pull a version of --pull-items real assets."
)
SCHEMA_HASH = "b" * 64
CLASSES = ("car", "person", "bicycle")
REQUEST = SnapshotRequest(code_commit="0123456789abcdef", code_repo="", message="bench")
PUT_THREADS = 8
BLOB_MIN, BLOB_MAX = 4 * 1024, 20 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=100_000, help="items of the dataset")
    parser.add_argument(
        "--pull-items", type=int, default=10_000, help="items (real blobs) of the pulled version"
    )
    parser.add_argument(
        "--pull-workers", type=int, default=8, help="download threads of the pull and the floor"
    )
    parser.add_argument(
        "--database",
        default="lv_bench_snapshot",
        help="the PostgreSQL database the bench creates and drops (lv_bench_snapshot)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench database (and its log line)"
    )


def summary(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"bench snapshot: {result['items']} items",
            f"  snapshot   {result['snapshot_s']:.2f} s, unchanged again "
            f"{result['resnapshot_s']:.2f} s (same id: {result['same_id']})",
            f"  diff       {result['diff_s']:.2f} s ({result['relabelled']} relabelled)",
            f"  peak RSS   {result['peak_rss_mb']:.0f} MB",
            f"  pull       {result['pull_assets_per_s']:.0f} assets/s, floor "
            f"{result['pull_floor_assets_per_s']:.0f} assets/s, ratio "
            f"{result['pull_ratio_to_floor']:.2f}",
        ]
    )


def run(
    *,
    out: IO[str],
    items: int,
    pull_items: int = 10_000,
    pull_workers: int = 8,
    database: str = "lv_bench_snapshot",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    if items < 100 or pull_items < 1 or pull_workers < 1:
        raise CommandError("--items must be at least 100, --pull-items and --pull-workers 1")
    if connection.vendor != "postgresql":
        raise CommandError(
            f"bench snapshot needs PostgreSQL (a database of its own, generated rows, "
            f"VACUUM ANALYZE); this process uses {connection.vendor}. Set "
            "DATABASE_URL=postgres://user@host:5432/name."
        )
    try:
        ping(timeout=5.0)
    except StorageError as exc:
        raise CommandError(f"the object store is not usable: {exc}") from exc
    log = Log(out, name="snapshot")
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="lv-bench-snapshot-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        stack.enter_context(own_database(database, keep=keep, log=log, bench="snapshot"))
        owner = get_user_model().objects.create_user(
            username="bench-snapshot", password=None, is_superuser=True
        )
        started = time.monotonic()
        dataset = Dataset.objects.create(
            name="bench snapshot", kind=Dataset.Kind.IMAGE, created_by=owner
        )
        _generate(dataset_id=dataset.pk, count=items)
        _vacuum()
        log(f"generated {items} labelled items in {time.monotonic() - started:.1f} s")

        started = time.monotonic()
        first, _ = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=owner.pk)
        snapshot_s = time.monotonic() - started
        log(f"snapshot {first.pk[:12]}: {snapshot_s:.2f} s, {first.manifest_size} bytes")
        started = time.monotonic()
        again, created = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=owner.pk)
        resnapshot_s = time.monotonic() - started
        same_id = again.pk == first.pk and not created
        log(f"unchanged snapshot: {resnapshot_s:.2f} s, same id: {same_id}")

        relabelled = _relabel(dataset_id=dataset.pk)
        started = time.monotonic()
        third, _ = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=owner.pk)
        third_s = time.monotonic() - started
        log(f"relabelled {relabelled} items, snapshot {third.pk[:12]}: {third_s:.2f} s")
        started = time.monotonic()
        diff = version_diff(a=first, b=third)
        diff_s = time.monotonic() - started
        log(f"diff: {diff_s:.2f} s, {diff['relabelled']} relabelled")
        if diff["relabelled"] != relabelled:
            raise CommandError(f"the diff found {diff['relabelled']} relabelled, not {relabelled}")

        pull = _pull_phase(owner=owner, count=pull_items, workers=pull_workers, root=root, log=log)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bench": "snapshot",
        "items": items,
        "snapshot_s": round(snapshot_s, 2),
        "resnapshot_s": round(resnapshot_s, 2),
        "same_id": same_id,
        "diff_s": round(diff_s, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        **pull,
        # for context
        "changed_snapshot_s": round(third_s, 2),
        "relabelled": relabelled,
        "manifest_bytes": first.manifest_size,
        "pull_items": pull_items,
        "pull_workers": pull_workers,
    }


# --- the data ---------------------------------------------------------------------------


def _generate(*, dataset_id: int, count: int) -> None:
    """Assets, items (no split, a little metadata, a tag on every tenth) and a published
    box label on each, generated by PostgreSQL in one transaction."""
    asset, item, tag, label = (
        Asset._meta.db_table,
        Item._meta.db_table,
        "datasets_itemtag",
        Label._meta.db_table,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # Sorted hashes: the primary key's B-tree grows at its right edge.
        cursor.execute(
            f"""INSERT INTO {asset} (sha256, size, media_type, width, height,
                    thumbnail_ready, preview, created_at)
                SELECT encode(sha256(('bench snapshot ' || n)::bytea), 'hex'), 20000 + n %% 997,
                       'image/jpeg', 640, 480, false, '', now()
                FROM generate_series(1, %s) AS n ORDER BY 1""",  # noqa: S608 - table names from the models
            [count],
        )
        cursor.execute(
            f"""INSERT INTO {item} (dataset_id, asset_id, external_id, metadata, split,
                    created_at)
                SELECT %s, encode(sha256(('bench snapshot ' || n)::bytea), 'hex'),
                       'img_' || lpad(n::text, 7, '0') || '.jpg',
                       jsonb_build_object('camera', 'cam' || (n %% 7), 'night', n %% 5 = 0,
                                          'exposure', (n %% 100) / 8.0),
                       '', now()
                FROM generate_series(1, %s) AS n ORDER BY n""",  # noqa: S608 - table names from the models
            [dataset_id, count],
        )
        cursor.execute(
            f"""INSERT INTO {tag} (item_id, dataset_id, tag)
                SELECT id, dataset_id, 'hard' FROM {item}
                WHERE dataset_id = %s AND id %% 10 = 0""",  # noqa: S608 - table names from the models
            [dataset_id],
        )
        cursor.execute(
            f"""INSERT INTO {label} (item_id, dataset_id, value, schema_hash, source,
                    provenance, updated_at)
                SELECT id, dataset_id,
                  ('[{{"id":"r1","type":"rectanglelabels","value":{{"x":1.5,"y":2,'
                   || '"width":30,"height":40,"rectanglelabels":["'
                   || (ARRAY['car','person','bicycle'])[1 + id %% 3] || '"]}}}}]')::jsonb,
                  %s, 'project:1',
                  ('{{"annotation_revisions":[' || id || '],"annotators":["a1"]}}')::jsonb,
                  now()
                FROM {item} WHERE dataset_id = %s""",  # noqa: S608 - table names from the models
            [SCHEMA_HASH, dataset_id],
        )
        dataset_counters_add(dataset_id=dataset_id, items=count, size=count * 20_000)


def _relabel(*, dataset_id: int) -> int:
    """Change the class of 1 % of the labels (every hundredth item); return how many."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {Label._meta.db_table} SET value = jsonb_set(value,
                    '{{0,value,rectanglelabels}}', '["truck"]'), updated_at = now()
                WHERE dataset_id = %s AND item_id %% 100 = 0""",  # noqa: S608 - table names from the models
            [dataset_id],
        )
        changed = cursor.rowcount
    _vacuum()
    return changed


def _vacuum() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def _blob(n: int) -> bytes:
    rng = random.Random(f"bench snapshot blob {n}")
    return rng.randbytes(rng.randint(BLOB_MIN, BLOB_MAX))


def _pull_phase(*, owner: Any, count: int, workers: int, root: Path, log: Log) -> dict[str, Any]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PUT_THREADS) as pool:
        puts = list(pool.map(lambda n: blob_put_bytes(_blob(n)), range(count)))
    log(f"put {count} blobs in {time.monotonic() - started:.1f} s")
    dataset = Dataset.objects.create(name="bench pull", kind=Dataset.Kind.IMAGE, created_by=owner)
    now = timezone.now()
    shas = sorted({put.sha256: put.size for put in puts}.items())
    Asset.objects.bulk_create(
        [
            Asset(sha256=sha, size=size, media_type="application/octet-stream", created_at=now)
            for sha, size in shas
        ],
        batch_size=2000,
    )
    Item.objects.bulk_create(
        [
            Item(dataset=dataset, asset_id=sha, external_id=f"blob_{n:05d}.bin", created_at=now)
            for n, (sha, _size) in enumerate(shas)
        ],
        batch_size=2000,
    )
    version, _ = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=owner.pk)

    target = root / "pull"
    started = time.monotonic()
    result = version_pull(source=LocalSource(version.pk), directory=target, workers=workers)
    pull_s = time.monotonic() - started
    if not result.ok or result.downloaded != len(shas):
        raise CommandError(
            f"the pull got {result.downloaded}/{len(shas)} assets, failures: {result.failures[:5]}"
        )
    log(f"pulled {result.downloaded} assets in {pull_s:.2f} s")

    urls = [presign_get(blob_key(sha)) for sha, _size in shas]
    floor_dir = root / "floor"
    floor_dir.mkdir()
    local = threading.local()

    def fetch(job: tuple[int, str]) -> int:
        n, url = job
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        with session.get(url, stream=True, timeout=(10, 120)) as response:
            response.raise_for_status()
            with open(floor_dir / str(n), "wb") as dest:
                for block in response.iter_content(1024 * 1024):
                    dest.write(block)
        return n

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fetch, enumerate(urls)))
    floor_s = time.monotonic() - started
    log(f"floor: {len(urls)} bare GETs in {floor_s:.2f} s")
    rate, floor_rate = len(shas) / pull_s, len(urls) / floor_s
    return {
        "pull_assets_per_s": round(rate, 1),
        "pull_floor_assets_per_s": round(floor_rate, 1),
        "pull_ratio_to_floor": round(rate / floor_rate, 3),
    }


# --- the database of the bench ----------------------------------------------------------
