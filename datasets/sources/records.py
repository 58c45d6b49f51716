"""Text-record imports: a JSONL or CSV file whose rows each become one UTF-8 text asset.

A row's text travels in its entry's ref (ImportEntry.ref is a text column), so fetching
needs neither the records file nor a second pass over it: records_fetch writes the ref
to a .txt file that asset inspection then treats like any uploaded text file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets.errors import InvalidImport
from datasets.sources.files import csv_rows, jsonl_rows, removed_on_error, write_text_file
from datasets.sources.types import (
    ImportLimits,
    PlannedEntry,
    Rejection,
    SourceEntry,
    format_bytes,
    name_problem,
    parse_split,
    parse_tags,
    text_problem,
    value_problem,
)

RECORD_FORMATS = ("jsonl", "csv")
# Room for a record's other fields (id, tags, metadata) beyond its text on one line.
ROW_OVERHEAD_BYTES = 1_000_000


def records_plan(
    path: Path,
    fmt: str,
    *,
    text_field: str = "text",
    id_field: str = "id",
    limits: ImportLimits | None = None,
) -> Iterator[PlannedEntry]:
    """Yield a SourceEntry (ref: the record's text) or a Rejection per row, in order.

    `text_field` holds the text (a non-empty string); `id_field` the external_id (a
    string or integer; missing or empty: the row number, "17"). `tags` (a JSON list,
    or a string split on "," and ";") and `split` are read as in URL lists; every other
    field goes into metadata (empty CSV cells are left out). Rows are numbered by line
    for JSONL and as a spreadsheet shows them for CSV (the header is row 1); reasons
    start with them: "row 17: text is missing or empty", "row 3: not valid JSON (...)".
    A text over IMPORT_MAX_FILE_BYTES (in UTF-8) or holding NUL characters is refused.

    Memory: one row at a time. Raises InvalidImport for an unknown format, field names
    that collide, or (CSV) a header without `text_field`, or a file that is not UTF-8.
    """
    limits = limits or ImportLimits.from_settings()
    if not text_field or not id_field or text_field == id_field:
        raise InvalidImport("text_field and id_field must be two different field names")
    max_row = limits.max_file_bytes + ROW_OVERHEAD_BYTES
    if fmt == "jsonl":
        rows = jsonl_rows(path, max_line_bytes=max_row)
    elif fmt == "csv":
        rows = csv_rows(
            path, max_field_chars=max_row, required=(text_field,), what="the CSV records file"
        )
    else:
        raise InvalidImport(
            f"unknown records format {fmt!r} (use one of {', '.join(RECORD_FORMATS)})",
            field="format",
        )
    for row, value, reason in rows:
        if reason is not None:
            yield Rejection(f"row {row}", f"row {row}: {reason}")
        else:
            yield _record_entry(
                row,
                value,
                text_field=text_field,
                id_field=id_field,
                from_csv=fmt == "csv",
                limits=limits,
            )


def _record_entry(
    row: int,
    value: Any,
    *,
    text_field: str,
    id_field: str,
    from_csv: bool,
    limits: ImportLimits,
) -> PlannedEntry:
    if not isinstance(value, dict):
        return Rejection(f"row {row}", f"row {row}: not a JSON object")

    raw_id = value.get(id_field)
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        name = str(row)
    elif isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
        name = str(raw_id).strip()
    else:
        return Rejection(f"row {row}", f"row {row}: {id_field} must be a string or an integer")

    def reject(reason: str) -> Rejection:
        return Rejection(name, f"row {row}: {reason}")

    problem = name_problem(name)
    if problem:
        return reject(problem)
    text = value.get(text_field)
    if not isinstance(text, str):
        if text is None:
            return reject(f"{text_field} is missing or empty")
        return reject(f"{text_field} must be a string")
    if not text.strip():
        return reject(f"{text_field} is missing or empty")
    problem = text_problem(text)
    if problem:
        return reject(f"{text_field} {problem}")
    size = len(text.encode("utf-8"))
    if size > limits.max_file_bytes:
        return reject(
            f"{text_field} is {format_bytes(size)}, over the per-file limit of "
            f"{format_bytes(limits.max_file_bytes)}"
        )

    tags, problem = parse_tags(value.get("tags"))
    if problem:
        return reject(problem)
    split, problem = parse_split(value.get("split"))
    if problem:
        return reject(problem)
    metadata = {
        key: item
        for key, item in value.items()
        if key not in (text_field, id_field, "tags", "split") and not (from_csv and item == "")
    }
    problem = value_problem(metadata)
    if problem:
        return reject(f"metadata {problem}")
    return SourceEntry(name=name, ref=text, metadata=metadata, tags=tags, split=split)


def records_fetch(ref: str, dest_path: Path, *, limits: ImportLimits | None = None) -> int:
    """Write a record's text (an entry's ref) to `dest_path` as UTF-8; return the bytes.

    Raises FileRejected when it is over IMPORT_MAX_FILE_BYTES or not encodable;
    `dest_path` is then absent. Name the file .txt: it is a text asset.
    """
    limits = limits or ImportLimits.from_settings()
    with removed_on_error(dest_path):
        return write_text_file(ref, dest_path, max_bytes=limits.max_file_bytes)
