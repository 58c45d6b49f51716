"""Local-file plumbing shared by the sources: the capped copy every fetch goes through,
and row readers for JSON arrays, JSONL and CSV that hold one row at a time."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from datasets.errors import FileRejected, InvalidImport
from datasets.sources.types import format_bytes
from storage.types import Readable

# Read and write size: few system calls, no memory worth counting.
CHUNK_SIZE = 1024 * 1024
# A row of a URL list (a URL and some metadata) fits in 1 MB many times over.
MAX_URL_ROW_CHARS = 1_000_000
# Enough of a file's start to recognise any archive format (tar's magic is at 257).
MAGIC_BYTES = 512

RowResult = tuple[int, Any, str | None]  # (row number, value or None, reason or None)


def copy_capped(
    source: Readable,
    dest_path: Path,
    *,
    max_bytes: int,
    check_start: Callable[[bytes], str | None] | None = None,
) -> int:
    """Copy `source` to `dest_path` in 1 MiB chunks; return the number of bytes written.

    Counts the real bytes and stops reading as soon as they pass `max_bytes`.
    `check_start` sees the first chunk (at least MAGIC_BYTES unless the file is shorter)
    and may return a reason to refuse it. Raises FileRejected (over the limit, refused
    start); on any error, that one included, `dest_path` is removed, so nothing partial
    is ever left behind.
    """
    written = 0
    try:
        with open(dest_path, "wb") as out:
            head = b""
            checked = check_start is None
            while True:
                chunk = source.read(CHUNK_SIZE)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise FileRejected(
                        f"file is over the per-file limit of {format_bytes(max_bytes)}"
                    )
                if not checked:
                    head += chunk
                    if len(head) < MAGIC_BYTES:
                        continue
                    assert check_start is not None
                    _check_head(check_start, head)
                    out.write(head)
                    checked, head = True, b""
                    continue
                out.write(chunk)
            if not checked and head:
                assert check_start is not None
                _check_head(check_start, head)
                out.write(head)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest_path)
        raise
    return written


@contextlib.contextmanager
def removed_on_error(dest_path: Path) -> Iterator[None]:
    """Remove `dest_path` when the block raises, so a refused fetch leaves nothing there
    (even a file the caller had put at that path before)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest_path)
        raise


def _check_head(check: Callable[[bytes], str | None], head: bytes) -> None:
    reason = check(head)
    if reason:
        raise FileRejected(reason)


def write_text_file(text: str, dest_path: Path, *, max_bytes: int) -> int:
    """Write `text` as UTF-8 to `dest_path`; return the byte count.

    Raises FileRejected when the encoded text is over `max_bytes` or not encodable
    (nothing is left behind).
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise FileRejected("text is not valid Unicode") from None
    return copy_capped(io.BytesIO(data), dest_path, max_bytes=max_bytes)


# --- JSON Lines -------------------------------------------------------------------------


def jsonl_rows(path: Path, *, max_line_bytes: int) -> Iterator[RowResult]:
    """Yield (line number, parsed value, None) or (line number, None, reason) per non-blank
    line of a UTF-8 JSON Lines file.

    Holds one line at a time; a line longer than `max_line_bytes` is skipped (read
    through without keeping it) with a reason. A byte order mark on line 1 is ignored.
    """
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while (rest := fh.readline(CHUNK_SIZE)) and not rest.endswith(b"\n"):
                    pass
                yield number, None, f"line is longer than {format_bytes(max_line_bytes)}"
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, None, f"not valid UTF-8 (bad byte at column {exc.start + 1})"
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            yield number, value, None


# --- JSON array -------------------------------------------------------------------------


class _JsonStream:
    """A UTF-8 text file read in growing windows, for incremental JSON decoding."""

    def __init__(self, fh: io.TextIOBase) -> None:
        self._fh = fh
        self.buf = ""
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        """Read more (at least 64 KiB, at least what is buffered: amortised linear)."""
        if self.eof:
            return False
        if self.pos > CHUNK_SIZE:
            self.buf, self.pos = self.buf[self.pos :], 0
        data = self._fh.read(max(64 * 1024, len(self.buf) - self.pos))
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def skip_space(self) -> str:
        """Skip whitespace; return the next character ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""


def json_array_rows(path: Path, *, max_element_chars: int, what: str) -> Iterator[RowResult]:
    """Yield (position, value, None) for each element of a top-level JSON array.

    Decodes one element at a time (memory: about one element), positions from 1.
    Raises InvalidImport when the file is not a JSON array, not UTF-8, or malformed at
    some element (a broken array cannot be resynchronised): "row 17: not valid JSON".
    `what` names the file in messages ("a JSON URL list").
    """
    decoder = json.JSONDecoder()
    with _utf8_errors_as_invalid(what), open(path, encoding="utf-8-sig") as fh:
        stream = _JsonStream(fh)
        if stream.skip_space() != "[":
            raise InvalidImport(f"{what} must be a JSON array")
        stream.pos += 1
        index = 0
        while True:
            ch = stream.skip_space()
            if ch == "]":
                stream.pos += 1
                if stream.skip_space():
                    raise InvalidImport(f"{what}: unexpected data after the closing ']'")
                return
            if index > 0:
                if ch != ",":
                    raise InvalidImport(f"row {index}: expected ',' or ']' after it")
                stream.pos += 1
                ch = stream.skip_space()
            if not ch:
                raise InvalidImport(f"{what} ends before its closing ']'")
            index += 1
            yield index, _decode_element(decoder, stream, index, max_element_chars), None


