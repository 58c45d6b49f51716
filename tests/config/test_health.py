"""/healthz, /readyz (each dependency down in turn) and /metrics, against real services."""

from __future__ import annotations

import socket

import pytest
from django.db import connection

from storage import client as storage_client


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_touching_dependencies(client, settings):
    settings.S3_ENDPOINT = f"127.0.0.1:{closed_port()}"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_readyz_green_with_every_check_and_latency(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    for name, check in body["checks"].items():
        assert check["ok"] is True, (name, check)
        assert isinstance(check["latency_ms"], float)
        assert check["latency_ms"] >= 0


@pytest.mark.django_db
def test_readyz_503_when_storage_is_down(client, settings):
    settings.S3_ENDPOINT = f"127.0.0.1:{closed_port()}"
    storage_client.reset_client()
    try:
        response = client.get("/readyz")
    finally:
        storage_client.reset_client()
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


@pytest.mark.django_db
def test_readyz_503_when_storage_refuses_credentials(client, settings):
    settings.S3_SECRET_KEY = "not-the-secret"
    storage_client.reset_client()
    try:
        response = client.get("/readyz")
    finally:
        storage_client.reset_client()
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False


@pytest.mark.django_db
def test_readyz_503_when_broker_is_down(client, settings, tmp_path):
    if settings.CELERY_BROKER_URL.startswith("redis"):
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    else:
        # A SQLite broker whose folder does not exist cannot be opened.
        settings.CELERY_BROKER_URL = f"sqla+sqlite:///{tmp_path}/missing/broker.sqlite3"
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["storage"]["ok"] is True


@pytest.mark.django_db(transaction=True)
def test_readyz_503_when_database_is_down(client, tmp_path):
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict["PORT"] = str(closed_port())
        connection.settings_dict["HOST"] = "127.0.0.1"
    else:
        connection.settings_dict["NAME"] = str(tmp_path / "missing" / "db.sqlite3")
    try:
        response = client.get("/readyz")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["storage"]["ok"] is True


@pytest.mark.django_db
def test_metrics_exposes_request_latency_and_job_counts(client):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_latency_seconds_by_view_method" in text
    assert 'labelvault_jobs{state="queued"}' in text
    assert 'labelvault_jobs{state="failed"}' in text
