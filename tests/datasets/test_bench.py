"""Smoke test of `manage.py bench ingest`: tiny sizes, checks the command and its JSON.

Not a timed test: benchmarks are never judged in the test suite (ARCHITECTURE.md).
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from datasets.models import Dataset, Import
from workers.models import Job

KEYS = {
    "bench": str,
    "count": int,
    "seconds": float,
    "assets_per_s": float,
    "floor_assets_per_s": float,
    "ratio_to_floor": float,
    "peak_rss_mb": float,
    "reingest_seconds": float,
}


@pytest.mark.django_db(transaction=True)  # its workers must see committed rows
def test_bench_ingest_prints_one_json_line_and_leaves_nothing(celery_embedded_broker) -> None:
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench",
        "ingest",
        "--count",
        "20",
        "--size-kb",
        "2",
        "--workers",
        "1",
        "--json",
        stdout=out,
        stderr=err,
    )

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    result = json.loads(lines[0])
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result)
    assert result["bench"] == "ingest"
    assert result["count"] == 20
    assert result["seconds"] > 0 and result["reingest_seconds"] > 0
    assert result["assets_per_s"] == pytest.approx(20 / result["seconds"], rel=0.01)
    assert result["floor_assets_per_s"] > 0 and result["ratio_to_floor"] > 0
    assert result["peak_rss_mb"] > 10
    assert "import 2" in err.getvalue()  # progress goes to stderr, not into the JSON
    assert not Dataset.objects.exists() and not Import.objects.exists()
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bench_urls_imports_from_its_own_server_and_times_the_pages(celery_embedded_broker) -> None:
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench", "urls", "--count", "30", "--workers", "1", "--json", stdout=out, stderr=err
    )

    result = json.loads(out.getvalue())
    assert (result["bench"], result["count"], result["created"]) == ("urls", 30, 30)
    assert result["rejected"] == 0 and result["page_size"] == 30
    for key in ("api_first_page_ms", "api_last_page_ms", "ui_first_page_ms", "ui_last_page_ms"):
        assert result[key] > 0, key
    assert result["urls_per_s"] == pytest.approx(30 / result["seconds"], rel=0.01)
    assert "item list: API first/last" in err.getvalue()
    assert not Dataset.objects.exists() and not Import.objects.exists()
    assert not Job.objects.exists()


def test_bench_unknown_name_lists_the_benchmarks() -> None:
    with pytest.raises(
        CommandError, match="there are: export, ingest, quality, queue, snapshot, urls"
    ):
        call_command("bench", "nope")
