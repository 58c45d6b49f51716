"""Version diffs: the merge join of two manifests (added, removed, relabelled, moved,
unchanged), class counts, the distribution shift against scipy's own numbers, and the
diff endpoint on real versions."""

from __future__ import annotations

import math

import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from datasets.diff import (
    _line_facts,
    _profile_decode,
    items_diff,
    lines_diff,
    manifest_item_lines,
    shift,
)
from datasets.manifest import canonical_line, header, item_line, label_names
from datasets.services.labels import label_publish
from datasets.services.versions import SnapshotRequest, version_snapshot
from tests.datasets.conftest import api_for
from tests.factories import dataset_with_items, png_bytes


def box(*labels, x=1):
    return [
        {
            "id": f"r{n}",
            "type": "rectanglelabels",
            "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
        }
        for n, label in enumerate(labels)
    ]


def item(item_id, label=None, *, split="train", tags=(), metadata=None):
    return item_line(
        item_id=item_id,
        external_id=f"img-{item_id}.png",
        sha256=f"{item_id:064x}",
        size=100,
        media_type="image/png",
        metadata=metadata or {},
        tags=tags,
        split=split,
        label=label,
        label_source=None if label is None else "project:1",
        provenance=None if label is None else {"task": item_id},
    )


# --- the merge join ----------------------------------------------------------------------


def test_each_kind_of_change_is_found():
    a = [
        item(1, box("car")),
        item(2, box("car")),  # removed
        item(3, box("car")),  # relabelled
        item(4, box("car"), split="train"),  # moved to test
        item(5, None),  # labelled in b
        item(6, box("car"), metadata={"camera": "a"}),  # metadata only
        item(9, box("car")),  # removed (at the end)
    ]
    b = [
        item(0, box("bus")),  # added (before every a item)
        item(1, box("car")),
        item(3, box("person")),
        item(4, box("car"), split="test"),
        item(5, box("car")),
        item(6, box("car"), metadata={"camera": "b"}),
        item(7, None),  # added
        item(8, box("bus")),  # added (at the end)
    ]
    result = items_diff(a, b)
    assert result["added"] == 3 and result["examples"]["added"] == [0, 7, 8]
    assert result["removed"] == 2 and result["examples"]["removed"] == [2, 9]
    assert result["relabelled"] == 2
    assert result["examples"]["relabelled"] == [
        {"id": 3, "before": box("car"), "after": box("person")},
        {"id": 5, "before": None, "after": box("car")},
    ]
    assert result["split_moved"] == 1
    assert result["examples"]["split_moved"] == [{"id": 4, "from": "train", "to": "test"}]
    assert result["changed"] == 4  # 3, 4, 5 and 6
    assert result["unchanged"] == 1
    assert result["class_counts"] == {
        "bus": {"a": 0, "b": 2, "change": 2},
        "car": {"a": 6, "b": 4, "change": -2},
        "person": {"a": 0, "b": 1, "change": 1},
    }


def test_class_counts_count_regions_and_match_label_names():
    a = [item(1, box("car", "car", "person")), item(2, box("dog"))]
    result = items_diff(a, [])
    assert result["removed"] == 2 and result["added"] == 0
    assert {n: c["a"] for n, c in result["class_counts"].items()} == {
        "car": 2,
        "person": 1,
        "dog": 1,
    }


def test_examples_are_capped_but_counts_are_not():
    a = [item(n, box("car")) for n in range(10)]
    b = [item(n, box("bus")) for n in range(10, 20)]
    result = items_diff(a, b, examples=3)
    assert result["added"] == 10 and result["removed"] == 10
    assert result["examples"]["added"] == [10, 11, 12]
    assert result["examples"]["removed"] == [0, 1, 2]
    assert items_diff(a, b, examples=0)["examples"]["added"] == []


def test_identical_versions_show_no_change():
    a = [item(n, box("car" if n % 3 else "bus"), tags=["night"] if n % 2 else []) for n in range(9)]
    result = items_diff(a, list(a))
    assert result["unchanged"] == 9
    assert all(result[k] == 0 for k in ("added", "removed", "changed", "relabelled", "split_moved"))
    assert all(c["change"] == 0 for c in result["class_counts"].values())
    overall = result["shift"]["overall"]
    assert overall["js_distance"] == 0.0 and overall["chi2_p"] == pytest.approx(1.0)
    assert result["shift"]["by_tag"]["night"]["js_distance"] == 0.0


def test_both_empty():
    result = items_diff([], [])
    assert result["unchanged"] == 0 and result["class_counts"] == {}
    assert result["shift"]["overall"]["js_distance"] is None
    assert "no labels" in result["shift"]["overall"]["reason"]


