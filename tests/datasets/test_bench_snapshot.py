"""Smoke test of `manage.py bench snapshot`: tiny sizes, checks the command and its JSON.

Not a timed test: benchmarks are never judged in the test suite (ARCHITECTURE.md).
"""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from datasets.models import Dataset, Version

DATABASE = "lv_bench_snapshot_smoke"
KEYS = {
    "bench": str,
    "items": int,
    "snapshot_s": float,
    "resnapshot_s": float,
    "same_id": bool,
    "diff_s": float,
    "peak_rss_mb": float,
    "pull_assets_per_s": float,
    "pull_floor_assets_per_s": float,
    "pull_ratio_to_floor": float,
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


@pytest.mark.django_db(transaction=True)  # the bench switches databases: no open transaction
def test_bench_snapshot_prints_one_json_line_and_drops_its_database() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("bench snapshot needs PostgreSQL (DATABASE_URL=postgres://...)")
    in_use = connection.settings_dict["NAME"]
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench",
        "snapshot",
        *("--items", "300", "--pull-items", "50", "--pull-workers", "4"),
        *("--database", DATABASE, "--json"),
        stdout=out,
        stderr=err,
    )

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    result = json.loads(lines[0])
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result)
    assert (result["bench"], result["items"]) == ("snapshot", 300)
    assert result["same_id"] is True
    assert result["relabelled"] == 3  # 1 % of 300: items 100, 200, 300
    assert result["snapshot_s"] > 0 and result["diff_s"] > 0
    assert result["pull_assets_per_s"] > 0 and result["pull_floor_assets_per_s"] > 0
    assert result["pull_ratio_to_floor"] == pytest.approx(
        result["pull_assets_per_s"] / result["pull_floor_assets_per_s"], rel=0.01
    )
    assert result["peak_rss_mb"] > 10
    assert "pulled 50 assets" in err.getvalue()  # progress goes to stderr
    # The bench's own database is gone and this one was never written to.
    assert connection.settings_dict["NAME"] == in_use
    assert not _database_exists(DATABASE)
    assert not Dataset.objects.exists() and not Version.objects.exists()


def test_bench_snapshot_refuses_sqlite_with_a_clear_message(monkeypatch) -> None:
    # Run on every database: on PostgreSQL the connection is made to look like SQLite's.
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("bench", "snapshot", "--items", "300")
