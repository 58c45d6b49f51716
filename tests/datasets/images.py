"""Real image and text files for import tests, made with Pillow on the fly."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def image_bytes(
    width: int = 32,
    height: int = 24,
    *,
    fmt: str = "PNG",
    color: tuple[int, int, int] = (200, 30, 30),
    orientation: int | None = None,
) -> bytes:
    """Encode a small solid-colour image; `orientation` sets the EXIF Orientation tag."""
    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), color)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, format=fmt, exif=exif.tobytes())
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
