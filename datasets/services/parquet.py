"""The Parquet copy of a version's manifest, for analytics (pandas, DuckDB, Spark).

One row per item, in manifest order: id, external_id, sha256, size, media_type, split,
tags (list of strings), label_names (the label names its label uses, once per region),
and metadata, label, provenance as JSON text exactly as in the manifest (their shapes
vary by dataset and schema). The manifest's header line is kept in the file's metadata
under `labelvault.header`. Written once, from the stored JSONL manifest (which stays the
reference: the version id is its hash), in batches so memory does not grow with the
version: manifests/<id>.parquet.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datasets.diff import manifest_item_lines
from datasets.manifest import label_names
from datasets.models import Version
from datasets.services.versions import manifest_stream
from storage.keys import manifest_key
from storage.services import object_exists, object_put

PARQUET_EXT = "parquet"
ROWS_PER_GROUP = 50_000
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("external_id", pa.string()),
        ("sha256", pa.string()),
        ("size", pa.int64()),
        ("media_type", pa.string()),
        ("split", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("label_names", pa.list_(pa.string())),
        ("metadata", pa.string()),
        ("label", pa.string()),
        ("provenance", pa.string()),
    ]
)


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "id": [r["id"] for r in rows],
            "external_id": [r["external_id"] for r in rows],
            "sha256": [r["sha256"] for r in rows],
            "size": [r["size"] for r in rows],
            "media_type": [r["media_type"] for r in rows],
            "split": [r["split"] for r in rows],
            "tags": [r["tags"] for r in rows],
            "label_names": [label_names(r["label"]) for r in rows],
            "metadata": [_json_or_none(r["metadata"]) for r in rows],
            "label": [_json_or_none(r["label"]) for r in rows],
            "provenance": [_json_or_none(r["provenance"]) for r in rows],
        },
        schema=SCHEMA,
    )


def version_parquet_write(version: Version) -> bool:
    """Write manifests/<id>.parquet from the version's stored manifest unless it exists;
    return whether it was written. Idempotent (the key is fixed by the version id)."""
    key = manifest_key(version.pk, PARQUET_EXT)
    if object_exists(key):
        return False
    header: list[bytes] = []

    def chunks() -> Any:
        for chunk in manifest_stream(version):
            if not header:
                header.append(chunk.split(b"\n", 1)[0])
            yield chunk

    with tempfile.TemporaryFile() as spool:
        writer: pq.ParquetWriter | None = None
        rows: list[dict[str, Any]] = []
        try:
            for line in manifest_item_lines(chunks()):
                rows.append(json.loads(line))
                if len(rows) == ROWS_PER_GROUP:
                    writer = writer or _writer(spool, header[0])
                    writer.write_batch(_batch(rows))
                    rows = []
            writer = writer or _writer(spool, header[0])
            if rows:
                writer.write_batch(_batch(rows))
        finally:
            if writer is not None:
                writer.close()
        size = spool.tell()
        spool.seek(0)
        object_put(key, spool, size=size, content_type="application/vnd.apache.parquet")
    return True


def _writer(sink: Any, header_line: bytes) -> pq.ParquetWriter:
    schema = SCHEMA.with_metadata({"labelvault.header": header_line.decode("utf-8")})
    return pq.ParquetWriter(sink, schema, compression="zstd")
