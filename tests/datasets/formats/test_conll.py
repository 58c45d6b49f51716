"""CoNLL-2003 BIO: the exact text written, tokens and tags over unicode, right-to-left and
emoji texts, splits and classes, the reader's records and problems, spans from tokens,
and export -> import -> export round trips."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from datasets.formats.conll import IMPORT, spans_from_tokens, tokenize
from tests.datasets.formats.conftest import (
    export_bytes,
    label_file_import,
    problems_of,
    round_trip,
    version_of,
    without_lock,
    zip_files,
)

pytestmark = pytest.mark.django_db

NEWS = "EU rejects German lamb.\n\n\nPeter Blackburn 🙂 said so"
# Right to left, and a span starting inside the word מירושלים ("from Jerusalem").
HEBREW = "שָׁלוֹם עולם מירושלים"
EMOJI = "👍🏽 Zoë flew to 東京 today"


def span(text, part, name, *, occurrence=0, start=None, end=None):
    if start is None:
        start = text.index(part)
        for _ in range(occurrence):
            start = text.index(part, start + 1)
        end = start + len(part)
    return {
        "type": "labels",
        "value": {"start": start, "end": end, "text": text[start:end], "labels": [name]},
    }


def news_version(ops, *, unlabelled=False):
    texts = [NEWS, HEBREW, "  \n \n", EMOJI]
    labels = [
        [
            span(NEWS, "EU", "ORG"),
            span(NEWS, "German", "MISC"),
            span(NEWS, "Peter Blackburn", "PER"),
        ],
        [span(HEBREW, "ירושלים", "מקום")],
        [],
        [span(EMOJI, "Zoë", "PER"), span(EMOJI, "東京", "LOC")],
    ]
    external_ids = ["news/a.txt", "he.txt", "blank.txt", "emoji.txt"]
    splits = ["train", "val", "train", "train"]
    if unlabelled:
        texts.append("Not labelled by Ann yet")
        labels.append(None)
        external_ids.append("later.txt")
        splits.append("train")
    return version_of(
        ops,
        kind="text",
        contents=[t.encode() for t in texts],
        labels=labels,
        external_ids=external_ids,
        splits=splits,
    )


NEWS_CONLL = """-DOCSTART- -X- -X- O

# id = news/a.txt
EU -X- _ B-ORG
rejects -X- _ O
German -X- _ B-MISC
lamb -X- _ O
. -X- _ O

Peter -X- _ B-PER
Blackburn -X- _ I-PER
🙂 -X- _ O
said -X- _ O
so -X- _ O

-DOCSTART- -X- -X- O

# id = blank.txt

-DOCSTART- -X- -X- O

# id = emoji.txt
👍🏽 -X- _ O
Zoë -X- _ B-PER
flew -X- _ O
to -X- _ O
東京 -X- _ B-LOC
today -X- _ O

"""

HEBREW_CONLL = """-DOCSTART- -X- -X- O

# id = he.txt
שָׁלוֹם -X- _ O
עולם -X- _ O
מירושלים -X- _ B-מקום

