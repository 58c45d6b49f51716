"""COCO (object detection "instances" files): export and import of image datasets.

Export layout (a zip)::

    annotations/instances_train.json    one per selected split that has items,
    annotations/instances_val.json      in train, val, test order
    annotations/instances_test.json
    images/<file_name>                  when `images` is true
    labelvault.lock.json                last: the version, code commit, options, counts

An instances file is one JSON object, keys in this order, compact separators, UTF-8 (no
\\u escapes)::

    {"info": {"description": "Labelvault dataset 12, train split", "contributor":
              "Labelvault", "dataset": 12, "split": "train"},
     "licenses": [],
     "images": [{"id": 7, "file_name": "a/cat.jpg", "width": 640, "height": 480,
                 "category_ids": [3],                 (classification only, see below)
                 "labelvault": {"external_id": "a/cat.jpg", "sha256": "…",
                                "url": "https://…/api/v1/versions/<id>/assets/<sha256>",
                                "labelled": true}}, …],
     "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [x, y, w, h],
                      "area": …, "iscrowd": 0, "segmentation": [], "attributes": {…}}, …],
     "categories": [{"id": 1, "name": "car", "supercategory": ""}, …]}

- `info` names the dataset and split but not the version nor the code commit: those are
  in labelvault.lock.json, so that export -> import -> export gives identical instances
  files (the re-import makes a new version). With URLs (`images` false) each URL names
  its version, so only the embedded form is byte-identical across versions.
- images: `id` is the item id, `file_name` the item's path in the export (relative to
  `images/`), `width`/`height` in pixels. `labelvault.url` (the stable asset URL) is there
  unless the files are embedded. `labelvault.labelled` is false for an item without a
  label (never labelled), true for a labelled one, even with no annotation ("nothing
  here"); the importer skips unlabelled images, so they stay unlabelled.
- categories: id = 1 + the class's index in the export's classes (the `classes` option,
  else every label name sorted), the same ids in every split. A category used by a
  keypoint also has `"keypoints": [name], "skeleton": []` (COCO's keypoint categories).
- annotations: ids 1, 2, 3 … per file, in item order then region order.
  - box (`rectanglelabels`): bbox [x, y, width, height] as stored (ints stay ints),
    area = width * height, segmentation [];
  - polygon (`polygonlabels`): segmentation [[x1, y1, x2, y2, …]] as stored, bbox its
    extent, area by the shoelace formula;
  - keypoint (`keypointlabels`): keypoints [x, y, 2], num_keypoints 1, bbox [x, y, 0, 0],
    area 0, segmentation [] (pycocotools indexes it; COCOeval's OKS uses area + eps);
  - the region's `attributes` object (sorted keys) when it has one, as CVAT writes them.
  Derived floats (area, a polygon's bbox size) are rounded to DERIVED_DECIMALS decimals.
- image classification (`choices` regions) has no COCO annotation: an annotation
  without a bbox breaks COCOeval and most training loaders. The image entry carries
  `"category_ids": [ids]` instead (only when it has choices); pycocotools and loaders
  ignore unknown image keys.
- Other region types (text spans) cannot be held and are counted as skipped.

Rows come in item-id order across splits, so each split's images and annotations are
spooled to temporary files as they pass and copied into the zip entry at the end: memory
does not grow with the number of items or annotations.

Import: a bare COCO JSON file, or a zip whose `annotations/*.json` are read (any other
`*.json` in the zip when it has no annotations/ folder). Categories are read into memory;
images and annotations are streamed (ijson, three passes per file) into a temporary
SQLite file and grouped by image there. One record per image, in the file's order:
key = its `file_name`, width/height from the entry, regions in file order (the image's
`category_ids` as one `choices` region first). An image with no annotation is a record
with no regions ("nothing here"), unless our own export marked it unlabelled.

- bbox -> rectanglelabels; a polygon segmentation -> one polygonlabels per polygon;
  keypoints with visibility > 0 -> one keypointlabels each (a single keypoint takes the
  category's name, several the names in the category's `keypoints` list); an annotation
  with visible keypoints gives only those, with polygons only the polygons.
- numbers keep their JSON type: [10, 20, 30, 40] comes back as ints, 10.0 as a float.
- an annotation's `attributes` object becomes each of its regions' attributes, as it is
  (CVAT writes {"occluded": false, ...}): the project's schema decides whether they fit.
- an image's `labelvault.sha256` (our export) is passed on for matching by hash.
- Problems, each naming the row (`annotations[12]`, `images[3]`; prefixed with the entry
  name inside a zip) and field: unknown category id, an annotation whose image_id is not
  among the images, a bbox that is not 4 finite numbers or has no area, a malformed
  polygon or keypoint list, RLE masks / crowd annotations (not supported), duplicate
  image ids. A file that is not JSON, or is truncated, raises InvalidLabelFile.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import IO, Any

import ijson

from datasets.formats.base import (
    LOCK_NAME,
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
)

# Derived numbers (area, a polygon's bbox size) are rounded so float noise
# (30.1 - 1.2 = 28.900000000000002) does not show; coordinates are written as stored.
DERIVED_DECIMALS = 4
# Images are spooled in blocks of this many, so a split's spool sees one write per block.
BLOCK_IMAGES = 500
# Copy spools into the zip entry this many bytes at a time.
COPY_CHUNK = 1024 * 1024
# Rows inserted into the import's SQLite file per executemany.
INSERT_BATCH = 2_000
# Annotations whose image_id names no image are listed one by one up to this many, then
# summed up in one record (a file without its images section would list millions).
ORPHANS_LISTED = 1_000

# Attributes in the export: sorted keys, so a label's key order never shows in the bytes.
_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
# Regions kept in the import's SQLite file: key order as built.
_store = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _derived(number: int | float) -> int | float:
    return round(number, DERIVED_DECIMALS) if type(number) is float else number


def _polygon_area(flat: list[int | float]) -> int | float:
    """Shoelace area of a flat [x1, y1, x2, y2, ...] polygon; an int when it is whole."""
    xs, ys = flat[0::2], flat[1::2]
    n = len(xs)
    twice = 0
    for k in range(n):
        j = k + 1 if k + 1 < n else 0
        twice += xs[k] * ys[j] - xs[j] * ys[k]
    twice = abs(twice)
    if type(twice) is int:
        return twice // 2 if twice % 2 == 0 else twice / 2
    return round(twice / 2, DERIVED_DECIMALS)


# --- export ---------------------------------------------------------------------------


class _SplitSpool:
    """One split's images and annotations, as JSON array members, in temporary files."""

    __slots__ = ("images", "annotations", "image_block", "image_count", "annotation_id", "kp")

    def __init__(self, stack: ExitStack) -> None:
        # Closed (and deleted) by the export's ExitStack.
        self.images: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self.annotations: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self.image_block: list[str] = []
        self.image_count = 0
        self.annotation_id = 0
        # Category ids used by keypoints (their category gets a `keypoints` list).
        self.kp: set[int] = set()

    def flush_images(self) -> None:
        if self.image_block:
            sep = b"," if self.image_count > len(self.image_block) else b""
            self.images.write(sep + ",".join(self.image_block).encode("utf-8"))
            self.image_block.clear()


