"""CSV: one row per item, labels flattened, for spreadsheets (any dataset kind).

Export: a zip with `data.csv`, the files under `images/` (or `texts/`) when `images` is
true, and `labelvault.lock.json`. data.csv is UTF-8 WITH a byte order mark: Excel reads a
CSV without one in the machine's legacy code page (mojibake for every non-ASCII name);
Python's csv with encoding="utf-8-sig", pandas and LibreOffice skip it. Rows end in "\\n",
cells are quoted only when they must be (csv.QUOTE_MINIMAL). Columns, in this order:

    id, external_id, file_name, sha256, split, tags, width, height, url | file,
    labels, regions, label, metadata[, text]

- `tags`: the item's tags joined with ";";
- `width`, `height`: the image's pixels (empty for texts or when unknown);
- `url`: the stable URL of the item's file (`ctx.image_url`), or `file`: its path in the
  zip when the files are embedded;
- `labels`: the label names of the regions, in region order, joined with ";" (a
  classification's choices); `regions`: how many regions;
- `label`: the label itself, labeling/results.py's shape as compact JSON (keys sorted,
  UTF-8): the lossless column a re-import reads. An unlabelled item has `labels`,
  `regions` and `label` empty; an item labelled "nothing here" has regions 0, label [];
- `metadata`: the item's metadata as compact JSON;
- `text`: a text dataset's text (the file's UTF-8, bad bytes replaced).

Cells are written as they are: a value starting with "=", "+", "-" or "@" is not
escaped against spreadsheet formulas (that would change it on re-import), and Excel
truncates a cell past 32,767 characters (a label of several hundred regions): use the
JSON Lines export for those.

Import: a .csv, or a zip holding `data.csv` (our export) or exactly one .csv. UTF-8 with
or without a BOM (anything else is an InvalidLabelFile, as is a file without a header
row). The delimiter is the first of "," ";" tab found in the header line. Column names
are matched case-insensitively.

- Key: the row's external_id, else its file_name (the first of these columns present
  and not empty); a sha256 column gives the hash for matching by hash. A row with none
  is a problem.
- Label: the `label` column (our JSON: a list of regions) when the header has one; else
  a column of label names, `labels`, `label_name` or `class` (the first present), split
  on ";", which becomes one classification region
  `{"type": "choices", "value": {"choices": [names]}}`. An empty label cell means the
  row is not labelled: no record (`[]` in `label` is "nothing here").
- `width`/`height` columns, when integers, are the size the file declares (checked
  against the image).
- Problems, per row (`row` = the CSV line the row starts on): a label that is not JSON
  or not a list of regions, no key, an empty row (blank lines at the end of the file
  are not rows), more cells than the header.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import IO, Any

from datasets.formats.base import (
    LOCK_NAME,
    DeterministicZip,
    ExportContext,
    ImportProblem,
    ImportRecord,
    InvalidLabelFile,
)

DATA_NAME = "data.csv"
BOM = "\ufeff".encode()
# Rows written to the zip in one write.
BLOCK_ROWS = 500
# A cell longer than this is not a label (a 10,000-region label is ~1 MB); the csv
# module's own limit (128 KiB) is raised to it for reading (a process-wide setting, only
# ever raised).
FIELD_MAX = 64 * 1024 * 1024
KEY_COLUMNS = ("external_id", "file_name")
NAME_COLUMNS = ("labels", "label_name", "class")
DELIMITERS = (",", ";", "\t")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _cell(text: str) -> str:
    """A CSV cell as csv.writer writes it with QUOTE_MINIMAL and "\\n" line ends (quoted
    when it holds a comma, a quote or a line break; quotes doubled), without its cost
    per row (a third of the export's time)."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class CsvExport:
    name = "csv"
    title = "CSV (one row per item, for spreadsheets)"
    kinds = frozenset({"image", "text"})
    extension = "zip"
    content_type = "application/zip"

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        zf = DeterministicZip(out)
        text = ctx.dataset_kind == "text"
        embed = ctx.options.images
        prefix = "texts/" if text else "images/"
        header = [
            "id",
            "external_id",
            "file_name",
            "sha256",
            "split",
            "tags",
            "width",
            "height",
            "file" if embed else "url",
            "labels",
            "regions",
            "label",
            "metadata",
        ]
        if text:
            header.append("text")
        rows: Iterator[tuple[dict[str, Any], bytes | None]] = (
            ctx.rows_with_content() if text else ((row, None) for row in ctx.rows())
        )
        regions_of, image_url = ctx.regions, ctx.image_url
        block: list[str] = []
        with zf.open(DATA_NAME) as data:
            data.write(BOM + (",".join(header) + "\n").encode("utf-8"))
            for row, content in rows:
                label = row["label"]
                if label is None:
                    names = count = label_json = ""
                else:
                    kept = regions_of(label)
                    # A region's label names are under the key named like its type
                    # (rectanglelabels, choices, labels ...: labeling/results.py).
                    names = ";".join([name for r in kept for name in r["value"].get(r["type"], ())])
                    count = len(kept)
                    label_json = _dumps(kept)
                width, height = row["width"], row["height"]
                # id is an integer, sha256 hex and split a word: never quoted.
                line = (
                    f"{row['id']},{_cell(row['external_id'])},{_cell(row['file_name'])},"
                    f"{row['sha256']},{row['split']},{_cell(';'.join(row['tags']))},"
                    f"{'' if width is None else width},{'' if height is None else height},"
                    f"{_cell(prefix + row['file_name'] if embed else image_url(row))},"
                    f"{_cell(names)},{count},{_cell(label_json)},{_cell(_dumps(row['metadata']))}"
                )
                if content is not None:
                    line += "," + _cell(content.decode("utf-8", errors="replace"))
                block.append(line + "\n")
                if len(block) >= BLOCK_ROWS:
                    data.write("".join(block).encode("utf-8"))
                    block.clear()
            if block:
                data.write("".join(block).encode("utf-8"))
        if embed:
            ctx.write_files(zf, prefix=prefix)
        zf.write(LOCK_NAME, ctx.lock_bytes())
        zf.close()


# --- import -------------------------------------------------------------------------------


class CsvImport:
    name = "csv"
    title = "CSV (external_id or file_name, and label JSON or label names)"
    kinds = frozenset({"image", "text"})

    def read(self, path: str, *, classes: list[str] | None = None) -> Iterator[ImportRecord]:
        with open(path, "rb") as handle:
            is_zip = handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
        if not is_zip:
            yield from _rows(lambda: open(path, "rb"), path)  # noqa: SIM115 - closed by _rows
            return
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith(".csv")]
                if DATA_NAME not in names and len(names) != 1:
                    raise InvalidLabelFile(
                        f"The zip holds no {DATA_NAME} (and not exactly one .csv file).",
                        field="file",
                    )
                name = DATA_NAME if DATA_NAME in names else names[0]
                yield from _rows(lambda: zf.open(name), name)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidLabelFile(
                f"The zip cannot be read (truncated or damaged?): {exc}", field="file"
            ) from None


