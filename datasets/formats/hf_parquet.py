"""Parquet laid out as a Hugging Face dataset repository: export of any dataset kind.

A zip holding

    README.md                                   dataset card: `configs` mapping the splits
    data/train-00000-of-00001.parquet           one file per selected split with items
    data/validation-00000-of-00001.parquet      (our `val` is `validation`, the name
    data/test-00000-of-00001.parquet             `datasets` maps to Split.VALIDATION)
    labelvault.lock.json

so `datasets.load_dataset("parquet", data_dir="<unzipped>/data")` (or
`load_dataset("<unzipped>")`, or the folder pushed to the Hub) gives the splits with
their Features, ClassLabel names included: each file's Arrow schema metadata carries the
`huggingface` key, `{"info": {"features": {...}}}`, which is how `datasets` restores
Features from a Parquet file (`Features.from_arrow_schema`). Nested features are written
as `Sequence` (read by datasets 2.x to 5.x). Each file's key-value metadata (footer) also
carries the lock JSON under `labelvault.lock`, so a lone file still says where it is from.

Columns, in this order:

- `id` (int64, the item id), `external_id`, `file_name`, `sha256` (strings);
- image datasets: `width`, `height` (int64), then `image` (the `Image` feature: struct
  {bytes, path=file_name}) when `images` is true, else `image_url` (a stable URL that
  redirects to the file); text datasets: `text`;
- `tags` (Sequence(string)), `metadata` (JSON text, keys sorted);
- the label, by the task of the version's labels (the first non-empty label says which):
  - classification (`choices`): `label`, ClassLabel, -1 when unlabelled, when "nothing
    here" or when the choice is not exported; or `labels`, Sequence(ClassLabel), when
    some item has several choices (null when unlabelled) — deciding this needs one pass
    over the manifest's labels before writing;
  - boxes, polygons, keypoints: `objects`, the HF object-detection layout (cppe-5):
    Sequence({bbox: [x, y, width, height] float64 pixels, category: ClassLabel,
    area: float64, polygon: [x1, y1, x2, y2, ...]}); a polygon's bbox is its bounding
    box and area its shoelace area, a keypoint is a 0x0 box at the point with an empty
    polygon, a box has an empty polygon; null when unlabelled;
  - NER (`labels`): `spans`, Sequence({start, end (code point offsets into `text`),
    label: ClassLabel}); null when unlabelled;
  - no labelled item at all: no label column.
  Regions of another task than the column's are left out and counted in the lock.

ClassLabel names are the export's classes (`classes` option, else every label name of
the version sorted). Rows in item-id order, written in row groups of ROWS_PER_GROUP rows
(fewer when the embedded files pass GROUP_BYTES), zstd; one writer per split on its own
temporary file, copied into the zip at the end, so memory stays flat. The same version
and options give the same bytes with the same pyarrow version (no timestamps).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import ExitStack
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from datasets.formats.base import LOCK_NAME, DeterministicZip, ExportContext

# Our split names -> the names `datasets` recognises in data file names.
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}
ROWS_PER_GROUP = 5_000
# Embedded files buffered per split before a row group is written (3 splits: < 100 MB).
GROUP_BYTES = 32 * 1024 * 1024
TASKS = {
    "choices": "classification",
    "rectanglelabels": "objects",
    "polygonlabels": "objects",
    "keypointlabels": "objects",
    "labels": "spans",
}


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _survey(ctx: ExportContext) -> tuple[str | None, bool]:
    """(task, several choices) of the version's labels: the task of the first non-empty
    label; for a classification, whether any item has several choices (read to the end
    unless one is found: an extra pass over the manifest, labels only)."""
    task: str | None = None
    for row in ctx.rows(count=False):
        label = row["label"]
        if not label:
            continue
        if task is None:
            task = TASKS.get(label[0].get("type", ""))
            if task != "classification":
                return task, False
        for region in label:
            if region.get("type") == "choices" and len(region["value"]["choices"]) > 1:
                return task, True
    return task, False


def _value(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "_type": "Value"}


def _sequence(feature: dict[str, Any], length: int = -1) -> dict[str, Any]:
    if length >= 0:
        return {"feature": feature, "length": length, "_type": "Sequence"}
    return {"feature": feature, "_type": "Sequence"}


def schema_for(ctx: ExportContext, task: str | None, several: bool) -> pa.Schema:
    """The Arrow schema of the files, with the `huggingface` features metadata."""
    class_label = {"names": list(ctx.classes), "_type": "ClassLabel"}
    fields: list[tuple[str, pa.DataType, dict[str, Any]]] = [
        ("id", pa.int64(), _value("int64")),
        ("external_id", pa.string(), _value("string")),
        ("file_name", pa.string(), _value("string")),
        ("sha256", pa.string(), _value("string")),
    ]
    if ctx.dataset_kind == "image":
        fields += [
            ("width", pa.int64(), _value("int64")),
            ("height", pa.int64(), _value("int64")),
        ]
        if ctx.options.images:
            image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            fields.append(("image", image, {"_type": "Image"}))
        else:
            fields.append(("image_url", pa.string(), _value("string")))
    else:
        fields.append(("text", pa.string(), _value("string")))
    fields += [
        ("tags", pa.list_(pa.string()), _sequence(_value("string"))),
        ("metadata", pa.string(), _value("string")),
    ]
    if task == "classification" and several:
        fields.append(("labels", pa.list_(pa.int64()), _sequence(class_label)))
    elif task == "classification":
        fields.append(("label", pa.int64(), class_label))
    elif task == "objects":
        objects = pa.struct(
            [
                ("bbox", pa.list_(pa.list_(pa.float64(), 4))),
                ("category", pa.list_(pa.int64())),
                ("area", pa.list_(pa.float64())),
                ("polygon", pa.list_(pa.list_(pa.float64()))),
            ]
        )
        feature = {
            "bbox": _sequence(_value("float64"), 4),
            "category": class_label,
            "area": _value("float64"),
            "polygon": _sequence(_value("float64")),
        }
        fields.append(("objects", objects, _sequence(feature)))
    elif task == "spans":
        spans = pa.struct(
            [
                ("start", pa.list_(pa.int64())),
                ("end", pa.list_(pa.int64())),
                ("label", pa.list_(pa.int64())),
            ]
        )
        feature = {"start": _value("int64"), "end": _value("int64"), "label": class_label}
        fields.append(("spans", spans, _sequence(feature)))
    features = {name: feature for name, _, feature in fields}
    metadata = json.dumps({"info": {"features": features}}, ensure_ascii=False)
    return pa.schema([(name, dtype) for name, dtype, _ in fields]).with_metadata(
        {"huggingface": metadata}
    )


class _SplitWriter:
    """One split's Parquet file on a temporary file, written a row group at a time."""

    def __init__(self, schema: pa.Schema, file: IO[bytes]) -> None:
        self.schema = schema
        self.names = schema.names
        self.file = file
        self.writer = pq.ParquetWriter(self.file, schema, compression="zstd")
        self.columns: dict[str, list[Any]] = {name: [] for name in self.names}
        self.rows = 0
        self.bytes = 0

    def flush(self) -> None:
        if self.rows:
            batch = pa.RecordBatch.from_pydict(self.columns, schema=self.schema)
            self.writer.write_batch(batch)
            for values in self.columns.values():
                values.clear()
            self.rows = self.bytes = 0

    def close(self, lock: str) -> IO[bytes]:
        self.flush()
        self.writer.add_key_value_metadata({"labelvault.lock": lock})
        self.writer.close()
        self.file.seek(0)
        return self.file