class CocoExport:
    name = "coco"
    title = "COCO (instances JSON)"
    kinds = frozenset({"image"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        zf = DeterministicZip(out)
        embed = ctx.options.images
        category_id = {name: index + 1 for index, name in enumerate(ctx.classes)}
        counts = ctx.counts
        q = encode_basestring
        with ExitStack() as stack:
            spools: dict[str, _SplitSpool] = {}
            for row in ctx.rows():
                split = row["split"]
                spool = spools.get(split)
                if spool is None:
                    if split not in ctx.options.splits:
                        continue
                    spool = spools[split] = _SplitSpool(stack)
                item_id = row["id"]
                label = row["label"]
                category_ids: list[int] = []
                anns: list[str] = []
                if label:
                    aid = spool.annotation_id
                    for region in ctx.regions(label):
                        kind = region["type"]
                        value = region["value"]
                        if kind == "rectanglelabels":
                            cid = category_id.get(value["rectanglelabels"][0])
                            if cid is None:
                                counts.regions -= 1
                                counts.skip("class not exported")
                                continue
                            x, y, w, h = value["x"], value["y"], value["width"], value["height"]
                            aid += 1
                            ann = (
                                f'{{"id":{aid},"image_id":{item_id},"category_id":{cid},'
                                f'"bbox":[{x},{y},{w},{h}],"area":{_derived(w * h)},'
                                f'"iscrowd":0,"segmentation":[]'
                            )
                        elif kind == "polygonlabels":
                            cid = category_id.get(value["polygonlabels"][0])
                            if cid is None:
                                counts.regions -= 1
                                counts.skip("class not exported")
                                continue
                            points = value["points"]
                            flat = [c for point in points for c in point]
                            xs, ys = flat[0::2], flat[1::2]
                            x0, y0 = min(xs), min(ys)
                            aid += 1
                            ann = (
                                f'{{"id":{aid},"image_id":{item_id},"category_id":{cid},'
                                f'"bbox":[{x0},{y0},{_derived(max(xs) - x0)},'
                                f"{_derived(max(ys) - y0)}],"
                                f'"area":{_polygon_area(flat)},"iscrowd":0,'
                                f'"segmentation":[[{",".join(map(str, flat))}]]'
                            )
                        elif kind == "keypointlabels":
                            cid = category_id.get(value["keypointlabels"][0])
                            if cid is None:
                                counts.regions -= 1
                                counts.skip("class not exported")
                                continue
                            x, y = value["x"], value["y"]
                            spool.kp.add(cid)
                            aid += 1
                            ann = (
                                f'{{"id":{aid},"image_id":{item_id},"category_id":{cid},'
                                f'"bbox":[{x},{y},0,0],"area":0,"iscrowd":0,'
                                f'"segmentation":[],"keypoints":[{x},{y},2],"num_keypoints":1'
                            )
                        elif kind == "choices":
                            for name in value["choices"]:
                                cid = category_id.get(name)
                                if cid is None:
                                    counts.skip("class not exported")
                                else:
                                    category_ids.append(cid)
                            continue
                        else:
                            counts.regions -= 1
                            counts.skip(f"{kind} not in coco")
                            continue
                        attributes = region.get("attributes")
                        if attributes is not None:
                            ann += f',"attributes":{_dumps(attributes)}}}'
                        else:
                            ann += "}"
                        anns.append(ann)
                    spool.annotation_id = aid
                if anns:
                    sep = b"," if spool.annotations.tell() else b""
                    spool.annotations.write(sep + ",".join(anns).encode("utf-8"))
                width, height = row["width"], row["height"]
                extra = (
                    f',"category_ids":[{",".join(map(str, category_ids))}]' if category_ids else ""
                )
                url = "" if embed else f',"url":{q(ctx.image_url(row))}'
                spool.image_block.append(
                    f'{{"id":{item_id},"file_name":{q(row["file_name"])},'
                    f'"width":{"null" if width is None else width},'
                    f'"height":{"null" if height is None else height}{extra},'
                    f'"labelvault":{{"external_id":{q(row["external_id"])},'
                    f'"sha256":{q(row["sha256"])}{url},'
                    f'"labelled":{"false" if label is None else "true"}}}}}'
                )
                spool.image_count += 1
                if len(spool.image_block) >= BLOCK_IMAGES:
                    spool.flush_images()

            for split in ctx.options.splits:
                spool = spools.get(split)
                if spool is None or not spool.image_count:
                    continue
                spool.flush_images()
                self._write_instances(zf, ctx, split, spool)
        if embed:
            ctx.write_files(zf, prefix="images/")
        zf.write(LOCK_NAME, ctx.lock_bytes())
        zf.close()

    def _write_instances(
        self, zf: DeterministicZip, ctx: ExportContext, split: str, spool: _SplitSpool
    ) -> None:
        info = {
            "description": f"Labelvault dataset {ctx.dataset_id}, {split} split",
            "contributor": "Labelvault",
            "dataset": ctx.dataset_id,
            "split": split,
        }
        categories = []
        for index, name in enumerate(ctx.classes):
            category: dict[str, Any] = {"id": index + 1, "name": name, "supercategory": ""}
            if index + 1 in spool.kp:
                category["keypoints"] = [name]
                category["skeleton"] = []
            categories.append(category)
        head = json.dumps(info, ensure_ascii=False, separators=(",", ":"))
        with zf.open(f"annotations/instances_{split}.json") as entry:
            entry.write(f'{{"info":{head},"licenses":[],"images":['.encode())
            spool.images.seek(0)
            shutil.copyfileobj(spool.images, entry, COPY_CHUNK)
            entry.write(b'],"annotations":[')
            spool.annotations.seek(0)
            shutil.copyfileobj(spool.annotations, entry, COPY_CHUNK)
            entry.write(b'],"categories":')
            entry.write(json.dumps(categories, ensure_ascii=False, separators=(",", ":")).encode())
            entry.write(b"}")


# --- import -----------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _is_id(value: Any) -> bool:
    return type(value) is int or (type(value) is str and value != "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_error(name: str, exc: Exception) -> InvalidLabelFile:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    first = str(detail).strip().splitlines()[0] if str(detail).strip() else type(exc).__name__
    return InvalidLabelFile(
        f"{name} is not a COCO JSON file: {first} (a truncated or non-JSON file?)",
        field="file",
    )


class _Category:
    __slots__ = ("name", "keypoints")

    def __init__(self, name: str, keypoints: list[str] | None) -> None:
        self.name = name
        self.keypoints = keypoints


def _annotation_regions(
    ann: dict[str, Any], categories: dict[Any, _Category]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The regions one COCO annotation gives, or the problems (field, reason) it has."""
    problems: list[tuple[str, str]] = []
    cid = ann.get("category_id")
    category = categories.get(cid) if _is_id(cid) else None
    if category is None:
        if "category_id" not in ann:
            problems.append(("category_id", "category_id is required"))
        else:
            problems.append(
                ("category_id", f"unknown category id {_short(cid)} (not in categories)")
            )
    attributes = ann.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        problems.append(("attributes", f"attributes must be an object, got {_short(attributes)}"))
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, dict):
        problems.append(("segmentation", "RLE masks are not supported (only polygons)"))
        return [], problems
    if ann.get("iscrowd") not in (None, 0, False):
        problems.append(("iscrowd", "RLE masks are not supported (iscrowd annotations)"))
        return [], problems

    regions: list[dict[str, Any]] = []
    keypoints = ann.get("keypoints")
    visible: list[tuple[int, Any, Any]] = []
    if keypoints not in (None, []):
        if (
            not isinstance(keypoints, list)
            or len(keypoints) % 3
            or not all(_is_number(v) for v in keypoints)
        ):
            problems.append(
                ("keypoints", "keypoints must be a flat list of x, y, visibility numbers")
            )
            return [], problems
        visible = [
            (k // 3, keypoints[k], keypoints[k + 1])
            for k in range(0, len(keypoints), 3)
            if keypoints[k + 2] > 0
        ]
    if visible:
        if category is not None:
            names = category.keypoints
            count = len(keypoints) // 3
            if count > 1 and (names is None or len(names) != count):
                problems.append(
                    (
                        "keypoints",
                        f"{count} keypoints, but category {category.name!r} does not name "
                        f"{count} keypoints in its 'keypoints' list",
                    )
                )
            else:
                for k, x, y in visible:
                    name = category.name if count == 1 else names[k]  # type: ignore[index]
                    regions.append(
                        {
                            "type": "keypointlabels",
                            "value": {"x": x, "y": y, "keypointlabels": [name]},
                        }
                    )
    elif segmentation not in (None, []):
        if not isinstance(segmentation, list):
            problems.append(
                (
                    "segmentation",
                    f"segmentation must be a list of polygons, got {_short(segmentation)}",
                )
            )
            return [], problems
        for p, polygon in enumerate(segmentation):
            if (
                not isinstance(polygon, list)
                or len(polygon) < 6
                or len(polygon) % 2
                or not all(_is_number(v) for v in polygon)
            ):
                problems.append(
                    (
                        f"segmentation[{p}]",
                        "a polygon is a flat list of at least 3 x, y pairs of numbers, got "
                        f"{_short(polygon)}",
                    )
                )
                continue
            if category is not None:
                regions.append(
                    {
                        "type": "polygonlabels",
                        "value": {
                            "points": [
                                [polygon[k], polygon[k + 1]] for k in range(0, len(polygon), 2)
                            ],
                            "polygonlabels": [category.name],
                        },
                    }
                )
    else:
        bbox = ann.get("bbox")
        if bbox is None:
            problems.append(
                ("bbox", "an annotation needs a bbox, a polygon segmentation or keypoints")
            )
        elif not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            problems.append(
                ("bbox", f"bbox must be 4 numbers [x, y, width, height], got {_short(bbox)}")
            )
        elif bbox[2] <= 0 or bbox[3] <= 0:
            problems.append(("bbox", f"the box has no area (width {bbox[2]}, height {bbox[3]})"))
        elif category is not None:
            regions.append(
                {
                    "type": "rectanglelabels",
                    "value": {
                        "x": bbox[0],
                        "y": bbox[1],
                        "width": bbox[2],
                        "height": bbox[3],
                        "rectanglelabels": [category.name],
                    },
                }
            )
    if problems:
        return [], problems
    if attributes is not None:
        for region in regions:
            region["attributes"] = dict(attributes)
    return regions, problems


_NO_BOX = (None, None, None, None, None)
# Windows editors start UTF-8 files with a byte order mark; JSON parsers refuse it.
_BOM = b"\xef\xbb\xbf"
_SCHEMA = """
CREATE TABLE image (
    src INTEGER NOT NULL, pos INTEGER NOT NULL, id, file_name TEXT, width INTEGER,
    height INTEGER, sha256 TEXT, choices TEXT, problems TEXT, unlabelled INTEGER NOT NULL,
    PRIMARY KEY (src, pos)
) WITHOUT ROWID;
CREATE TABLE annotation (
    src INTEGER NOT NULL, pos INTEGER NOT NULL, image_id, regions TEXT, problems TEXT,
    label TEXT, x, y, w, h,
    PRIMARY KEY (src, pos)
) WITHOUT ROWID;
"""


class CocoImport:
    name = "coco"
    title = "COCO (instances JSON, or a zip of them)"
    kinds = frozenset({"image"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        sources = self._sources(path)
        with tempfile.TemporaryDirectory(prefix="labelvault-coco-") as tmp:
            db = sqlite3.connect(os.path.join(tmp, "coco.sqlite3"))
            try:
                db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; " + _SCHEMA)
                prefixes = []
                for src, (name, prefix, opener) in enumerate(sources):
                    prefixes.append(prefix)
                    self._load(db, src, name, prefix, opener)
                db.execute("CREATE INDEX image_id ON image (src, id)")
                db.execute("CREATE INDEX annotation_image ON annotation (src, image_id, pos)")
                yield from self._records(db, prefixes)
            finally:
                db.close()

    # -- sources ---------------------------------------------------------------------

    def _sources(self, path: str) -> list[tuple[str, str, Callable[[], IO[bytes]]]]:
        """(name for messages, row prefix, opener) of each JSON file to read."""
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if not magic.startswith(b"PK"):
            name = os.path.basename(path) or "the file"
            return [(name, "", lambda: open(path, "rb"))]
        try:
            with zipfile.ZipFile(path) as zf:
                names = [
                    n
                    for n in zf.namelist()
                    if n.lower().endswith(".json")
                    and not n.endswith("/")
                    and not n.startswith("__MACOSX/")
                ]
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidLabelFile(
                f"The file looks like a zip but cannot be read ({exc}); a truncated upload?",
                field="file",
            ) from exc
        chosen = [n for n in names if n.startswith("annotations/")] or [
            n for n in names if posixpath.basename(n) != LOCK_NAME
        ]
        if not chosen:
            raise InvalidLabelFile(
                "The zip holds no COCO file: annotations/*.json (as a COCO export has).",
                field="file",
            )

        def opener(entry: str) -> Callable[[], IO[bytes]]:
            def open_entry() -> IO[bytes]:
                zf = zipfile.ZipFile(path)
                stream = zf.open(entry)
                # ZipExtFile keeps the archive open as long as it needs it.
                zf.close()
                return stream

            return open_entry

        return [(n, f"{n}:", opener(n)) for n in chosen]

    # -- loading -----------------------------------------------------------------------

    def _items(self, name: str, opener: Callable[[], IO[bytes]], prefix: str) -> Iterator[Any]:
        try:
            with opener() as stream:
                head = stream.read(64)
                bom = head.startswith(_BOM)
                if not head[len(_BOM) if bom else 0 :].lstrip(b" \t\r\n").startswith(b"{"):
                    raise InvalidLabelFile(
                        f"{name} is not a COCO JSON file: it does not start with a JSON object.",
                        field="file",
                    )
                stream.seek(len(_BOM) if bom else 0)  # a zip entry rewinds by reopening
                yield from ijson.items(stream, prefix, use_float=True)
        except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
            raise _json_error(name, exc) from exc

    def _load(
        self,
        db: sqlite3.Connection,
        src: int,
        name: str,
        prefix: str,
        opener: Callable[[], IO[bytes]],
    ) -> None:
        categories: dict[Any, _Category] = {}
        for k, raw in enumerate(self._items(name, opener, "categories.item")):
            where = f"{prefix}categories[{k}]"
            if not isinstance(raw, dict) or not _is_id(raw.get("id")):
                raise InvalidLabelFile(
                    f"{where}: a category is an object with an id.", field="categories"
                )
            cat_name = raw.get("name")
            if not isinstance(cat_name, str) or not cat_name.strip():
                raise InvalidLabelFile(f"{where}: a category needs a name.", field="categories")
            if raw["id"] in categories and categories[raw["id"]].name != cat_name:
                raise InvalidLabelFile(
                    f"{where}: category id {raw['id']!r} is also {categories[raw['id']].name!r}.",
                    field="categories",
                )
            kp = raw.get("keypoints")
            keypoints = kp if isinstance(kp, list) and all(isinstance(n, str) for n in kp) else None
            categories[raw["id"]] = _Category(cat_name, keypoints)

        batch: list[tuple[Any, ...]] = []
        insert_image = "INSERT INTO image VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        for k, raw in enumerate(self._items(name, opener, "images.item")):
            batch.append(self._image_row(src, k, raw, categories))
            if len(batch) >= INSERT_BATCH:
                db.executemany(insert_image, batch)
                batch.clear()
        if batch:
            db.executemany(insert_image, batch)
            batch.clear()

        insert_annotation = "INSERT INTO annotation VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        for k, raw in enumerate(self._items(name, opener, "annotations.item")):
            if not isinstance(raw, dict):
                problem = _store([["annotation", "an annotation is an object"]])
                batch.append((src, k, None, None, problem, None, None, None, None, None))
                continue
            image_id = raw.get("image_id")
            if not _is_id(image_id):
                image_id = None
            regions, problems = _annotation_regions(raw, categories)
            if problems:
                batch.append((src, k, image_id, None, _store(problems), *_NO_BOX))
            elif len(regions) == 1 and len(regions[0]) == 2 and "x" in regions[0]["value"]:
                # A plain box (the bulk of any detection file): columns, not JSON (SQLite
                # keeps ints and floats apart), half the time of encoding and decoding it.
                value = regions[0]["value"]
                label = value.get("rectanglelabels")
                if label is None:
                    batch.append((src, k, image_id, _store(regions), None, *_NO_BOX))
                else:
                    batch.append(
                        (src, k, image_id, None, None, label[0], value["x"], value["y"],
                         value["width"], value["height"])
                    )  # fmt: skip
            else:
                batch.append((src, k, image_id, _store(regions), None, *_NO_BOX))
            if len(batch) >= INSERT_BATCH:
                db.executemany(insert_annotation, batch)
                batch.clear()
        if batch:
            db.executemany(insert_annotation, batch)

    def _image_row(
        self, src: int, k: int, raw: Any, categories: dict[Any, _Category]
    ) -> tuple[Any, ...]:
        problems: list[tuple[str, str]] = []
        if not isinstance(raw, dict):
            problems.append(("image", f"an image is an object, got {_short(raw)}"))
            return (src, k, None, "", None, None, None, None, _store(problems), 0)
        image_id = raw.get("id")
        if not _is_id(image_id):
            problems.append(
                ("id", f"an image id is an integer or a string, got {_short(image_id)}")
            )
            image_id = None
        file_name = raw.get("file_name")
        if not isinstance(file_name, str) or not file_name.strip():
            problems.append(("file_name", "an image needs a file_name"))
            file_name = ""
        size: list[int | None] = []
        for key in ("width", "height"):
            value = raw.get(key)
            if value is None or value == 0:  # 0: a tool that did not know the size
                size.append(None)
            elif type(value) is int and value > 0:
                size.append(value)
            elif type(value) is float and value.is_integer() and value > 0:
                size.append(int(value))
            else:
                problems.append((key, f"{key} must be a positive integer, got {_short(value)}"))
                size.append(None)
        choices = None
        category_ids = raw.get("category_ids")
        if category_ids not in (None, []):
            if not isinstance(category_ids, list):
                problems.append(("category_ids", "category_ids is a list of category ids"))
            else:
                names: list[str] = []
                for cid in category_ids:
                    category = categories.get(cid) if _is_id(cid) else None
                    if category is None:
                        problems.append(
                            (
                                "category_ids",
                                f"unknown category id {_short(cid)} (not in categories)",
                            )
                        )
                    elif category.name not in names:
                        names.append(category.name)
                choices = _store(names)
        ours = raw.get("labelvault")
        sha256 = None
        unlabelled = 0
        if isinstance(ours, dict):
            if isinstance(ours.get("sha256"), str):
                sha256 = ours["sha256"]
            unlabelled = int(ours.get("labelled") is False)
        return (
            src,
            k,
            image_id,
            file_name,
            size[0],
            size[1],
            sha256,
            choices,
            _store(problems) if problems else None,
            unlabelled,
        )

    # -- records -----------------------------------------------------------------------

    def _records(self, db: sqlite3.Connection, prefixes: list[str]) -> Iterator[ImportRecord]:
        duplicates = {
            (src, image_id): first
            for src, image_id, first in db.execute(
                "SELECT src, id, MIN(pos) FROM image WHERE id IS NOT NULL "
                "GROUP BY src, id HAVING COUNT(*) > 1"
            )
        }
        # INDEXED BY: without statistics SQLite joins on the primary key's (src) prefix,
        # scanning a file's annotations once per image (quadratic: minutes at 100k images).
        rows = db.execute(
            "SELECT i.src, i.pos, i.id, i.file_name, i.width, i.height, i.sha256, i.choices, "
            "i.problems, i.unlabelled, a.pos, a.regions, a.problems, a.label, a.x, a.y, a.w, a.h "
            "FROM image i LEFT JOIN annotation a INDEXED BY annotation_image "
            "ON a.src = i.src AND a.image_id = i.id "
            "ORDER BY i.src, i.pos, a.pos"
        )
        record: ImportRecord | None = None
        current: tuple[int, int] | None = None
        annotated = False
        unlabelled = False
        for (
            src,
            pos,
            image_id,
            file_name,
            width,
            height,
            sha256,
            choices,
            image_problems,
            unlabelled_flag,
            ann_pos,
            regions,
            problems,
            box_label,
            x,
            y,
            w,
            h,
        ) in rows:
            if (src, pos) != current:
                if record is not None and (annotated or not unlabelled or record.problems):
                    yield record
                current = (src, pos)
                prefix = prefixes[src]
                row = f"{prefix}images[{pos}]"
                record = ImportRecord(
                    row=row, key=file_name or "", width=width, height=height, sha256=sha256
                )
                annotated = bool(choices)
                unlabelled = bool(unlabelled_flag)
                if image_problems:
                    record.problems.extend(
                        ImportProblem(row, field, reason)
                        for field, reason in json.loads(image_problems)
                    )
                first = duplicates.get((src, image_id))
                if first is not None and first != pos:
                    record.problems.append(
                        ImportProblem(
                            row, "id", f"image id {image_id!r} is also the id of images[{first}]"
                        )
                    )
                    continue
                if choices:
                    record.regions.append(
                        {"type": "choices", "value": {"choices": json.loads(choices)}}
                    )
            assert record is not None
            if ann_pos is None:
                continue
            first = duplicates.get((src, image_id))
            if first is not None and first != pos:
                continue
            annotated = True
            if problems:
                ann_row = f"{prefixes[src]}annotations[{ann_pos}]"
                record.problems.extend(
                    ImportProblem(ann_row, field, reason) for field, reason in json.loads(problems)
                )
            elif box_label is not None:
                record.regions.append(
                    {
                        "type": "rectanglelabels",
                        "value": {
                            "x": x,
                            "y": y,
                            "width": w,
                            "height": h,
                            "rectanglelabels": [box_label],
                        },
                    }
                )
            else:
                record.regions.extend(json.loads(regions))
        if record is not None and (annotated or not unlabelled or record.problems):
            yield record
        yield from self._orphans(db, prefixes)

    def _orphans(self, db: sqlite3.Connection, prefixes: list[str]) -> Iterator[ImportRecord]:
        rows = db.execute(
            "SELECT a.src, a.pos, a.image_id, a.problems FROM annotation a WHERE NOT EXISTS "
            "(SELECT 1 FROM image i WHERE i.src = a.src AND i.id = a.image_id) "
            "ORDER BY a.src, a.pos"
        )
        listed = 0
        more = 0
        for src, pos, image_id, problems in rows:
            if listed >= ORPHANS_LISTED:
                more += 1
                continue
            listed += 1
            row = f"{prefixes[src]}annotations[{pos}]"
            reason = (
                "an annotation needs the image_id of one of the images"
                if image_id is None
                else f"image_id {image_id!r} is not the id of any image in images"
            )
            record = ImportRecord(
                row=row, key="", problems=[ImportProblem(row, "image_id", reason)]
            )
            if problems:
                record.problems.extend(
                    ImportProblem(row, field, why) for field, why in json.loads(problems)
                )
            yield record
        if more:
            yield ImportRecord(
                row="annotations",
                key="",
                problems=[
                    ImportProblem(
                        "annotations",
                        "image_id",
                        f"{more} more annotations whose image_id is not among the images",
                    )
                ],
            )


EXPORT = CocoExport()
IMPORT = CocoImport()
