"""What a process started beside this one (a Celery worker) needs: its command line,
and the URL of the database this process uses."""

from __future__ import annotations

import sys
from urllib.parse import quote

from django.db import connection


def database_url() -> str:
    """Return a DATABASE_URL naming the database this process is connected to now
    (for a test session: the test database). Raises ValueError for an engine that has
    no URL form here (only SQLite and PostgreSQL are used)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"] in ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"):
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth + '@' if auth else ''}{host}{port}/{quote(db['NAME'], safe='')}"
    raise ValueError(f"no DATABASE_URL form for {db['ENGINE']}")


def worker_argv(*, queue: str, hostname: str, pool: str, concurrency: int) -> list[str]:
    """The command line of a private `celery worker` (benchmarks, tests): consuming only
    `queue`, with no broadcast chatter with other workers (faster start, no cross-talk)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        "-Q",
        queue,
        f"--hostname={hostname}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
