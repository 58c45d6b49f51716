"""Dataset create/update (permissions, JSON Schema checks) and the item counters."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from datasets.errors import InvalidDataset
from datasets.models import Dataset
from datasets.services.datasets import (
    dataset_counters_add,
    dataset_counters_recount,
    dataset_create,
    dataset_update,
)
from tests.datasets.builders import make_dataset, make_items
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"camera": {"type": "string"}},
    "required": ["camera"],
}


def test_ops_create_a_dataset_with_a_schema(ops):
    dataset = dataset_create(
        created_by=ops, name="  Street scenes ", kind="image", metadata_schema=SCHEMA
    )
    assert (dataset.name, dataset.kind, dataset.created_by) == ("Street scenes", "image", ops)
    assert dataset.metadata_schema == SCHEMA
    assert (dataset.item_count, dataset.total_bytes) == (0, 0)


def test_superusers_may_create_others_may_not():
    assert dataset_create(created_by=UserFactory(is_superuser=True), name="x", kind="text")
    with pytest.raises(PermissionDenied):
        dataset_create(created_by=UserFactory(roles=["annotator"]), name="x", kind="text")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "   "}, "name", "needs a name"),
        ({"name": "n" * 201}, "name", "at most 200"),
        ({"kind": "video"}, "kind", "image or text"),
        ({"metadata_schema": ["not", "an", "object"]}, "metadata_schema", "JSON object"),
        (
            {"metadata_schema": {"type": "strin"}},
            "metadata_schema",
            r"Not a valid JSON Schema \(at type\): 'strin' is not a type; use one of object, array",
        ),
        ({"metadata_schema": {"required": "camera"}}, "metadata_schema", "is not of type 'array'"),
        (
            {"metadata_schema": {"properties": {"a": {"minLength": -1}}}},
            "metadata_schema",
            "at properties/a/minLength",
        ),
        ({"metadata_schema": {"type": "array"}}, "metadata_schema", 'must be "object"'),
    ],
)
def test_bad_input_names_the_field(ops, fields, field, message):
    with pytest.raises(InvalidDataset, match=message) as caught:
        dataset_create(created_by=ops, **{"name": "ok", "kind": "image", **fields})
    assert caught.value.field == field
    assert not Dataset.objects.exists()


def test_a_name_is_unique_per_owner(ops):
    dataset_create(created_by=ops, name="Cats", kind="image")
    with pytest.raises(InvalidDataset, match="already have a dataset named 'Cats'") as caught:
        dataset_create(created_by=ops, name="Cats", kind="text")
    assert caught.value.field == "name"
    assert dataset_create(created_by=UserFactory(roles=["ops"]), name="Cats", kind="image")


def test_update_changes_only_given_fields_and_checks_them(ops):
    dataset = dataset_create(created_by=ops, name="A", kind="image", description="old")
    dataset_update(dataset=dataset, updated_by=ops, description="new", metadata_schema=SCHEMA)
    dataset.refresh_from_db()
    assert (dataset.name, dataset.description, dataset.metadata_schema) == ("A", "new", SCHEMA)
    dataset_update(dataset=dataset, updated_by=ops, metadata_schema=None)
    dataset.refresh_from_db()
    assert dataset.metadata_schema is None

    dataset_create(created_by=ops, name="B", kind="image")
    with pytest.raises(InvalidDataset) as caught:
        dataset_update(dataset=dataset, updated_by=ops, name="B")
    assert caught.value.field == "name"
    with pytest.raises(PermissionDenied):
        dataset_update(dataset=dataset, updated_by=UserFactory(), name="C")


def test_counters_add_and_recount(ops):
    dataset = make_dataset(ops)
    make_items(dataset, 4, size=2500)
    dataset_counters_add(dataset_id=dataset.pk, items=3, size=7000)
    dataset_counters_add(dataset_id=dataset.pk, items=-5, size=-9000)  # never below zero
    dataset.refresh_from_db()
    assert (dataset.item_count, dataset.total_bytes) == (0, 0)

    assert dataset_counters_recount(dataset_id=dataset.pk) == (4, 10_000)
    dataset.refresh_from_db()
    assert (dataset.item_count, dataset.total_bytes) == (4, 10_000)
    assert dataset_counters_recount(dataset_id=make_dataset(ops).pk) == (0, 0)
