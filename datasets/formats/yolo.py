"""YOLO in the Ultralytics layout: boxes (detection) and polygons (segmentation) of image
datasets, one label file per image.

Export: a zip, entries in this order:

    data.yaml                  path: . / train: train.txt / val: val.txt / test: test.txt
                               (one key per selected split that has items), nc, names
    train.txt val.txt test.txt one `./images/<split>/<file_name>` per item, manifest order
    labels/<split>/<stem>.txt  one per item, manifest order (stem: file_name without its
                               extension); EMPTY for an item without regions (or without
                               a label): YOLO's background image
    images/<split>/<file_name> the images, when `images` is true; else
    sources.csv                path,url,sha256: where to fetch each image to (the stable
                               `ctx.image_url`), checked by its SHA-256
    labelvault.lock.json

`data.yaml` is written as text, not by a YAML library, so its bytes never depend on one:

    path: .
    train: train.txt
    nc: 2
    names:
      0: "car"
      1: "שלום"

Names are YAML double-quoted scalars in `ctx.classes` order (JSON string syntax, UTF-8,
with the characters YAML reads as line breaks or refuses — DEL, C1 controls, U+2028/9,
U+FEFF — escaped as \\uXXXX), so any name reads back as itself with `yaml.safe_load`.

A label line is `class cx cy w h` for a box (centre and size) or `class x1 y1 x2 y2 ...`
for a polygon, each coordinate a fraction of the image's width or height written with 6
decimals (`{:.6f}`: the same numbers give the same text on every machine). Keypoints and
classifications have no place in YOLO detection/segmentation files: they are left out
and counted (`skipped`: "keypointlabels not in yolo"). An item whose image size is
unknown cannot be normalised: it is left out (label file, list and image) and counted
("image size unknown"); so is an image whose label file name is already another image's
(a.jpg and a.png of one split share labels/<split>/a.txt in YOLO): "label file name
taken". Label files under LABEL_COMPRESS_MIN bytes are stored, larger ones deflated: a
30-byte file gains nothing from deflate but would pay for a compressor.

Import: a zip (our export or any Ultralytics/Roboflow dataset: data.yaml, label files
under a `labels/` directory, images optional) or a single label file (anything that is
not a zip), whose key is the stem of the uploaded file's name.

- Classes: data.yaml `names` (a list, or a mapping index -> name), else a `classes.txt`
  next to it (one name a line), else the `classes` argument (the project's label names
  in schema order). An index without a name is a problem.
- Key: the image a label file belongs to, found as Ultralytics does in reverse: the path
  after the first `labels/` directory, with the extension of the image at the same path
  after an `images/` directory (an entry of the zip, or a line of a split list such as
  our train.txt). The split directory (the first of two or more components) is dropped:
  `labels/train/a/cat.txt` with `./images/train/a/cat.png` listed is keyed `a/cat.png`,
  our export's file_name. Without an image the key is the stem (`a/cat`).
- Coordinates: a YOLO file does not carry the image size, so records are
  `normalized=True`: regions in labeling/results.py's shape with x/y/width/height and
  points as FRACTIONS of the image size (a box's corner is cx - w/2, cy - h/2); the
  importer multiplies them by the asset's size. A value within 1e-6 outside [0, 1] (6
  decimals of rounding) is clamped; further out it is a problem.
- Problems, per line (`row` = "labels/train/a.txt:3", `field` = class, cx, x2 ...): a
  wrong number of fields, a non-number, a value outside [0, 1], a class index out of
  range, a polygon with an odd number of coordinates or fewer than 3 points, a box
  without area. 5 fields are a box; 7, 9, 11 ... a polygon. An empty label file is an
  item with no objects (an empty result).
- A zip that cannot be read (truncated, damaged) or a data.yaml that is not YAML is an
  InvalidLabelFile.

Round trips (export, import, export): the second export has the same bytes when the
importer turns each fraction into `fraction * size` kept to at least 6 decimals. A
value snapped to the nearest integer (so integral pixels come back as ints) must be
within 1e-3 of it: the reading is off by at most 7.5e-7 * size (two 6-decimal
roundings), under 1e-3 for images up to 1,333 pixels; beyond, an integral value comes
back as a float that still exports to the same text. Rounding to fewer decimals (2)
changes the text of most boxes drawn at fractional pixels on small images.
"""

from __future__ import annotations

import copy
import json
import math
import posixpath
import re
import shutil
import tempfile
import zipfile
import zlib
from array import array
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import IO, Any

import numpy
import yaml

from datasets.formats.base import (
    LOCK_NAME,
    SPLITS,
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
)

