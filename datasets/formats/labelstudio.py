"""Label Studio's JSON export, imported (Labelvault writes no Label Studio files).

The file is Label Studio's "JSON" export: a list of tasks, read as a stream (ijson), so a
file of a million tasks needs the memory of one:

    [{"id": 1, "data": {"image": "/data/upload/1/0f3a2b1c-cat.jpg"},
      "annotations": [{"was_cancelled": false, "result": [
         {"type": "rectanglelabels", "original_width": 640, "original_height": 480,
          "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0,
                    "rectanglelabels": ["car"]}}, ...]}],
      "predictions": [...], "file_upload": "0f3a2b1c-cat.jpg"}, ...]

One record per task that has an annotation:

- The annotation: the FIRST one not cancelled (`was_cancelled` true is a skipped task in
  Label Studio), in the file's order. A task with none is not labelled: no record.
  Predictions are never imported as ground truth.
- The key (the item's file name): `data.external_id` when the task has one; else the
  base name of the file in `data.image` (a URL or a path; or `data.text` when that is a
  URL, or the first URL among the task's data values): "https://host/a/b/cat.jpg" -> "cat.jpg",
  "s3://bucket/dir/cat.jpg" -> "cat.jpg", "/data/local-files/?d=dir/cat.jpg" ->
  "cat.jpg". Label Studio renames an uploaded file "<8 hex>-<its name>": under
  /data/upload/ (and in `file_upload`) that prefix is stripped, "0f3a2b1c-cat.jpg" ->
  "cat.jpg"; elsewhere names are kept as they are (a UUID file name also starts with 8
  hex and a dash). Else the task's `file_upload`. A text given inline in `data.text`
  with no file name is matched by content: the record's sha256 is that of its UTF-8
  bytes (import with match=sha256).
- Regions, in result order, without Label Studio's ids (the importer numbers them):
  percentages of `original_width` / `original_height` (given per result) become pixels,
  `value * size / 100` rounded to 6 decimals, and an integer when within 1e-6 of one:
  rectanglelabels x, y, width, height; polygonlabels points [[x, y], ...];
  keypointlabels x, y (the marker's width is dropped); choices as they are; labels
  (text spans) start, end, text, labels. Character offsets are Label Studio's; when the
  task's text is inline and the span's text is found only by counting UTF-16 units (a
  browser's count, off after an emoji), they are converted to code points.
- The image size the results declare becomes the record's width/height (the importer
  checks it against the image: a mismatch means the percentages would land elsewhere).

Problems, per task (`row` = "tasks[12]", `field` = "annotations[0].result[3].value.x"):
a task or data that is not an object, no file name, a rotated box (rotation != 0:
rotated boxes are not supported), a result type other than the five above (brushes,
text areas, relations, ratings ...), missing or non-numeric values, results that
disagree on the image size. A file that is not a JSON list, or that breaks off (not
valid JSON), is an InvalidLabelFile.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import ijson

from datasets.formats.base import ImportProblem, ImportRecord, InvalidLabelFile

REGION_TYPES = ("rectanglelabels", "polygonlabels", "keypointlabels", "choices", "labels")
# Within this of an integer, a pixel value is that integer (percentages carry float noise).
INT_TOLERANCE = 1e-6
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|/data/)", re.IGNORECASE)
_WHITESPACE = b" \t\r\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _pixels(percent: float, size: int | float) -> int | float:
    value = round(percent * size / 100, 6)
    nearest = round(value)
    return nearest if abs(value - nearest) <= INT_TOLERANCE else value


def _file_name(url: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.path.rstrip("/").endswith("/data/local-files"):
        local = parse_qs(parts.query).get("d")
        if local:
            path = local[0]
    name = posixpath.basename(path.replace("\\", "/"))
    if "/data/upload/" in parts.path:
        name = _UPLOAD_PREFIX.sub("", name, count=1)
    return name


class LabelStudioImport:
    name = "labelstudio"
    title = "Label Studio (JSON export)"
    kinds = frozenset({"image", "text"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
            start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
            first = head[start:].lstrip(_WHITESPACE)[:1]
            if first != b"[":
                raise InvalidLabelFile(
                    "Not a Label Studio JSON export: that is a JSON list of tasks "
                    "(Export > JSON; JSON-MIN and CSV exports are other formats).",
                    field="file",
                )
            handle.seek(start)
            tasks = ijson.items(handle, "item", use_float=True)
            index = 0
            while True:
                try:
                    task = next(tasks)
                except StopIteration:
                    return
                except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
                    raise InvalidLabelFile(
                        f"The file is not valid JSON (truncated?): {str(exc).strip()}",
                        field="file",
                    ) from None
                record = _task(f"tasks[{index}]", task)
                if record is not None:
                    yield record
                index += 1


def _task(row: str, task: Any) -> ImportRecord | None:
    def bad(field: str, reason: str, key: str = "") -> ImportRecord:
        return ImportRecord(row=row, key=key, problems=[ImportProblem(row, field, reason)])

    if not isinstance(task, dict):
        return bad("task", "a task is a JSON object")
    data = task.get("data")
    if not isinstance(data, dict):
        return bad("data", "a task has a `data` object (its image or text)")
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        return bad("annotations", "annotations is a list")
    chosen = next(
        (
            (j, a)
            for j, a in enumerate(annotations)
            if isinstance(a, dict) and not a.get("was_cancelled")
        ),
        None,
    )
    if chosen is None:
        return None
    key, sha256, text = _key(task, data)
    if not key and not sha256:
        return bad(
            "data",
            "no file name: data has no external_id and no image or text URL, and the task "
            "no file_upload",
        )
    j, annotation = chosen
    result = annotation.get("result")
    where = f"annotations[{j}].result"
    if not isinstance(result, list):
        return bad(where, "result is a list of regions", key)
    record = ImportRecord(row=row, key=key, sha256=sha256)
    sizes: set[tuple[Any, Any]] = set()
    for k, item in enumerate(result):
        region, problem = _region(item, text, sizes)
        if problem is not None:
            field, reason = problem
            record.problems.append(ImportProblem(row, f"{where}[{k}]{field}", reason))
        elif region is not None:
            record.regions.append(region)
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes, key=str))
        record.problems.append(
            ImportProblem(row, where, f"the results disagree on the image size ({shown})")
        )
    elif sizes:
        width, height = next(iter(sizes))
        if isinstance(width, int) and isinstance(height, int):
            record.width, record.height = width, height
    return record


def _key(task: dict[str, Any], data: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(key, sha256, inline text) of a task (see the module docstring)."""
    text = data.get("text") if isinstance(data.get("text"), str) else None
    inline = text if text is not None and not _URL.match(text) else None
    external = data.get("external_id")
    if isinstance(external, str) and external.strip():
        return external.strip(), None, inline
    media = data.get("image")
    if not (isinstance(media, str) and media.strip()):
        media = text if inline is None else None
    if media is None:
        media = next((v for v in data.values() if isinstance(v, str) and _URL.match(v)), None)
    if media:
        name = _file_name(media)
        if name:
            return name, None, inline
    upload = task.get("file_upload")
    if isinstance(upload, str) and upload.strip():
        return _UPLOAD_PREFIX.sub("", posixpath.basename(upload.strip()), count=1), None, inline
    if inline is not None:
        return "", hashlib.sha256(inline.encode("utf-8")).hexdigest(), inline
    return "", None, None


