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
