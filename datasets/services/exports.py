"""Export a version in a training format (datasets.formats): built by a worker from the
version's stored manifest, stored under exports/<version id>/<format>/<options hash>,
downloaded through a presigned URL.

Guarantees:
- an export is of a version, never of live tables: the same (version, format, options)
  gives the same bytes, so it is built once and cached (the Export row is unique on
  them; asking again returns the same row and file);
- memory does not grow with the version: the manifest is streamed, asset sizes are
  looked up a batch at a time, the output goes to a temporary file;
- the object is written before the row says done; a build that runs twice writes the
  same bytes to the same key (write-once);
- a bad request (unknown format, bad option, a format that does not fit the dataset)
  raises InvalidExport naming the field and stores nothing.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets.diff import manifest_item_lines
from datasets.formats import export_format, export_format_names
from datasets.formats.base import (
    DIMENSIONS_BATCH,
    SPLITS,
    ExportContext,
    ExportFormat,
    ExportOptions,
    InvalidExport,
    export_file_name,
    export_options_check,
    options_hash,
)
from datasets.models import Asset, Dataset, Export, Version
from datasets.secrets import credentials_decrypt, credentials_encrypt
from datasets.services.versions import (
    SnapshotRequest,
    manifest_stream,
    snapshot_request_check,
    version_snapshot,
)
from storage.keys import blob_key, export_key
from storage.services import blob_open, object_put, presign_get
from workers.models import Job
from workers.services import is_transient, job_submit
from workers.types import JobContext

EXPORT_JOB_KIND = "version_export"
EXPORT_HANDLER = "datasets.services.exports.export_build_job"
DATASET_EXPORT_JOB_KIND = "dataset_export"
DATASET_EXPORT_HANDLER = "datasets.services.exports.dataset_export_job"
# Progress is reported every this many items (the row is written at most once a second).
PROGRESS_EVERY = 1_000


# --- what an export reads -------------------------------------------------------------


class ManifestSource:
    """The rows of a version's stored manifest for an export (datasets.formats.base:
    manifest item + width/height + file_name, selected splits only) and its files."""

    def __init__(
        self,
        version: Version,
        options: ExportOptions,
        *,
        kind: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.version = version
        self.splits = None if set(options.splits) == set(SPLITS) else set(options.splits)
        self.images = kind == "image"
        self.progress = progress

    def rows(self) -> Iterator[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        seen = 0
        splits = self.splits
        for line in manifest_item_lines(manifest_stream(self.version)):
            seen += 1
            if self.progress is not None and seen % PROGRESS_EVERY == 0:
                self.progress(seen)
            row = json.loads(line)
            if splits is not None and row["split"] not in splits:
                continue
            batch.append(row)
            if len(batch) >= DIMENSIONS_BATCH:
                yield from self._complete(batch)
                batch = []
        if batch:
            yield from self._complete(batch)
        if self.progress is not None:
            self.progress(seen)

    def _complete(self, batch: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        sizes: dict[str, tuple[int | None, int | None]] = {}
        if self.images:
            sizes = {
                sha256: (width, height)
                for sha256, width, height in Asset.objects.filter(
                    sha256__in={row["sha256"] for row in batch}
                ).values_list("sha256", "width", "height")
            }
        for row in batch:
            row["width"], row["height"] = sizes.get(row["sha256"], (None, None))
            row["file_name"] = export_file_name(
                row["external_id"], row["sha256"], row["media_type"]
            )
            yield row

    def content(self, sha256: str) -> bytes:
        with blob_open(sha256) as stream:
            return stream.read()


# --- building -------------------------------------------------------------------------


def export_format_for(name: Any, dataset: Dataset) -> ExportFormat:
    """The export format named `name` if it fits the dataset; InvalidExport otherwise."""
    fmt = export_format(name) if isinstance(name, str) else None
    if fmt is None:
        raise InvalidExport(
            f"Unknown export format {name!r}; formats are {', '.join(export_format_names())}.",
            field="format",
        )
    if dataset.kind not in fmt.kinds:
        fits = " or ".join(sorted(fmt.kinds))
        raise InvalidExport(
            f"{fmt.title} exports {fits} datasets; this dataset holds {dataset.kind}s.",
            field="format",
        )
    return fmt


def export_options_for(
    fmt: ExportFormat, raw: Any, *, dataset: Dataset | None = None
) -> tuple[ExportOptions, str]:
    """Check the options of one format: the common ones and the format's own. Returns the
    options and the format's secret ("" if none). Raises InvalidExport naming the field."""
    extra_keys: tuple[str, ...] = tuple(getattr(fmt, "extra_options", ()))
    options = export_options_check(raw, extra_keys=extra_keys)
    if not extra_keys:
        return options, ""
    raw = raw or {}
    extra, secret = fmt.extra_options_check({k: raw[k] for k in extra_keys if k in raw})  # type: ignore[attr-defined]
    return replace(options, extra=extra), secret