class HfParquetExport:
    name = "parquet"
    title = "Parquet (Hugging Face datasets)"
    kinds = frozenset({"image", "text"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        task, several = _survey(ctx)
        schema = schema_for(ctx, task, several)
        image = ctx.dataset_kind == "image"
        embed = image and ctx.options.images
        writers: dict[str, _SplitWriter] = {}
        with ExitStack() as stack:
            rows = (
                ctx.rows_with_content()
                if embed or not image
                else ((row, b"") for row in ctx.rows())
            )
            for row, content in rows:
                split = row["split"]
                writer = writers.get(split)
                if writer is None:
                    writer = writers[split] = _SplitWriter(
                        schema, stack.enter_context(tempfile.TemporaryFile())
                    )
                columns = writer.columns
                columns["id"].append(row["id"])
                columns["external_id"].append(row["external_id"])
                columns["file_name"].append(row["file_name"])
                columns["sha256"].append(row["sha256"])
                if image:
                    columns["width"].append(row["width"])
                    columns["height"].append(row["height"])
                    if embed:
                        columns["image"].append({"bytes": content, "path": row["file_name"]})
                    else:
                        columns["image_url"].append(ctx.image_url(row))
                else:
                    columns["text"].append(content.decode("utf-8", errors="replace"))
                columns["tags"].append(row["tags"])
                columns["metadata"].append(_json(row["metadata"]))
                if task is not None:
                    self._label(ctx, task, several, row["label"], columns)
                writer.rows += 1
                writer.bytes += len(content)
                if writer.rows >= ROWS_PER_GROUP or writer.bytes >= GROUP_BYTES:
                    writer.flush()
            lock = ctx.lock_bytes().decode("utf-8")
            files = {split: writer.close(lock) for split, writer in writers.items()}
            zf = DeterministicZip(out)
            zf.write("README.md", self._card(ctx, [s for s in ctx.options.splits if s in files]))
            for split in ctx.options.splits:
                if split in files:
                    name = f"data/{HF_SPLITS[split]}-00000-of-00001.parquet"
                    # Parquet pages are already zstd-compressed: stored, not deflated.
                    with zf.open(name, compress=False) as entry:
                        shutil.copyfileobj(files[split], entry, 1 << 20)
            zf.write(LOCK_NAME, ctx.lock_bytes())
            zf.close()

    def _label(
        self,
        ctx: ExportContext,
        task: str,
        several: bool,
        label: list[dict[str, Any]] | None,
        columns: dict[str, list[Any]],
    ) -> None:
        index = ctx.class_index
        counts = ctx.counts
        regions = ctx.regions(label) if label else []
        if task == "classification":
            chosen: list[int] = []
            for region in regions:
                if region.get("type") != "choices":
                    counts.skip(f"{region.get('type')} regions in a classification export")
                    continue
                for choice in region["value"]["choices"]:
                    number = index.get(choice)
                    if number is None:
                        counts.skip("class not exported")
                    else:
                        chosen.append(number)
            if several:
                columns["labels"].append(None if label is None else chosen)
            else:
                columns["label"].append(chosen[0] if chosen else -1)
            return
        if label is None:
            columns[task].append(None)
            return
        if task == "objects":
            boxes: list[list[float]] = []
            categories: list[int] = []
            areas: list[float] = []
            polygons: list[list[float]] = []
            for region in regions:
                kind = region.get("type")
                value = region["value"]
                if kind == "rectanglelabels":
                    width, height = float(value["width"]), float(value["height"])
                    box = [float(value["x"]), float(value["y"]), width, height]
                    area, polygon = width * height, []
                elif kind == "polygonlabels":
                    xs = [float(p[0]) for p in value["points"]]
                    ys = [float(p[1]) for p in value["points"]]
                    left, top = min(xs), min(ys)
                    box = [left, top, max(xs) - left, max(ys) - top]
                    twice = sum(xs[i - 1] * ys[i] - xs[i] * ys[i - 1] for i in range(len(xs)))
                    area = abs(twice) / 2
                    polygon = [c for pair in zip(xs, ys, strict=True) for c in pair]
                elif kind == "keypointlabels":
                    box = [float(value["x"]), float(value["y"]), 0.0, 0.0]
                    area, polygon = 0.0, []
                else:
                    counts.skip(f"{kind} regions in an object export")
                    continue
                number = index.get(value[kind][0])
                if number is None:
                    counts.skip("class not exported")
                    continue
                boxes.append(box)
                categories.append(number)
                areas.append(area)
                polygons.append(polygon)
            columns["objects"].append(
                {"bbox": boxes, "category": categories, "area": areas, "polygon": polygons}
            )
            return
        starts: list[int] = []
        ends: list[int] = []
        names: list[int] = []
        for region in regions:
            if region.get("type") != "labels":
                counts.skip(f"{region.get('type')} regions in a span export")
                continue
            value = region["value"]
            number = index.get(value["labels"][0])
            if number is None:
                counts.skip("class not exported")
                continue
            starts.append(value["start"])
            ends.append(value["end"])
            names.append(number)
        columns["spans"].append({"start": starts, "end": ends, "label": names})

    def _card(self, ctx: ExportContext, splits: list[str]) -> bytes:
        data_files = "".join(
            f"  - split: {HF_SPLITS[s]}\n    path: data/{HF_SPLITS[s]}-*\n" for s in splits
        )
        classes = ", ".join(json.dumps(name, ensure_ascii=False) for name in ctx.classes)
        text = (
            "---\nconfigs:\n- config_name: default\n  data_files:\n"
            f"{data_files}---\n\n"
            f"# Labelvault dataset {ctx.dataset_id}, version {ctx.version_id[:12]}\n\n"
            f"Exported from version `{ctx.version_id}` (code commit `{ctx.code_commit}`).\n"
            f"Classes, in ClassLabel order: {classes or '(none)'}.\n\n"
            "```python\nfrom datasets import load_dataset\n"
            'ds = load_dataset("parquet", data_dir="data")\n```\n\n'
            f"What the export holds and how it was built: `{LOCK_NAME}`.\n"
        )
        return text.encode("utf-8")


EXPORT = HfParquetExport()
