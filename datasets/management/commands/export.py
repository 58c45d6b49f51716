"""`python manage.py export VERSION --format coco --out FILE`: a version in a training
format, built here from its stored manifest (the same bytes the API's export gives), or
fetched from a remote Labelvault with --server and --token."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.formats import export_format_names

POLL_SECONDS = 1.0
REMOTE_TIMEOUT_SECONDS = 6 * 3600


class Command(BaseCommand):
    help = (
        "Export VERSION (its id, or a unique prefix of at least 8 hex digits) in --format "
        f"({', '.join(export_format_names())}) to --out. Options: --images (embed the files "
        "instead of URLs), --splits train,val, --classes car,bus (a subset, in this order), "
        "or --options JSON. With --server and --token (or LABELVAULT_SERVER / "
        "LABELVAULT_TOKEN) the export is built by that server and downloaded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="version id or unique prefix (8+ hex digits)")
        parser.add_argument("--format", required=True, help="export format")
        parser.add_argument("--out", required=True, help="file to write (replaced)")
        parser.add_argument("--images", action="store_true", help="embed the files")
        parser.add_argument("--splits", help="comma-separated splits (default all)")
        parser.add_argument("--classes", help="comma-separated class names (default all)")
        parser.add_argument("--options", help="options as a JSON object (overrides the above)")
        parser.add_argument("--server", default=os.environ.get("LABELVAULT_SERVER"))
        parser.add_argument("--token", default=os.environ.get("LABELVAULT_TOKEN"))

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["options"]:
            try:
                raw = json.loads(options["options"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--options is not JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise CommandError("--options must be a JSON object")
            return raw
        raw: dict[str, Any] = {}
        if options["images"]:
            raw["images"] = True
        if options["splits"]:
            raw["splits"] = [s.strip() for s in options["splits"].split(",") if s.strip()]
        if options["classes"]:
            raw["classes"] = [c.strip() for c in options["classes"].split(",") if c.strip()]
        return raw

    def handle(self, *args: Any, **options: Any) -> None:
        raw = self._options(options)
        out = Path(options["out"])
        server, token = options["server"], options["token"]
        if bool(server) != bool(token):
            raise CommandError("--server and --token go together (or neither: this installation)")
        if server:
            self._remote(server.rstrip("/"), token, options["version"], options["format"], raw, out)
        else:
            self._local(options["version"], options["format"], raw, out)

    def _local(self, version_ref: str, fmt: str, raw: dict[str, Any], out: Path) -> None:
        from datasets.formats.base import InvalidExport
        from datasets.models import Version
        from datasets.services.exports import export_build, export_format_for, export_options_for

        ref = version_ref.strip().lower()
        if len(ref) < 8:
            raise CommandError("give the version id or at least its first 8 hex digits")
        matches = list(Version.objects.select_related("dataset").filter(pk__startswith=ref)[:2])
        if not matches:
            raise CommandError(f"no version {ref}")
        if len(matches) > 1:
            raise CommandError(f"{ref} is the prefix of several versions: give more digits")
        version = matches[0]
        try:
            export_fmt = export_format_for(fmt, version.dataset)
            checked, secret = export_options_for(export_fmt, raw)
        except InvalidExport as exc:
            raise CommandError(f"{exc.field}: {exc}") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # Written next to the target and renamed: an interrupted export leaves no half file.
        with tempfile.NamedTemporaryFile(
            dir=out.parent, prefix=f".{out.name}.", delete=False
        ) as tmp:
            try:
                ctx = export_build(
                    version=version,
                    fmt=export_fmt,
                    options=checked,
                    out=tmp,
                    secret=secret,
                    progress=lambda done: None,
                )
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        if Path(tmp.name).stat().st_size == 0:
            Path(tmp.name).unlink()
        else:
            os.replace(tmp.name, out)
        counts = ctx.counts.as_dict()
        self.stderr.write(
            f"version {version.pk[:12]} as {export_fmt.name}: {counts['items']} items, "
            f"{counts['regions']} regions, skipped {counts['skipped'] or 'nothing'} in "
            f"{time.monotonic() - started:.1f} s"
        )
        self.stdout.write(str(out))

    def _remote(
        self, server: str, token: str, version_id: str, fmt: str, raw: dict[str, Any], out: Path
    ) -> None:
        import requests

        headers = {"Authorization": f"Token {token}"}
        answer = requests.post(
            f"{server}/api/v1/versions/{version_id}/exports",
            json={"format": fmt, "options": raw},
            headers=headers,
            timeout=60,
        )
        if answer.status_code >= 400:
            raise CommandError(
                f"the server refused the export ({answer.status_code}): {answer.text}"
            )
        export = answer.json()
        deadline = time.monotonic() + REMOTE_TIMEOUT_SECONDS
        while export["state"] not in ("done", "failed"):
            if time.monotonic() > deadline:
                raise CommandError("the export did not finish in time")
            time.sleep(POLL_SECONDS)
            poll = requests.get(f"{server}{export['url']}", headers=headers, timeout=60)
            poll.raise_for_status()
            export = poll.json()
        if export["state"] == "failed":
            raise CommandError(f"the export failed: {export['error']}")
        if not export.get("download_url"):
            self.stderr.write(f"export {export['id']} done (it has no file): {export['counts']}")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        with requests.get(export["download_url"], stream=True, timeout=300) as download:
            download.raise_for_status()
            with tempfile.NamedTemporaryFile(
                dir=out.parent, prefix=f".{out.name}.", delete=False
            ) as tmp:
                for block in download.iter_content(1024 * 1024):
                    tmp.write(block)
        os.replace(tmp.name, out)
        self.stdout.write(str(out))
