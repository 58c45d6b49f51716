"""Parquet for Hugging Face datasets: read back by `datasets.load_dataset` itself (in its
own venv: its package is named `datasets` like our app) and by pyarrow; ClassLabel
names, splits, objects, spans, embedded images, determinism, splits and classes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datasets.formats import hf_parquet
from tests.datasets.formats.conftest import URL_BASE, export_bytes, version_of, zip_files

pytestmark = pytest.mark.django_db

HF_PYTHON = Path(__file__).parents[3] / ".venv-hf" / "bin" / "python"
LOAD = """
import json, sys
from datasets import load_dataset
dd = load_dataset("parquet", data_dir=sys.argv[1])
out = {}
for split, ds in dd.items():
    rows = []
    for row in ds:
        if row.get("image") is not None:
            row["image"] = [row["image"].format, *row["image"].size]
        rows.append(row)
    out[split] = {"features": ds.features.to_dict(), "rows": rows}
# The folder as a Hub repository: README.md's `configs` name the splits.
out["_repository_splits"] = sorted(load_dataset(sys.argv[2]))
print(json.dumps(out, ensure_ascii=False))
"""


def load_dataset(data: bytes, tmp_path: Path) -> dict:
    """`load_dataset("parquet", data_dir=<unzipped>/data)` in the HF venv, as JSON."""
    root = tmp_path / "export"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(root)
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not key.startswith(("HF_", "DJANGO"))
    }
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    done = subprocess.run(
        [str(HF_PYTHON), "-c", LOAD, str(root / "data"), str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def class_label(names):
    return {"names": names, "_type": "ClassLabel"}


def box(label, x=1, y=2, w=3, h=4):
    return {
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]},
    }


def choice(*names):
    return {"type": "choices", "value": {"choices": list(names)}}


def test_hf_parquet_image_classification_loads_with_classlabel(ops, tmp_path):
    labels = [[choice("dog")], [choice("cat")], None, [], [choice("🐱 חתול")]]
    version = version_of(ops, labels=labels, splits=["train", "val", "train", "test", "val"])
    data = export_bytes(version, "parquet")
    assert export_bytes(version, "parquet") == data  # deterministic
    files = zip_files(data)
    assert list(files) == [
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
        "labelvault.lock.json",
    ]
    assert "path: data/validation-*" in files["README.md"].decode()
    names = ["cat", "dog", "🐱 חתול"]
    loaded = load_dataset(data, tmp_path)
    assert loaded.pop("_repository_splits") == ["test", "train", "validation"]
    assert sorted(loaded) == ["test", "train", "validation"]
    train = loaded["train"]
    assert train["features"]["label"] == class_label(names)
    assert train["features"]["image_url"] == {"dtype": "string", "_type": "Value"}
    assert [row["label"] for row in train["rows"]] == [1, -1]  # dog, unlabelled
    assert [row["label"] for row in loaded["validation"]["rows"]] == [0, 2]
    assert [row["label"] for row in loaded["test"]["rows"]] == [-1]  # nothing here
    first = train["rows"][0]
    assert first["external_id"] == "image-000.png" and (first["width"], first["height"]) == (
        64,
        48,
    )
    assert first["image_url"] == (
        f"{URL_BASE}/api/v1/versions/{version.pk}/assets/{first['sha256']}"
    )
    assert first["tags"] == [] and json.loads(first["metadata"]) == {}
    # The same file read by pyarrow here.
    parquet = pq.ParquetFile(io.BytesIO(files["data/validation-00000-of-00001.parquet"]))
    metadata = parquet.schema_arrow.metadata
    features = json.loads(metadata[b"huggingface"])["info"]["features"]
    assert features["label"] == class_label(names)
    assert json.loads(parquet.metadata.metadata[b"labelvault.lock"])["version"] == version.pk
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    table = parquet.read()
    assert table.column("label").to_pylist() == [0, 2]
    assert table.column("id").type == "int64"


def test_hf_parquet_objects_and_embedded_images(ops, tmp_path):
    polygon = {
        "type": "polygonlabels",
        "value": {"points": [[0, 0], [4, 0], [4, 2]], "polygonlabels": ["road"]},
    }
    point = {"type": "keypointlabels", "value": {"x": 5.5, "y": 6, "keypointlabels": ["nose"]}}
    labels = [[box("car", 1, 2, 3, 4), polygon, point], None, []]
    version = version_of(ops, labels=labels, splits=["train", "train", "train"])
    data = export_bytes(version, "parquet", images=True)
    loaded = load_dataset(data, tmp_path)
    assert list(loaded) == ["train", "_repository_splits"]
    features = loaded["train"]["features"]
    assert features["image"] == {"_type": "Image"}
    names = ["car", "nose", "road"]
    # Sequence of a dict: a dict of lists (the cppe-5 layout).
    assert features["objects"]["category"] == {
        "feature": class_label(names),
        "_type": "List",
    }
    rows = loaded["train"]["rows"]
    assert rows[0]["image"] == ["PNG", 64, 48]
    assert rows[0]["objects"] == {
        "bbox": [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 4.0, 2.0], [5.5, 6.0, 0.0, 0.0]],
        "category": [0, 2, 1],
        "area": [12.0, 4.0, 0.0],
        "polygon": [[], [0.0, 0.0, 4.0, 0.0, 4.0, 2.0], []],
    }
    assert rows[1]["objects"] is None  # unlabelled
    assert rows[2]["objects"] == {"bbox": [], "category": [], "area": [], "polygon": []}
    table = pq.read_table(io.BytesIO(zip_files(data)["data/train-00000-of-00001.parquet"]))
    image = table.column("image").to_pylist()[0]
    assert image["bytes"].startswith(b"\x89PNG") and image["path"] == "image-000.png"
    assert "image_url" not in table.column_names


def test_hf_parquet_multi_label_and_class_filter(ops, tmp_path):
    labels = [[choice("a")], [choice("a", "b", "c")], None]
    version = version_of(ops, labels=labels, splits=["train", "train", "test"])
    data = export_bytes(version, "parquet", classes=["c", "a"], splits=["train"])
    files = zip_files(data)
    assert list(files) == ["README.md", "data/train-00000-of-00001.parquet", "labelvault.lock.json"]
    loaded = load_dataset(data, tmp_path)
    train = loaded["train"]
    assert train["features"]["labels"] == {"feature": class_label(["c", "a"]), "_type": "List"}
    assert [row["labels"] for row in train["rows"]] == [[1], [1, 0]]
    lock = json.loads(files["labelvault.lock.json"])
    assert lock["counts"]["skipped"] == {"class not exported": 1}


def test_hf_parquet_ner_spans_over_unicode_text(ops, tmp_path):
    texts = ["👍🏽 Zoë flew to 東京", "דוד גר בירושלים", "no spans"]

    def span(text, part, name):
        start = text.index(part)
        return {
            "type": "labels",
            "value": {"start": start, "end": start + len(part), "text": part, "labels": [name]},
        }

    labels = [
        [span(texts[0], "東京", "LOC"), span(texts[0], "Zoë", "PER")],
        [span(texts[1], "ירושלים", "LOC")],
        None,
    ]
    version = version_of(
        ops,
        kind="text",
        contents=[t.encode() for t in texts],
        labels=labels,
        splits=["train", "val", "val"],
    )
    data = export_bytes(version, "parquet")
    loaded = load_dataset(data, tmp_path)
    train, validation = loaded["train"], loaded["validation"]
    assert train["features"]["spans"]["label"] == {
        "feature": class_label(["LOC", "PER"]),
        "_type": "List",
    }
    row = train["rows"][0]
    assert row["text"] == texts[0]
    assert row["spans"] == {"start": [15, 3], "end": [17, 6], "label": [0, 1]}
    assert [
        row["text"][s:e] for s, e in zip(row["spans"]["start"], row["spans"]["end"], strict=True)
    ] == [
        "東京",
        "Zoë",
    ]
    assert validation["rows"][0]["spans"] == {"start": [8], "end": [15], "label": [0]}
    assert validation["rows"][1]["spans"] is None and "image_url" not in validation["rows"][1]


def test_hf_parquet_row_groups_and_empty_texts(ops, monkeypatch):
    monkeypatch.setattr(hf_parquet, "ROWS_PER_GROUP", 2)
    texts = [" \n", "a", "b", "c", "d"]
    labels = [[], None, None, None, None]
    version = version_of(
        ops, kind="text", contents=[t.encode() for t in texts], labels=labels, splits=["test"] * 5
    )
    data = export_bytes(version, "parquet")
    assert export_bytes(version, "parquet") == data
    parquet = pq.ParquetFile(io.BytesIO(zip_files(data)["data/test-00000-of-00001.parquet"]))
    assert parquet.num_row_groups == 3
    table = parquet.read()
    assert table.column("text").to_pylist() == texts
    # No non-empty label: no label column (the task is unknown).
    assert table.column_names == [
        "id",
        "external_id",
        "file_name",
        "sha256",
        "text",
        "tags",
        "metadata",
    ]
