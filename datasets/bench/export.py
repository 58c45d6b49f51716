"""`bench export`: build the export of a version of N box annotations in one format, and
compare it with the floor: the same records written with the bare standard library.

1. A PostgreSQL database of the bench's own (`--database`, created, migrated, dropped at
   the end unless --keep; `_common.own_database`).
2. A synthetic image dataset loaded with COPY (no ORM object per row): N /
   --boxes-per-item items (10 by default, so `--annotations 1000000` is 100,000 items),
   each an asset with a pixel size (640x480, 1280x720 or 1024x768), an external_id
   `img_0000001.jpg`, a little metadata, split train/val/test 80/10/10 (item n % 10:
   0-7, 8, 9), a tag on every tenth item, and a published label of --boxes-per-item
   boxes (the last item takes the remainder) whose coordinates mix ints and floats,
   classes cycling over five names, one of them not ASCII ("piéton").
3. The version: `version_snapshot` of the dataset (the real manifest, in the object
   store configured by S3_*; `make run` starts one, the test session its own).
4. The export, timed in a FRESH child process (`python -c` with Django set up, the
   bench's database, DEBUG off as deployed): `export_build` of the format with default
   options (URLs, all splits) to a temporary file. `seconds` is the build alone (not
   the interpreter's start), `peak_rss_mb` is the child's peak RSS (VmHWM: Linux's
   ru_maxrss would carry over the bench process's RSS at fork), the export plus Django
   (`rss_baseline_mb`: the child's peak before the export starts).
5. The floor, in another fresh child: the same stored manifest fetched the same way
   (object_open, gzip, json.loads per line), the image sizes looked up by 2,000 with one
   bare SQL query (as the export does), and the same records written with bare
   json/csv/f-strings into a `zipfile.ZipFile` (deflate level 6) with the same entries:
   - jsonl: data.jsonl, one json.dumps(sort_keys) per item, written in blocks of 500;
   - coco: annotations/instances_<split>.json, one dict per split (images, annotations,
     categories) dumped with json.dumps at the end;
   - yolo: labels/<split>/<stem>.txt per image (stored under 512 bytes, as yolo.py
     does), then the split lists, data.yaml and sources.csv (csv.writer);
   and labelvault.lock.json. The entry counts of both zips are checked equal.

mb_per_s = output MiB / seconds; floor_mb_per_s the same of the floor's zip;
ratio_to_floor = floor_seconds / seconds (1.0: as fast as the bare standard library).
With --repeat R both children run R times, alternately, and the fastest run of each is
kept (the machine may be shared); peak_rss_mb is the highest of the export's runs.
The bench's temporary files are deleted; manifests stay in the object store
(content-addressed and write-once, like the snapshot bench's).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from hashlib import sha256 as sha256_of
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from datasets.bench._common import Log, own_database, worker_env
from datasets.formats import export_format
from datasets.models import Asset, Dataset, Item, ItemTag, Label, Version
from datasets.services.datasets import dataset_counters_add
from datasets.services.exports import export_build, export_options_for
from datasets.services.versions import MANIFEST_EXT, SnapshotRequest, version_snapshot
from storage.client import ping
from storage.errors import StorageError
from storage.keys import manifest_key
from storage.services import object_open

HELP = (
    "Export a version of N box annotations in one format (fresh process, timed, peak RSS) "
    "and compare with writing the same records with bare json/csv into a zip."
)
FORMATS = ("jsonl", "coco", "yolo")
CLASSES = ("bicycle", "car", "person", "piéton", "traffic light")
SIZES = ((640, 480), (1280, 720), (1024, 768))
SCHEMA_HASH = "e" * 64
REQUEST = SnapshotRequest(code_commit="0123456789abcdef", code_repo="", message="bench export")
URL_BASE = "https://labelvault.example"
# Rows per COPY block written at once.
COPY_BLOCK = 5_000
# As datasets.formats.base.DIMENSIONS_BATCH: sizes looked up per query.
SIZES_BATCH = 2_000
# The floor writes JSON lines in blocks of this many, as jsonl.py does.
FLOOR_BLOCK = 500
# yolo.py stores label files under this many bytes (LABEL_COMPRESS_MIN).
YOLO_STORE_UNDER = 512
# A child runs `child_main` in a fresh interpreter with Django set up.
CHILD_CODE = (
    "import django; django.setup(); from datasets.bench.export import child_main; child_main()"
)
# Slowest we wait for a child: 20 s plus 1 ms a box (1M boxes: ~17 min).
CHILD_TIMEOUT_BASE, CHILD_TIMEOUT_PER_BOX = 20.0, 0.001


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--annotations", type=int, default=100_000, help="boxes in the version (100,000)"
    )
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="export format (jsonl)")
    parser.add_argument(
        "--boxes-per-item", type=int, default=10, help="boxes per item (10: N / 10 items)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the export and the floor this many times each, alternately, and keep "
        "the fastest of each (1)",
    )
    parser.add_argument(
        "--database",
        default="lv_bench_export",
        help="the PostgreSQL database the bench creates and drops (lv_bench_export)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")


def summary(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"bench export: {result['format']}, {result['annotations']} boxes on "
            f"{result['items']} items",
            f"  export  {result['seconds']:.2f} s, {result['mb_per_s']:.1f} MB/s "
            f"({result['output_bytes'] / 2**20:.1f} MB, {result['entries']} entries), "
            f"peak RSS {result['peak_rss_mb']:.0f} MB",
            f"  floor   {result['floor_seconds']:.2f} s, {result['floor_mb_per_s']:.1f} MB/s "
            f"({result['floor_output_bytes'] / 2**20:.1f} MB), peak RSS "
            f"{result['floor_peak_rss_mb']:.0f} MB",
            f"  ratio to floor {result['ratio_to_floor']:.2f}",
        ]
    )


def run(
    *,
    out: IO[str],
    annotations: int,
    format: str = "jsonl",  # noqa: A002 - the option's name
    boxes_per_item: int = 10,
    repeat: int = 1,
    database: str = "lv_bench_export",
    keep: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; raise CommandError when something it needs is missing or fails."""
    if boxes_per_item < 1 or annotations < boxes_per_item or repeat < 1:
        raise CommandError(
            "--boxes-per-item and --repeat must be at least 1, --annotations at least "
            "--boxes-per-item"
        )
    if connection.vendor != "postgresql":
        raise CommandError(
            f"bench export needs PostgreSQL (a database of its own, loaded with COPY); this "
            f"process uses {connection.vendor}. Set DATABASE_URL=postgres://user@host:5432/name."
        )
    try:
        fmt = export_format(format)
    except ImportError as exc:
        raise CommandError(f"the {format} exporter cannot be imported: {exc}") from exc
    if fmt is None:
        raise CommandError(f"no export format {format!r}")
    try:
        ping(timeout=5.0)
    except StorageError as exc:
        raise CommandError(f"the object store is not usable: {exc}") from exc
    log = Log(out, name="export")
    items = math.ceil(annotations / boxes_per_item)
    with contextlib.ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="lv-bench-export-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        stack.enter_context(own_database(database, keep=keep, log=log, bench="export"))
        owner = get_user_model().objects.create_user(
            username="bench-export", password=None, is_superuser=True
        )
        dataset = Dataset.objects.create(
            name="bench export", kind=Dataset.Kind.IMAGE, created_by=owner
        )
        started = time.monotonic()
        _generate(dataset_id=dataset.pk, items=items, boxes=boxes_per_item, total=annotations)
        generate_s = time.monotonic() - started
        log(f"loaded {items} items, {annotations} boxes with COPY in {generate_s:.1f} s")

        started = time.monotonic()
        version, _ = version_snapshot(dataset=dataset, request=REQUEST, created_by_id=owner.pk)
        snapshot_s = time.monotonic() - started
        log(f"snapshot {version.pk[:12]}: {snapshot_s:.1f} s, {version.manifest_size} bytes")

        timeout = CHILD_TIMEOUT_BASE + CHILD_TIMEOUT_PER_BOX * annotations
        runs: dict[str, list[dict[str, Any]]] = {"export": [], "floor": []}
        for attempt in range(1, repeat + 1):
            for role in ("export", "floor"):  # alternated: a busy moment hits both
                done = _child(
                    role, version=version.pk, fmt=format, path=root / f"{role}.zip", timeout=timeout
                )
                runs[role].append(done)
                log(
                    f"{role} {attempt}/{repeat}: {done['seconds']:.2f} s, "
                    f"{done['output_bytes']} bytes, peak RSS {done['peak_rss_mb']:.0f} MB"
                )
        ours, floor = (min(runs[role], key=lambda done: done["seconds"]) for role in runs)
        peak_rss = max(done["peak_rss_mb"] for done in runs["export"])
        floor_peak_rss = max(done["peak_rss_mb"] for done in runs["floor"])
        entries = _entries(root / "export.zip")
        floor_entries = _entries(root / "floor.zip")
        if entries != floor_entries:
            raise CommandError(
                f"the export has {entries} zip entries and the floor {floor_entries}: "
                "the floor no longer writes what the format writes"
            )
    if ours["counts"]["regions"] != annotations:
        raise CommandError(f"the export holds {ours['counts']['regions']} of {annotations} boxes")
    mib, floor_mib = ours["output_bytes"] / 2**20, floor["output_bytes"] / 2**20
    return {
        "bench": "export",
        "format": format,
        "annotations": annotations,
        "seconds": round(ours["seconds"], 3),
        "mb_per_s": round(mib / ours["seconds"], 2),
        "peak_rss_mb": round(peak_rss, 1),
        "floor_mb_per_s": round(floor_mib / floor["seconds"], 2),
        "ratio_to_floor": round(floor["seconds"] / ours["seconds"], 3),
        # for context
        "items": items,
        "boxes_per_item": boxes_per_item,
        "output_bytes": ours["output_bytes"],
        "entries": entries,
        "floor_seconds": round(floor["seconds"], 3),
        "floor_output_bytes": floor["output_bytes"],
        "floor_peak_rss_mb": round(floor_peak_rss, 1),
        "repeat": repeat,
        "rss_baseline_mb": round(ours["rss_baseline_mb"], 1),
        "version": version.pk,
        "manifest_bytes": version.manifest_size,
        "generate_s": round(generate_s, 2),
        "snapshot_s": round(snapshot_s, 2),
    }


