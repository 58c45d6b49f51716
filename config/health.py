"""Liveness and readiness probes.

/healthz answers 200 while the process can serve a request; it touches nothing else.
/readyz checks each dependency (database, Celery broker, object store) with a short
timeout and reports each one with its latency; 503 when any fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from storage import client as storage_client
from workers.celery_app import app as celery_app

# Seconds each dependency gets to answer; a probe must return well within a load
# balancer's usual 5-10 s timeout even when everything is down.
CHECK_TIMEOUT_SECONDS = 2.0


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    # Read the URL from settings at call time (not the app's cached connection pool), so
    # the probe reports the broker this process is configured for right now.
    with celery_app.connection_for_read(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
        channel = conn.default_channel
        if conn.transport.driver_type == "sql":
            # The SQLAlchemy transport opens its database lazily: run one query on it.
            from sqlalchemy import text

            channel.session.execute(text("SELECT 1"))


def check_storage() -> None:
    storage_client.ping(timeout=CHECK_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
}


def _run(check: Callable[[], None]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - a probe reports any failure, never raises
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:500]
    else:
        ok, detail = True, "ok"
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"ok": ok, "latency_ms": latency_ms, "detail": detail}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok", "commit": settings.GIT_COMMIT})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = {name: _run(check) for name, check in CHECKS.items()}
    ready = all(r["ok"] for r in results.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": results},
        status=200 if ready else 503,
    )
