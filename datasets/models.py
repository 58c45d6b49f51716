"""Dataset tables: assets (one row per distinct content), datasets and their items.

Invariants live here as database constraints, so every writer (API, importer, admin)
gets them: one Asset per sha256, one Item per (dataset, external_id) and per
(dataset, asset).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Asset(models.Model):
    """A distinct file, stored once in object storage under its SHA-256.

    The sha256 is the primary key, so items reference content directly and an import
    can insert items without first reading back asset ids.
    """

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    # Sniffed from the bytes by the importer, never taken from a file name or header.
    media_type = models.CharField(max_length=100)
    # Images: pixel size after EXIF orientation. Text: length in characters.
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    char_count = models.PositiveBigIntegerField(null=True, blank=True)
    # Set once derived/thumb256/<sha256> is stored (datasets.services.thumbnails), so the
    # item grid shows thumbnails without asking the object store about each one.
    thumbnail_ready = models.BooleanField(default=False, db_default=False)
    # Texts: the first characters, for the item grid (the blob is read on the detail page
    # only). Filled by the same job as thumbnails.
    preview = models.CharField(max_length=200, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="asset_sha256_hex"
            ),
            models.CheckConstraint(condition=Q(size__gte=0), name="asset_size_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.media_type}, {self.size} B)"


class Dataset(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image", "Images"
        TEXT = "text", "Texts"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets"
    )
    # Optional JSON Schema that every item's metadata must satisfy.
    metadata_schema = models.JSONField(null=True, blank=True)
    # Which data checks a version must pass, with thresholds (datasets.checks).
    checks = models.JSONField(default=dict, blank=True)
    # Running totals kept by the writers of items (datasets.services.datasets
    # .dataset_counters_add), because counting is too slow for a page view: count(*) of
    # 1M items takes ~100 ms and the sum of their asset sizes ~2 s on PostgreSQL here.
    item_count = models.PositiveBigIntegerField(default=0, db_default=0)
    total_bytes = models.PositiveBigIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["created_by", "name"], name="dataset_name_per_owner"),
            models.CheckConstraint(condition=Q(kind__in=["image", "text"]), name="dataset_kind"),
            models.CheckConstraint(condition=~Q(name=""), name="dataset_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """One asset as a member of a dataset, with the user's key, metadata and split."""

    class Split(models.TextChoices):
        UNSET = "", "Unset"
        TRAIN = "train", "Train"
        VAL = "val", "Validation"
        TEST = "test", "Test"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=512)
    metadata = models.JSONField(default=dict, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, default="", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "external_id"], name="item_external_id_per_dataset"
            ),
            # The same content twice in one dataset is a duplicate, reported, not stored.
            models.UniqueConstraint(fields=["dataset", "asset"], name="item_asset_per_dataset"),
            models.CheckConstraint(
                condition=Q(split__in=["", "train", "val", "test"]), name="item_split"
            ),
            models.CheckConstraint(condition=~Q(external_id=""), name="item_external_id_not_empty"),
        ]
        indexes = [
            # Cursor pagination over a dataset (keyset on id) and the filters the UI uses.
            models.Index(fields=["dataset", "split", "id"], name="item_dataset_split"),
            # The unfiltered grid, first and last page (datasets.selectors.item_page).
            models.Index(fields=["dataset", "id"], name="item_dataset_id"),
            models.Index(fields=["dataset", "created_at", "id"], name="item_dataset_created"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"


class ItemTag(models.Model):
    """A slice an item belongs to (`night`, `reflections`); a table, so a filter by tag is
    an index range scan on any database, SQLite included."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="tags")
    # Denormalised from item so (dataset, tag) → items is one index.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    tag = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "tag"], name="itemtag_unique"),
            models.CheckConstraint(condition=~Q(tag=""), name="itemtag_not_empty"),
        ]
        indexes = [models.Index(fields=["dataset", "tag", "item"], name="itemtag_dataset_tag")]

    def __str__(self) -> str:
        return self.tag


class Import(models.Model):
    """One import of files into a dataset: its source, its job and its running counts.

    The source is expanded into ImportEntry rows first (planning), then chunk jobs turn
    pending entries into assets and items. Entries make an import resumable (a chunk
    redone after a crash skips what is no longer pending) and its report queryable.
    """

    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded files or archive"
        URLS = "urls", "List of URLs"
        S3 = "s3", "S3 bucket prefix"
        FOLDER = "folder", "Server folder"
        RECORDS = "records", "Text records (JSONL/CSV)"

    class State(models.TextChoices):
        PLANNING = "planning", "Planning"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="imports")
    source = models.CharField(max_length=10, choices=Source.choices)
    # What the source is (URLs file key, bucket and prefix, folder, field names ...) and
    # the defaults for its items (tags, split). Never a credential: see `secret`.
    options = models.JSONField(default=dict, blank=True)
    # Credentials given for this import only (S3 keys), encrypted; erased when it ends.
    secret = models.TextField(blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PLANNING)
    job = models.ForeignKey(
        "workers.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="imports"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["dataset", "-created_at"], name="import_dataset_recent")]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.source}) into {self.dataset_id}"


class ImportEntry(models.Model):
    """One file (or record) of an import, from planning to its outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CREATED = "created", "Created"  # a new item
        UNCHANGED = "unchanged", "Unchanged"  # same external_id and content already there
        DUPLICATE = "duplicate", "Duplicate"  # content already in the dataset under another id
        REJECTED = "rejected", "Rejected"

    import_run = models.ForeignKey(Import, on_delete=models.CASCADE, related_name="entries")
    seq = models.PositiveIntegerField()
    # The item's external_id: the file's path in the upload/archive, the URL's id, ...
    name = models.CharField(max_length=512)
    # Where the bytes are: a staging object key, a URL, an S3 key, a path, a record.
    ref = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    split = models.CharField(max_length=5, default="", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True, default="")
    item = models.ForeignKey(Item, on_delete=models.SET_NULL, null=True, blank=True)
    asset = models.ForeignKey(Asset, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["import_run", "seq"], name="importentry_seq"),
        ]
        indexes = [
            models.Index(fields=["import_run", "status", "seq"], name="importentry_status"),
        ]

    def __str__(self) -> str:
        return f"{self.import_run_id}#{self.seq} {self.name}"


class Label(models.Model):
    """The resolved label of an item: what a version records for it.

    Written only through datasets.services.labels.label_publish, by labelling (an
    accepted or consensus annotation) or by an import of ground truth. `provenance`
    says where it came from (annotation revision ids, reviewer, batch), so a version can
    be traced back to the people and models that made its labels.
    """

    item = models.OneToOneField(
        Item, on_delete=models.CASCADE, primary_key=True, related_name="label"
    )
    # Denormalised from item: a snapshot streams one dataset's labels in item order.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # A list of regions in labeling's documented result shape (pixels, character offsets).
    value = models.JSONField()
    # SHA-256 of the label schema revision the value was made under.
    schema_hash = models.CharField(max_length=64)
    # Who published it: "project:<id>", "import:<id>", ...
    source = models.CharField(max_length=100)
    provenance = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["dataset", "item"], name="label_dataset_item")]

    def __str__(self) -> str:
        return f"label of item {self.item_id}"


