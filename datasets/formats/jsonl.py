"""JSON Lines, Labelvault's native export: lossless, one item per line, any dataset kind.

The zip holds `data.jsonl` (one line per item in manifest order), the files under
`images/` (or `texts/`) when `images` is true, and `labelvault.lock.json`. A line:

    {"id": 7, "external_id": "a/cat.jpg", "file_name": "a/cat.jpg", "sha256": "…",
     "media_type": "image/jpeg", "width": 640, "height": 480, "split": "train",
     "tags": ["night"], "metadata": {…}, "label": [regions], "provenance": {…},
     "url": "https://…/api/v1/versions/<id>/assets/<sha256>"}

`label` is labeling/results.py's shape exactly as published (region ids kept); a text
dataset's lines also carry `text`, so a text-classification or NER set trains from this
one file. `url` is there unless the files are embedded (then `file`, their path in the
zip). Keys are sorted, no whitespace, UTF-8 (not \\u escapes): the same version gives the
same bytes.

Import: each line needs `label` (null lines are skipped) and one of `external_id`,
`file_name` or `sha256` to find its item; other keys are ignored, so a file exported
from another Labelvault imports as it is.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from datasets.formats.base import (
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
)

DATA_NAME = "data.jsonl"
# Lines are written in blocks: one write per few hundred lines, not per line.
BLOCK_LINES = 500
# A line longer than this is not a label line (a 10,000-region label is ~1 MB).
LINE_MAX = 64 * 1024 * 1024


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class JsonlExport:
    name = "jsonl"
    title = "JSON Lines (native, lossless)"
    kinds = frozenset({"image", "text"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        zf = DeterministicZip(out)
        text = ctx.dataset_kind == "text"
        embed = ctx.options.images
        prefix = "texts/" if text else "images/"
        rows: Iterator[tuple[dict[str, Any], bytes | None]] = (
            ctx.rows_with_content() if text else ((row, None) for row in ctx.rows())
        )
        with zf.open(DATA_NAME) as data:
            block: list[str] = []
            for row, content in rows:
                line = {
                    "id": row["id"],
                    "external_id": row["external_id"],
                    "file_name": row["file_name"],
                    "sha256": row["sha256"],
                    "media_type": row["media_type"],
                    "width": row["width"],
                    "height": row["height"],
                    "split": row["split"],
                    "tags": row["tags"],
                    "metadata": row["metadata"],
                    "label": None if row["label"] is None else ctx.regions(row["label"]),
                    "provenance": row["provenance"],
                }
                if content is not None:
                    line["text"] = content.decode("utf-8", errors="replace")
                if embed:
                    line["file"] = prefix + row["file_name"]
                else:
                    line["url"] = ctx.image_url(row)
                block.append(_dumps(line))
                if len(block) >= BLOCK_LINES:
                    data.write(("\n".join(block) + "\n").encode("utf-8"))
                    block.clear()
            if block:
                data.write(("\n".join(block) + "\n").encode("utf-8"))
        if embed:
            ctx.write_files(zf, prefix=prefix)
        zf.write("labelvault.lock.json", ctx.lock_bytes())
        zf.close()


class JsonlImport:
    name = "jsonl"
    title = "JSON Lines (Labelvault's own)"
    kinds = frozenset({"image", "text"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        """Lines of a .jsonl file, or of the data.jsonl in a zip (our export)."""
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    names = [n for n in zf.namelist() if n.endswith(".jsonl")]
                    if DATA_NAME not in names and len(names) != 1:
                        raise InvalidLabelFile(
                            f"The zip holds no {DATA_NAME} (and not exactly one .jsonl file).",
                            field="file",
                        )
                    with zf.open(DATA_NAME if DATA_NAME in names else names[0]) as handle:
                        yield from self._lines(handle)
            except (zipfile.BadZipFile, EOFError) as exc:
                raise InvalidLabelFile(f"The zip is damaged: {exc}", field="file") from None
            return
        with open(path, "rb") as handle:
            yield from self._lines(handle)

    def _lines(self, handle: IO[bytes]) -> Iterator[ImportRecord]:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield from self._line(number, raw)

    def _line(self, number: int, raw: bytes) -> Iterator[ImportRecord]:
        def bad(field: str, reason: str) -> ImportRecord:
            return ImportRecord(row=number, key="", problems=[ImportProblem(number, field, reason)])

        if len(raw) > LINE_MAX:
            yield bad("line", f"longer than {LINE_MAX} bytes")
            return
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = str(exc) if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
            yield bad("line", f"not a JSON object: {reason} (a truncated file?)")
            return
        if not isinstance(obj, dict):
            yield bad("line", "not a JSON object")
            return
        if obj.get("label") is None:
            return
        label = obj["label"]
        key = obj.get("external_id") or obj.get("file_name") or ""
        sha256 = obj.get("sha256") if isinstance(obj.get("sha256"), str) else None
        if not isinstance(key, str) or (not key and not sha256):
            yield bad("external_id", "a line names its item by external_id, file_name or sha256")
            return
        if not isinstance(label, list) or not all(isinstance(r, dict) for r in label):
            yield bad("label", "label is a list of region objects (labeling/results.py)")
            return
        width, height = obj.get("width"), obj.get("height")
        provenance = obj.get("provenance")
        yield ImportRecord(
            provenance=provenance if isinstance(provenance, dict) else None,
            row=number,
            key=key,
            sha256=sha256,
            regions=label,
            width=width if isinstance(width, int) else None,
            height=height if isinstance(height, int) else None,
        )


EXPORT = JsonlExport()
IMPORT = JsonlImport()
