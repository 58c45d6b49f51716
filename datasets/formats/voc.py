"""Pascal VOC (detection): export and import of image datasets, boxes only.

Export layout (a zip), entries in this order::

    Annotations/<stem>.xml          one per item of the selected splits, in item order,
                                    also for items without boxes (no <object>)
    ImageSets/Main/<split>.txt      the stems of each split that has items, one a line,
                                    in item order (train, val, test)
    labelmap.txt                    the classes in the export's order, VOC/CVAT style
    JPEGImages/<file_name>          when `images` is true (whatever the image type)
    labelvault.lock.json            last: the version, code commit, options, counts

`<stem>` is the item's file_name without its extension and keeps its directories
(`a/b.png` -> `Annotations/a/b.xml`, stem `a/b` in the ImageSets). Two file names that
differ only by extension (`x.png`, `x.jpg`) would share a stem: the later one gets
`-<8 hex of its sha256>` appended (`x-1a2b3c4d`); <filename> still names the file.

One XML per item, UTF-8, no XML declaration, two-space indentation, this exact shape::

    <annotation>
      <folder>JPEGImages</folder>
      <filename>a/b.png</filename>
      <source>
        <database>Labelvault</database>
      </source>
      <size>
        <width>64</width>
        <height>48</height>
        <depth>3</depth>
      </size>
      <segmented>0</segmented>
      <object>
        <name>car</name>
        <pose>Unspecified</pose>
        <truncated>0</truncated>
        <difficult>0</difficult>
        <occluded>1</occluded>          only when the region has an `occluded` attribute
        <bndbox>
          <xmin>1</xmin>
          <ymin>2</ymin>
          <xmax>4</xmax>
          <ymax>6</ymax>
        </bndbox>
      </object>
    </annotation>

Coordinates are pixels with CVAT's convention: xmin = x, ymin = y, xmax = x + width,
ymax = y + height, without the historical 1-based "+1". Integers are written as
integers; floats (and a sum with a float) are rounded to FLOAT_DECIMALS decimals and
written in Python's shortest form, always with a decimal point (10.0, 10.25), so a float
reads back as the same float and an int as an int. `<depth>` is always 3 and `<pose>`,
`<truncated>`, `<difficult>` are constant (Labelvault has no such facts); `<occluded>` is
1 or 0 when the region has a true/false `occluded` attribute. `labelmap.txt` has the
header `# label:color_rgb:parts:actions` then one `name:::` line per class.
Polygons, keypoints and classifications have no place in VOC detection: they are counted
as skipped ("<type> not in voc").

Import: a zip of `Annotations/*.xml` (any `*.xml` when it has no Annotations/ folder) or
one `.xml` file, parsed with defusedxml (no entity expansion, no external references),
one file at a time. One record per file, in the zip's order: key = <filename> (else the
file's path under Annotations/ without .xml), width/height from <size> (0 is unknown),
one rectanglelabels region per <object> in file order (x = xmin, width = xmax - xmin
rounded to the decimals the file used), with `attributes: {"occluded": bool}` when the
object has <occluded> 0 or 1; <pose>, <truncated>, <difficult> and <part> are not read.
A file with no <object> is an image with nothing on it (regions []): VOC cannot tell an
unlabelled item from an empty one, so both come back as "nothing here". Problems name
the file, the object and the field: a missing <name>, a missing or non-numeric bndbox
coordinate, xmax <= xmin or ymax <= ymin (the record is then rejected whole); a file that
is not well-formed XML (or declares entities) is a record with one problem, and the other
files still import. A file that is neither a zip nor XML, or a broken zip, raises
InvalidLabelFile.
"""

from __future__ import annotations

import math
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from datasets.formats.base import (
    LOCK_NAME,
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
)

# Floats are written with at most this many decimals (a hundredth of a pixel, as CVAT).
FLOAT_DECIMALS = 2
# Stems are spooled in blocks of this many lines.
BLOCK_LINES = 1_000
COPY_CHUNK = 1024 * 1024
# One annotation XML is a few hundred bytes per object; 10,000 boxes stay below 4 MB.
XML_MAX = 32 * 1024 * 1024
LABELMAP_HEADER = "# label:color_rgb:parts:actions\n"

