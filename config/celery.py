"""Celery entry point: `celery -A config worker` / `celery -A config beat`.

The app itself lives in workers.celery_app; this module only makes `-A config` find it
once Django's settings are importable.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from workers.celery_app import app  # noqa: E402

__all__ = ("app",)