# --- the data ---------------------------------------------------------------------------


def _label(n: int, boxes: int, width: int, height: int) -> str:
    """Item n's label: `boxes` boxes inside the image, ints and floats, classes cycling."""
    regions = []
    for k in range(boxes):
        w = 10 + (n * 31 + k * 17) % 90
        h = 10 + (n * 13 + k * 29) % 90
        x: int | float = (n * 7 + k * 101) % (width - 110) + (0.5 if k % 2 else 0)
        y: int | float = (n * 11 + k * 37) % (height - 110) + (0.25 if k % 3 == 0 else 0)
        regions.append(
            {
                "id": f"r{k + 1}",
                "type": "rectanglelabels",
                "value": {
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "rectanglelabels": [CLASSES[(n + k) % len(CLASSES)]],
                },
            }
        )
    return json.dumps(regions, ensure_ascii=False, separators=(",", ":"))


def _generate(*, dataset_id: int, items: int, boxes: int, total: int) -> None:
    """Assets, items (explicit ids 1..items: the database is the bench's own), tags and
    labels, COPY-loaded in one transaction."""
    now = timezone.now()
    splits = ("train",) * 8 + ("val", "test")
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(1, items + 1, COPY_BLOCK):
            numbers = range(start, min(start + COPY_BLOCK, items + 1))
            shas = {n: sha256_of(f"bench export {n}".encode()).hexdigest() for n in numbers}
            with cursor.copy(
                f"COPY {Asset._meta.db_table} (sha256, size, media_type, width, height, "
                "thumbnail_ready, preview, created_at) FROM STDIN"
            ) as copy:
                for n in numbers:
                    width, height = SIZES[n % len(SIZES)]
                    copy.write_row(
                        (shas[n], 20_000 + n % 997, "image/jpeg", width, height, False, "", now)
                    )
            with cursor.copy(
                f"COPY {Item._meta.db_table} (id, dataset_id, asset_id, external_id, metadata, "
                "split, created_at) FROM STDIN"
            ) as copy:
                for n in numbers:
                    metadata = (
                        f'{{"camera":"cam{n % 7}","night":{"true" if n % 5 == 0 else "false"}}}'
                    )
                    copy.write_row(
                        (n, dataset_id, shas[n], f"img_{n:07d}.jpg", metadata, splits[n % 10], now)
                    )
            with cursor.copy(
                f"COPY {ItemTag._meta.db_table} (item_id, dataset_id, tag) FROM STDIN"
            ) as copy:
                for n in numbers:
                    if n % 10 == 0:
                        copy.write_row((n, dataset_id, "hard"))
            with cursor.copy(
                f"COPY {Label._meta.db_table} (item_id, dataset_id, value, schema_hash, source, "
                "provenance, updated_at) FROM STDIN"
            ) as copy:
                for n in numbers:
                    width, height = SIZES[n % len(SIZES)]
                    count = boxes if n < items else total - boxes * (items - 1)
                    copy.write_row(
                        (
                            n,
                            dataset_id,
                            _label(n, count, width, height),
                            SCHEMA_HASH,
                            "project:1",
                            '{"annotators":["a1"]}',
                            now,
                        )
                    )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [Item._meta.db_table, items]
        )
        dataset_counters_add(
            dataset_id=dataset_id,
            items=items,
            size=sum(20_000 + n % 997 for n in range(1, items + 1)),
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- the children -----------------------------------------------------------------------


def _child(role: str, *, version: str, fmt: str, path: Path, timeout: float) -> dict[str, Any]:
    """Run `child_main` in a fresh interpreter; return the JSON it prints last."""
    spec = json.dumps({"role": role, "version": version, "format": fmt, "path": str(path)})
    env = worker_env(queue="lv-bench-export", extra={})
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", CHILD_CODE, spec],
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"the {role} child did not finish in {timeout:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-30:])
        raise CommandError(f"the {role} child exited with code {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _entries(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return len(zf.infolist())


def _peak_rss_mb() -> float:
    """This process's peak RSS. Linux's ru_maxrss carries over the parent's RSS at fork
    into the exec'd child (the bench's own, hundreds of MB); VmHWM is the high-water
    mark of this program's memory alone. ru_maxrss where there is no /proc."""
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/self/status", encoding="ascii") as status,
    ):
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_main() -> None:
    """In the child: build the export (role "export") or the floor ("floor") of the
    version to `path`, and print {"seconds", "output_bytes", "peak_rss_mb", ...}."""
    spec = json.loads(sys.argv[1])
    version = Version.objects.select_related("dataset").get(pk=spec["version"])
    path = spec["path"]
    baseline = _peak_rss_mb()
    counts: dict[str, Any] = {}
    if spec["role"] == "export":
        fmt = export_format(spec["format"])
        assert fmt is not None
        options, _ = export_options_for(fmt, {})
        with open(path, "w+b") as out:
            started = time.perf_counter()
            ctx = export_build(
                version=version, fmt=fmt, options=options, out=out, url_base=URL_BASE
            )
            out.flush()
            seconds = time.perf_counter() - started
        counts = ctx.counts.as_dict()
    else:
        writer = {"jsonl": _floor_jsonl, "coco": _floor_coco, "yolo": _floor_yolo}[spec["format"]]
        started = time.perf_counter()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            writer(zf, version)
        seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "output_bytes": os.path.getsize(path),
        "peak_rss_mb": _peak_rss_mb(),
        "rss_baseline_mb": baseline,
        "counts": counts,
    }
    sys.stdout.write(json.dumps(result) + "\n")


