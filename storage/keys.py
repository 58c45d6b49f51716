"""Object keys: pure builders, one per kind of object (see ARCHITECTURE.md, Object storage).

Every key the project writes is built here, from validated parts, so a malformed hash or
a "../" in an id can never name an object outside its prefix. Invalid input raises
ValueError with the offending value.
"""

from __future__ import annotations

import re

BLOBS_ROOT = "blobs/"
BLOB_PREFIX = BLOBS_ROOT + "sha256/"
DERIVED_PREFIX = "derived/"
MANIFEST_PREFIX = "manifests/"
EXPORT_PREFIX = "exports/"
# Uploaded files waiting to be validated by an import; deleted when the import ends.
STAGING_PREFIX = "staging/"

# Lower-case only: one spelling per hash, so one blob never has two keys.
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Short names chosen by code: "thumbnail", "coco", "yolo-seg".
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Ids chosen by other packages (a version id is a SHA-256 today; allow any safe token).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# File extensions without the leading dot: "jsonl.gz", "parquet".
_EXT = re.compile(r"[a-z0-9]{1,16}(\.[a-z0-9]{1,16}){0,3}")
# An options hash: a hex digest, full or truncated to at least 8 characters.
_HEX_DIGEST = re.compile(r"[0-9a-f]{8,64}")


def is_sha256(value: object) -> bool:
    """Return whether `value` is a SHA-256 hex digest in canonical (lower-case) form."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def blob_key(sha256: str) -> str:
    """Return the key of the blob with this SHA-256: blobs/sha256/ab/cd/<64 hex>.

    The two levels of two hex characters spread blobs over 65,536 prefixes, which keeps
    listings and per-prefix request rates of S3-like stores even. Raises ValueError unless
    `sha256` is 64 lower-case hex characters.
    """
    digest = _check(_SHA256, sha256, "sha256 (64 lower-case hex characters)")
    return f"{BLOB_PREFIX}{digest[:2]}/{digest[2:4]}/{digest}"


def derived_key(kind: str, sha256: str) -> str:
    """Return the key of a file derived from a blob: derived/<kind>/<sha256>.

    `kind` names the derivation ("thumbnail", "preview"); `sha256` is the source blob's.
    Raises ValueError on a malformed kind or hash.
    """
    _check(_NAME, kind, "derived kind")
    _check(_SHA256, sha256, "sha256 (64 lower-case hex characters)")
    return f"{DERIVED_PREFIX}{kind}/{sha256}"


def manifest_key(version_id: str, ext: str) -> str:
    """Return the key of a version's manifest: manifests/<version id>.<ext>.

    `ext` has no leading dot ("jsonl.gz", "parquet"). Raises ValueError on a malformed
    id or extension.
    """
    _check(_ID, version_id, "version id")
    _check(_EXT, ext, "manifest extension (no leading dot, e.g. 'jsonl.gz')")
    return f"{MANIFEST_PREFIX}{version_id}.{ext}"


def export_key(version_id: str, fmt: str, options_hash: str) -> str:
    """Return the key of an export: exports/<version id>/<format>/<options hash>.

    Raises ValueError on a malformed id, format name or options hash (8-64 lower-case hex).
    """
    _check(_ID, version_id, "version id")
    _check(_NAME, fmt, "export format")
    _check(_HEX_DIGEST, options_hash, "options hash (8-64 lower-case hex characters)")
    return f"{EXPORT_PREFIX}{version_id}/{fmt}/{options_hash}"


def staging_prefix(import_id: str) -> str:
    """Return the prefix under which an import's uploads wait: staging/<import id>/."""
    _check(_ID, import_id, "import id")
    return f"{STAGING_PREFIX}{import_id}/"


def staging_key(import_id: str, seq: int) -> str:
    """Return the key of upload number `seq` of an import: staging/<import id>/<seq>."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError(f"invalid staging sequence number: {seq!r}")
    return f"{staging_prefix(import_id)}{seq}"
