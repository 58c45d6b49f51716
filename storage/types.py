"""Typed results of the storage services (plain frozen dataclasses, no minio types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class Readable(Protocol):
    """Anything with a binary `read(size)`: open files, BytesIO, uploads, HTTP bodies."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put stored, or found already stored (created=False: nothing was written)."""

    sha256: str
    size: int
    key: str
    created: bool
    content_type: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the object store knows about one object.

    `metadata` holds the user metadata (x-amz-meta-*), keys lower-cased and unprefixed.
    """

    key: str
    size: int
    etag: str
    content_type: str
    last_modified: datetime | None
    metadata: Mapping[str, str] = field(default_factory=dict)
