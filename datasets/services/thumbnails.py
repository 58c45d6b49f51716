"""Thumbnails of image assets and text previews, made by a job and served by presigned URL.

An image's thumbnail is a derived object, derived/thumb256/<sha256>: JPEG, or WebP when
the image has transparency, at most 256 px on its longer side, EXIF orientation applied.
Once it is stored, Asset.thumbnail_ready is set, so the item grid shows it without
asking the object store about each item. A text's preview is its first characters in
Asset.preview, for the same grid.

The import pipeline submits one job per chunk:
    thumbnails_submit(sha256s=[...])  ->  handler thumbnails_job_run, params {"sha256s": [...]}
Both are safe to repeat: only missing thumbnails and previews are made.
"""

from __future__ import annotations

import codecs
import io
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from datasets.models import Asset
from storage.errors import ObjectNotFound
from storage.keys import blob_key, derived_key, is_sha256
from storage.services import blob_open, object_exists, object_open, object_put, presign_get
from workers.models import Job
from workers.services import job_submit
from workers.types import JobContext

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
THUMBNAILS_HANDLER = "datasets.services.thumbnails.thumbnails_job_run"
THUMBNAILS_JOB_KIND = "datasets.thumbnails"
# Quality 82 JPEG / 80 WebP: artefacts invisible at 256 px, about 8-15 KB a thumbnail.
JPEG_QUALITY = 82
WEBP_QUALITY = 80
# Blobs are spooled to disk above this size while decoding (Pillow needs to seek), so a
# 100 MB TIFF does not sit in memory twice.
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# The grid shows ~200 characters of a text; 4 bytes per character at most in UTF-8.
PREVIEW_CHARS = Asset._meta.get_field("preview").max_length or 200
PREVIEW_READ_BYTES = 4 * PREVIEW_CHARS
# Failures listed in a job's report (the count is always complete).
REPORT_MAX_FAILURES = 20
# Rows read per query: under SQLite's 999 bound parameters.
QUERY_BATCH = 900


class ThumbnailError(ValueError):
    """The blob's bytes are not an image Pillow can decode (nothing was stored)."""


@dataclass(frozen=True)
class ThumbnailResult:
    """Where the thumbnail is, and whether this call made it (False: it was there)."""

    sha256: str
    key: str
    created: bool
    width: int | None = None
    height: int | None = None
    content_type: str = ""


def thumbnail_kind(size: int = THUMBNAIL_SIZE) -> str:
    """The derived-object kind of thumbnails of this size: "thumb256"."""
    return f"thumb{size}"


def thumbnail_url(sha256: str, *, size: int = THUMBNAIL_SIZE) -> str:
    """A presigned URL of the thumbnail (signed offline: no request, no existence check).

    Check access to the item first, and that Asset.thumbnail_ready is set.
    """
    return presign_get(derived_key(thumbnail_kind(size), sha256))