# --- line parsing ------------------------------------------------------------------------


def test_the_fast_line_reading_agrees_with_a_full_parse():
    # Keys that look like the ones the fast path looks for, in places it must not look.
    tricky = item_line(
        item_id=12,
        external_id='odd ,"label":[1], "split":"x","tags":["y"] é',
        sha256="f" * 64,
        size=1,
        media_type="image/png",
        metadata={"label": "meta", "split": "val", "tags": ["m"], "z": {"split": "q"}},
        tags=["night", 'quo"te,"tags":'],
        split="test",
        label=[
            {
                "attributes": {"labels": ["not-a-name"], "split": "a"},
                "id": "r1",
                "type": "rectanglelabels",
                "value": {"x": 1, "rectanglelabels": ["car"], "zlabels": ["extra"]},
            },
            {"id": "r2", "type": "choices", "value": {"choices": ["cat", "dog"]}},
        ],
        label_source="s",
        provenance={"split": "p", "label": None},
    )
    for line in (canonical_line(tricky), canonical_line(tricky)[:-1]):
        profile, names = _line_facts(line)
        assert names == label_names(tricky["label"]) == ["car", "extra", "cat", "dog"]
        assert _profile_decode(profile) == ("test", ["night", 'quo"te,"tags":'])
    profile, names = _line_facts(canonical_line(item(3, None, split="val")))
    assert names == [] and _profile_decode(profile) == ("val", [])


