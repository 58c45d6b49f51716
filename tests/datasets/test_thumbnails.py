"""Thumbnails and text previews against the session's live SeaweedFS, and their job."""

from __future__ import annotations

import io

import pytest
from PIL import Image, JpegImagePlugin

from datasets.models import Asset
from datasets.services import thumbnails
from datasets.services.thumbnails import (
    THUMBNAILS_HANDLER,
    ThumbnailError,
    preview_ensure,
    text_read_head,
    thumbnail_ensure,
    thumbnail_url,
    thumbnails_submit,
)
from storage.keys import derived_key
from storage.services import blob_put_bytes, object_exists, object_open, object_stat
from tests.datasets.images import image_bytes
from workers.models import Job
from workers.services import job_run

pytestmark = pytest.mark.django_db

RED, BLUE = (220, 20, 20), (20, 40, 220)


def two_colour_jpeg(width: int, height: int, *, orientation: int | None = None) -> bytes:
    """Stored pixels: top half red, bottom half blue; optional EXIF Orientation."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width, height // 2))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def store(data: bytes, media_type: str = "image/jpeg", **fields) -> Asset:
    put = blob_put_bytes(data, content_type=media_type)
    asset, _ = Asset.objects.get_or_create(
        sha256=put.sha256, defaults={"size": len(data), "media_type": media_type, **fields}
    )
    return asset


def read_image(key: str) -> Image.Image:
    with object_open(key) as stream:
        image = Image.open(io.BytesIO(stream.read()))
        image.load()
    return image


def near(pixel, colour, tolerance=40):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def test_jpeg_with_exif_orientation_is_upright_and_fits_256():
    # 600x400 stored, Orientation 6: shown rotated 90° clockwise, 400 wide and 600 high.
    asset = store(two_colour_jpeg(600, 400, orientation=6))

    result = thumbnail_ensure(asset.sha256)

    assert result.created and result.key == derived_key("thumb256", asset.sha256)
    assert (result.width, result.height) == (171, 256)
    thumb = read_image(result.key)
    assert thumb.format == "JPEG" and thumb.size == (171, 256)
    # The stored top row is the picture's right-hand side once oriented.
    assert near(thumb.getpixel((160, 128)), RED) and near(thumb.getpixel((10, 128)), BLUE)
    assert thumb.getexif().get(0x0112) is None
    assert object_stat(result.key).content_type == "image/jpeg"
    asset.refresh_from_db()
    assert asset.thumbnail_ready


def test_draft_mode_decodes_a_big_jpeg_at_reduced_scale(monkeypatch):
    # 2400x1600 holds 256x256 six times on its short side: libjpeg decodes at 1/4.
    asset = store(two_colour_jpeg(2400, 1600))
    sizes = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def spy(self):
        sizes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    result = thumbnail_ensure(asset.sha256)
    assert (result.width, result.height) == (256, 171)
    assert sizes[0] == (600, 400)
    assert read_image(result.key).size == (256, 171)


def test_second_call_reads_and_writes_nothing(monkeypatch):
    asset = store(two_colour_jpeg(300, 200))
    first = thumbnail_ensure(asset.sha256)
    before = object_stat(first.key)

    def forbidden(*args, **kwargs):
        raise AssertionError("no blob read or object write expected")

    monkeypatch.setattr(thumbnails, "blob_open", forbidden)
    monkeypatch.setattr(thumbnails, "object_put", forbidden)
    Asset.objects.filter(pk=asset.pk).update(thumbnail_ready=False)  # marker lost

    again = thumbnail_ensure(asset.sha256)

    assert not again.created and again.key == first.key
    after = object_stat(first.key)
    assert (after.etag, after.last_modified) == (before.etag, before.last_modified)
    asset.refresh_from_db()
    assert asset.thumbnail_ready  # the marker is repaired without remaking anything


def test_transparent_png_becomes_webp_and_small_images_are_not_enlarged():
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 30), (0, 200, 0, 100)).save(buffer, "PNG")
    asset = store(buffer.getvalue(), "image/png")
    result = thumbnail_ensure(asset.sha256)
    thumb = read_image(result.key)
    assert result.content_type == "image/webp" and thumb.format == "WEBP"
    assert thumb.size == (40, 30) and thumb.mode == "RGBA"


def test_bytes_that_are_not_an_image_store_nothing():
    asset = store(b"definitely not pixels", "image/png")
    with pytest.raises(ThumbnailError, match="not an image"):
        thumbnail_ensure(asset.sha256)
    assert not object_exists(derived_key("thumb256", asset.sha256))
    asset.refresh_from_db()
    assert not asset.thumbnail_ready


def test_thumbnail_url_is_a_presigned_get_of_the_derived_object():
    asset = store(two_colour_jpeg(64, 64))
    thumbnail_ensure(asset.sha256)
    import requests

    response = requests.get(thumbnail_url(asset.sha256), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (64, 64)


def test_text_preview_is_the_first_characters_with_whitespace_collapsed():
    text = "\ufeffLe  café\n\nest   ouvert. " + "é" * 400
    asset = store(text.encode(), "text/plain", char_count=len(text) - 1)
    preview = preview_ensure(asset.sha256)
    assert preview.startswith("Le café est ouvert. éé")
    assert len(preview) == 200 and "\ufffd" not in preview
    asset.refresh_from_db()
    assert asset.preview == preview

    head = text_read_head(asset.sha256, max_bytes=11)
    assert head.truncated and head.text == "Le  caf"  # BOM dropped, the cut "é" too


def test_the_job_makes_what_is_missing_and_reports(django_user_model):
    user = django_user_model.objects.create_user(username="thumbs")
    done = store(two_colour_jpeg(80, 60))
    thumbnail_ensure(done.sha256)
    fresh = store(image_bytes(50, 40))
    broken = store(b"not a png", "image/png")
    text = store(b"hello   world", "text/plain", char_count=13)

    assert thumbnails_submit(sha256s=[done.sha256]) is None  # nothing missing: no job
    job = thumbnails_submit(
        sha256s=[done.sha256, fresh.sha256, broken.sha256, text.sha256], created_by=user
    )
    assert job.handler == THUMBNAILS_HANDLER == "datasets.services.thumbnails.thumbnails_job_run"
    assert sorted(job.params["sha256s"]) == sorted([fresh.sha256, broken.sha256, text.sha256])
    assert job.progress_total == 3

    assert job_run(job.id).outcome == "succeeded"  # the handler, in this process
    job = Job.objects.get(pk=job.id)
    assert job.progress_done == 3
    report = job.report
    assert (report["thumbnails"], report["previews"], report["failed"]) == (1, 1, 1)
    assert report["failures"][0]["sha256"] == broken.sha256
    assert Asset.objects.get(pk=fresh.pk).thumbnail_ready
    assert Asset.objects.get(pk=text.pk).preview == "hello world"

    # Run twice: everything already done, nothing remade.
    again = Job.objects.create(
        kind="datasets.thumbnails",
        handler=THUMBNAILS_HANDLER,
        params={"sha256s": [done.sha256, fresh.sha256, text.sha256, "0" * 64]},
    )
    assert job_run(again.id).outcome == "succeeded"
    report = Job.objects.get(pk=again.id).report
    assert (report["already_done"], report["missing"], report["thumbnails"]) == (3, 1, 0)


def test_the_job_refuses_malformed_params():
    job = Job.objects.create(
        kind="datasets.thumbnails", handler=THUMBNAILS_HANDLER, params={"sha256s": ["../etc"]}
    )
    assert job_run(job.id).outcome == "failed"
    assert "sha256s" in Job.objects.get(pk=job.id).error