def _display_mode(image: Image.Image) -> Image.Image:
    """Bring 16-bit and float greyscale down to 8 bits; leave other modes to convert()."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _render(source: IO[bytes], size: int) -> tuple[bytes, str, int, int]:
    """Decode `source` and encode its thumbnail: (bytes, content type, width, height)."""
    with warnings.catch_warnings():
        # Imports already refuse images over IMPORT_MAX_IMAGE_PIXELS; here a bomb warning
        # is not worth failing a thumbnail over.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(source) as opened:
                icc_profile = opened.info.get("icc_profile")
                # JPEG only (a no-op otherwise): decode at 1/2, 1/4 or 1/8 scale, never
                # below `size` on either side, so a 24 Mpx photo decodes as ~0.4 Mpx.
                opened.draft(None, (size, size))
                image = ImageOps.exif_transpose(opened)
                image.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        except UnidentifiedImageError:
            raise ThumbnailError("not an image Pillow can read") from None
        except (Image.DecompressionBombError, OSError, SyntaxError, EOFError) as exc:
            raise ThumbnailError(f"cannot decode the image: {exc}") from None
    image = _display_mode(image)
    out = io.BytesIO()  # a 256 px thumbnail is tens of KB
    extra: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
    if _has_alpha(image):
        image.convert("RGBA").save(out, "WEBP", quality=WEBP_QUALITY, method=4, **extra)
        content_type = "image/webp"
    else:
        image.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, **extra)
        content_type = "image/jpeg"
    return out.getvalue(), content_type, image.width, image.height


def thumbnail_ensure(sha256: str, *, size: int = THUMBNAIL_SIZE) -> ThumbnailResult:
    """Make sure the thumbnail of blob `sha256` is stored at derived/thumb<size>/<sha256>.

    Does only missing work: when the thumbnail is stored, nothing is read or written
    (one HEAD request). Otherwise reads the blob (spooled to disk above 8 MB), decodes it
    (JPEG in draft mode, at a reduced scale), applies the EXIF orientation, fits it in
    size x size and writes it once (write-once object: a concurrent maker is harmless).
    Then, for the grid size (256), marks Asset.thumbnail_ready, object first, row last.
    Raises ThumbnailError (a ValueError) when the bytes are not a decodable image;
    ObjectNotFound when the blob is not stored; StorageUnavailable when the store cannot
    be used (transient: a job retries it); ValueError on a malformed hash.
    """
    key = derived_key(thumbnail_kind(size), sha256)
    if object_exists(key):
        created = False
        result = ThumbnailResult(sha256=sha256, key=key, created=False)
    else:
        with (
            blob_open(sha256) as blob,
            tempfile.SpooledTemporaryFile(
                max_size=SPOOL_MAX_MEMORY, dir=settings.FILE_UPLOAD_TEMP_DIR
            ) as spool,
        ):
            shutil.copyfileobj(blob, spool, 1024 * 1024)
            spool.seek(0)
            data, content_type, width, height = _render(spool, size)
        put = object_put(key, data, content_type=content_type)
        created = put.created
        result = ThumbnailResult(
            sha256=sha256,
            key=key,
            created=created,
            width=width,
            height=height,
            content_type=content_type,
        )
    if size == THUMBNAIL_SIZE:
        Asset.objects.filter(sha256=sha256, thumbnail_ready=False).update(thumbnail_ready=True)
    return result


def _preview_text(head: bytes) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # final=False: a character cut by the read limit is dropped, not shown as garbage.
    text = decoder.decode(head, final=False).removeprefix("\ufeff")
    return " ".join(text.split())[:PREVIEW_CHARS]


def preview_ensure(sha256: str) -> str:
    """Make sure a text asset has its preview (first ~200 characters, whitespace
    collapsed) in Asset.preview; return it.

    Reads at most PREVIEW_READ_BYTES of the blob, only when the preview is empty.
    Raises ObjectNotFound / StorageUnavailable like the storage reads do.
    """
    current = Asset.objects.filter(sha256=sha256).values_list("preview", flat=True).first()
    if current:
        return current
    with object_open(blob_key(sha256), length=PREVIEW_READ_BYTES) as blob:
        preview = _preview_text(blob.read(PREVIEW_READ_BYTES))
    Asset.objects.filter(sha256=sha256, preview="").update(preview=preview)
    return preview


@dataclass(frozen=True)
class TextHead:
    text: str
    truncated: bool


def text_read_head(sha256: str, *, max_bytes: int) -> TextHead:
    """The start of a text blob, up to `max_bytes` (for the item page), and whether more
    follows. Raises ObjectNotFound / StorageUnavailable like the storage reads do."""
    with object_open(blob_key(sha256), length=max_bytes + 1) as blob:
        data = blob.read(max_bytes + 1)
    truncated = len(data) > max_bytes
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data[:max_bytes], final=not truncated).removeprefix("\ufeff")
    return TextHead(text=text, truncated=truncated)


def _assets(sha256s: list[str]) -> dict[str, tuple[str, bool, str]]:
    found: dict[str, tuple[str, bool, str]] = {}
    for start in range(0, len(sha256s), QUERY_BATCH):
        rows = Asset.objects.filter(sha256__in=sha256s[start : start + QUERY_BATCH]).values_list(
            "sha256", "media_type", "thumbnail_ready", "preview"
        )
        for sha256, media_type, ready, preview in rows:
            found[sha256] = (media_type, ready, preview)
    return found


def _needs_work(media_type: str, ready: bool, preview: str) -> bool:
    if media_type.startswith("image/"):
        return not ready
    return media_type.startswith("text/") and not preview


def thumbnails_submit(*, sha256s: Iterable[str], created_by: Any = None) -> Job | None:
    """Submit one job making the missing thumbnails (images) and previews (texts) of
    these assets; return it, or None when nothing is missing.

    One query to leave out what is done; the job is sent after the caller's transaction
    commits (job_submit). Raises ValueError on a malformed hash.
    """
    wanted = sorted(set(sha256s))
    for sha256 in wanted:
        if not is_sha256(sha256):
            raise ValueError(f"invalid sha256: {sha256!r}")
    assets = _assets(wanted)
    missing = [sha for sha in wanted if sha in assets and _needs_work(*assets[sha])]
    if not missing:
        return None
    return job_submit(
        kind=THUMBNAILS_JOB_KIND,
        handler=THUMBNAILS_HANDLER,
        params={"sha256s": missing},
        created_by=created_by,
        total=len(missing),
        # Nobody waits on a thumbnail the way they wait on an import: on Redis, every
        # import chunk queued goes first.
        priority=Job.Priority.BACKGROUND,
    )


def thumbnails_job_run(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"sha256s": [...]}. Make the missing thumbnails of the image
    assets among them and the missing previews of the text assets.

    Safe to run twice: assets already done are skipped without touching the store, and
    thumbnail_ensure is idempotent. A file that cannot be decoded is counted in the
    report ("failed", with the first reasons), not retried; StorageUnavailable
    propagates so the job is retried with backoff. Stops early when cancelled.
    """
    sha256s = ctx.params.get("sha256s")
    if not isinstance(sha256s, list) or not all(is_sha256(s) for s in sha256s):
        raise ValueError('params must be {"sha256s": [<sha256 hex>, ...]}')
    wanted = sorted(set(sha256s))
    assets = _assets(wanted)
    counts = {"thumbnails": 0, "previews": 0, "already_done": 0, "missing": 0, "failed": 0}
    failures: list[dict[str, str]] = []
    ctx.progress(0, total=len(wanted))
    for done, sha256 in enumerate(wanted, start=1):
        if ctx.should_stop():
            break
        info = assets.get(sha256)
        if info is None:
            counts["missing"] += 1  # no Asset row (yet): nothing to show it on
        elif not _needs_work(*info):
            counts["already_done"] += 1
        else:
            try:
                if info[0].startswith("image/"):
                    made = thumbnail_ensure(sha256)
                    counts["thumbnails" if made.created else "already_done"] += 1
                else:
                    preview_ensure(sha256)
                    counts["previews"] += 1
            except (ThumbnailError, ObjectNotFound) as exc:
                counts["failed"] += 1
                logger.warning("no thumbnail/preview for %s: %s", sha256, exc)
                if len(failures) < REPORT_MAX_FAILURES:
                    failures.append({"sha256": sha256, "error": str(exc)})
        ctx.progress(done)
    report: dict[str, Any] = dict(counts)
    if failures:
        report["failures"] = failures
    return report