# Characters XML 1.0 cannot hold (controls other than tab, newline, carriage return).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


# The constant parts of an <object> (two-space indentation).
_OBJECT_OPEN = "  <object>\n    <name>"
_OBJECT_FACTS = (
    "</name>\n"
    "    <pose>Unspecified</pose>\n"
    "    <truncated>0</truncated>\n"
    "    <difficult>0</difficult>\n"
)
_OCCLUDED = {True: "    <occluded>1</occluded>\n", False: "    <occluded>0</occluded>\n"}
_OBJECT_CLOSE = "    </bndbox>\n  </object>\n"


def _text(value: str) -> str:
    """Escape text for an XML element (and drop what XML cannot hold)."""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _XML_INVALID.sub("\ufffd", value) if _XML_INVALID.search(value) else value


def _number(value: int | float) -> str:
    if type(value) is int:
        return str(value)
    return repr(round(value, FLOAT_DECIMALS))


# --- export ---------------------------------------------------------------------------


class VocExport:
    name = "voc"
    title = "Pascal VOC (XML per image, boxes)"
    kinds = frozenset({"image"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        zf = DeterministicZip(out)
        counts = ctx.counts
        names = {name: _text(name) for name in ctx.classes}
        with ExitStack() as stack:
            spools: dict[str, IO[bytes]] = {}
            blocks: dict[str, list[str]] = {}
            for row in ctx.rows():
                split = row["split"]
                block = blocks.get(split)
                if block is None:
                    if split not in ctx.options.splits:
                        continue
                    # Closed (and deleted) by the ExitStack.
                    spools[split] = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
                    block = blocks[split] = []
                file_name = row["file_name"]
                stem = posixpath.splitext(file_name)[0]
                objects: list[str] = []
                label = row["label"]
                if label:
                    for region in ctx.regions(label):
                        kind = region["type"]
                        if kind != "rectanglelabels":
                            counts.regions -= 1
                            counts.skip(f"{kind} not in voc")
                            continue
                        value = region["value"]
                        name = names.get(value["rectanglelabels"][0])
                        if name is None:
                            counts.regions -= 1
                            counts.skip("class not exported")
                            continue
                        x, y = value["x"], value["y"]
                        x2, y2 = x + value["width"], y + value["height"]
                        if not (type(x) is type(y) is type(x2) is type(y2) is int):
                            x, y, x2, y2 = _number(x), _number(y), _number(x2), _number(y2)
                        attributes = region.get("attributes")
                        occluded = attributes.get("occluded") if attributes else None
                        objects.append(
                            f"{_OBJECT_OPEN}{name}{_OBJECT_FACTS}"
                            f"{_OCCLUDED.get(occluded, '') if type(occluded) is bool else ''}"
                            f"    <bndbox>\n      <xmin>{x}</xmin>\n      <ymin>{y}</ymin>\n"
                            f"      <xmax>{x2}</xmax>\n      <ymax>{y2}</ymax>\n"
                            f"{_OBJECT_CLOSE}"
                        )
                width, height = row["width"], row["height"]
                xml = (
                    "<annotation>\n"
                    "  <folder>JPEGImages</folder>\n"
                    f"  <filename>{_text(file_name)}</filename>\n"
                    "  <source>\n"
                    "    <database>Labelvault</database>\n"
                    "  </source>\n"
                    "  <size>\n"
                    f"    <width>{'' if width is None else width}</width>\n"
                    f"    <height>{'' if height is None else height}</height>\n"
                    "    <depth>3</depth>\n"
                    "  </size>\n"
                    "  <segmented>0</segmented>\n"
                    f"{''.join(objects)}"
                    "</annotation>\n"
                )
                data = xml.encode("utf-8")
                try:
                    zf.write(f"Annotations/{stem}.xml", data)
                except ValueError as exc:
                    # Another file name with this stem (x.png, x.jpg): the zip refuses a
                    # name twice, and remembers names without us keeping a set of stems.
                    if "twice" not in str(exc):
                        raise
                    stem = f"{stem}-{row['sha256'][:8]}"
                    zf.write(f"Annotations/{stem}.xml", data)
                block.append(stem)
                if len(block) >= BLOCK_LINES:
                    spools[split].write(("\n".join(block) + "\n").encode("utf-8"))
                    block.clear()
            for split in ctx.options.splits:
                spool = spools.get(split)
                if spool is None:
                    continue
                block = blocks[split]
                if block:
                    spool.write(("\n".join(block) + "\n").encode("utf-8"))
                spool.seek(0)
                with zf.open(f"ImageSets/Main/{split}.txt") as entry_out:
                    shutil.copyfileobj(spool, entry_out, COPY_CHUNK)
        labelmap = LABELMAP_HEADER + "".join(f"{name}:::\n" for name in ctx.classes)
        zf.write("labelmap.txt", labelmap.encode("utf-8"))
        if ctx.options.images:
            ctx.write_files(zf, prefix="JPEGImages/")
        zf.write(LOCK_NAME, ctx.lock_bytes())
        zf.close()


# --- import -----------------------------------------------------------------------------


def _parse_number(text: str | None) -> tuple[int | float | None, int]:
    """(the number, its decimals) of an element's text; (None, 0) when not a number."""
    if text is None:
        return None, 0
    text = text.strip()
    if _INT.fullmatch(text):
        return int(text), 0
    if _FLOAT.fullmatch(text):
        number = float(text)
        if not math.isfinite(number):
            return None, 0
        mantissa, _, exponent = text.lower().partition("e")
        decimals = len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)
        return number, max(decimals, 0)
    return None, 0


def _size(text: str | None) -> int | None | bool:
    """An image dimension: an int, None when absent/empty/0 (tools that do not know the
    size write 0), False when not a whole positive number."""
    if text is None or not text.strip():
        return None
    number, _ = _parse_number(text)
    if number == 0:
        return None
    if type(number) is int and number > 0:
        return number
    if type(number) is float and number.is_integer() and number > 0:
        return int(number)
    return False


class VocImport:
    name = "voc"
    title = "Pascal VOC (a zip of Annotations/*.xml, or one XML file)"
    kinds = frozenset({"image"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        with open(path, "rb") as handle:
            data = handle.read(2)
            is_zip = data == b"PK"
            if not is_zip:
                data += handle.read(XML_MAX - 1)
        if not is_zip:
            if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
                raise InvalidLabelFile(
                    "This is neither a zip of Pascal VOC XML files nor an XML file.",
                    field="file",
                )
            if len(data) > XML_MAX:
                raise InvalidLabelFile(
                    f"The XML file is larger than {XML_MAX} bytes: not one image's annotation.",
                    field="file",
                )
            name = posixpath.basename(path.replace("\\", "/"))
            yield self._record(name, posixpath.splitext(name)[0], data)
            return
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidLabelFile(
                f"The file looks like a zip but cannot be read ({exc}); a truncated upload?",
                field="file",
            ) from exc
        with zf:
            infos = [
                info
                for info in zf.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".xml")
                and not info.filename.startswith("__MACOSX/")
            ]
            chosen = [i for i in infos if i.filename.startswith("Annotations/")] or infos
            if not chosen:
                raise InvalidLabelFile(
                    "The zip holds no Pascal VOC annotation: Annotations/*.xml.", field="file"
                )
            for info in chosen:
                name = info.filename
                stem = posixpath.splitext(name)[0]
                if stem.startswith("Annotations/"):
                    stem = stem[len("Annotations/") :]
                if info.file_size > XML_MAX:
                    yield ImportRecord(
                        row=name,
                        key=stem,
                        problems=[ImportProblem(name, "file", f"larger than {XML_MAX} bytes")],
                    )
                    continue
                try:
                    data = zf.read(info)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise InvalidLabelFile(
                        f"{name} cannot be read from the zip ({exc}); a truncated upload?",
                        field="file",
                    ) from exc
                yield self._record(name, stem, data)

    def _record(self, name: str, stem: str, data: bytes) -> ImportRecord:
        def broken(field: str, reason: str) -> ImportRecord:
            return ImportRecord(row=name, key=stem, problems=[ImportProblem(name, field, reason)])

        try:
            root = fromstring(data)
        except ParseError as exc:
            return broken("xml", f"not well-formed XML: {exc}")
        except DefusedXmlException as exc:
            return broken("xml", f"refused: {exc} (entity declarations are not read)")
        except (ValueError, UnicodeDecodeError) as exc:
            return broken("xml", f"not readable XML: {exc}")
        if root.tag != "annotation":
            return broken("annotation", f"the root element is <{root.tag}>, not <annotation>")
        file_name = (root.findtext("filename") or "").strip()
        record = ImportRecord(row=name, key=file_name or stem)
        problems = record.problems
        size = root.find("size")
        if size is not None:
            width, height = _size(size.findtext("width")), _size(size.findtext("height"))
            if width is False:
                problems.append(
                    ImportProblem(name, "size.width", "width must be a positive integer")
                )
            if height is False:
                problems.append(
                    ImportProblem(name, "size.height", "height must be a positive integer")
                )
            record.width = width if type(width) is int else None
            record.height = height if type(height) is int else None
        for index, obj in enumerate(root.findall("object")):
            where = f"object[{index}]"
            label = (obj.findtext("name") or "").strip()
            ok = True
            if not label:
                problems.append(ImportProblem(name, f"{where}.name", "an object needs a <name>"))
                ok = False
            box = obj.find("bndbox")
            if box is None:
                problems.append(
                    ImportProblem(name, f"{where}.bndbox", "an object needs a <bndbox>")
                )
                continue
            numbers: dict[str, tuple[int | float, int]] = {}
            for key in ("xmin", "ymin", "xmax", "ymax"):
                text = box.findtext(key)
                number, decimals = _parse_number(text)
                if number is None:
                    reason = (
                        f"<{key}> is missing"
                        if text is None
                        else f"<{key}> must be a number, got {text.strip()[:40]!r}"
                    )
                    problems.append(ImportProblem(name, f"{where}.bndbox.{key}", reason))
                    ok = False
                else:
                    numbers[key] = (number, decimals)
            if len(numbers) < 4:
                continue
            (xmin, dx0), (ymin, dy0) = numbers["xmin"], numbers["ymin"]
            (xmax, dx1), (ymax, dy1) = numbers["xmax"], numbers["ymax"]
            if xmax <= xmin:
                problems.append(
                    ImportProblem(
                        name,
                        f"{where}.bndbox.xmax",
                        f"xmax ({xmax}) must be greater than xmin ({xmin})",
                    )
                )
                ok = False
            if ymax <= ymin:
                problems.append(
                    ImportProblem(
                        name,
                        f"{where}.bndbox.ymax",
                        f"ymax ({ymax}) must be greater than ymin ({ymin})",
                    )
                )
                ok = False
            if not ok:
                continue
            width_box = xmax - xmin
            height_box = ymax - ymin
            # 4.3 - 1.1 is 3.1999999999999997: round to the decimals the file used.
            if type(width_box) is float:
                width_box = round(width_box, max(dx0, dx1))
            if type(height_box) is float:
                height_box = round(height_box, max(dy0, dy1))
            region: dict[str, Any] = {
                "type": "rectanglelabels",
                "value": {
                    "x": xmin,
                    "y": ymin,
                    "width": width_box,
                    "height": height_box,
                    "rectanglelabels": [label],
                },
            }
            occluded = obj.findtext("occluded")
            if occluded is not None and occluded.strip() in ("0", "1"):
                region["attributes"] = {"occluded": occluded.strip() == "1"}
            record.regions.append(region)
        if problems:
            record.regions = []
        return record


EXPORT = VocExport()
IMPORT = VocImport()
