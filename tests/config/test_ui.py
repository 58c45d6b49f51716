"""Session login for the UI: login form with CSRF, home page, logout, error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_home_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_login_with_csrf_then_logout():
    user = UserFactory(roles=["ops"])
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/accounts/login/")
    assert page.status_code == 200
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1)

    refused = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert refused.status_code == 403  # no CSRF token

    response = browser.post(
        "/accounts/login/",
        {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token.decode()},
    )
    assert response.status_code == 302
    home = browser.get("/")
    assert home.status_code == 200
    assert user.username.encode() in home.content
    assert b'<span class="tag">ops</span>' in home.content

    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', home.content).group(1)
    out = browser.post("/accounts/logout/", {"csrfmiddlewaretoken": token.decode()})
    assert out.status_code == 302
    assert browser.get("/").status_code == 302


def test_wrong_password_shows_an_error():
    user = UserFactory()
    response = Client().post("/accounts/login/", {"username": user.username, "password": "x"})
    assert response.status_code == 200
    assert b"didn't match" in response.content


def test_unknown_page_is_html_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"Not found" in response.content
