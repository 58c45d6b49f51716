"""spaCy v3 JSON: entities as code point offsets (emoji, right-to-left text), cats over
every class, unlabelled docs, splits and classes, overlaps left out, determinism."""

from __future__ import annotations

import json

import pytest

from tests.datasets.formats.conftest import export_bytes, version_of, zip_files

pytestmark = pytest.mark.django_db

EMOJI = "👍🏽 Zoë flew to 東京 🇯🇵 today"
HEBREW = "דוד גר בירושלים"


def span(text, part, name):
    start = text.index(part)
    end = start + len(part)
    return {
        "type": "labels",
        "value": {"start": start, "end": end, "text": part, "labels": [name]},
    }


def choice(*names):
    return {"type": "choices", "value": {"choices": list(names)}}


def test_spacy_ner_export_offsets_are_code_points(ops):
    texts = [EMOJI, HEBREW, "nothing here", "not labelled", "overlap here"]
    labels = [
        [span(EMOJI, "東京", "LOC"), span(EMOJI, "Zoë", "PER")],
        [span(HEBREW, "ירושלים", "מקום"), span(HEBREW, "דוד", "אדם")],
        [],
        None,
        [span("overlap here", "overlap here", "X"), span("overlap here", "here", "X")],
    ]
    version = version_of(
        ops,
        kind="text",
        contents=[t.encode() for t in texts],
        labels=labels,
        external_ids=["e.txt", "he.txt", "n.txt", "u.txt", "o.txt"],
        splits=["train", "val", "train", "train", "test"],
    )
    data = export_bytes(version, "spacy")
    assert export_bytes(version, "spacy") == data
    files = zip_files(data)
    assert list(files) == ["train.json", "val.json", "test.json", "labelvault.lock.json"]
    train = json.loads(files["train.json"])
    assert [doc["external_id"] for doc in train] == ["e.txt", "n.txt", "u.txt"]
    first = train[0]
    assert list(first) == ["id", "external_id", "text", "entities"]
    assert first["text"] == EMOJI
    # Sorted by start; offsets index the str (code points), not UTF-16 units.
    assert first["entities"] == [[3, 6, "PER"], [15, 17, "LOC"]]
    assert [first["text"][s:e] for s, e, _ in first["entities"]] == ["Zoë", "東京"]
    assert len(EMOJI[:15].encode("utf-16-le")) // 2 == 17  # what a browser would count
    assert train[1]["entities"] == [] and "cats" not in train[1]
    assert "entities" not in train[2] and "cats" not in train[2]  # unlabelled
    (hebrew,) = json.loads(files["val.json"])
    assert [hebrew["text"][s:e] for s, e, _ in hebrew["entities"]] == ["דוד", "ירושלים"]
    assert [label for _, _, label in hebrew["entities"]] == ["אדם", "מקום"]
    (overlap,) = json.loads(files["test.json"])
    assert overlap["entities"] == [[0, 12, "X"]]
    assert "דוד" in files["val.json"].decode("utf-8")  # UTF-8, not \\u escapes
    assert files["val.json"].decode().startswith("[\n{") and files["val.json"].endswith(b"}\n]\n")
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"] == {
        "items": 5,
        "labelled": 4,
        "regions": 6,
        "skipped": {"overlapping span": 1},
    }


def test_spacy_textcat_export_lists_every_class(ops):
    texts = ["great film", "awful", "meh", "unknown"]
    labels = [[choice("pos")], [choice("neg")], [], None]
    version = version_of(
        ops,
        kind="text",
        contents=[t.encode() for t in texts],
        labels=labels,
        splits=["train", "train", "val", "test"],
    )
    files = zip_files(export_bytes(version, "spacy"))
    train = json.loads(files["train.json"])
    assert [doc["cats"] for doc in train] == [
        {"neg": 0.0, "pos": 1.0},
        {"neg": 1.0, "pos": 0.0},
    ]
    assert "entities" not in train[0]
    assert json.loads(files["val.json"])[0]["cats"] == {"neg": 0.0, "pos": 0.0}
    assert list(json.loads(files["test.json"])[0]) == ["id", "external_id", "text"]


def test_spacy_export_filters_splits_and_classes(ops):
    text = "Ann met Bob in Rome"
    labels = [[span(text, "Ann", "PER"), span(text, "Rome", "LOC")], [choice("b")]]
    version = version_of(
        ops,
        kind="text",
        contents=[text.encode(), b"second doc"],
        labels=labels,
        splits=["train", "val"],
    )
    files = zip_files(export_bytes(version, "spacy", splits=["train"], classes=["LOC", "PER"]))
    assert list(files) == ["train.json", "labelvault.lock.json"]
    (doc,) = json.loads(files["train.json"])
    assert doc["entities"] == [[0, 3, "PER"], [15, 19, "LOC"]]
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["classes"] == ["LOC", "PER"] and lock["counts"]["items"] == 1


def test_spacy_empty_document(ops):
    version = version_of(
        ops,
        kind="text",
        contents=[b" \n\t\n", "x 🙂".encode()],
        labels=[[], None],
        splits=["val", "val"],
    )
    files = zip_files(export_bytes(version, "spacy"))
    assert list(files) == ["val.json", "labelvault.lock.json"]
    blank, unlabelled = json.loads(files["val.json"])
    assert blank["text"] == " \n\t\n" and blank["entities"] == []
    assert "entities" not in unlabelled and unlabelled["text"] == "x 🙂"
