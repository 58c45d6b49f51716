"""items_add: the classification of every row, and races between concurrent writers."""

from __future__ import annotations

import hashlib
import threading

import pytest
from django.db import connection, transaction

from datasets.models import Asset, Dataset, Item, ItemTag
from datasets.services.items import ItemRow, items_add
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@pytest.fixture
def dataset():
    for n in range(10):
        Asset.objects.get_or_create(sha256=sha(n), defaults={"size": 1, "media_type": "image/png"})
    return Dataset.objects.create(name="cars", kind="image", created_by=UserFactory())


def add(dataset, *rows):
    with transaction.atomic():
        return items_add(dataset=dataset, rows=list(rows))


def test_new_rows_are_created_with_tags_metadata_and_split(dataset):
    out = add(
        dataset,
        ItemRow("a", "a.png", sha(1), {"cam": "front"}, ("night", "rain"), "train"),
        ItemRow("b", "b.png", sha(2)),
    )
    assert [o.status for o in out] == ["created", "created"]
    item = Item.objects.get(pk=out[0].item_id)
    assert (item.external_id, item.asset_id, item.metadata, item.split) == (
        "a.png",
        sha(1),
        {"cam": "front"},
        "train",
    )
    assert sorted(ItemTag.objects.filter(item=item).values_list("tag", flat=True)) == [
        "night",
        "rain",
    ]


def test_rerun_is_unchanged_and_adds_nothing(dataset):
    first = add(dataset, ItemRow(1, "a.png", sha(1)), ItemRow(2, "b.png", sha(2)))
    again = add(dataset, ItemRow(1, "a.png", sha(1)), ItemRow(2, "b.png", sha(2)))
    assert [o.status for o in again] == ["unchanged", "unchanged"]
    assert [o.item_id for o in again] == [o.item_id for o in first]
    assert Item.objects.filter(dataset=dataset).count() == 2


def test_same_content_under_another_name_is_a_duplicate(dataset):
    add(dataset, ItemRow(1, "a.png", sha(1)))
    (out,) = add(dataset, ItemRow(2, "copy-of-a.png", sha(1)))
    assert out.status == "duplicate"
    assert out.reason == "same content as item 'a.png'"
    assert Item.objects.filter(dataset=dataset).count() == 1


def test_same_name_with_other_content_is_rejected(dataset):
    add(dataset, ItemRow(1, "a.png", sha(1)))
    (out,) = add(dataset, ItemRow(2, "a.png", sha(3)))
    assert out.status == "rejected"
    assert "external_id 'a.png' already names different content" in out.reason
    assert Item.objects.get(dataset=dataset).asset_id == sha(1)


def test_duplicates_within_one_batch(dataset):
    out = add(
        dataset,
        ItemRow(1, "a.png", sha(1)),
        ItemRow(2, "b.png", sha(1)),  # same content
        ItemRow(3, "a.png", sha(2)),  # same name, other content
        ItemRow(4, "a.png", sha(1)),  # exact repeat
    )
    assert [o.status for o in out] == ["created", "duplicate", "rejected", "unchanged"]
    assert Item.objects.filter(dataset=dataset).count() == 1


def test_same_content_in_another_dataset_is_fine(dataset):
    other = Dataset.objects.create(name="other", kind="image", created_by=dataset.created_by)
    add(dataset, ItemRow(1, "a.png", sha(1)))
    (out,) = add(other, ItemRow(1, "a.png", sha(1)))
    assert out.status == "created"
    assert Asset.objects.filter(sha256=sha(1)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_is_refused(dataset):
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        items_add(dataset=dataset, rows=[ItemRow(1, "a.png", sha(1))])


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_the_same_rows_create_each_item_once():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: no concurrent transactions to race")
    for n in range(10):
        Asset.objects.get_or_create(sha256=sha(n), defaults={"size": 1, "media_type": "image/png"})
    ds = Dataset.objects.create(name="race", kind="image", created_by=UserFactory())
    rows = [ItemRow(n, f"{n}.png", sha(n)) for n in range(10)]
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                results.append([o.status for o in items_add(dataset=ds, rows=rows)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Item.objects.filter(dataset=ds).count() == 10
    per_row = list(zip(*results, strict=True))
    for statuses in per_row:
        assert statuses.count("created") == 1
        assert statuses.count("unchanged") == 3
