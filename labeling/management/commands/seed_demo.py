"""`python manage.py seed_demo`: create the demo users (idempotent) and print them."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from labeling import roles
from labeling.services.roles import roles_ensure

# username -> (role group, is_superuser)
DEMO_USERS: dict[str, tuple[str, bool]] = {
    "admin": (roles.ADMIN, True),
    "ops": (roles.OPS, False),
    "reviewer": (roles.REVIEWER, False),
    "annotator1": (roles.ANNOTATOR, False),
    "annotator2": (roles.ANNOTATOR, False),
}


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-users.json"


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, ops, reviewer, two annotators) with random "
        "passwords kept in VAR_DIR/demo-users.json, and print them. Idempotent."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="allow seeding with DEBUG off (never on a real deployment)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "seed_demo creates users with known passwords; use DEBUG=1 or --force"
            )
        roles_ensure()
        path = credentials_path()
        saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        User = get_user_model()
        with transaction.atomic():
            for username, (role, superuser) in DEMO_USERS.items():
                user, created = User.objects.get_or_create(
                    username=username, defaults={"email": f"{username}@demo.labelvault.invalid"}
                )
                password = saved.get(username)
                # A password we cannot print (user made before the file, file lost) is reset,
                # so the printed list always works.
                if created or password is None or not user.check_password(password):
                    password = password or secrets.token_urlsafe(9)
                    user.set_password(password)
                user.is_superuser = superuser
                user.is_staff = superuser or role == roles.OPS
                user.is_active = True
                user.save()
                user.groups.add(Group.objects.get(name=role))
                saved[username] = password
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(saved, fh, indent=2)
        self.stdout.write(f"Demo users (also in {path}):")
        for username, (role, _) in DEMO_USERS.items():
            self.stdout.write(f"  {username:<11} {role:<10} password: {saved[username]}")