def export_build(
    *,
    version: Version,
    fmt: ExportFormat,
    options: ExportOptions,
    out: IO[bytes],
    secret: str = "",
    url_base: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportContext:
    """Write the export of `version` to `out` (a seekable binary file); return the context,
    whose counts say what it holds. Reads the stored manifest; writes nothing else."""
    dataset = version.dataset
    ctx = ExportContext(
        version_id=version.pk,
        dataset_id=dataset.pk,
        dataset_kind=dataset.kind,
        code_commit=version.code_commit,
        code_repo=version.code_repo,
        fmt=fmt.name,
        options=options,
        class_counts=version.class_counts,
        source=ManifestSource(version, options, kind=dataset.kind, progress=progress),
        url_base=url_base if url_base is not None else settings.PUBLIC_URL,
        secret=secret,
    )
    fmt.write(ctx, out)
    return ctx


def export_request(
    *, version: Version, fmt: Any, options: Any, created_by: Any, submit: bool = True
) -> tuple[Export, bool]:
    """Ask for an export of the version; return (export, building) where building says it
    is to be built now (a job was submitted, unless `submit` is false: the caller builds
    it). The same (version, format, options) returns the cached row: done (download it),
    queued or running (follow its job); a failed one is queued again. Transactional;
    raises InvalidExport naming the field, and nothing is stored then."""
    dataset = version.dataset
    export_fmt = export_format_for(fmt, dataset)
    checked, secret = export_options_for(export_fmt, options, dataset=dataset)
    cached = getattr(export_fmt, "cached", True)
    if cached:
        key_hash = options_hash(export_fmt.name, checked, url_base=settings.PUBLIC_URL)
    else:
        # A write to a database is an action, not a file: every request is its own row.
        key_hash = secrets.token_hex(16)
    with transaction.atomic(durable=True):
        try:
            with transaction.atomic():
                export, created = Export.objects.select_for_update().get_or_create(
                    version=version,
                    format=export_fmt.name,
                    options_hash=key_hash,
                    defaults={
                        "options": checked.as_dict(),
                        "created_by": created_by,
                        "secret": credentials_encrypt({"secret": secret}) if secret else "",
                    },
                )
        except IntegrityError:  # asked for at the same moment by someone else
            return Export.objects.get(
                version=version, format=export_fmt.name, options_hash=key_hash
            ), False
        if not created and not _needs_build(export):
            return export, False
        job = None
        if submit:
            job = job_submit(
                kind=EXPORT_JOB_KIND,
                handler=EXPORT_HANDLER,
                params={"export_id": export.pk},
                created_by=created_by,
            )
        Export.objects.filter(pk=export.pk).update(
            state=Export.State.QUEUED, job=job, error="", finished_at=None
        )
        export.refresh_from_db()
    return export, True


def _needs_build(export: Export) -> bool:
    """A failed export, or one whose job ended without finishing it (cancelled, failed
    past its retries, or a dataset export's job that died), is built again."""
    if export.state == Export.State.DONE:
        return False
    if export.state == Export.State.FAILED:
        return True
    job_state = (
        Job.objects.filter(pk=export.job_id).values_list("state", flat=True).first()
        if export.job_id
        else None
    )
    return job_state in (None, Job.State.FAILED, Job.State.CANCELLED, Job.State.SUCCEEDED)


def export_build_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"export_id"}. Builds the file, stores it, marks the row done.
    Safe to run twice (the key is fixed by the version and options; write-once)."""
    export = Export.objects.select_related("version__dataset").get(pk=ctx.params["export_id"])
    if export.state == Export.State.DONE:
        return {"export": export.pk, "skipped": "already built"}
    Export.objects.filter(pk=export.pk).update(state=Export.State.RUNNING)
    version = export.version
    fmt = export_format_for(export.format, version.dataset)
    try:
        options, _ = export_options_for(fmt, export.options)
        secret = credentials_decrypt(export.secret).get("secret", "") if export.secret else ""
        total = version.item_count or None
        with tempfile.TemporaryFile() as out:
            built = export_build(
                version=version,
                fmt=fmt,
                options=options,
                out=out,
                secret=secret,
                progress=lambda done: ctx.progress(done, total),
            )
            size = out.tell()
            key, sha256 = "", ""
            if size:
                out.seek(0)
                key = export_key(version.pk, fmt.name, export.options_hash)
                put = object_put(key, out, size=size, content_type=fmt.content_type)
                sha256 = put.sha256
    except Exception as exc:
        if not is_transient(exc):
            Export.objects.filter(pk=export.pk).update(
                state=Export.State.FAILED,
                error=str(exc)[:2000] or type(exc).__name__,
                finished_at=timezone.now(),
                secret="",
            )
        raise
    counts = built.counts.as_dict()
    Export.objects.filter(pk=export.pk).update(
        state=Export.State.DONE,
        key=key,
        size=size,
        sha256=sha256,
        counts=counts,
        error="",
        secret="",
        finished_at=timezone.now(),
    )
    return {"export": export.pk, "size": size, **counts}


def export_download_name(export: Export) -> str:
    fmt = export_format(export.format)
    ext = fmt.extension if fmt is not None else "zip"
    return f"{export.version.dataset.name[:60]}-{export.version_id[:12]}-{export.format}.{ext}"


def export_download_url(export: Export) -> str | None:
    """A presigned URL of the built file (None until it is built, or for a database
    export, which has no file)."""
    if export.state != Export.State.DONE or not export.key:
        return None
    fmt = export_format(export.format)
    return presign_get(
        export.key,
        filename=export_download_name(export),
        content_type=fmt.content_type if fmt is not None else None,
    )


def asset_url(sha256: str, *, media_type: str) -> str:
    """A presigned URL of one asset (what an export's stable item URL redirects to)."""
    return presign_get(blob_key(sha256), content_type=media_type)


# --- exporting a dataset's current state -------------------------------------------------


def dataset_export_submit(
    *, dataset: Dataset, fmt: Any, options: Any, request: SnapshotRequest, created_by: Any
) -> Job:
    """Export the dataset as it is now: a job snapshots it (a version, or the latest one
    when nothing changed), then asks for the export of that version. The format and
    options are checked now (InvalidExport), so a bad request submits nothing."""
    export_fmt = export_format_for(fmt, dataset)
    export_options_for(export_fmt, options, dataset=dataset)
    return job_submit(
        kind=DATASET_EXPORT_JOB_KIND,
        handler=DATASET_EXPORT_HANDLER,
        params={
            "dataset_id": dataset.pk,
            "format": export_fmt.name,
            "options": options or {},
            "code_commit": request.code_commit,
            "code_repo": request.code_repo,
            "message": request.message,
            "created_by": created_by.pk,
        },
        created_by=created_by,
    )


def dataset_export_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: snapshot, then build the export in this same job (the progress bar
    follows one job). Report {"version", "export"}."""
    from django.contrib.auth import get_user_model

    params = ctx.params
    dataset = Dataset.objects.get(pk=params["dataset_id"])
    request = snapshot_request_check(
        code_commit=params["code_commit"],
        code_repo=params.get("code_repo", ""),
        message=params.get("message", ""),
    )
    version, _ = version_snapshot(
        dataset=dataset, request=request, created_by_id=params["created_by"]
    )
    user = get_user_model().objects.get(pk=params["created_by"])
    export, building = export_request(
        version=version,
        fmt=params["format"],
        options=params["options"],
        created_by=user,
        submit=False,
    )
    if building:
        # Built here, so the progress bar follows one job.
        export_build_job(_SubContext(ctx, {"export_id": export.pk}))  # type: ignore[arg-type]
    return {"version": version.pk, "export": export.pk}


class _SubContext:
    """A JobContext for a handler run inside another job: same progress, other params."""

    def __init__(self, ctx: JobContext, params: dict[str, Any]) -> None:
        self._ctx = ctx
        self.params = params

    def progress(self, done: int, total: int | None = None) -> None:
        self._ctx.progress(done, total)
