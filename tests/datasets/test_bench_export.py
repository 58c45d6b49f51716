"""Smoke test of `manage.py bench export`: tiny sizes, checks the command and its JSON.

Not a timed test: benchmarks are never judged in the test suite (ARCHITECTURE.md).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from datasets.models import Dataset, Version

DATABASE = "lv_bench_export_smoke"
# The keys first, in this order; then the ones given for context.
HEAD = (
    "bench",
    "format",
    "annotations",
    "seconds",
    "mb_per_s",
    "peak_rss_mb",
    "floor_mb_per_s",
    "ratio_to_floor",
)
KEYS = {
    "bench": str,
    "format": str,
    "annotations": int,
    "seconds": float,
    "mb_per_s": float,
    "peak_rss_mb": float,
    "floor_mb_per_s": float,
    "ratio_to_floor": float,
    "items": int,
    "boxes_per_item": int,
    "output_bytes": int,
    "entries": int,
    "floor_seconds": float,
    "floor_output_bytes": int,
    "floor_peak_rss_mb": float,
    "rss_baseline_mb": float,
    "version": str,
}
# Entries of each format's zip for 2,000 boxes on 200 items (160 train, 20 val, 20 test).
ENTRIES = {
    "jsonl": 2,  # data.jsonl, lock
    "coco": 4,  # three instances files, lock
    "yolo": 200 + 3 + 1 + 1 + 1,  # label files, split lists, data.yaml, sources.csv, lock
}


def _database_exists(name: str) -> bool:
    db = connection.settings_dict
    params = {
        "dbname": "postgres",
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            is not None
        )


def _bench_temp_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("lv-bench-export-*")}


@pytest.mark.parametrize("fmt", ["jsonl", "coco", "yolo"])
@pytest.mark.django_db(transaction=True)  # the bench switches databases: no open transaction
def test_bench_export_prints_one_json_line_and_cleans_up(fmt: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("bench export needs PostgreSQL (DATABASE_URL=postgres://...)")
    in_use = connection.settings_dict["NAME"]
    temp_before = _bench_temp_dirs()
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench",
        "export",
        *("--annotations", "2000", "--format", fmt, "--database", DATABASE, "--json"),
        stdout=out,
        stderr=err,
    )

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    result = json.loads(lines[0])
    assert tuple(result)[: len(HEAD)] == HEAD
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result)
    assert (result["bench"], result["format"], result["annotations"]) == ("export", fmt, 2000)
    assert (result["items"], result["boxes_per_item"]) == (200, 10)  # 10 boxes an item
    assert result["entries"] == ENTRIES[fmt]
    assert result["seconds"] > 0 and result["floor_seconds"] > 0
    assert result["output_bytes"] > 1000 and result["floor_output_bytes"] > 1000
    # The floor writes the same records: sizes within a fifth of each other.
    assert 0.8 < result["floor_output_bytes"] / result["output_bytes"] < 1.25
    assert result["mb_per_s"] == pytest.approx(
        result["output_bytes"] / 2**20 / result["seconds"], rel=0.02
    )
    assert result["ratio_to_floor"] == pytest.approx(
        result["floor_seconds"] / result["seconds"], rel=0.02
    )
    # The child's own peak (Django + the export), not the bench process's inherited one.
    assert 20 < result["rss_baseline_mb"] <= result["peak_rss_mb"] < 1000
    assert "dropped database" in err.getvalue()  # progress goes to stderr
    # The bench's own database and temporary files are gone; this database was not written.
    assert connection.settings_dict["NAME"] == in_use
    assert not _database_exists(DATABASE)
    assert _bench_temp_dirs() <= temp_before
    assert not Dataset.objects.exists() and not Version.objects.exists()


def test_bench_export_refuses_bad_sizes() -> None:
    with pytest.raises(CommandError, match="--annotations at least --boxes-per-item"):
        call_command("bench", "export", "--annotations", "5", "--boxes-per-item", "10")


def test_bench_export_refuses_sqlite_with_a_clear_message(monkeypatch) -> None:
    # Run on every database: on PostgreSQL the connection is made to look like SQLite's.
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("bench", "export", "--annotations", "100")
