"""Read queries of the dataset pages: visibility, keyset pages in both directions,
filters, signed cursors and query counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from datasets.models import Dataset
from datasets.selectors import (
    ItemFilters,
    dataset_can_create,
    dataset_can_edit,
    dataset_get_for_user,
    dataset_list_page,
    dataset_visible_to,
    import_list_recent,
    import_rejected_page,
    item_get,
    item_neighbours,
    item_page,
)
from tests.datasets.builders import make_dataset, make_entries, make_import, make_items
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def ids(page):
    return [item.pk for item in page.items]


# --- visibility -------------------------------------------------------------------------


def test_ops_admins_and_superusers_see_every_dataset_others_their_own(ops, owner):
    mine = make_dataset(owner)
    theirs = make_dataset(ops)
    admin = UserFactory(roles=["admin"])
    root = UserFactory(is_superuser=True)
    stranger = UserFactory()

    assert set(dataset_visible_to(ops)) == {mine, theirs}
    assert set(dataset_visible_to(admin)) == {mine, theirs}
    assert set(dataset_visible_to(root)) == {mine, theirs}
    assert list(dataset_visible_to(owner)) == [mine]
    assert list(dataset_visible_to(stranger)) == []
    assert list(dataset_visible_to(AnonymousUser())) == []

    assert dataset_get_for_user(user=owner, dataset_id=mine.pk) == mine
    with pytest.raises(Dataset.DoesNotExist):
        dataset_get_for_user(user=owner, dataset_id=theirs.pk)


def test_only_managers_create_and_creators_or_managers_edit(ops, owner):
    mine = make_dataset(owner)
    assert dataset_can_create(ops) and not dataset_can_create(owner)
    assert not dataset_can_create(AnonymousUser())
    assert dataset_can_edit(owner, mine) and dataset_can_edit(ops, mine)
    assert not dataset_can_edit(UserFactory(), mine)
    assert not dataset_can_edit(AnonymousUser(), mine)


def test_the_group_lookup_is_made_once_per_user_object(ops, django_assert_num_queries):
    with django_assert_num_queries(1):
        dataset_can_create(ops)
        dataset_can_create(ops)
        list(dataset_visible_to(ops).none())


# --- keyset pages -----------------------------------------------------------------------


def test_pages_forward_backward_first_and_last(ops):
    dataset = make_dataset(ops)
    items = [item.pk for item in make_items(dataset, 10)]
    make_items(make_dataset(ops), 5)  # another dataset's items never show up

    first = item_page(dataset=dataset, size=3)
    assert ids(first) == items[0:3]
    assert not first.has_prev and first.has_next

    second = item_page(dataset=dataset, cursor=first.next_cursor, size=3)
    assert ids(second) == items[3:6]
    assert second.has_prev and second.has_next

    back = item_page(dataset=dataset, cursor=second.prev_cursor, size=3)
    assert ids(back) == items[0:3]
    assert not back.has_prev  # reading backwards found the start

    last = item_page(dataset=dataset, cursor=first.last_cursor, size=3)
    assert ids(last) == items[7:10]
    assert last.has_prev and not last.has_next

    before_last = item_page(dataset=dataset, cursor=last.prev_cursor, size=3)
    assert ids(before_last) == items[4:7]
    assert before_last.has_next
    assert ids(item_page(dataset=dataset, cursor=before_last.next_cursor, size=3)) == items[7:10]


def test_walking_forward_visits_every_item_once(ops):
    dataset = make_dataset(ops)
    items = [item.pk for item in make_items(dataset, 11)]
    seen, cursor = [], None
    while True:
        page = item_page(dataset=dataset, cursor=cursor, size=4)
        seen += ids(page)
        if not page.has_next:
            break
        cursor = page.next_cursor
    assert seen == items


def test_a_single_page_has_no_neighbours_and_an_empty_dataset_is_empty(ops):
    dataset = make_dataset(ops)
    assert ids(item_page(dataset=dataset)) == []
    make_items(dataset, 2)
    page = item_page(dataset=dataset, size=3)
    assert len(page.items) == 2 and not page.has_next and not page.has_prev


def test_cursors_are_signed_and_bound_to_their_dataset(ops):
    dataset, other = make_dataset(ops), make_dataset(ops)
    items = [item.pk for item in make_items(dataset, 6)]
    make_items(other, 6)
    next_cursor = item_page(dataset=dataset, size=2).next_cursor
    assert str(items[1]) not in next_cursor.split(":")[0]  # opaque, not a plain id

    tampered = next_cursor[:-3] + ("abc" if not next_cursor.endswith("abc") else "xyz")
    assert ids(item_page(dataset=dataset, cursor=tampered, size=2)) == items[:2]
    assert ids(item_page(dataset=dataset, cursor="garbage", size=2)) == items[:2]
    # A cursor of one dataset means "first page" in another.
    assert ids(item_page(dataset=other, cursor=next_cursor, size=2)) == ids(
        item_page(dataset=other, size=2)
    )


# --- filters ----------------------------------------------------------------------------


def test_filter_by_split_including_no_split(ops):
    dataset = make_dataset(ops)
    items = make_items(dataset, 8, split=["train", "val", "", "test"] * 2)
    val = [i.pk for i in items if i.split == "val"]
    unset = [i.pk for i in items if i.split == ""]
    assert ids(item_page(dataset=dataset, filters=ItemFilters(split="val"))) == val
    assert ids(item_page(dataset=dataset, filters=ItemFilters(split=""))) == unset


def test_filter_by_tag_pages_both_ways(ops):
    dataset = make_dataset(ops)
    items = make_items(
        dataset, 12, tags=[["night"] if n % 2 else ["day", "dry"] for n in range(12)]
    )
    other = make_dataset(ops)
    make_items(other, 4, tags=["night"])  # same tag in another dataset
    night = [i.pk for n, i in enumerate(items) if n % 2]
    filters = ItemFilters(tag="night")

    first = item_page(dataset=dataset, filters=filters, size=4)
    assert ids(first) == night[:4] and first.has_next
    rest = item_page(dataset=dataset, filters=filters, cursor=first.next_cursor, size=4)
    assert ids(rest) == night[4:] and not rest.has_next
    last = item_page(dataset=dataset, filters=filters, cursor=first.last_cursor, size=4)
    assert ids(last) == night[2:]
    assert ids(item_page(dataset=dataset, filters=ItemFilters(tag="nope"))) == []


def test_filter_by_tag_and_split_together(ops):
    dataset = make_dataset(ops)
    items = make_items(
        dataset, 6, split=["train", "val"] * 3, tags=[["a"], ["a"], ["b"], ["a"], ["a"], ["a"]]
    )
    got = ids(item_page(dataset=dataset, filters=ItemFilters(tag="a", split="val")))
    assert got == [items[1].pk, items[3].pk, items[5].pk]


def test_filter_by_metadata_text_number_bool_and_nested(ops):
    dataset = make_dataset(ops)
    items = make_items(
        dataset,
        5,
        metadata=[
            {"camera": "front", "n": 3, "night": True, "gps": {"country": "fr"}},
            {"camera": "rear", "n": "3", "night": False, "gps": {"country": "de"}},
            {"camera": "front", "n": 4},
            {"other": "front"},
            {"camera": "Front"},
        ],
    )

    def matching(key, value):
        return ids(item_page(dataset=dataset, filters=ItemFilters(meta_key=key, meta_value=value)))

    assert matching("camera", "front") == [items[0].pk, items[2].pk]  # exact, case-sensitive
    assert matching("n", "3") == [items[0].pk, items[1].pk]  # the number 3 and the text "3"
    assert matching("night", "true") == [items[0].pk]
    assert matching("gps.country", "de") == [items[1].pk]
    assert matching("camera", "nobody") == []


def test_filter_by_metadata_pages(ops):
    dataset = make_dataset(ops)
    items = make_items(dataset, 9, metadata=[{"k": "x" if n % 3 else "y"} for n in range(9)])
    wanted = [i.pk for n, i in enumerate(items) if n % 3]
    filters = ItemFilters(meta_key="k", meta_value="x")
    first = item_page(dataset=dataset, filters=filters, size=4)
    second = item_page(dataset=dataset, filters=filters, cursor=first.next_cursor, size=4)
    assert ids(first) + ids(second) == wanted
    last = item_page(dataset=dataset, filters=filters, cursor=first.last_cursor, size=4)
    assert ids(last) == wanted[-4:]


# --- query counts -----------------------------------------------------------------------


def test_a_page_costs_two_queries_whatever_its_size(ops, django_assert_num_queries):
    dataset = make_dataset(ops)
    make_items(dataset, 60, tags=["a", "b"], split="train")
    first = item_page(dataset=dataset, size=48)
    with django_assert_num_queries(2):  # items with assets, then all their tags
        page = item_page(dataset=dataset, cursor=first.next_cursor, size=48)
        for item in page.items:
            assert item.asset.media_type == "image/png"
            assert [t.tag for t in item.tags.all()] == ["a", "b"]
    with django_assert_num_queries(2):
        item_page(dataset=dataset, filters=ItemFilters(tag="a", split="train"), size=48)


# --- items, datasets, imports -----------------------------------------------------------


def test_item_get_and_neighbours_stay_in_the_dataset(ops):
    dataset = make_dataset(ops)
    other = make_dataset(ops)
    first, middle, last = make_items(dataset, 3, tags=["z", "a"])
    foreign = make_items(other, 1)[0]

    item = item_get(dataset=dataset, item_id=middle.pk)
    assert [t.tag for t in item.tags.all()] == ["a", "z"]
    assert item_neighbours(dataset=dataset, item=item) == (first.pk, last.pk)
    assert item_neighbours(dataset=dataset, item=first) == (None, middle.pk)
    assert item_neighbours(dataset=dataset, item=last) == (middle.pk, None)
    with pytest.raises(type(item).DoesNotExist):
        item_get(dataset=dataset, item_id=foreign.pk)


def test_dataset_list_is_newest_first_with_counters(ops, owner, django_assert_num_queries):
    datasets = [make_dataset(owner, item_count=n, total_bytes=n * 1000) for n in range(5)]
    make_dataset(ops)  # not visible to owner

    with django_assert_num_queries(2):  # groups of the user, then the page with creators
        page = dataset_list_page(user=owner, size=3)
        names = [d.created_by.username for d in page.items]
    assert [d.pk for d in page.items] == [d.pk for d in reversed(datasets)][:3]
    assert names == [owner.username] * 3
    rest = dataset_list_page(user=owner, cursor=page.next_cursor, size=3)
    assert [d.pk for d in rest.items] == [datasets[1].pk, datasets[0].pk]
    assert not rest.has_next and rest.has_prev
    assert dataset_list_page(user=ops, size=10).items[0].item_count == 0


def test_rejected_entries_in_upload_order_by_pages(ops):
    dataset = make_dataset(ops)
    imp = make_import(dataset, ops)
    statuses = ["created", "rejected", "duplicate", "rejected", "rejected", "unchanged", "rejected"]
    make_entries(imp, statuses)
    make_entries(make_import(dataset, ops), ["rejected"] * 3)  # another import

    first = import_rejected_page(import_run=imp, size=3)
    assert [e.seq for e in first.items] == [1, 3, 4]
    assert [e.reason for e in first.items] == ["reason 1", "reason 3", "reason 4"]
    rest = import_rejected_page(import_run=imp, cursor=first.next_cursor, size=3)
    assert [e.seq for e in rest.items] == [6] and not rest.has_next
    last = import_rejected_page(import_run=imp, cursor=first.last_cursor, size=3)
    assert [e.seq for e in last.items] == [3, 4, 6] and last.has_prev


def test_recent_imports_newest_first_with_job_and_creator(ops, django_assert_num_queries):
    dataset = make_dataset(ops)
    imports = [make_import(dataset, ops) for _ in range(3)]
    make_import(make_dataset(ops), ops)
    with django_assert_num_queries(1):
        recent = import_list_recent(dataset=dataset, limit=2)
        assert [i.created_by.username for i in recent] == [ops.username] * 2
        assert [i.job for i in recent] == [None, None]
    assert [i.pk for i in recent] == [imports[2].pk, imports[1].pk]
