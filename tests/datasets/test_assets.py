"""Asset inspection and storage: sniffing, verification and limits on real files."""

from __future__ import annotations

import hashlib

import pytest

from datasets.errors import FileRejected
from datasets.models import Asset
from datasets.services.assets import asset_inspect, asset_store
from storage.services import blob_exists, blob_open
from tests.datasets.images import image_bytes, write


def test_png_is_sniffed_hashed_and_measured(tmp_path):
    data = image_bytes(40, 30)
    path = write(tmp_path / "photo.jpg", data)  # the name lies; the bytes decide
    facts = asset_inspect(path, kind="image")
    assert facts.media_type == "image/png"
    assert (facts.width, facts.height) == (40, 30)
    assert facts.size == len(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()


def test_exif_rotation_swaps_width_and_height(tmp_path):
    path = write(tmp_path / "rotated.jpg", image_bytes(40, 30, fmt="JPEG", orientation=6))
    facts = asset_inspect(path, kind="image")
    assert facts.media_type == "image/jpeg"
    assert (facts.width, facts.height) == (30, 40)


def test_truncated_jpeg_is_rejected(tmp_path):
    data = image_bytes(200, 200, fmt="JPEG")
    path = write(tmp_path / "cut.jpg", data[: len(data) // 2])
    with pytest.raises(FileRejected, match="corrupt or truncated image"):
        asset_inspect(path, kind="image")


def test_garbage_is_not_an_image(tmp_path):
    path = write(tmp_path / "x.png", b"this is not a picture at all")
    with pytest.raises(FileRejected, match="not an image"):
        asset_inspect(path, kind="image")


def test_empty_file_is_rejected(tmp_path):
    path = write(tmp_path / "empty.png", b"")
    with pytest.raises(FileRejected, match="file is empty"):
        asset_inspect(path, kind="image")


def test_type_not_allowed(tmp_path):
    path = write(tmp_path / "a.gif", image_bytes(fmt="GIF"))
    with pytest.raises(FileRejected, match=r"type image/gif is not allowed \(allowed: image/png\)"):
        asset_inspect(path, kind="image", allowed_media_types={"image/png"})


def test_pixel_limit(tmp_path):
    path = write(tmp_path / "big.png", image_bytes(100, 100))
    with pytest.raises(FileRejected, match="100x100 = 10,000 pixels, over the limit of 9,999"):
        asset_inspect(path, kind="image", max_pixels=9_999)


def test_size_limit(tmp_path):
    path = write(tmp_path / "a.png", image_bytes())
    with pytest.raises(FileRejected, match="over the per-file limit"):
        asset_inspect(path, kind="image", max_bytes=10)


def test_text_counts_characters_not_bytes(tmp_path):
    path = write(tmp_path / "t.txt", "\ufeffשלום, Zürich 🙂".encode())
    facts = asset_inspect(path, kind="text")
    assert facts.media_type == "text/plain"
    assert facts.char_count == len("שלום, Zürich 🙂")


def test_text_that_is_not_utf8_names_the_offset(tmp_path):
    path = write(tmp_path / "latin1.txt", "caf\xe9 ok".encode("latin-1"))
    with pytest.raises(FileRejected, match="bad byte at offset 3"):
        asset_inspect(path, kind="text")


def test_binary_is_not_text(tmp_path):
    path = write(tmp_path / "b.txt", b"abc\x00def")
    with pytest.raises(FileRejected, match="NUL"):
        asset_inspect(path, kind="text")


@pytest.mark.django_db
def test_asset_store_writes_blob_then_row_once(tmp_path):
    data = image_bytes(12, 12, color=(1, 2, 3))
    path = write(tmp_path / "a.png", data)
    facts = asset_inspect(path, kind="image")
    asset = asset_store(path, facts)
    again = asset_store(path, facts)
    assert asset.pk == again.pk == facts.sha256
    assert Asset.objects.filter(sha256=facts.sha256).count() == 1
    assert blob_exists(facts.sha256)
    with blob_open(facts.sha256) as stream:
        assert stream.read() == data
