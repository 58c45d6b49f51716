"""Snapshot a dataset into a version: stream its items and published labels in one
consistent database snapshot through the canonical manifest (datasets.manifest), store
the manifest gzipped in object storage, then record the Version row.

Guarantees:
- the manifest reflects one moment: on PostgreSQL the items are read in a REPEATABLE
  READ transaction (SQLite reads one transaction's snapshot anyway);
- memory does not grow with the dataset: items go through in batches read from one
  server-side cursor, the gzip is written to a temporary file;
- the same content gives the same id, and a snapshot of a dataset unchanged since its
  latest version (same items, labels and code commit) returns that version;
- the object is written before the row, and a version is never changed afterwards.
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count

from datasets.checks import Checker, checks_config_check
from datasets.diff import manifest_item_lines
from datasets.errors import DatasetError
from datasets.manifest import (
    DEFAULT_SPLIT_SEED,
    Digest,
    canonical_line,
    code_commit_check,
    header,
    item_line,
)
from datasets.models import Dataset, Item, ItemTag, Label, Version, VersionTag
from storage.keys import manifest_key
from storage.services import object_open, object_put
from workers.models import Job
from workers.services import job_submit
from workers.types import JobContext

SNAPSHOT_JOB_KIND = "version_snapshot"
SNAPSHOT_HANDLER = "datasets.services.versions.version_snapshot_job"
# Items per query of the stream: a few MB of rows at most, whatever the dataset's size.
BATCH = 5_000
# Only the uncompressed canonical bytes are hashed: the gzip level changes the stored
# object's size, never a version id. Level 1 is several times faster than the default 6
# and still deterministic.
GZIP_LEVEL = 1
CODE_REPO_MAX = 500
MANIFEST_EXT = "jsonl.gz"


class InvalidSnapshot(DatasetError):
    code = "invalid_snapshot"


@dataclass(frozen=True)
class SnapshotRequest:
    code_commit: str
    code_repo: str
    message: str


def snapshot_request_check(
    *, code_commit: Any, code_repo: Any = "", message: Any = ""
) -> SnapshotRequest:
    """Validate what a snapshot needs from its caller; InvalidSnapshot naming the field."""
    try:
        commit = code_commit_check(code_commit)
    except ValueError as exc:
        raise InvalidSnapshot(str(exc), field="code_commit") from None
    if not isinstance(code_repo, str) or len(code_repo) > CODE_REPO_MAX:
        raise InvalidSnapshot(
            f"code_repo is the repository URL, at most {CODE_REPO_MAX} characters.",
            field="code_repo",
        )
    if not isinstance(message, str):
        raise InvalidSnapshot("message must be text.", field="message")
    return SnapshotRequest(code_commit=commit, code_repo=code_repo.strip(), message=message)


def version_snapshot_submit(*, dataset: Dataset, request: SnapshotRequest, created_by: Any) -> Job:
    """Submit the job that snapshots the dataset (sent after the caller's commit)."""
    return job_submit(
        kind=SNAPSHOT_JOB_KIND,
        handler=SNAPSHOT_HANDLER,
        params={
            "dataset_id": dataset.pk,
            "code_commit": request.code_commit,
            "code_repo": request.code_repo,
            "message": request.message,
            "created_by": created_by.pk,
        },
        created_by=created_by,
    )


def version_snapshot_job(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"dataset_id", "code_commit", "code_repo", "message",
    "created_by"}. Report {"version", "created"}. Safe to run twice (content-addressed)."""
    params = ctx.params
    dataset = Dataset.objects.get(pk=params["dataset_id"])
    request = snapshot_request_check(
        code_commit=params["code_commit"],
        code_repo=params.get("code_repo", ""),
        message=params.get("message", ""),
    )
    version, created = version_snapshot(
        dataset=dataset,
        request=request,
        created_by_id=params["created_by"],
        progress=lambda done: ctx.progress(done, dataset.item_count or None),
    )
    # The analytics copy, after the version exists (its id is the JSONL's hash); imported
    # here because datasets.services.parquet reads manifests through this module.
    from datasets.services.parquet import version_parquet_write

    version_parquet_write(version)
    return {"version": version.pk, "created": created, "items": version.item_count}


def _assets_in_two_splits(dataset: Dataset) -> list[str]:
    """Assets of the dataset under items of different explicit splits (an item without a
    split gets one from its asset's hash, so the same asset always lands in the same
    split). One item per asset per dataset is a database constraint, so this is a check
    of that guarantee, at the cost of one index scan."""
    return list(
        Item.objects.filter(dataset=dataset)
        .exclude(split="")
        .values("asset_id")
        .annotate(splits=Count("split", distinct=True))
        .filter(splits__gt=1)
        .values_list("asset_id", flat=True)[:100]
    )


def _tags_of(dataset: Dataset, first: int, last: int) -> dict[int, list[str]]:
    """Tags of the dataset's items with ids in [first, last]: a range (one index scan),
    not a list of thousands of ids to send and plan."""
    tags: dict[int, list[str]] = {}
    rows = ItemTag.objects.filter(
        dataset=dataset, item_id__gte=first, item_id__lte=last
    ).values_list("item_id", "tag")
    for item_id, tag in rows:
        tags.setdefault(item_id, []).append(tag)
    return tags


def _item_batches(dataset: Dataset):  # type: ignore[no-untyped-def]
    """The dataset's rows in id order, BATCH at a time, with their tags. One query read
    through a server-side cursor on PostgreSQL (chunks on SQLite): a LIMITed keyset query
    per batch makes PostgreSQL merge-join the labels from their first row each time,
    quadratic in the dataset's size (300 ms a batch half-way through 1M items)."""
    rows_iter = (
        Item.objects.filter(dataset=dataset)
        .order_by("id")
        .values_list(
            "id",
            "external_id",
            "asset_id",
            "asset__size",
            "asset__media_type",
            "metadata",
            "split",
            "label__value",
            "label__source",
            "label__provenance",
            "asset__width",
            "asset__height",
        )
        .iterator(chunk_size=BATCH)
    )
    while rows := list(islice(rows_iter, BATCH)):
        yield rows, _tags_of(dataset, rows[0][0], rows[-1][0])


def version_snapshot(
    *,
    dataset: Dataset,
    request: SnapshotRequest,
    created_by_id: int,
    split_seed: str = DEFAULT_SPLIT_SEED,
    progress: Any = None,
) -> tuple[Version, bool]:
    """Snapshot the dataset now; return (version, created). See the module docstring."""
    parent = Version.objects.filter(dataset=dataset).order_by("-created_at").first()
    digest = Digest()
    checker = Checker(checks_config_check(dataset.checks), metadata_schema=dataset.metadata_schema)
    # A caller's open transaction (a test) already fixes what the reads see.
    own_transaction = not connection.in_atomic_block
    with tempfile.TemporaryFile() as spool:
        with (
            gzip.GzipFile(
                fileobj=spool, mode="wb", mtime=0, filename="", compresslevel=GZIP_LEVEL
            ) as out,
            transaction.atomic(),
        ):
            if own_transaction and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            schemas = (
                Label.objects.filter(dataset=dataset)
                .values_list("schema_hash", flat=True)
                .distinct()
            )
            head = canonical_line(
                header(
                    dataset_id=dataset.pk,
                    code_commit=request.code_commit,
                    code_repo=request.code_repo,
                    parent=parent.pk if parent else None,
                    label_schemas=list(schemas),
                    split_seed=split_seed,
                )
            )
            digest.add_header(head)
            out.write(head)
            checker.leaking = (
                _assets_in_two_splits(dataset) if checker.config["no_split_leakage"] else []
            )
            lines: list[bytes] = []
            for rows, tags in _item_batches(dataset):
                for (
                    item_id,
                    external_id,
                    sha256,
                    size,
                    media_type,
                    metadata,
                    split,
                    value,
                    source,
                    provenance,
                    width,
                    height,
                ) in rows:
                    item = item_line(
                        item_id=item_id,
                        external_id=external_id,
                        sha256=sha256,
                        size=size,
                        media_type=media_type,
                        metadata=metadata,
                        tags=tags.get(item_id, ()),
                        split=split,
                        label=value,
                        label_source=source,
                        provenance=provenance,
                        split_seed=split_seed,
                    )
                    line = canonical_line(item)
                    lines.append(line)
                    digest.count_item(item)
                    checker.feed(item, width=width, height=height)
                # One hash update and one write per batch: the same bytes, far fewer calls.
                block = b"".join(lines)
                lines.clear()
                digest.add_items_block(block)
                out.write(block)
                if progress is not None:
                    progress(digest.items)
        body = digest.body.hexdigest()
        if (
            parent is not None
            and parent.body_sha256 == body
            and parent.code_commit == request.code_commit
            and parent.code_repo == request.code_repo
        ):
            return parent, False
        version_id = digest.whole.hexdigest()
        existing = Version.objects.filter(pk=version_id).first()
        if existing is not None:
            return existing, False
        size = spool.tell()
        spool.seek(0)
        object_put(
            manifest_key(version_id, MANIFEST_EXT),
            spool,
            size=size,
            content_type="application/gzip",
        )
    report = checker.report()
    version, created = Version.objects.get_or_create(
        pk=version_id,
        defaults={
            "dataset": dataset,
            "parent": parent,
            "body_sha256": body,
            "code_commit": request.code_commit,
            "code_repo": request.code_repo,
            "message": request.message,
            "created_by_id": created_by_id,
            "item_count": digest.items,
            "labelled_count": digest.labelled,
            "manifest_size": digest.size,
            "class_counts": dict(sorted(digest.classes.items())),
            "split_counts": dict(sorted(digest.splits.items())),
            "checks": report,
            "checks_passed": all(entry["passed"] for entry in report),
        },
    )
    return version, created


def manifest_stream(version: Version, *, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The version's manifest bytes, decompressed as they are read from storage."""
    with (
        object_open(manifest_key(version.pk, MANIFEST_EXT)) as raw,
        gzip.GzipFile(fileobj=raw, mode="rb") as manifest,
    ):
        while block := manifest.read(chunk):
            yield block


TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RELEASE_TAG = "release"


def version_tag(*, version: Version, name: Any, created_by: Any) -> VersionTag:
    """Give the version a tag, unique within its dataset and never moved. `release` needs
    every data check passed. Raises InvalidSnapshot naming the problem (nothing stored).
    Idempotent for the same tag on the same version."""
    if not isinstance(name, str) or not TAG_NAME.fullmatch(name.strip()):
        raise InvalidSnapshot(
            "A tag is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(e.g. v1.2, release).",
            field="name",
        )
    name = name.strip()
    if name == RELEASE_TAG and not version.checks_passed:
        failed = [entry["check"] for entry in version.checks if not entry["passed"]]
        raise InvalidSnapshot(
            f"Version {version.pk[:12]} failed its data checks ({', '.join(failed)}): it cannot "
            "be tagged release.",
            field="name",
        )
    existing = VersionTag.objects.filter(dataset_id=version.dataset_id, name=name).first()
    if existing is not None:
        if existing.version_id == version.pk:
            return existing
        raise InvalidSnapshot(
            f"Tag {name!r} already names version {existing.version_id[:12]} of this dataset; "
            "tags never move.",
            field="name",
        )
    try:
        with transaction.atomic():
            return VersionTag.objects.create(
                dataset_id=version.dataset_id, version=version, name=name, created_by=created_by
            )
    except IntegrityError:  # the same name given at the same moment by someone else
        raise InvalidSnapshot(
            f"Tag {name!r} was just given to another version.", field="name"
        ) from None


# Contributors of a version: each counter stops taking new names past this many, so
# memory stays bounded on any manifest.
CONTRIBUTORS_DISTINCT_MAX = 10_000


def version_contributors(version: Version, *, listed: int = 20) -> dict[str, Any]:
    """Count who made the labels of a version: provenance annotators, sources and batches,
    read from its manifest in one streaming pass (json per item line; the counters keep
    at most CONTRIBUTORS_DISTINCT_MAX names each)."""
    counters: dict[str, Counter[str]] = {
        "annotators": Counter(),
        "sources": Counter(),
        "batches": Counter(),
    }

    def count(kind: str, name: Any) -> None:
        counter = counters[kind]
        name = str(name)
        if name in counter or len(counter) < CONTRIBUTORS_DISTINCT_MAX:
            counter[name] += 1

    for line in manifest_item_lines(manifest_stream(version)):
        provenance = json.loads(line).get("provenance")
        if not isinstance(provenance, dict):
            continue
        if provenance.get("source"):
            count("sources", provenance["source"])
        if provenance.get("batch") is not None:
            count("batches", provenance["batch"])
        annotators = provenance.get("annotators")
        if isinstance(annotators, list):
            for annotator in annotators:
                count("annotators", annotator)
    return {
        kind: {"top": counter.most_common(listed), "distinct": len(counter)}
        for kind, counter in counters.items()
    }
