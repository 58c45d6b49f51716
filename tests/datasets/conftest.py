"""Fixtures shared by the datasets tests: the users they act as."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture
def ops():
    return UserFactory(roles=["ops"])


@pytest.fixture
def owner():
    return UserFactory(roles=["annotator"])


def api_for(user) -> APIClient:
    """An API client authenticated as `user`."""
    api = APIClient()
    api.force_authenticate(user)
    return api