def _decode_element(
    decoder: json.JSONDecoder, stream: _JsonStream, index: int, max_chars: int
) -> Any:
    while True:
        try:
            value, end = decoder.raw_decode(stream.buf, stream.pos)
        except json.JSONDecodeError as exc:
            if len(stream.buf) - stream.pos <= max_chars and stream.fill():
                continue
            if len(stream.buf) - stream.pos > max_chars:
                raise InvalidImport(
                    f"row {index}: element is longer than {max_chars:,} characters"
                ) from None
            raise InvalidImport(f"row {index}: not valid JSON ({exc.msg})") from None
        # A number can end where the window ends without being complete: read on.
        if end == len(stream.buf) and stream.fill():
            continue
        stream.pos = end
        return value


@contextlib.contextmanager
def _utf8_errors_as_invalid(what: str) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InvalidImport(f"{what} is not valid UTF-8 ({exc.reason})") from None


# --- CSV --------------------------------------------------------------------------------

# Delimiters recognised in a header line, in order of preference on a tie.
CSV_DELIMITERS = (",", ";", "\t", "|")


class _LineTooLong(Exception):
    pass


class _CappedLines:
    """Lines of a text file, each at most `cap` characters; a longer physical line is
    skipped and reported by raising _LineTooLong once (iteration then goes on)."""

    def __init__(self, fh: io.TextIOBase, cap: int) -> None:
        self._fh = fh
        self._cap = cap

    def __iter__(self) -> _CappedLines:
        return self

    def __next__(self) -> str:
        line = self._fh.readline(self._cap + 1)
        if not line:
            raise StopIteration
        if len(line) > self._cap and not line.endswith("\n"):
            while (rest := self._fh.readline(CHUNK_SIZE)) and not rest.endswith("\n"):
                pass
            raise _LineTooLong
        return line


def _header_delimiter(line: str) -> str:
    """Pick the delimiter of a CSV file from its header line: the candidate that occurs
    most often outside double quotes (a comma when none does)."""
    counts = dict.fromkeys(CSV_DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(CSV_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_rows(
    path: Path, *, max_field_chars: int, required: Collection[str], what: str
) -> Iterator[RowResult]:
    """Yield (row, {column: value}, None) or (row, None, reason) per data row of a CSV
    file with a header line.

    Dialect: UTF-8 (a byte order mark is ignored), quoted fields with doubled quotes and
    line breaks, the delimiter (, ; tab |) taken from the header line. Rows are numbered
    as a spreadsheet shows them: the header is row 1. Blank rows are skipped; a row
    whose field count differs from the header's is refused with a reason, as is a field
    or line over `max_field_chars` (memory stays at about one row).

    Raises InvalidImport (on the first `next`) when the header is empty, has blank or
    duplicate names, or lacks a `required` column; and when the file is not UTF-8.
    """
    # The module default (128 KiB) is too small for long texts; raise it to what one
    # record may hold, never lower than it already is (the limit is process-wide).
    csv.field_size_limit(max(csv.field_size_limit(), max_field_chars))
    with _utf8_errors_as_invalid(what), open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline(max_field_chars + 1)
        if not first.strip():
            raise InvalidImport(f"{what} has no header line")
        if len(first) > max_field_chars:
            raise InvalidImport(f"{what}: the header line is too long")
        delimiter = _header_delimiter(first)
        header = next(csv.reader([first], delimiter=delimiter, strict=True))
        header = [name.strip() for name in header]
        if any(not name for name in header):
            raise InvalidImport(f"{what}: the header has an empty column name")
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise InvalidImport(f"{what}: the header repeats {', '.join(duplicates)}")
        missing = [name for name in required if name not in header]
        if missing:
            raise InvalidImport(
                f"{what}: the header has no {', '.join(repr(m) for m in missing)} column "
                f"(found: {', '.join(header)})"
            )
        reader = csv.reader(_CappedLines(fh, max_field_chars), delimiter=delimiter, strict=True)
        row = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except _LineTooLong:
                row += 1
                yield row, None, f"line is longer than {max_field_chars:,} characters"
                continue
            except csv.Error as exc:
                row += 1
                yield row, None, f"malformed CSV ({exc})"
                continue
            if not fields or all(not value.strip() for value in fields):
                row += 1
                continue
            row += 1
            if len(fields) != len(header):
                yield row, None, f"has {len(fields)} fields, the header has {len(header)}"
                continue
            yield row, dict(zip(header, fields, strict=True)), None
