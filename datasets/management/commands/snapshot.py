"""`python manage.py snapshot DATASET --message ...`: snapshot a dataset into a version
tied to the git commit of the current directory (the training code's checkout)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.errors import DatasetError
from datasets.models import Dataset
from datasets.services.parquet import version_parquet_write
from datasets.services.versions import snapshot_request_check, version_snapshot


def _git(args: list[str], cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
        )
    except FileNotFoundError:
        raise CommandError("git is not installed; pass --code-commit (or 'none')") from None
    except subprocess.CalledProcessError as exc:
        raise CommandError(
            f"`git {' '.join(args)}` failed in {cwd}: {exc.stderr.strip() or exc}. Run this in "
            "the training code's git checkout, or pass --code-commit (or 'none')."
        ) from None
    return out.stdout.strip()


class Command(BaseCommand):
    help = (
        "Snapshot DATASET (id) into a version. The code commit is `git rev-parse HEAD` of "
        "the current directory; a dirty tree is refused unless --allow-dirty. Prints the "
        "version id (the SHA-256 of its canonical manifest)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dataset", type=int, help="dataset id")
        parser.add_argument("--message", "-m", default="", help="what this version is for")
        parser.add_argument(
            "--allow-dirty",
            action="store_true",
            help="snapshot even if the checkout has uncommitted changes",
        )
        parser.add_argument(
            "--code-commit", help="use this commit (or 'none') instead of asking git"
        )
        parser.add_argument("--code-repo", help="repository URL (default: git's remote.origin.url)")
        parser.add_argument(
            "--user", help="recorded as the author (default: the dataset's creator)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dataset = Dataset.objects.filter(pk=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset {options['dataset']}")
        cwd = Path.cwd()
        commit = options["code_commit"]
        repo = options["code_repo"]
        if commit is None:
            commit = _git(["rev-parse", "HEAD"], cwd)
            dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
            if dirty and not options["allow_dirty"]:
                raise CommandError(
                    f"the checkout at {cwd} has uncommitted changes, so commit {commit[:12]} "
                    "is not the code that will train on this version: commit them, or pass "
                    "--allow-dirty"
                )
            if repo is None:
                try:
                    repo = _git(["config", "--get", "remote.origin.url"], cwd)
                except CommandError:
                    repo = ""  # no remote: the commit alone names the code
        user = dataset.created_by
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            request = snapshot_request_check(
                code_commit=commit, code_repo=repo or "", message=options["message"]
            )
        except DatasetError as exc:
            raise CommandError(str(exc)) from None
        version, created = version_snapshot(dataset=dataset, request=request, created_by_id=user.pk)
        version_parquet_write(version)
        state = "new version" if created else "unchanged: existing version"
        self.stderr.write(
            f"{state} of dataset {dataset.pk}: {version.item_count} items, "
            f"{version.labelled_count} labelled, code {version.code_commit}"
        )
        self.stdout.write(version.pk)
