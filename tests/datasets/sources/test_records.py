"""Text records from JSONL and CSV: unicode and right-to-left text, dialects, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datasets.errors import FileRejected, InvalidImport
from datasets.services.assets import asset_inspect
from datasets.sources.records import records_fetch, records_plan
from datasets.sources.types import ImportLimits, Rejection, SourceEntry

HEBREW = "שלום עולם, זה טקסט מימין לשמאל"
ARABIC = "مرحبا بالعالم"
MIXED = "abc \u202eRTL override\u202c e\u0301 🙂 日本語"


def jsonl(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_records(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "r.jsonl",
        json.dumps({"id": "he-1", "text": HEBREW, "lang": "he", "tags": ["rtl"], "split": "train"}),
        json.dumps({"text": ARABIC, "lang": "ar"}, ensure_ascii=False),
        "",
        "{broken",
        json.dumps({"id": "empty", "text": "   "}),
        json.dumps({"id": "none"}),
        json.dumps({"id": 7, "text": MIXED}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "nul", "text": "a\u0000b"}),
        json.dumps({"id": "num", "text": 12}),
        json.dumps({"id": {"x": 1}, "text": "t"}),
        json.dumps({"id": "lone", "text": "\ud800"}),
    )
    out = list(records_plan(path, "jsonl", limits=ImportLimits()))
    assert out[0] == SourceEntry(
        name="he-1", ref=HEBREW, metadata={"lang": "he"}, tags=["rtl"], split="train"
    )
    assert out[1] == SourceEntry(name="2", ref=ARABIC, metadata={"lang": "ar"})  # row number
    assert isinstance(out[2], Rejection) and out[2].name == "row 4"
    assert out[2].reason.startswith("row 4: not valid JSON")
    assert out[3] == Rejection("empty", "row 5: text is missing or empty")
    assert out[4] == Rejection("none", "row 6: text is missing or empty")
    assert out[5] == SourceEntry(name="7", ref=MIXED)
    assert out[6] == Rejection("row 8", "row 8: not a JSON object")
    assert out[7] == Rejection("nul", "row 9: text contains a NUL character")
    assert out[8] == Rejection("num", "row 10: text must be a string")
    assert out[9] == Rejection("row 11", "row 11: id must be a string or an integer")
    assert out[10].reason.startswith("row 12: text is not valid Unicode")
    assert len(out) == 11


def test_custom_fields_and_size_limit(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "r.jsonl",
        json.dumps({"doc": "d1", "body": "short", "text": "kept as metadata"}),
        json.dumps({"doc": "d2", "body": "x" * 2000}),
    )
    out = list(
        records_plan(
            path,
            "jsonl",
            text_field="body",
            id_field="doc",
            limits=ImportLimits(max_file_bytes=1000),
        )
    )
    assert out[0] == SourceEntry(name="d1", ref="short", metadata={"text": "kept as metadata"})
    assert out[1] == Rejection("d2", "row 2: body is 0.0 MB, over the per-file limit of 0.0 MB")


def test_invalid_utf8_line_is_one_rejection(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n{"text": "fine"}\n')
    out = list(records_plan(path, "jsonl"))
    assert [type(o).__name__ for o in out] == ["SourceEntry", "Rejection", "SourceEntry"]
    assert out[1].reason == "row 2: not valid UTF-8 (bad byte at column 11)"


def test_csv_records_with_dialect_quirks(tmp_path: Path) -> None:
    long_text = "lorem ipsum " * 20_000  # 240 KB: over the csv module's 128 KiB default
    rows = [
        "id;text;lang;tags",
        f'a;"{HEBREW}";he;"rtl;news"',
        'b;"line one\r\nline two; with ""quotes""";en;',
        f"c;{long_text};en;",
        "d;;en;",
        "e;too;many;fields;here",
        ";;;",
        f';"{ARABIC}";ar;',
    ]
    path = tmp_path / "r.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    out = list(records_plan(path, "csv", limits=ImportLimits()))
    assert out[0] == SourceEntry(
        name="a", ref=HEBREW, metadata={"lang": "he"}, tags=["rtl", "news"]
    )
    assert out[1] == SourceEntry(
        name="b", ref='line one\r\nline two; with "quotes"', metadata={"lang": "en"}
    )
    assert out[2] == SourceEntry(name="c", ref=long_text, metadata={"lang": "en"})
    assert out[3] == Rejection("d", "row 5: text is missing or empty")
    assert out[4] == Rejection("row 6", "row 6: has 5 fields, the header has 4")
    # row 7 is blank (only delimiters): skipped; row 8 has no id: its row number.
    assert out[5] == SourceEntry(name="8", ref=ARABIC, metadata={"lang": "ar"})
    assert len(out) == 6


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("id,body\n1,hello\n")
    with pytest.raises(InvalidImport, match="the header has no 'text' column"):
        list(records_plan(path, "csv"))
    path.write_text("id,text,text\n1,a,b\n")
    with pytest.raises(InvalidImport, match="the header repeats text"):
        list(records_plan(path, "csv"))
    path.write_bytes(b"id,text\n1,\xff\n")
    with pytest.raises(InvalidImport, match="not valid UTF-8"):
        list(records_plan(path, "csv"))
    with pytest.raises(InvalidImport, match="unknown records format 'xlsx'"):
        list(records_plan(path, "xlsx"))


def test_oversized_csv_line_is_skipped_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.csv"
    huge = "x" * 3000
    path.write_text(f"id,text\n1,ok\n2,{huge}\n3,after\n")
    limits = ImportLimits(max_file_bytes=100)
    # The row cap is max_file_bytes + 1 MB: drop the margin to see the line refused whole.
    monkeypatch.setattr("datasets.sources.records.ROW_OVERHEAD_BYTES", 0)
    out = list(records_plan(path, "csv", limits=limits))
    assert out[0] == SourceEntry(name="1", ref="ok")
    assert out[1] == Rejection("row 3", "row 3: line is longer than 100 characters")
    assert out[2] == SourceEntry(name="3", ref="after")


def test_fetch_writes_utf8_text_the_asset_inspector_accepts(tmp_path: Path) -> None:
    dest = tmp_path / "record.txt"
    size = records_fetch(MIXED, dest)
    assert size == len(MIXED.encode("utf-8"))
    assert dest.read_text(encoding="utf-8") == MIXED
    facts = asset_inspect(dest, kind="text")
    assert facts.media_type == "text/plain" and facts.char_count == len(MIXED)
    with pytest.raises(FileRejected, match="over the per-file limit"):
        records_fetch("x" * 101, dest, limits=ImportLimits(max_file_bytes=100))
    assert not dest.exists()