"""


def test_conll_export_writes_the_exact_documents(ops):
    version = news_version(ops)
    data = export_bytes(version, "conll")
    assert export_bytes(version, "conll") == data  # deterministic
    files = zip_files(data)
    assert list(files) == ["train.conll", "val.conll", "labelvault.lock.json"]
    assert files["train.conll"].decode("utf-8") == NEWS_CONLL
    assert files["val.conll"].decode("utf-8") == HEBREW_CONLL
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["format"] == "conll" and lock["version"] == version.pk
    assert lock["classes"] == ["LOC", "MISC", "ORG", "PER", "מקום"]
    assert lock["counts"] == {
        "items": 4,
        "labelled": 4,
        "regions": 6,
        "skipped": {"span boundary inside a token": 1},
    }


def test_conll_export_filters_splits_and_classes(ops):
    version = news_version(ops)
    files = zip_files(export_bytes(version, "conll", splits=["train"], classes=["PER"]))
    assert list(files) == ["train.conll", "labelvault.lock.json"]
    text = files["train.conll"].decode()
    assert "B-ORG" not in text and "B-LOC" not in text
    assert "Peter -X- _ B-PER\nBlackburn -X- _ I-PER\n" in text
    assert "Zoë -X- _ B-PER\n" in text
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["items"] == 3 and lock["counts"]["regions"] == 2
    assert lock["counts"]["skipped"] == {"class not exported": 3}


def test_conll_export_tags_overlaps_gaps_and_non_span_regions(ops):
    text = "New York City is big"
    labels = [
        [
            span(text, "York", "LOC"),  # starts later: sorted after New York City
            span(text, "New York City", "LOC"),
            span(text, " ", "X", start=3, end=4),  # whitespace only: no token
            span(text, "ity is", "MISC"),  # overlaps the city; boundary inside "City"
            {"type": "choices", "value": {"choices": ["news"]}},
        ],
        None,
    ]
    version = version_of(
        ops, kind="text", contents=[text.encode(), b"no label here"], labels=labels
    )
    files = zip_files(export_bytes(version, "conll"))
    documents = "".join(files[name].decode() for name in files if name.endswith(".conll"))
    assert "New -X- _ B-LOC\nYork -X- _ I-LOC\nCity -X- _ I-LOC\nis -X- _ O\n" in documents
    assert "no -X- _" not in documents  # unlabelled: left out
    skipped = json.loads(files["labelvault.lock.json"])["counts"]["skipped"]
    assert skipped == {
        "overlapping span": 2,
        "span covers no token": 1,
        "choices regions are not spans": 1,
        "unlabelled item": 1,
    }


def test_tokenize_keeps_marks_joiners_and_emoji_sequences_together():
    assert [t for _, _, t in tokenize("שָׁלוֹם, नमस्ते! 👨\u200d👩\u200d👧 ❤️ می\u200cخواهم")] == [
        "שָׁלוֹם",
        ",",
        "नमस्ते",
        "!",
        "👨\u200d👩\u200d👧",
        "❤️",
        "می\u200cخواهم",
    ]
    assert tokenize("a🙂b") == [(0, 1, "a"), (1, 2, "🙂"), (2, 3, "b")]  # code points


def test_spans_from_tokens_bio_iob1_bioes_and_offsets_in_code_points():
    text = "🙂 Ann Lee met\n東京 Bob"
    regions, problems = spans_from_tokens(
        text,
        [
            ("🙂", "O"),
            ("Ann", "B-PER"),
            ("Lee", "I-PER"),
            ("met", "O"),
            ("東京", "I-LOC"),
            ("Bob", "S-PER"),
        ],
    )
    assert problems == []
    assert regions == [
        {"type": "labels", "value": {"start": 2, "end": 9, "text": "Ann Lee", "labels": ["PER"]}},
        {"type": "labels", "value": {"start": 14, "end": 16, "text": "東京", "labels": ["LOC"]}},
        {"type": "labels", "value": {"start": 17, "end": 20, "text": "Bob", "labels": ["PER"]}},
    ]
    # B after B: two spans; I of another label: a new span; E closes.
    regions, _ = spans_from_tokens(
        "a b c d", [("a", "B-X"), ("b", "B-X"), ("c", "I-Y"), ("d", "E-Y")]
    )
    assert [(r["value"]["text"], r["value"]["labels"]) for r in regions] == [
        ("a", ["X"]),
        ("b", ["X"]),
        ("c d", ["Y"]),
    ]
    # Invisible format characters between tokens are skipped like spaces.
    regions, problems = spans_from_tokens("\ufeffAnn\u200bLee", [("Ann", "B-P"), ("Lee", "I-P")])
    assert problems == [] and regions[0]["value"]["text"] == "Ann\u200bLee"


def test_spans_from_tokens_reports_a_missing_token_and_bad_tags():
    _, problems = spans_from_tokens("one two", [("one", "O"), ("three", "B-X")])
    assert problems == [
        (
            "token",
            "token 'three' (token 1) not found in the item's text after offset 3",
        )
    ]
    _, problems = spans_from_tokens("one two", [("one", "PER"), ("two", "B-")])
    assert [field for field, _ in problems] == ["tag", "tag"]
    assert "tag 'PER' of token 0 ('one') is not O, B-<label> or I-<label>" in problems[0][1]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def test_conll_import_reads_documents_and_reports_problems(tmp_path):
    path = write(
        tmp_path,
        "in.conll",
        "\ufeff-DOCSTART- -X- -X- O\n\n# id = a.txt\n# text = EU rejects\nEU NNP B-NP B-ORG\r\n"
        "rejects VBZ B-VP O\n\nשלום\tB-מקום\n"
        "-DOCSTART- -X- -X- O\n\nPeter B-PER\n\n"  # no id line
        "# id = b.txt\nx X\ny\n"  # bad tag; one column
        "# id = empty.txt\n\n",
    )
    records = list(IMPORT.read(path))
    assert [(r.row, r.key) for r in records] == [
        (1, "a.txt"),
        (9, ""),
        (13, "b.txt"),
        (16, "empty.txt"),
    ]
    first = records[0]
    assert first.problems == [] and first.regions == []
    assert first.tokens == [("EU", "B-ORG"), ("rejects", "O"), ("שלום", "B-מקום")]
    assert [(p.row, p.field) for p in records[1].problems] == [(9, "id")]
    assert "no '# id = <external_id>' line" in records[1].problems[0].reason
    assert [(p.row, p.field) for p in records[2].problems] == [(14, "tag"), (15, "line")]
    assert "tag 'X' of token 'x'" in records[2].problems[0].reason
    assert "has one column" in records[2].problems[1].reason
    assert records[3].tokens == [] and records[3].problems == []


def test_conll_import_reads_a_zip_and_undecodable_lines(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train.conll", "# id = a.txt\nA B-X\n")
        zf.writestr("val.conll", b"# id = b.txt\n\xff\xfe O\nok O\n")
        zf.writestr("labelvault.lock.json", "{}")
    path = tmp_path / "export.zip"
    path.write_bytes(buffer.getvalue())
    records = list(IMPORT.read(str(path)))
    assert [(r.row, r.key, r.tokens) for r in records] == [
        ("train.conll:1", "a.txt", [("A", "B-X")]),
        ("val.conll:1", "b.txt", [("ok", "O")]),
    ]
    assert [(p.row, p.field) for p in records[1].problems] == [("val.conll:2", "line")]


def test_conll_export_imports_back_to_the_same_spans(ops, tmp_path):
    """Without the label-import service: the exported tokens give back the spans whose
    boundaries are token boundaries, and the token-widened one."""
    version = news_version(ops)
    files = zip_files(export_bytes(version, "conll"))
    (tmp_path / "x.conll").write_bytes(files["train.conll"] + files["val.conll"])
    records = {r.key: r for r in IMPORT.read(str(tmp_path / "x.conll"))}
    regions, problems = spans_from_tokens(NEWS, records["news/a.txt"].tokens)
    assert problems == []
    assert regions == [
        span(NEWS, "EU", "ORG"),
        span(NEWS, "German", "MISC"),
        span(NEWS, "Peter Blackburn", "PER"),
    ]
    regions, _ = spans_from_tokens(EMOJI, records["emoji.txt"].tokens)
    assert regions == [span(EMOJI, "Zoë", "PER"), span(EMOJI, "東京", "LOC")]
    regions, _ = spans_from_tokens(HEBREW, records["he.txt"].tokens)
    assert regions == [span(HEBREW, "מירושלים", "מקום")]
    assert records["blank.txt"].tokens == []


NER_SCHEMA = {
    "type": "ner",
    "allow_empty": True,  # all-O documents import as "nothing here"
    "labels": [{"name": n} for n in ("ORG", "MISC", "PER", "LOC", "מקום")],
}


@pytest.mark.parametrize("options", [{}, {"splits": ["train"], "classes": ["PER", "LOC"]}])
def test_conll_round_trip_gives_the_same_files(ops, options):
    version = news_version(ops, unlabelled=True)
    first, second = round_trip(version, "conll", schema=NER_SCHEMA, **options)
    assert without_lock(zip_files(first)) == without_lock(zip_files(second))
    assert "B-PER" in zip_files(second)["train.conll"].decode()
    lock = json.loads(zip_files(second)["labelvault.lock.json"])
    assert lock["version"] != version.pk
    # The unlabelled item stayed unlabelled; the re-imported Hebrew span covers the whole
    # token, so no boundary falls inside one now.
    assert lock["counts"]["items"] - lock["counts"]["labelled"] == 1
    assert lock["counts"]["skipped"].get("unlabelled item") == 1
    assert "span boundary inside a token" not in lock["counts"]["skipped"]


def test_conll_import_problems_through_the_label_import_service(ops):
    version = news_version(ops)
    data = (
        "-DOCSTART- -X- -X- O\n\n# id = news/a.txt\nEU -X- _ B-ORG\nrejects -X- _ O\n"
        "Germany -X- _ B-LOC\n\n"  # the text says German
        "-DOCSTART- -X- -X- O\n\n# id = emoji.txt\nZoë -X- _ PER\n\n"
        "-DOCSTART- -X- -X- O\n\n👍🏽 -X- _ O\n\n"
    ).encode()
    label_import = label_file_import(version, data, "conll", schema=NER_SCHEMA, suffix=".conll")
    problems = problems_of(label_import)
    assert (
        "1",
        "token",
        "token 'Germany' (token 2) not found in the item's text after offset 10",
    ) in [(str(row), field, reason) for row, field, reason in problems]
    assert [field for _, field, _ in problems] == ["token", "tag", "id"]


def test_conll_span_across_a_line_break_continues_in_the_next_sentence(ops, tmp_path):
    text = "He said:\r\nBank of\nAmerica, and\n\nIBM.\n"
    labels = [[span(text, "IBM", "ORG"), span(text, "Bank of\nAmerica", "ORG")]]
    version = version_of(ops, kind="text", contents=[text.encode()], labels=labels)
    files = zip_files(export_bytes(version, "conll"))
    (name,) = [name for name in files if name.endswith(".conll")]
    document = files[name].decode()
    assert document.endswith(
        "He -X- _ O\nsaid -X- _ O\n: -X- _ O\n\n"
        "Bank -X- _ B-ORG\nof -X- _ I-ORG\n\nAmerica -X- _ I-ORG\n, -X- _ O\nand -X- _ O\n\n"
        "IBM -X- _ B-ORG\n. -X- _ O\n\n"
    )
    (record,) = IMPORT.read(write(tmp_path, "doc.conll", document))
    regions, problems = spans_from_tokens(text, record.tokens)
    assert problems == [] and regions == [
        span(text, "Bank of\nAmerica", "ORG"),
        span(text, "IBM", "ORG"),
    ]
