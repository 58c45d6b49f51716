"""Helpers for storage tests: streams that never hold their content in memory, a closed
port, a port that accepts connections and never answers, and settings that reset the
cached clients before and after a test."""

from __future__ import annotations

import hashlib
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from storage import client as storage_client

MIB = 1024 * 1024


class GeneratedStream:
    """`size` pseudo-random bytes made on demand, at most `chunk` per read, not seekable.

    Stands in for a network upload: nothing is held beyond the current read, so memory
    measured around a put is the storage layer's own. The bytes depend on `size` and
    `seed` only, not on how they are read.
    """

    BLOCK = 64 * 1024

    def __init__(self, size: int, *, seed: int, chunk: int = MIB) -> None:
        self._remaining = size
        self._rng = random.Random(seed)
        self._chunk = chunk
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        n = self._remaining if size < 0 else min(size, self._remaining)
        n = min(n, self._chunk)
        parts = [self._pending]
        have = len(self._pending)
        while have < n:
            block = self._rng.randbytes(self.BLOCK)
            parts.append(block)
            have += len(block)
        data = b"".join(parts)
        self._pending = data[n:]
        self._remaining -= n
        return data[:n]


def generated_sha256(size: int, *, seed: int) -> str:
    """The SHA-256 of what GeneratedStream(size, seed=seed) yields."""
    stream = GeneratedStream(size, seed=seed)
    digest = hashlib.sha256()
    while data := stream.read(MIB):
        digest.update(data)
    return digest.hexdigest()


@pytest.fixture
def seed() -> int:
    """A fresh seed, so each test stores content no earlier test stored."""
    return random.SystemRandom().randrange(2**63)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections (kernel backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.fixture
def s3_settings(settings: Any) -> Iterator[Any]:
    """Django's `settings` fixture, with the storage clients dropped before and after, so
    a test can point S3_* elsewhere without leaking clients to the next test."""
    storage_client.reset_client()
    yield settings
    storage_client.reset_client()
