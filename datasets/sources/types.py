"""What planners yield (SourceEntry or Rejection) and the limits every source obeys."""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# ImportEntry.name and Item.external_id are CharField(max_length=512).
MAX_NAME_CHARS = 512
# ItemTag.tag is CharField(max_length=100).
MAX_TAG_CHARS = 100
# Item.Split values ("" = unset).
SPLITS = ("", "train", "val", "test")

# Bidirectional embedding, override and isolate controls: they make a name display as
# something else ("txt.exe" shown as "exe.txt"), so names may not carry them. The marks
# (U+200E, U+200F) that right-to-left names legitimately use are allowed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Defaults of the settings read here (config/settings.py defines the real ones).
DEFAULT_MAX_FILE_BYTES = 100_000_000
# 100,000 files: a large labelled image set in one archive; more goes in several imports.
DEFAULT_ARCHIVE_MAX_FILES = 100_000
# 20 GB uncompressed: the disk a worker may need for one import's temp files is per file,
# but this bounds the decompression work one upload can ask for.
DEFAULT_ARCHIVE_MAX_BYTES = 20_000_000_000
# Two minutes for one URL, redirects included: 100 MB at about 1 MB/s.
DEFAULT_URL_TIMEOUT = 120.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SourceEntry:
    """One file (or record) a source will provide.

    `name` becomes the item's external_id; `ref` is what the source's fetch function
    needs to get the bytes (a member name, a URL, a key, a path, a record's text).
    """

    name: str
    ref: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    split: str = ""


@dataclass(frozen=True)
class Rejection:
    """One file of the source refused at planning, by name, with a reason for the report.

    The name is made storable on construction: invalid UTF-8 escaped (\\xff), control
    characters removed, at most MAX_NAME_CHARS characters.
    """

    name: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", displayable_name(self.name))


PlannedEntry = SourceEntry | Rejection


def _is_control(ch: str) -> bool:
    return ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc"


def displayable_name(name: str) -> str:
    """Return `name` fit for a report row: valid UTF-8, no control characters, at most
    MAX_NAME_CHARS characters (cut with an ellipsis)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(ch for ch in text if not _is_control(ch))
    if len(text) > MAX_NAME_CHARS:
        text = text[: MAX_NAME_CHARS - 1] + "…"
    return text or "(no name)"


def text_problem(value: str) -> str | None:
    """Say why a string cannot be stored (PostgreSQL text and jsonb), or return None.

    PostgreSQL refuses NUL characters in text and \\u0000 in jsonb, and a lone surrogate
    (from JSON "\\ud800" or an undecodable file name) is not encodable as UTF-8.
    """
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate or undecodable bytes)"
    return None


def value_problem(value: Any) -> str | None:
    """Apply `text_problem` to every string (keys included) inside a JSON-like value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def name_problem(name: str) -> str | None:
    """Say why `name` cannot be an external_id (empty, too long, control characters,
    not storable), or return None."""
    if not name or not name.strip():
        return "name is empty"
    problem = text_problem(name)
    if problem:
        return f"name {problem}"
    if any(_is_control(ch) for ch in name):
        return "name contains control characters"
    if len(name) > MAX_NAME_CHARS:
        return f"name is longer than {MAX_NAME_CHARS} characters"
    return None


def tags_problem(tags: Iterable[Any]) -> str | None:
    """Say why a list of tags is not valid (each a non-blank string of at most
    MAX_TAG_CHARS characters), or return None."""
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            return f"tag {tag!r} is not a non-empty string"
        if len(tag) > MAX_TAG_CHARS:
            return f"tag {tag[:20]!r}... is longer than {MAX_TAG_CHARS} characters"
        problem = text_problem(tag)
        if problem:
            return f"tag {problem}"
    return None


def split_problem(split: Any) -> str | None:
    """Say why `split` is not one of the item splits, or return None."""
    if split not in SPLITS:
        return f"split {split!r} is not one of train, val, test (or empty)"
    return None


def parse_tags(value: Any) -> tuple[list[str], str | None]:
    """Read a row's tags: a JSON list of strings, or one string split on "," and ";".

    Return (tags without repeats, in order; None) or ([], the reason they are invalid).
    """
    if value is None or value == "":
        return [], None
    if isinstance(value, str):
        tags: list[Any] = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
    elif isinstance(value, list):
        tags = [tag.strip() if isinstance(tag, str) else tag for tag in value]
    else:
        return [], "tags must be a list of strings"
    problem = tags_problem(tags)
    if problem:
        return [], problem
    return list(dict.fromkeys(tags)), None


def parse_split(value: Any) -> tuple[str, str | None]:
    """Read a row's split (case and spaces ignored; missing = unset).

    Return (split, None) or ("", the reason it is invalid).
    """
    split = "" if value is None else value.strip().lower() if isinstance(value, str) else value
    problem = split_problem(split)
    return ("", problem) if problem else (split, None)


def is_os_junk(basename: str) -> bool:
    """Return whether a file name is operating-system clutter, never content.

    .DS_Store (Finder view settings), ._* (AppleDouble resource forks, written beside
    each file by macOS on non-HFS volumes and in tars) and Thumbs.db (Windows).
    """
    return basename in (".DS_Store", "Thumbs.db") or basename.startswith("._")


def format_bytes(n: int) -> str:
    """Say a byte count the way the import report does ("12.3 MB")."""
    if n >= 1_000_000_000:
        return f"{n / 1_000_000_000:.1f} GB"
    return f"{n / 1_000_000:.1f} MB"


@dataclass(frozen=True)
class ImportLimits:
    """The caps one import obeys; `from_settings()` reads the IMPORT_* settings."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    archive_max_files: int = DEFAULT_ARCHIVE_MAX_FILES
    archive_max_bytes: int = DEFAULT_ARCHIVE_MAX_BYTES
    url_timeout: float = DEFAULT_URL_TIMEOUT
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls) -> ImportLimits:
        """Read IMPORT_MAX_FILE_BYTES, IMPORT_ARCHIVE_MAX_FILES, IMPORT_ARCHIVE_MAX_BYTES,
        IMPORT_URL_TIMEOUT and IMPORT_URL_ALLOWED_NETWORKS now (tests override them).

        Raises ImproperlyConfigured when an allowed network is not a CIDR.
        """
        return cls(
            max_file_bytes=int(getattr(settings, "IMPORT_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)),
            archive_max_files=int(
                getattr(settings, "IMPORT_ARCHIVE_MAX_FILES", DEFAULT_ARCHIVE_MAX_FILES)
            ),
            archive_max_bytes=int(
                getattr(settings, "IMPORT_ARCHIVE_MAX_BYTES", DEFAULT_ARCHIVE_MAX_BYTES)
            ),
            url_timeout=float(getattr(settings, "IMPORT_URL_TIMEOUT", DEFAULT_URL_TIMEOUT)),
            allowed_networks=parse_networks(getattr(settings, "IMPORT_URL_ALLOWED_NETWORKS", [])),
        )


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDRs ("10.0.0.0/8", "fd00::/8", a bare address for one host).

    Raises ImproperlyConfigured naming the bad value.
    """
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"IMPORT_URL_ALLOWED_NETWORKS: {value!r} is not a network in CIDR form ({exc})"
            ) from None
    return tuple(networks)