# --- the floor: bare standard library ---------------------------------------------------


def _floor_rows(version: Version) -> Iterator[tuple[dict[str, Any], int, int]]:
    """(manifest item, width, height) in manifest order: the manifest read from storage,
    gunzipped and json.loads'ed line by line; sizes by SIZES_BATCH with one SQL query."""

    def sized(batch: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], int, int]]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT sha256, width, height FROM {Asset._meta.db_table} "  # noqa: S608 - model table
                "WHERE sha256 = ANY(%s)",
                [[row["sha256"] for row in batch]],
            )
            sizes = {sha: (w, h) for sha, w, h in cursor.fetchall()}
        for row in batch:
            width, height = sizes[row["sha256"]]
            yield row, width, height

    with (
        object_open(manifest_key(version.pk, MANIFEST_EXT)) as raw,
        gzip.GzipFile(fileobj=raw, mode="rb") as manifest,
    ):
        manifest.readline()  # the header
        batch: list[dict[str, Any]] = []
        for line in manifest:
            batch.append(json.loads(line))
            if len(batch) >= SIZES_BATCH:
                yield from sized(batch)
                batch = []
        if batch:
            yield from sized(batch)


def _floor_lock(zf: zipfile.ZipFile, version: Version, fmt: str, items: int) -> None:
    lock = {"format": fmt, "version": version.pk, "counts": {"items": items}}
    zf.writestr("labelvault.lock.json", json.dumps(lock, indent=2, sort_keys=True) + "\n")


