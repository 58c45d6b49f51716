"""Typed values the datasets services hand around."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AssetFacts:
    """What inspecting a file established: its hash, size, real type and dimensions."""

    sha256: str
    size: int
    media_type: str
    width: int | None = None
    height: int | None = None
    char_count: int | None = None
