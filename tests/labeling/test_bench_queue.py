"""Smoke test of `manage.py bench queue`: tiny sizes, checks the command and its JSON.

Not a timed test: benchmarks are never judged in the test suite (ARCHITECTURE.md). It
does check the two counts the benchmark exists for: no slot leased twice at once, no
submit the client saw succeed missing from the database.
"""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from labeling.models import Project

DATABASE = "lv_bench_queue_smoke"
KEYS = {
    "bench": str,
    "tasks": int,
    "annotators": int,
    "lease_p50_ms": float,
    "lease_p99_ms": float,
    "submit_p50_ms": float,
    "submit_p99_ms": float,
    "max_submits_per_s": float,
    "double_leases": int,
    "lost_submits": int,
    "errors": dict,
    "saturation_errors": dict,
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


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the bench switches databases: no open transaction
def test_bench_queue_runs_annotators_and_counts_no_double_lease_and_no_lost_submit() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("bench queue needs PostgreSQL (DATABASE_URL=postgres://...)")
    in_use = connection.settings_dict["NAME"]
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench",
        "queue",
        *("--tasks", "200", "--annotators", "3", "--seconds", "2", "--think", "0.05"),
        *("--saturation-seconds", "2", "--database", DATABASE, "--json"),
        stdout=out,
        stderr=err,
    )

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    result = json.loads(lines[0])
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result)
    assert (result["bench"], result["tasks"], result["annotators"]) == ("queue", 200, 3)
    assert result["double_leases"] == 0 and result["lost_submits"] == 0, result
    assert result["submits"] > 0 and result["leases"] >= result["submits"]
    assert 0 < result["lease_p50_ms"] <= result["lease_p99_ms"]
    assert 0 < result["submit_p50_ms"] <= result["submit_p99_ms"]
    assert result["max_submits_per_s"] > 0
    # Every submit of a leased task is valid, so none may fail. Leases may answer 204
    # (200 tasks run out); their other failures are the server's, reported in "errors"
    # by the bench and judged by the queue's own tests, not by this smoke test.
    for label in [*result["errors"], *result["saturation_errors"]]:
        assert not label.startswith("submit "), result
    assert "checks: 0 double leases, 0 lost submits" in err.getvalue()
    # The bench's own database is gone and this one was never written to.
    assert connection.settings_dict["NAME"] == in_use
    assert not _database_exists(DATABASE)
    assert not Project.objects.exists()


def test_bench_queue_refuses_sqlite_with_a_clear_message(monkeypatch) -> None:
    # Run on every database: on PostgreSQL the connection is made to look like SQLite's.
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(CommandError, match="needs PostgreSQL"):
        call_command("bench", "queue", "--tasks", "10", "--annotators", "1", "--seconds", "1")
