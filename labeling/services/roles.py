"""Create the role groups and give them their permissions."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from labeling.roles import ADMIN, ROLE_PERMISSIONS, ROLES


def roles_ensure() -> list[str]:
    """Create any missing role group and set each group's permissions.

    Idempotent; runs after every `migrate` (post_migrate), so permissions of new models
    reach the groups without a data migration. Returns the names of groups created.
    """
    created: list[str] = []
    with transaction.atomic():
        for name in ROLES:
            group, was_created = Group.objects.get_or_create(name=name)
            if was_created:
                created.append(name)
            if name == ADMIN:
                group.permissions.set(Permission.objects.all())
                continue
            wanted = []
            for dotted in ROLE_PERMISSIONS.get(name, ()):
                app_label, codename = dotted.split(".", 1)
                perm = Permission.objects.filter(
                    content_type__app_label=app_label, codename=codename
                ).first()
                if perm is not None:  # a model not migrated yet gets it on the next run
                    wanted.append(perm)
            group.permissions.add(*wanted)
    return created