class Version(models.Model):
    """An immutable snapshot of a dataset: its canonical manifest (assets, metadata, tags,
    splits, labels with provenance) plus the code commit that will train on it.

    The id is the SHA-256 of the canonical manifest bytes (datasets.manifest), so the
    same content always has the same id. Rows are never changed or deleted through the
    API; the manifest lives in object storage under manifests/<id>.jsonl.gz.
    """

    id = models.CharField(max_length=64, primary_key=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    # SHA-256 of the item lines alone (no header): "unchanged since the last version" is
    # the same body and the same code commit.
    body_sha256 = models.CharField(max_length=64)
    code_commit = models.CharField(max_length=40)
    code_repo = models.CharField(max_length=500, blank=True, default="")
    message = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    item_count = models.PositiveBigIntegerField()
    labelled_count = models.PositiveBigIntegerField()
    manifest_size = models.PositiveBigIntegerField()
    # {"car": 120, ...} (regions or choices per label name) and {"train": 800, ...}
    class_counts = models.JSONField(default=dict)
    split_counts = models.JSONField(default=dict)
    # The data checks' report (datasets.checks.Checker.report) and whether all passed: a
    # failed version is kept, and cannot be tagged `release`.
    checks = models.JSONField(default=list)
    checks_passed = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id__regex=r"^[0-9a-f]{64}$"), name="version_id_hex"),
        ]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="version_dataset_recent")]

    def __str__(self) -> str:
        return self.id[:12]


class VersionTag(models.Model):
    """A human name for a version (`v1.2`, `release`), unique within its dataset and
    never moved once given."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="tags")
    name = models.CharField(max_length=100)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="version_tag_per_dataset"),
            models.CheckConstraint(
                condition=Q(name__regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"),
                name="version_tag_name",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Export(models.Model):
    """One build of a version in one format with one set of options: the cache entry of
    exports/<version id>/<format>/<options hash> (datasets.services.exports).

    (version, format, options_hash) is unique, so asking again for the same export gives
    this row (and its file) instead of building it twice. A failed build may be asked for
    again: the row goes back to queued with a new job. Writing to a database (format
    `sql`) is not cached: each is its own row, keyed by its job.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(Version, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=32)
    # The normalised options (datasets.formats.base.export_options_check), never a secret.
    options = models.JSONField(default=dict)
    options_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    job = models.ForeignKey(
        "workers.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Where the built file is (storage.keys.export_key), its size and SHA-256.
    key = models.CharField(max_length=300, blank=True, default="")
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    # What the lock file says it holds: items, labelled, regions, skipped by reason.
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    # A target database's URL (format sql), encrypted; erased when the export ends.
    secret = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "format", "options_hash"], name="export_per_options"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "done", "failed"]),
                name="export_state",
            ),
        ]
        indexes = [models.Index(fields=["version", "-created_at"], name="export_version_recent")]

    def __str__(self) -> str:
        return f"{self.format} of {self.version_id[:12]}"
