"""Known-answer test of version ids: the same content gives the same id on every
database (this file runs under SQLite and PostgreSQL; both must print the value below).

The expected id is the SHA-256 of the canonical manifest of the fixed dataset built here.
It changes only if the canonical manifest format changes (datasets/manifest.py), which
would change every existing version's id: bump the format name then, on purpose."""

from __future__ import annotations

import hashlib

import pytest

from datasets.models import Asset, Dataset, Item, ItemTag, Version
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot

pytestmark = pytest.mark.django_db

EXPECTED_ID = "9986b2acc411112a4b6d6cc57397854ec9ee2736c192cf18db1d091049727031"


def test_a_fixed_dataset_has_the_same_version_id_everywhere(ops):
    dataset = Dataset.objects.create(pk=9001, name="known answer", kind="image", created_by=ops)
    for n, (split, meta) in enumerate(
        [
            ("train", {"camera": "Ünïcode ☃", "exposure": 0.125}),
            ("", {"n": [1, 2, {"b": None}]}),
            ("test", {}),
        ]
    ):
        sha = hashlib.sha256(f"known answer {n}".encode()).hexdigest()
        Asset.objects.create(sha256=sha, size=100 + n, media_type="image/png", width=64, height=48)
        item = Item.objects.create(
            pk=90010 + n,
            dataset=dataset,
            asset_id=sha,
            external_id=f"img-{n}.png",
            metadata=meta,
            split=split,
        )
        ItemTag.objects.create(item=item, dataset=dataset, tag=f"tag{n % 2}")
        if n < 2:
            label_publish(
                item=item,
                value=[
                    {
                        "id": f"r{n}",
                        "type": "rectanglelabels",
                        "value": {
                            "x": 1.5,
                            "y": 2,
                            "width": 10,
                            "height": 8,
                            "rectanglelabels": ["car"],
                        },
                        "attributes": {"occluded": n == 1},
                    }
                ],
                schema_hash="b" * 64,
                source="project:7",
                provenance={"annotation_revisions": [n + 1], "annotators": ["anna"]},
            )
    version, _ = version_snapshot(
        dataset=dataset,
        request=SnapshotRequest(
            code_commit="0123456789abcdef0123456789abcdef01234567",
            code_repo="https://github.com/o/r",
            message="x",
        ),
        created_by_id=ops.pk,
    )
    assert version.pk == EXPECTED_ID
    assert Version.objects.get().item_count == 3