def _region(
    item: Any, text: str | None, sizes: set[tuple[Any, Any]]
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """One result: (region, None) or (None, (field suffix, reason))."""
    if not isinstance(item, dict):
        return None, ("", "a result is a JSON object")
    kind = item.get("type")
    value = item.get("value")
    if kind not in REGION_TYPES:
        return None, (
            ".type",
            f"result type {kind!r} is not supported (supported: {', '.join(REGION_TYPES)})",
        )
    if not isinstance(value, dict):
        return None, (".value", "value is an object")
    labels = value.get(kind)
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        return None, (f".value.{kind}", f"{kind} is a list of label names")
    if kind == "choices":
        return {"type": kind, "value": {"choices": list(labels)}}, None
    if kind == "labels":
        return _span(value, labels, text)
    width, height = item.get("original_width"), item.get("original_height")
    for name, size in (("original_width", width), ("original_height", height)):
        if not _is_number(size) or size <= 0:
            return None, (f".{name}", f"{name} is required: the image size in pixels")
    sizes.add((width, height))
    if kind == "polygonlabels":
        points = value.get("points")
        if not isinstance(points, list):
            return None, (".value.points", "points is a list of [x, y] percentages")
        pixels = []
        for n, point in enumerate(points):
            if not (
                isinstance(point, list)
                and len(point) == 2
                and _is_number(point[0])
                and _is_number(point[1])
            ):
                return None, (f".value.points[{n}]", "a point is [x, y], two numbers")
            pixels.append([_pixels(point[0], width), _pixels(point[1], height)])
        return {"type": kind, "value": {"points": pixels, "polygonlabels": labels}}, None
    keys = ("x", "y", "width", "height") if kind == "rectanglelabels" else ("x", "y")
    for name in keys:
        if not _is_number(value.get(name)):
            return None, (f".value.{name}", f"{name} is required: a number (a percentage)")
    if kind == "rectanglelabels":
        rotation = value.get("rotation") or 0
        if not _is_number(rotation) or rotation % 360:
            return None, (
                ".value.rotation",
                f"rotated boxes are not supported (rotation = {rotation})",
            )
    out: dict[str, Any] = {
        name: _pixels(value[name], width if name in ("x", "width") else height) for name in keys
    }
    out[kind] = labels
    return {"type": kind, "value": out}, None


def _span(
    value: dict[str, Any], labels: list[str], text: str | None
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    offsets = []
    for name in ("start", "end"):
        offset = value.get(name)
        if isinstance(offset, bool) or not isinstance(offset, int):
            return None, (
                f".value.{name}",
                f"{name} is a character offset (HyperText ranges are not supported)",
            )
        offsets.append(offset)
    start, end = offsets
    span_text = value.get("text")
    if (
        text is not None
        and isinstance(span_text, str)
        and text[start:end] != span_text
        and any(ord(c) > 0xFFFF for c in text)
    ):
        # Offsets counted in UTF-16 units (a browser's): code points before each.
        units = text.encode("utf-16-le")
        first = len(units[: 2 * start].decode("utf-16-le", errors="surrogatepass"))
        last = len(units[: 2 * end].decode("utf-16-le", errors="surrogatepass"))
        if text[first:last] == span_text:
            start, end = first, last
    out: dict[str, Any] = {"start": start, "end": end}
    if isinstance(span_text, str):
        out["text"] = span_text
    out["labels"] = labels
    return {"type": "labels", "value": out}, None


IMPORT = LabelStudioImport()
