"""`python manage.py pull VERSION DIR`: fetch a version's manifest and assets into DIR,
verified, resumable; writes DIR/labelvault.lock.json to commit in the training repo."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.services.pull import (
    HttpSource,
    LocalSource,
    PullError,
    PullResult,
    PullSource,
    version_pull,
)

# Hashes listed in the error when assets fail; the rest are counted.
FAILURES_SHOWN = 20
PROGRESS_EVERY_S = 1.0


class Command(BaseCommand):
    help = (
        "Pull VERSION (its id) into DIR: DIR/manifest.jsonl, every asset at "
        "DIR/assets/<sha256[:2]>/<sha256> verified by SHA-256, and DIR/labelvault.lock.json. "
        "Rerun to resume: verified files are not fetched again. With --server and --token "
        "(or LABELVAULT_SERVER / LABELVAULT_TOKEN) it pulls from a remote Labelvault over "
        "HTTP; without, from this installation. Exits non-zero listing the hashes of the "
        "assets it could not pull."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="version id (64 hex)")
        parser.add_argument("dir", help="directory to pull into (created if missing)")
        parser.add_argument("--server", default=os.environ.get("LABELVAULT_SERVER"))
        parser.add_argument("--token", default=os.environ.get("LABELVAULT_TOKEN"))
        parser.add_argument("--workers", type=int, default=8, help="parallel downloads")
        parser.add_argument(
            "--verify", action="store_true", help="rehash every file already in DIR"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        version_id = options["version"].strip().lower()
        server, token = options["server"], options["token"]
        if bool(server) != bool(token):
            raise CommandError("--server and --token go together (or neither: this installation)")
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        last = 0.0

        def progress(result: PullResult) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                self.stderr.write(
                    f"{result.downloaded} downloaded, {result.skipped} already there, "
                    f"{len(result.failures)} failed of {result.assets} listed so far"
                )

        try:
            source: PullSource = (
                HttpSource(server, token, version_id) if server else LocalSource(version_id)
            )
            result = version_pull(
                source=source,
                directory=Path(options["dir"]),
                workers=options["workers"],
                verify=options["verify"],
                progress=progress,
            )
        except PullError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"version {result.version}: {result.assets} assets, {result.downloaded} downloaded "
            f"({result.bytes_downloaded} bytes), {result.skipped} already verified, "
            f"{len(result.failures)} failed, {result.seconds:.1f} s"
        )
        if result.failures:
            shown = "\n".join(f"  {f.sha256}: {f.reason}" for f in result.failures[:FAILURES_SHOWN])
            more = len(result.failures) - FAILURES_SHOWN
            raise CommandError(
                f"{len(result.failures)} assets could not be pulled:\n{shown}"
                + (f"\n  ... and {more} more" if more > 0 else "")
                + "\nRerun to retry them; the lock file was not written."
            )
        self.stdout.write(str(Path(options["dir"]) / "labelvault.lock.json"))