# Items whose label file, list line and source row are spooled in one write.
BLOCK_ITEMS = 1_000
# Label files smaller than this are stored, not deflated (see the module docstring).
LABEL_COMPRESS_MIN = 512
# A label file larger than this is not a label file (10,000 polygons of 100 points at 6
# decimals are ~20 MB).
LABEL_FILE_MAX = 64 * 1024 * 1024
# Fraction texts kept for reuse (~120 bytes each): bounded, then started over.
FRACTION_TEXTS_MAX = 200_000
# 6 decimals are exact to 5e-7: coordinates this far outside [0, 1] are rounding.
TOLERANCE = 1e-6
DATA_YAML = "data.yaml"
SOURCES_NAME = "sources.csv"
BOX_FIELDS = ("class", "cx", "cy", "w", "h")

# Characters a YAML double-quoted scalar must not hold raw: DEL and C1 controls (not
# printable for YAML), NEL/LS/PS (line breaks), the BOM and non-characters. JSON already
# escapes the C0 controls, '"' and '\\'.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar that `yaml.safe_load` reads back as `text`."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def data_yaml(splits: list[str], classes: list[str]) -> bytes:
    """The data.yaml of an export with items in `splits` and these classes."""
    lines = ["path: ."]
    lines += [f"{split}: {split}.txt" for split in splits]
    lines.append(f"nc: {len(classes)}")
    if classes:
        lines.append("names:")
        lines += [f"  {index}: {yaml_quoted(name)}" for index, name in enumerate(classes)]
    else:
        lines.append("names: {}")
    return ("\n".join(lines) + "\n").encode("utf-8")


