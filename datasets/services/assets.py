"""Inspect a file on local disk and store it as an Asset: one row and one blob per SHA-256.

The bytes decide everything: the media type is sniffed (Pillow for images, a strict UTF-8
decode for text), never taken from a name or an HTTP header, and an image is decoded in
full so that a truncated or corrupt file is refused before anything is stored.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import warnings
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from datasets.errors import FileRejected
from datasets.models import Asset, Dataset
from datasets.types import AssetFacts
from storage.services import blob_put_stream

# Read size for hashing and decoding: few system calls, no memory worth counting.
CHUNK_SIZE = 1024 * 1024
# EXIF Orientation values 5-8 rotate the picture by 90 degrees: width and height swap.
EXIF_ORIENTATION = 0x0112
ROTATED_ORIENTATIONS = {5, 6, 7, 8}
TEXT_MEDIA_TYPE = "text/plain"


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


# What is inspected and stored: a local file, or the bytes of a small one already read.
Content = Path | bytes


def _open(content: Content) -> BinaryIO:
    return io.BytesIO(content) if isinstance(content, bytes) else open(content, "rb")  # noqa: SIM115


def _size(content: Content) -> int:
    return len(content) if isinstance(content, bytes) else content.stat().st_size


def file_sha256(path: Content) -> str:
    digest = hashlib.sha256()
    with _open(path) as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _inspect_image(
    path: Content, *, allowed_media_types: Collection[str], max_pixels: int
) -> tuple[str, int, int]:
    """Return (media type, width, height) after EXIF orientation, or raise FileRejected."""
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse outright.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with _open(path) as fh, Image.open(fh) as image:
                fmt = image.format or ""
                media_type = Image.MIME.get(fmt.upper(), "")
                if media_type not in allowed_media_types:
                    shown = media_type or f"{fmt or 'unknown'} image"
                    raise FileRejected(
                        f"type {shown} is not allowed (allowed: {', '.join(sorted(allowed_media_types))})"
                    )
                width, height = image.size
                if width * height > max_pixels:
                    raise FileRejected(
                        f"image is {width}x{height} = {width * height:,} pixels, over the "
                        f"limit of {max_pixels:,}"
                    )
                image.verify()  # header and structure, without decoding
            # verify() leaves the image unusable: reopen for the full decode, which is what
            # catches truncated and corrupt pixel data.
            with _open(path) as fh, Image.open(fh) as image:
                image.load()
                orientation = image.getexif().get(EXIF_ORIENTATION)
        except FileRejected:
            raise
        except UnidentifiedImageError:
            raise FileRejected("not an image Pillow can read") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise FileRejected(f"image too large: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise FileRejected(f"corrupt or truncated image: {exc}") from None
    if orientation in ROTATED_ORIENTATIONS:
        width, height = height, width
    return media_type, width, height


def _inspect_text(path: Content) -> int:
    """Return the number of characters of a UTF-8 text file, or raise FileRejected."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    chars = 0
    offset = 0
    with _open(path) as fh:
        while chunk := fh.read(CHUNK_SIZE):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise FileRejected(
                    f"not valid UTF-8 text (bad byte at offset {offset + exc.start})"
                ) from None
            if "\x00" in text:
                raise FileRejected("not a text file (contains NUL characters)")
            chars += len(text)
            offset += len(chunk)
        try:
            chars += len(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise FileRejected("not valid UTF-8 text (ends inside a character)") from None
    if chars and _first_char(path) == "\ufeff":
        chars -= 1  # a byte order mark is not content
    return chars


def _first_char(path: Content) -> str:
    with _open(path) as fh:
        return fh.read(3).decode("utf-8", errors="ignore")[:1]


def asset_inspect(
    path: Content,
    *,
    kind: str,
    max_bytes: int | None = None,
    allowed_media_types: Collection[str] | None = None,
    max_pixels: int | None = None,
    sha256: str | None = None,
) -> AssetFacts:
    """Establish a local file's hash, size, real media type and dimensions (`path` may
    also be the bytes of a small file already read).

    Reads the file (twice for images: hash, then a full decode) with bounded memory;
    a caller that already hashed it passes `sha256` to skip that pass.
    Raises FileRejected with a reason a person can act on: empty, over the size limit,
    a type not allowed, over the pixel limit, corrupt/truncated, or not UTF-8 text.
    """
    max_bytes = settings.IMPORT_MAX_FILE_BYTES if max_bytes is None else max_bytes
    size = _size(path)
    if size == 0:
        raise FileRejected("file is empty")
    if size > max_bytes:
        raise FileRejected(f"file is {_mb(size)}, over the per-file limit of {_mb(max_bytes)}")
    if kind == Dataset.Kind.IMAGE:
        media_type, width, height = _inspect_image(
            path,
            allowed_media_types=(
                settings.IMPORT_IMAGE_TYPES if allowed_media_types is None else allowed_media_types
            ),
            max_pixels=settings.IMPORT_MAX_IMAGE_PIXELS if max_pixels is None else max_pixels,
        )
        return AssetFacts(
            sha256=sha256 or file_sha256(path),
            size=size,
            media_type=media_type,
            width=width,
            height=height,
        )
    if kind == Dataset.Kind.TEXT:
        chars = _inspect_text(path)
        return AssetFacts(
            sha256=sha256 or file_sha256(path),
            size=size,
            media_type=TEXT_MEDIA_TYPE,
            char_count=chars,
        )
    raise ValueError(f"unknown dataset kind {kind!r}")


def asset_blob_put(path: Content, facts: AssetFacts, *, known_missing: bool = False) -> None:
    """Store the file's bytes under its hash, verified against `facts` while they go up.

    `known_missing`: the caller found no Asset row for the hash, so the blob is almost
    surely absent and the existence check (a HEAD request) is skipped; a blob that did
    exist gets the same bytes again. Raises storage errors (StorageUnavailable is
    transient: the job is retried).
    """
    with _open(path) as fh:
        blob_put_stream(
            fh,
            content_type=facts.media_type,
            size=facts.size,
            sha256=facts.sha256,
            check_existing=not known_missing,
        )


def assets_record(facts: Iterable[AssetFacts]) -> None:
    """Insert the Asset rows of blobs already stored, in one statement.

    A row that exists (the same content stored meanwhile by another import) is kept
    as it is: what it says was established from the same bytes.
    """
    Asset.objects.bulk_create(
        [
            Asset(
                sha256=f.sha256,
                size=f.size,
                media_type=f.media_type,
                width=f.width,
                height=f.height,
                char_count=f.char_count,
            )
            for f in facts
        ],
        ignore_conflicts=True,
    )


def asset_store(path: Path, facts: AssetFacts) -> Asset:
    """Store the file's bytes under its hash, then record the Asset row.

    Idempotent: an existing blob is not written again and an existing row is returned
    as it is. The object is written before the row, so a row always has its bytes.
    Raises storage errors (StorageUnavailable is transient: the job is retried).
    """
    asset_blob_put(path, facts)
    assets_record([facts])
    return Asset.objects.get(pk=facts.sha256)