def _first_line(opener: Callable[[], IO[bytes]], name: str) -> str:
    """Check the whole file is UTF-8 (so a bad byte fails the file before any record,
    naming its line) and return its first line, decoded (without a BOM)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    head = ""
    line = 1
    with opener() as handle:
        while block := handle.read(1024 * 1024):
            try:
                text = decoder.decode(block)
            except UnicodeDecodeError as exc:
                where = line + block.count(b"\n", 0, max(exc.start, 0))
                raise InvalidLabelFile(
                    f"{name} is not UTF-8 text (a bad byte on line {where}); save it as CSV UTF-8.",
                    field="file",
                ) from None
            if "\n" not in head and len(head) < FIELD_MAX:
                head += text
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidLabelFile(
                f"{name} is not UTF-8 text (it ends inside a character).", field="file"
            ) from None
    return head.split("\n", 1)[0]


def _rows(opener: Callable[[], IO[bytes]], name: str) -> Iterator[ImportRecord]:
    header_line = _first_line(opener, name)
    delimiter = next((d for d in DELIMITERS if d in header_line), ",")
    if csv.field_size_limit() < FIELD_MAX:
        csv.field_size_limit(FIELD_MAX)
    with ExitStack() as stack:
        binary = stack.enter_context(opener())
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise InvalidLabelFile(
                f"{name}: the header row is not CSV: {exc}", field="file"
            ) from None
        columns = [cell.strip().lower() for cell in header or []]
        keys = [(c, columns.index(c)) for c in KEY_COLUMNS if c in columns]
        sha_at = columns.index("sha256") if "sha256" in columns else None
        if not keys and sha_at is None:
            shown = ", ".join(repr(c) for c in columns[:10]) or "nothing"
            raise InvalidLabelFile(
                f"{name} has no header row naming the item: the first row must name an "
                f"external_id, file_name or sha256 column (it has {shown}).",
                field="file",
            )
        if "label" in columns:
            label_column, names = "label", False
        else:
            label_column = next((c for c in NAME_COLUMNS if c in columns), "")
            names = True
        if not label_column:
            raise InvalidLabelFile(
                f"{name} has no label column: `label` (a JSON list of regions) or "
                f"`labels`, `label_name` or `class` (label names separated by ';').",
                field="file",
            )
        label_at = columns.index(label_column)
        width_at = columns.index("width") if "width" in columns else None
        height_at = columns.index("height") if "height" in columns else None
        size = len(columns)
        blank: list[int] = []  # blank lines, problems only if a row follows
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                raise InvalidLabelFile(
                    f"{name}, line {start}: not CSV: {exc}", field="file"
                ) from None
            if cells is None:
                break
            end = reader.line_num
            if not any(cell.strip() for cell in cells):
                blank.append(start)
                continue
            for number in blank:
                yield _bad(number, "row", "empty row")
            blank.clear()
            if len(cells) > size:
                yield _bad(start, "row", f"{len(cells)} cells; the header has {size} columns")
                continue
            cells += [""] * (size - len(cells))
            key = next((cells[at].strip() for _, at in keys if cells[at].strip()), "")
            sha256 = cells[sha_at].strip().lower() if sha_at is not None else ""
            if not key and not sha256:
                present = [c for c in (*KEY_COLUMNS, "sha256") if c in columns]
                yield _bad(start, present[0], f"no {' or '.join(present)} in this row")
                continue
            raw = cells[label_at].strip()
            if not raw:
                continue
            regions, problem = _names(raw) if names else _label(raw)
            if problem is not None:
                yield _bad(start, label_column, problem, key=key)
                continue
            yield ImportRecord(
                row=start,
                key=key,
                sha256=sha256 or None,
                regions=regions,
                width=_int(cells[width_at]) if width_at is not None else None,
                height=_int(cells[height_at]) if height_at is not None else None,
            )


def _label(raw: str) -> tuple[list[dict[str, Any]], str | None]:
    try:
        label = json.loads(raw)
    except json.JSONDecodeError as exc:
        return [], f"the label is not JSON: {exc}"
    if not isinstance(label, list) or not all(isinstance(r, dict) for r in label):
        return [], "the label is a JSON list of region objects (labeling/results.py)"
    return label, None


def _names(raw: str) -> tuple[list[dict[str, Any]], str | None]:
    chosen = [name.strip() for name in raw.split(";") if name.strip()]
    return [{"type": "choices", "value": {"choices": chosen}}], None


def _int(cell: str) -> int | None:
    cell = cell.strip()
    return int(cell) if cell.isascii() and cell.isdigit() else None


def _bad(row: int, field: str, reason: str, *, key: str = "") -> ImportRecord:
    return ImportRecord(row=row, key=key, problems=[ImportProblem(row, field, reason)])


EXPORT = CsvExport()
IMPORT = CsvImport()
