"""The one Celery app. Configured from Django settings (CELERY_* names)."""

import os
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# sqla+sqlite:// URLs get our subclass (workers.sqla_transport): same broker, faster polling.
for _alias in ("sqla", "sqlalchemy"):
    TRANSPORT_ALIASES[_alias] = "workers.sqla_transport:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("labelvault")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="celery_tasks")

# Options meaningful only to brokers with a visibility timeout (Redis, SQS). kombu's
# SQLAlchemy transport hands every transport option to sqlalchemy.create_engine(), which
# refuses them ("Invalid argument(s) 'visibility_timeout' sent to create_engine()") and
# the worker dies at start-up.
VISIBILITY_TIMEOUT_OPTIONS = ("visibility_timeout",)


def transport_options_for(broker_url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return `options` without the ones the broker at `broker_url` cannot take."""
    if str(broker_url).startswith("sqla+"):
        return {k: v for k, v in options.items() if k not in VISIBILITY_TIMEOUT_OPTIONS}
    return dict(options)


@app.on_after_configure.connect
def _fit_transport_options(sender: Celery, source: Any, **kwargs: Any) -> None:
    source.broker_transport_options = transport_options_for(
        source.broker_url or "", source.broker_transport_options or {}
    )
