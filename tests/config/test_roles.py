"""Role groups exist after migrate; the demo seed is idempotent and its passwords work."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from labeling.roles import ROLES

pytestmark = pytest.mark.django_db


def test_every_role_group_exists_with_its_permissions():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    ops = Group.objects.get(name="ops")
    assert ops.permissions.filter(codename="view_job", content_type__app_label="workers").exists()


def test_seed_demo_twice_keeps_users_and_passwords(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--force")  # the test runner turns DEBUG off
    first = json.loads((tmp_path / "demo-users.json").read_text())
    call_command("seed_demo", "--force")
    second = json.loads((tmp_path / "demo-users.json").read_text())
    assert first == second
    assert set(first) == {"admin", "ops", "reviewer", "annotator1", "annotator2"}
    assert get_user_model().objects.filter(username__in=first).count() == 5
    for username, password in first.items():
        assert authenticate(username=username, password=password) is not None
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.groups.filter(name="admin").exists()
    assert "annotator2" in capsys.readouterr().out


def test_seed_demo_refuses_without_debug(settings, tmp_path):
    from django.core.management.base import CommandError

    settings.DEBUG = False
    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError, match="DEBUG=1 or --force"):
        call_command("seed_demo")
    assert not (tmp_path / "demo-users.json").exists()
