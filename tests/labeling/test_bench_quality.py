"""Smoke test of `manage.py bench quality`: tiny sizes, checks the command and its JSON.

Not a timed test: benchmarks are never judged in the test suite (ARCHITECTURE.md). It
checks that the consensus beats chance on data with known annotator accuracies and that
the bench's own database is gone afterwards.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from labeling.models import Project
from tests.labeling.test_bench_queue import _database_exists

DATABASE = "lv_bench_quality_smoke"
KEYS = {
    "bench": str,
    "kind": str,
    "items": int,
    "annotations": int,
    "seconds": float,
    "load_seconds": float,
    "peak_rss_mb": float,
    "alpha": float,
    "fleiss_kappa": float,
    "mv_accuracy": float,
    "ds_accuracy": float,
    "ds_accuracy_error": float,
    "ds_iterations": int,
    "review_count": int,
}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the bench switches databases: no open transaction
def test_bench_quality_scores_known_annotators_and_drops_its_database() -> None:
    in_use = connection.settings_dict["NAME"]
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "bench",
        "quality",
        *("--items", "300", "--annotations-per-item", "3", "--database", DATABASE, "--json"),
        stdout=out,
        stderr=err,
    )

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    result = json.loads(lines[0])
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result)
    assert (result["bench"], result["items"], result["annotations"]) == ("quality", 300, 900)
    assert result["seconds"] > 0 and result["load_seconds"] > 0 and result["peak_rss_mb"] > 0
    # Annotators are right 55-95 % of the time over 5 classes: far better than chance.
    assert 0.2 < result["alpha"] < 0.9
    assert result["mv_accuracy"] > 0.7 and result["ds_accuracy"] > 0.7
    assert 0 <= result["review_count"] <= 300
    assert "project_quality:" in err.getvalue()
    assert connection.settings_dict["NAME"] == in_use
    assert not _database_exists(DATABASE)
    assert not Project.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_bench_quality_boxes_fuse_to_the_true_boxes() -> None:
    out = io.StringIO()

    call_command(
        "bench",
        "quality",
        *("--items", "200", "--kind", "bbox", "--database", DATABASE, "--json"),
        stdout=out,
        stderr=io.StringIO(),
    )

    result = json.loads(out.getvalue())
    assert (result["kind"], result["items"], result["annotations"]) == ("bbox", 200, 600)
    # Annotators miss or mislabel boxes, so they agree only partly; the majority of
    # three is right far more often than any pair agrees.
    assert 0.3 < result["f1"] < 0.95
    assert result["consensus_f1"] > result["f1"]
    assert result["consensus_boxes"] > 0 and 0 <= result["review_count"] <= 200
    assert not _database_exists(DATABASE)


def test_bench_quality_refuses_bad_sizes() -> None:
    with pytest.raises(CommandError, match="annotations-per-item"):
        call_command("bench", "quality", "--items", "10", "--annotations-per-item", "1")
