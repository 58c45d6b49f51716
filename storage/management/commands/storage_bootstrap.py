"""`python manage.py storage_bootstrap`: create the bucket if it is missing."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from storage.client import bucket_ensure, endpoint_label
from storage.errors import StorageError


class Command(BaseCommand):
    help = (
        "Create the S3 bucket (S3_BUCKET) at S3_ENDPOINT if it is missing. Idempotent; "
        "exits non-zero with the reason when the object store cannot be used."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            created = bucket_ensure()
        except StorageError as exc:
            raise CommandError(f"storage bootstrap failed: {exc}") from exc
        bucket = f"bucket {settings.S3_BUCKET!r} at the {endpoint_label()}"
        if created:
            self.stdout.write(self.style.SUCCESS(f"created {bucket}"))
        else:
            self.stdout.write(f"{bucket} already exists; nothing to do")
