"""database_url names the database this process uses, so a worker reaches the same one."""

from __future__ import annotations

import environ
import pytest
from django.db import connection

from workers.processes import database_url


@pytest.mark.django_db
def test_database_url_round_trips_to_the_same_database():
    parsed = environ.Env.db_url_config(database_url())
    current = connection.settings_dict
    assert parsed["ENGINE"] == current["ENGINE"]
    assert parsed["NAME"] == current["NAME"]  # the test database, not the configured one
    if connection.vendor == "postgresql":
        assert (parsed["HOST"], str(parsed["PORT"] or "")) == (
            current["HOST"] or "127.0.0.1",
            str(current["PORT"] or ""),
        )