def _url(version: Version, sha256: str) -> str:
    return f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{sha256}"


def _floor_jsonl(zf: zipfile.ZipFile, version: Version) -> None:
    items = 0
    with zf.open("data.jsonl", "w", force_zip64=True) as data:
        block: list[str] = []
        for row, width, height in _floor_rows(version):
            record = {
                "id": row["id"],
                "external_id": row["external_id"],
                "file_name": row["external_id"],
                "sha256": row["sha256"],
                "media_type": row["media_type"],
                "width": width,
                "height": height,
                "split": row["split"],
                "tags": row["tags"],
                "metadata": row["metadata"],
                "label": row["label"],
                "provenance": row["provenance"],
                "url": _url(version, row["sha256"]),
            }
            block.append(
                json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            )
            items += 1
            if len(block) >= FLOOR_BLOCK:
                data.write(("\n".join(block) + "\n").encode("utf-8"))
                block = []
        if block:
            data.write(("\n".join(block) + "\n").encode("utf-8"))
    _floor_lock(zf, version, "jsonl", items)


def _floor_coco(zf: zipfile.ZipFile, version: Version) -> None:
    category = {name: index + 1 for index, name in enumerate(sorted(version.class_counts))}
    splits: dict[str, dict[str, list[dict[str, Any]]]] = {}
    items = 0
    for row, width, height in _floor_rows(version):
        split = splits.setdefault(row["split"], {"images": [], "annotations": []})
        annotations = split["annotations"]
        for region in row["label"] or ():
            value = region["value"]
            w, h = value["width"], value["height"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": row["id"],
                    "category_id": category[value["rectanglelabels"][0]],
                    "bbox": [value["x"], value["y"], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
        split["images"].append(
            {
                "id": row["id"],
                "file_name": row["external_id"],
                "width": width,
                "height": height,
                "labelvault": {
                    "external_id": row["external_id"],
                    "sha256": row["sha256"],
                    "url": _url(version, row["sha256"]),
                    "labelled": row["label"] is not None,
                },
            }
        )
        items += 1
    categories = [{"id": i, "name": name, "supercategory": ""} for name, i in category.items()]
    for name in ("train", "val", "test"):
        if name not in splits:
            continue
        document = {
            "info": {"description": f"dataset, {name} split", "split": name},
            "licenses": [],
            "images": splits[name]["images"],
            "annotations": splits[name]["annotations"],
            "categories": categories,
        }
        zf.writestr(
            f"annotations/instances_{name}.json",
            json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        )
    _floor_lock(zf, version, "coco", items)


def _floor_yolo(zf: zipfile.ZipFile, version: Version) -> None:
    index = {name: i for i, name in enumerate(sorted(version.class_counts))}
    lists: dict[str, list[str]] = {}
    sources = io.StringIO()
    source_rows = csv.writer(sources, lineterminator="\n")
    source_rows.writerow(("path", "url", "sha256"))
    items = 0
    for row, width, height in _floor_rows(version):
        lines = []
        for region in row["label"] or ():
            value = region["value"]
            w, h = value["width"], value["height"]
            lines.append(
                f"{index[value['rectanglelabels'][0]]} {(value['x'] + w / 2) / width:.6f} "
                f"{(value['y'] + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}\n"
            )
        body = "".join(lines).encode()
        split, stem = row["split"], row["external_id"].rsplit(".", 1)[0]
        zf.writestr(
            f"labels/{split}/{stem}.txt",
            body,
            compress_type=zipfile.ZIP_STORED if len(body) < YOLO_STORE_UNDER else None,
        )
        image_path = f"images/{split}/{row['external_id']}"
        lists.setdefault(split, []).append(f"./{image_path}\n")
        source_rows.writerow((image_path, _url(version, row["sha256"]), row["sha256"]))
        items += 1
    names = "".join(f"  {i}: {json.dumps(name, ensure_ascii=False)}\n" for name, i in index.items())
    zf.writestr(
        "data.yaml",
        "path: .\n"
        + "".join(f"{split}: {split}.txt\n" for split in lists)
        + f"nc: {len(index)}\nnames:\n{names}",
    )
    for split, paths in lists.items():
        zf.writestr(f"{split}.txt", "".join(paths))
    zf.writestr("sources.csv", sources.getvalue())
    _floor_lock(zf, version, "yolo", items)
