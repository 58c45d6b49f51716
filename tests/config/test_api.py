"""The API shell: token login, auth, JSON errors, OpenAPI schema and Swagger UI."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()


def test_token_login_then_token_auth():
    user = UserFactory(roles=["annotator"])
    api = APIClient()
    response = api.post(
        "/api/v1/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.json()
    token = response.json()["token"]
    assert len(token) == 40

    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = api.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {"id": user.pk, "username": user.username, "roles": ["annotator"]}

    # The same user gets the same token again.
    again = APIClient().post(
        "/api/v1/auth/token", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert again.json()["token"] == token


def test_token_login_wrong_password_is_400_json():
    user = UserFactory()
    response = APIClient().post(
        "/api/v1/auth/token", {"username": user.username, "password": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_credentials",
        "detail": "Wrong username or password.",
    }


def test_token_login_missing_field_names_the_field():
    response = APIClient().post("/api/v1/auth/token", {"username": "x"}, format="json")
    body = response.json()
    assert response.status_code == 400
    assert body["error"] == "invalid"
    assert body["field"] == "password"
    assert body["detail"] == "password: This field is required."


def test_token_login_is_rate_limited(settings):
    api = APIClient()
    statuses = [
        api.post(
            "/api/v1/auth/token", {"username": "a", "password": "b"}, format="json"
        ).status_code
        for _ in range(12)
    ]
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429
    body = api.post("/api/v1/auth/token", {"username": "a", "password": "b"}, format="json").json()
    assert body["error"] == "throttled"
    assert "Request was throttled" in body["detail"]


def test_unauthenticated_api_call_is_401_json():
    response = APIClient().get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "detail": "Authentication credentials were not provided.",
    }


def test_bad_token_is_401_json():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = api.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_unknown_api_url_is_404_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "No API endpoint at /api/v1/no-such-thing.",
    }


def test_method_not_allowed_is_405_json():
    user = UserFactory()
    api = APIClient()
    api.force_authenticate(user)
    response = api.delete("/api/v1/me")
    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "detail": 'Method "DELETE" not allowed.',
    }


def test_openapi_schema_and_swagger_ui(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    doc = schema.json()
    assert doc["info"]["title"] == "Labelvault API"
    assert "/api/v1/auth/token" in doc["paths"]
    assert "/api/v1/me" in doc["paths"]

    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    # Swagger UI is served from our static files, not a CDN (no network on many sites).
    bundle = re.search(rb'src="([^"]*swagger-ui-bundle\.js)"', docs.content).group(1).decode()
    assert bundle.startswith("/static/drf_spectacular_sidecar/")
    assert finders.find(bundle.removeprefix("/static/"))


@pytest.mark.django_db
def test_token_authentication_reads_the_user_and_refuses_bad_or_inactive():
    from rest_framework.authtoken.models import Token

    user = UserFactory(roles=["annotator"])
    token = Token.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    me = api.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["username"] == user.username
    assert me.json()["roles"] == ["annotator"]
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = api.get("/api/v1/me")
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."
    user.is_active = False
    user.save()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api.get("/api/v1/me")
    assert response.status_code == 401 and "inactive" in response.json()["detail"]
