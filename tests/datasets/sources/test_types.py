"""Entry names, tags, splits and limits: the rules every source shares."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from datasets.models import ImportEntry, Item, ItemTag
from datasets.sources.types import (
    MAX_NAME_CHARS,
    MAX_TAG_CHARS,
    SPLITS,
    ImportLimits,
    Rejection,
    name_problem,
    parse_networks,
    parse_split,
    parse_tags,
)


def test_constants_match_the_models() -> None:
    assert ImportEntry._meta.get_field("name").max_length == MAX_NAME_CHARS
    assert Item._meta.get_field("external_id").max_length == MAX_NAME_CHARS
    assert ItemTag._meta.get_field("tag").max_length == MAX_TAG_CHARS
    assert set(SPLITS) == set(Item.Split.values)


@pytest.mark.parametrize(
    "name",
    [
        "photos/cat.jpg",
        "שלום/عربي.txt",
        "family 👨\u200d👩\u200d👧.png",  # zero-width joiners of an emoji sequence
        "a\u00a0b.txt",  # no-break space
        "\u200fmarked.txt",  # right-to-left mark
        "x" * MAX_NAME_CHARS,
    ],
)
def test_acceptable_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "name is empty"),
        ("   ", "name is empty"),
        ("a\nb", "name contains control characters"),
        ("invoice\u202efdp.exe", "name contains control characters"),  # shows as "exe.pdf"
        ("a\x00b", "name contains a NUL character"),
        ("caf\udce9", "name is not valid Unicode (lone surrogate or undecodable bytes)"),
        ("x" * (MAX_NAME_CHARS + 1), f"name is longer than {MAX_NAME_CHARS} characters"),
    ],
)
def test_refused_names(name: str, problem: str) -> None:
    assert name_problem(name) == problem


def test_rejection_names_are_made_storable() -> None:
    assert Rejection("caf\udce9\n.txt", "r").name == "caf\\xe9.txt"
    assert len(Rejection("y" * 2000, "r").name) == MAX_NAME_CHARS
    assert Rejection("", "r").name == "(no name)"


def test_tags_and_splits() -> None:
    assert parse_tags("a, b;c,,a") == (["a", "b", "c"], None)
    assert parse_tags(["x", " y "]) == (["x", "y"], None)
    assert parse_tags(None) == ([], None)
    assert parse_tags([1]) == ([], "tag 1 is not a non-empty string")
    assert parse_tags({"a": 1})[1] == "tags must be a list of strings"
    assert parse_tags(["t" * 101])[1].endswith("is longer than 100 characters")
    assert parse_split(" TEST ") == ("test", None)
    assert parse_split(None) == ("", None)
    assert parse_split("dev") == ("", "split 'dev' is not one of train, val, test (or empty)")


def test_limits_from_settings(settings: Any) -> None:
    settings.IMPORT_MAX_FILE_BYTES = 123
    settings.IMPORT_ARCHIVE_MAX_FILES = 7
    settings.IMPORT_ARCHIVE_MAX_BYTES = 999
    settings.IMPORT_URL_TIMEOUT = 2.5
    settings.IMPORT_URL_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8", "192.168.1.7"]
    limits = ImportLimits.from_settings()
    assert (limits.max_file_bytes, limits.archive_max_files, limits.archive_max_bytes) == (
        123,
        7,
        999,
    )
    assert limits.url_timeout == 2.5
    assert [str(n) for n in limits.allowed_networks] == ["10.0.0.0/8", "fd00::/8", "192.168.1.7/32"]
    with pytest.raises(ImproperlyConfigured, match="'10.0.0.0/33' is not a network"):
        parse_networks(["10.0.0.0/33"])
