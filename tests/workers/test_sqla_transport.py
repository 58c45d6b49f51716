"""The embedded broker's URLs resolve to our faster-polling SQLAlchemy transport."""

from __future__ import annotations

from workers.celery_app import app
from workers.sqla_transport import POLLING_INTERVAL_SECONDS, Transport


def test_sqla_urls_use_the_fast_polling_transport(tmp_path):
    for url in (
        f"sqla+sqlite:///{tmp_path}/a.sqlite3",
        f"sqlalchemy+sqlite:///{tmp_path}/b.sqlite3",
    ):
        with app.connection_for_read(url) as conn:
            assert isinstance(conn.transport, Transport)
            assert conn.transport.polling_interval == POLLING_INTERVAL_SECONDS == 0.1