def test_manifest_item_lines_skip_the_header_across_any_chunking():
    head = canonical_line(
        header(dataset_id=1, code_commit="none", code_repo="", parent=None, label_schemas=[])
    )
    lines = [canonical_line(item(n, box("car"))) for n in range(5)]
    data = head + b"".join(lines)
    for size in (1, 7, 64, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(manifest_item_lines(chunks)) == [line[:-1] for line in lines]
    with pytest.raises(ValueError, match="format"):
        list(manifest_item_lines([b'{"format":"other/9"}\n' + lines[0]]))


# --- distribution shift ------------------------------------------------------------------


def test_shift_numbers_are_scipys():
    a = {"car": 120, "person": 40, "bus": 5}
    b = {"car": 100, "person": 70, "dog": 9}
    result = shift(a, b)
    classes = ["bus", "car", "dog", "person"]
    row_a = [a.get(c, 0) for c in classes]
    row_b = [b.get(c, 0) for c in classes]
    expected = chi2_contingency([row_a, row_b])
    assert result["chi2_p"] == pytest.approx(expected.pvalue)
    assert result["chi2"] == pytest.approx(expected.statistic) and result["dof"] == 3
    js = jensenshannon(row_a, row_b, base=2)
    assert result["js_distance"] == pytest.approx(js)
    assert 0 < result["js_distance"] < 1 and result["reason"] is None


def test_shift_when_it_cannot_be_computed():
    one_class = shift({"car": 4}, {"car": 9})
    assert one_class["chi2_p"] is None and "two" in one_class["reason"]
    assert one_class["js_distance"] == 0.0
    # a class counted on neither side is no column (chi2_contingency refuses zero columns)
    assert shift({"car": 4, "bus": 0}, {"car": 9, "bus": 0})["chi2_p"] is None
    no_b = shift({"car": 4, "bus": 1}, {})
    assert no_b["chi2_p"] is None and no_b["js_distance"] is None
    assert "no labels in b" in no_b["reason"]
    disjoint = shift({"car": 4}, {"bus": 4})
    assert disjoint["js_distance"] == pytest.approx(1.0)
    assert disjoint["chi2_p"] < 0.05


def test_shift_per_tag_and_split():
    a = [item(n, box("car"), tags=["night"], split="train") for n in range(10)]
    a += [item(n, box("car"), tags=["day"], split="val") for n in range(10, 20)]
    # b: the night slice became all bus, the day slice is unchanged
    b = [item(n, box("bus"), tags=["night"], split="train") for n in range(10)] + a[10:]
    result = items_diff(a, b)
    by_tag = result["shift"]["by_tag"]
    assert by_tag["day"]["js_distance"] == 0.0 and by_tag["day"]["chi2_p"] is None
    assert by_tag["night"]["js_distance"] == pytest.approx(1.0)
    assert by_tag["night"]["total_a"] == 10 and by_tag["night"]["total_b"] == 10
    assert result["shift"]["by_split"]["train"]["js_distance"] == pytest.approx(1.0)
    assert result["shift"]["by_split"]["val"]["js_distance"] == 0.0
    assert result["shift"]["tags_total"] == 2 and result["shift"]["tags_reported"] == 2
    overall = result["shift"]["overall"]
    expected = chi2_contingency([[0, 20], [10, 10]])  # bus, car
    assert overall["chi2_p"] == pytest.approx(expected.pvalue)
    assert overall["js_distance"] == pytest.approx(jensenshannon([0, 1], [0.5, 0.5], base=2))


def test_only_the_most_frequent_tags_are_reported(monkeypatch):
    monkeypatch.setattr("datasets.diff.TAGS_REPORTED", 2)
    tags = {0: ["common", "rare"], 1: ["common", "usual"], 2: ["usual"], 3: ["common"]}
    a = [item(n, box("car"), tags=tags[n % 4]) for n in range(8)]
    result = items_diff(a, a)
    assert set(result["shift"]["by_tag"]) == {"common", "usual"}
    assert result["shift"]["tags_total"] == 3 and result["shift"]["tags_reported"] == 2


def test_lines_diff_takes_lines_with_or_without_newlines():
    a = [canonical_line(item(n, box("car"))) for n in range(3)]
    assert lines_diff(a, a)["unchanged"] == 3
    assert lines_diff([x[:-1] for x in a], [x[:-1] for x in a[1:]])["removed"] == 1


# --- the endpoint, on real versions ------------------------------------------------------

SCHEMA = "a" * 64


def _snap(dataset, ops, commit):
    request = SnapshotRequest(code_commit=commit, code_repo="", message="")
    return version_snapshot(dataset=dataset, request=request, created_by_id=ops.pk)[0]


@pytest.mark.django_db
def test_diff_endpoint_between_two_versions(ops, owner):
    dataset, items = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(8, 8, (n, 3, 4)) for n in range(4)]
    )
    for it in items[:3]:
        label_publish(item=it, value=box("car"), schema_hash=SCHEMA, source="p:1", provenance={})
    first = _snap(dataset, ops, "abc1234")
    label_publish(item=items[0], value=box("bus"), schema_hash=SCHEMA, source="p:1", provenance={})
    items[1].split = "test" if items[1].split != "test" else "val"
    items[1].save()
    second = _snap(dataset, ops, "abc1234")
    assert second.pk != first.pk

    api = api_for(ops)
    response = api.get(f"/api/v1/versions/{first.pk}/diff/{second.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["a"] == first.pk and body["b"] == second.pk
    assert body["added"] == 0 and body["removed"] == 0
    assert body["relabelled"] == 1 and body["split_moved"] == 1 and body["unchanged"] == 2
    assert body["examples"]["relabelled"] == [
        {"id": items[0].pk, "before": box("car"), "after": box("bus")}
    ]
    assert body["examples"]["split_moved"][0]["id"] == items[1].pk
    assert body["class_counts"] == {
        "bus": {"a": 0, "b": 1, "change": 1},
        "car": {"a": 3, "b": 2, "change": -1},
    }
    # the counts agree with what the snapshot recorded
    assert {n: c["a"] for n, c in body["class_counts"].items() if c["a"]} == first.class_counts
    assert {n: c["b"] for n, c in body["class_counts"].items() if c["b"]} == second.class_counts
    overall = body["shift"]["overall"]
    assert overall["chi2_p"] == pytest.approx(chi2_contingency([[0, 3], [1, 2]]).pvalue)
    assert math.isclose(overall["js_distance"], jensenshannon([0, 1], [1 / 3, 2 / 3], base=2))

    same = api.get(f"/api/v1/versions/{second.pk}/diff/{second.pk}").json()
    assert same["unchanged"] == 4 and same["shift"]["overall"]["js_distance"] == 0.0

    capped = api.get(f"/api/v1/versions/{first.pk}/diff/{second.pk}?examples=0").json()
    assert capped["relabelled"] == 1 and capped["examples"]["relabelled"] == []
    for bad in ("-1", "1001", "many"):
        bad_answer = api.get(f"/api/v1/versions/{first.pk}/diff/{second.pk}?examples={bad}")
        assert bad_answer.status_code == 400

    # not visible: 404 whichever side it is
    outsider = api_for(owner)
    assert outsider.get(f"/api/v1/versions/{first.pk}/diff/{second.pk}").status_code == 404
    assert api.get(f"/api/v1/versions/{first.pk}/diff/{'0' * 64}").status_code == 404

    # versions of another dataset: 400 that says so
    other, other_items = dataset_with_items(
        owner=ops, kind="image", contents=[png_bytes(8, 8, (n, 9, 9)) for n in range(2)]
    )
    third = _snap(other, ops, "abc1234")
    response = api.get(f"/api/v1/versions/{first.pk}/diff/{third.pk}")
    assert response.status_code == 400
    assert "different datasets" in response.json()["detail"]