class YoloExport:
    name = "yolo"
    title = "YOLO (Ultralytics: boxes, polygons)"
    kinds = frozenset({"image"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        zf = DeterministicZip(out)
        embed = ctx.options.images
        with ExitStack() as stack:
            labels = stack.enter_context(tempfile.TemporaryFile())
            lists = {split: stack.enter_context(tempfile.TemporaryFile()) for split in SPLITS}
            sources = None if embed else stack.enter_context(tempfile.TemporaryFile())
            counts = copy.deepcopy(ctx.counts)
            listed, clashes, left_out = self._labels(ctx, labels, lists, sources, None)
            if clashes:
                # Two label files may share a name (or only a hash): again, comparing names.
                for spool in (labels, *lists.values(), *([sources] if sources else [])):
                    spool.seek(0)
                    spool.truncate()
                ctx.counts = counts
                listed, _, left_out = self._labels(ctx, labels, lists, sources, clashes)

            zf.write(DATA_YAML, data_yaml([s for s in SPLITS if listed[s]], ctx.classes))
            for split in SPLITS:
                if listed[split]:
                    lists[split].seek(0)
                    with zf.open(f"{split}.txt") as entry:
                        shutil.copyfileobj(lists[split], entry, 1024 * 1024)
            labels.seek(0)
            readline, read, write = labels.readline, labels.read, zf.write
            while path := readline():
                body = read(int(readline()))
                write(path[:-1].decode("utf-8"), body, compress=len(body) >= LABEL_COMPRESS_MIN)
            if sources is not None:
                sources.seek(0)
                with zf.open(SOURCES_NAME) as entry:
                    shutil.copyfileobj(sources, entry, 1024 * 1024)
        if embed:
            self._images(ctx, zf, left_out)
        zf.write(LOCK_NAME, ctx.lock_bytes())
        zf.close()

    def _labels(
        self,
        ctx: ExportContext,
        labels: IO[bytes],
        lists: dict[str, IO[bytes]],
        sources: IO[bytes] | None,
        suspects: set[int] | None,
    ) -> tuple[dict[str, int], set[int], set[int]]:
        """One pass over the rows: label files to `labels` (framed as path line, byte
        count line, body), list lines per split, source rows. Returns the items per split,
        the hashes of label paths seen twice (`suspects` None: the first pass) and the ids
        of the items left out because their label path was taken (`suspects` given: the
        paths with those hashes are compared by name, the first in manifest order wins).

        A label path's `hash()` goes to an 8-byte array, checked for repeats at the end:
        a name table per item would cost more than the rest of the row. `hash()` changes
        from process to process, but it only says where to look: the output does not."""
        class_index = ctx.class_index
        counts = ctx.counts
        skip = counts.skip
        hashes = array("q")
        remember = hashes.append
        named: set[str] = set()
        left_out: set[int] = set()
        listed = dict.fromkeys(SPLITS, 0)
        block: list[str] = []
        list_blocks: dict[str, list[str]] = {split: [] for split in SPLITS}
        source_block: list[str] = ["path,url,sha256\n"] if sources is not None else []
        pending = 0
        regions = 0
        # A fraction's text, formatted once: `{:.6f}` costs more than the rest of a line,
        # and integral pixel coordinates on images of a few sizes repeat endlessly.
        texts: dict[float, str] = {}

        def fill(fractions: Iterable[float]) -> None:
            if len(texts) > FRACTION_TEXTS_MAX:
                texts.clear()
            for fraction in fractions:
                text = f"{fraction:.6f}"
                # -0.0 is 0.0 as a key: both are written "0.000000" (so is -0.0000001).
                texts[fraction] = "0.000000" if text == "-0.000000" else text

        def flush() -> None:
            labels.write("".join(block).encode("utf-8"))
            block.clear()
            for split, lines in list_blocks.items():
                if lines:
                    lists[split].write("".join(lines).encode("utf-8"))
                    lines.clear()
            if sources is not None:
                sources.write("".join(source_block).encode("utf-8"))
                source_block.clear()

        for row in ctx.rows():
            width, height = row["width"], row["height"]
            if not width or not height:
                skip("image size unknown")
                continue
            split, file_name = row["split"], row["file_name"]
            label_path = f"labels/{split}/{posixpath.splitext(file_name)[0]}.txt"
            if suspects is None:
                remember(hash(label_path))
            elif hash(label_path) in suspects:
                if label_path in named:
                    skip("label file name taken")
                    left_out.add(row["id"])
                    continue
                named.add(label_path)
            lines: list[str] = []
            for region in row["label"] or ():
                kind, value = region["type"], region["value"]
                if kind == "rectanglelabels":
                    index = class_index.get(value["rectanglelabels"][0])
                    if index is None:
                        skip("class not exported")
                        continue
                    w, h = value["width"], value["height"]
                    a, b = (value["x"] + w / 2) / width, (value["y"] + h / 2) / height
                    c, d = w / width, h / height
                    try:
                        lines.append(f"{index} {texts[a]} {texts[b]} {texts[c]} {texts[d]}\n")
                    except KeyError:
                        fill((a, b, c, d))
                        lines.append(f"{index} {texts[a]} {texts[b]} {texts[c]} {texts[d]}\n")
                elif kind == "polygonlabels":
                    index = class_index.get(value["polygonlabels"][0])
                    if index is None:
                        skip("class not exported")
                        continue
                    points = value["points"]
                    try:
                        text = " ".join(
                            [f"{texts[x / width]} {texts[y / height]}" for x, y in points]
                        )
                    except KeyError:
                        fill([v for x, y in points for v in (x / width, y / height)])
                        text = " ".join(
                            [f"{texts[x / width]} {texts[y / height]}" for x, y in points]
                        )
                    lines.append(f"{index} {text}\n")
                else:
                    skip(f"{kind} not in yolo")
                    continue
            regions += len(lines)
            body = "".join(lines)
            # The body is ASCII: its length in characters is its length in bytes.
            block.append(f"{label_path}\n{len(body)}\n{body}")
            image_path = f"images/{split}/{file_name}"
            list_blocks[split].append(f"./{image_path}\n")
            listed[split] += 1
            if sources is not None:
                url = ctx.image_url(row)
                source_block.append(f"{_csv_cell(image_path)},{_csv_cell(url)},{row['sha256']}\n")
            pending += 1
            if pending >= BLOCK_ITEMS:
                flush()
                pending = 0
        flush()
        counts.regions += regions
        return listed, _repeated(hashes), left_out

    def _images(self, ctx: ExportContext, zf: DeterministicZip, left_out: set[int]) -> None:
        """The images of the listed items (the items `_labels` left out stay out), stored
        as they are."""
        for row, data in ctx.rows_with_content(count=False):
            if row["width"] and row["height"] and row["id"] not in left_out:
                zf.write(f"images/{row['split']}/{row['file_name']}", data, compress=False)


def _csv_cell(text: str) -> str:
    """A CSV cell as the csv module writes it (QUOTE_MINIMAL), without its per-row cost:
    a file name may hold a comma (datasets.formats.base.export_file_name)."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _repeated(hashes: array[int]) -> set[int]:
    """The values found more than once in the array (sorted as 8-byte integers)."""
    if len(hashes) < 2:
        return set()
    values = numpy.frombuffer(hashes, dtype=numpy.int64).copy()
    values.sort()
    repeated = values[1:][values[1:] == values[:-1]]
    return {int(value) for value in repeated}


# --- import -------------------------------------------------------------------------------


class YoloImport:
    name = "yolo"
    title = "YOLO (Ultralytics: data.yaml and labels/*.txt)"
    kinds = frozenset({"image"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        with open(path, "rb") as handle:
            magic = handle.read(4)
            # By its first bytes, not zipfile.is_zipfile: a truncated zip has lost the end
            # record is_zipfile looks for, and must fail as a zip, not as a label file.
            if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
                data = magic + handle.read(LABEL_FILE_MAX + 1)
        if magic in (b"PK\x03\x04", b"PK\x05\x06"):
            yield from self._zip(path, classes)
            return
        base = posixpath.basename(path.replace("\\", "/"))
        key = posixpath.splitext(base)[0]
        names = dict(enumerate(classes or []))
        yield label_file_record(base, key, data, names, source="the project's labels")

    def _zip(self, path: str, classes: list[str] | None) -> Iterator[ImportRecord]:
        try:
            with zipfile.ZipFile(path) as zf:
                infos = [
                    info
                    for info in zf.infolist()
                    if not info.is_dir() and not info.filename.startswith("__MACOSX/")
                ]
                names, source = _class_names(zf, infos, classes)
                images = _image_index(zf, infos)
                found = False
                for info in infos:
                    rest = _after(info.filename, "labels")
                    if rest is None or not rest.endswith(".txt") or rest == "classes.txt":
                        continue
                    found = True
                    if info.file_size > LABEL_FILE_MAX:
                        yield _bad(info.filename, "file", f"larger than {LABEL_FILE_MAX} bytes")
                        continue
                    stem = rest[: -len(".txt")]
                    image = images.get(stem)
                    key = _drop_split(image if image is not None else stem)
                    yield label_file_record(info.filename, key, zf.read(info), names, source=source)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise InvalidLabelFile(
                f"The zip cannot be read (truncated or damaged?): {exc}", field="file"
            ) from None
        if not found:
            raise InvalidLabelFile(
                "The zip holds no label files: YOLO label files are .txt files under a "
                "labels/ directory (labels/train/img1.txt).",
                field="file",
            )


def _after(name: str, directory: str) -> str | None:
    """The part of a zip path after its first `directory` component, or None."""
    parts = name.split("/")
    try:
        index = parts.index(directory, 0, len(parts) - 1)
    except ValueError:
        return None
    return "/".join(parts[index + 1 :])


def _drop_split(rest: str) -> str:
    """Without the split directory: `train/a/cat.png` -> `a/cat.png`; `cat.png` stays."""
    first, sep, tail = rest.partition("/")
    return tail if sep and tail else rest


def _image_index(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> dict[str, str]:
    """Image paths after their `images/` directory, by the same path without extension
    (what a label file's path after `labels/` is, minus .txt): from the zip's images and
    from the lines of its split lists (any .txt outside labels/)."""
    index: dict[str, str] = {}
    for info in infos:
        rest = _after(info.filename, "images")
        if rest is not None:
            index[posixpath.splitext(rest)[0]] = rest
    for info in infos:
        name = info.filename
        if not name.endswith(".txt") or _after(name, "labels") is not None:
            continue
        if posixpath.basename(name) == "classes.txt":
            continue
        with zf.open(info) as handle:
            for raw in handle:
                line = raw.decode("utf-8", errors="replace").strip().replace("\\", "/")
                rest = _after(line, "images")
                if rest:
                    index.setdefault(posixpath.splitext(rest)[0], rest)
    return index


def _class_names(
    zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], classes: list[str] | None
) -> tuple[dict[int, str], str]:
    """Class names by index and where they come from (for messages)."""
    yamls = [i for i in infos if i.filename.endswith((".yaml", ".yml"))]
    # The shallowest, data.yaml first: a dataset zipped with its folder has it one down.
    yamls.sort(key=lambda i: (i.filename.count("/"), posixpath.basename(i.filename) != DATA_YAML))
    if yamls:
        name = yamls[0].filename
        try:
            config = yaml.safe_load(zf.read(yamls[0]))
        except yaml.YAMLError as exc:
            raise InvalidLabelFile(f"{name} is not valid YAML: {exc}", field=name) from None
        if not isinstance(config, dict):
            raise InvalidLabelFile(f"{name} is not a YAML mapping.", field=name)
        names = config.get("names")
        if isinstance(names, list):
            return {i: str(n) for i, n in enumerate(names)}, f"{name} names"
        if isinstance(names, dict):
            by_index: dict[int, str] = {}
            for index, value in names.items():
                try:
                    by_index[int(index)] = str(value)
                except (TypeError, ValueError):
                    raise InvalidLabelFile(
                        f"{name}: names has the key {index!r}; keys are class indices.",
                        field=f"{name}.names",
                    ) from None
            return by_index, f"{name} names"
    listing = [i for i in infos if posixpath.basename(i.filename) == "classes.txt"]
    if listing:
        listing.sort(key=lambda i: i.filename.count("/"))
        text = zf.read(listing[0]).decode("utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return dict(enumerate(lines)), listing[0].filename
    return dict(enumerate(classes or [])), "the project's labels"


def _bad(row: str, field: str, reason: str) -> ImportRecord:
    return ImportRecord(row=row, key="", problems=[ImportProblem(row, field, reason)])


def label_file_record(
    name: str, key: str, data: bytes, names: dict[int, str], *, source: str
) -> ImportRecord:
    """The record of one label file: its regions as fractions of the image size, or the
    problems of its lines (`row` = "<name>:<line>")."""
    record = ImportRecord(row=name, key=key, normalized=True)
    if len(data) > LABEL_FILE_MAX:
        record.problems.append(ImportProblem(name, "file", f"larger than {LABEL_FILE_MAX} bytes"))
        return record
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        record.problems.append(ImportProblem(name, "file", "not a text file (not UTF-8)"))
        return record
    regions = record.regions
    problems = record.problems
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        region, problem = _line(fields, names, source)
        if problem is not None:
            problems.append(ImportProblem(f"{name}:{number}", *problem))
        elif region is not None:
            regions.append(region)
    return record


def _line(
    fields: list[str], names: dict[int, str], source: str
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """One label line: (region, None) or (None, (field, reason))."""
    count = len(fields)
    if count == 5:
        field_names: tuple[str, ...] = BOX_FIELDS
    elif count % 2 == 1 and count >= 7:
        field_names = ("class", *(f"{a}{k}" for k in range(1, count // 2 + 1) for a in "xy"))
    elif count == 3:
        return None, ("line", "a polygon needs at least 3 points, got 1")
    elif count % 2 == 0 and count >= 6:
        return None, (
            "line",
            f"a polygon has an even number of coordinates; this line has {count - 1}",
        )
    else:
        return None, (
            "line",
            f"{count} fields; a box is 'class cx cy w h' (5), a polygon 'class x1 y1 x2 y2 "
            "x3 y3 ...' (7 or more, odd)",
        )
    raw_class = fields[0]
    try:
        index = int(raw_class)
    except ValueError:
        try:
            as_float = float(raw_class)
        except ValueError:
            return None, ("class", f"the class {raw_class!r} is not a number")
        if not as_float.is_integer():
            return None, ("class", f"the class {raw_class!r} is not an integer index")
        index = int(as_float)
    name = names.get(index)
    if name is None:
        if not names:
            return None, (
                "class",
                f"class {index}: no class names (no data.yaml names and no project labels)",
            )
        return None, (
            "class",
            f"class index {index} is out of range ({source}: {_indices(names)})",
        )
    values: list[float] = []
    for field, raw in zip(field_names[1:], fields[1:], strict=True):
        try:
            number = float(raw)
        except ValueError:
            return None, (field, f"{raw!r} is not a number")
        if not math.isfinite(number) or number < -TOLERANCE or number > 1 + TOLERANCE:
            return None, (field, f"{raw} is outside [0, 1] (YOLO coordinates are fractions)")
        values.append(min(max(number, 0.0), 1.0))
    if count == 5:
        cx, cy, w, h = values
        if w <= 0 or h <= 0:
            return None, ("w" if w <= 0 else "h", "the box has no area")
        x, y = cx - w / 2, cy - h / 2
        if x < -TOLERANCE or y < -TOLERANCE or x + w > 1 + TOLERANCE or y + h > 1 + TOLERANCE:
            return None, ("cx" if x < -TOLERANCE or x + w > 1 + TOLERANCE else "cy",
                          "the box goes outside the image")  # fmt: skip
        x, y = max(x, 0.0), max(y, 0.0)
        return {
            "type": "rectanglelabels",
            "value": {
                "x": x,
                "y": y,
                "width": min(w, 1.0 - x),
                "height": min(h, 1.0 - y),
                "rectanglelabels": [name],
            },
        }, None
    points = [[values[k], values[k + 1]] for k in range(0, len(values), 2)]
    return {"type": "polygonlabels", "value": {"points": points, "polygonlabels": [name]}}, None


def _indices(names: dict[int, str]) -> str:
    known = sorted(names)
    if known == list(range(len(known))):
        return f"{len(known)} classes, 0-{len(known) - 1}"
    return f"classes {', '.join(map(str, known[:10]))}" + (" ..." if len(known) > 10 else "")


EXPORT = YoloExport()
IMPORT = YoloImport()
