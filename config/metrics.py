"""Prometheus metrics beyond django-prometheus' request, database and cache metrics.

Job counts are read from the database at scrape time, so every web process reports the
same numbers (no multi-process aggregation needed) and nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector


class JobCollector(Collector):
    """labelvault_jobs{state=...}: number of background jobs in each state."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count

        from workers.models import Job

        family = GaugeMetricFamily("labelvault_jobs", "Background jobs by state.", labels=["state"])
        try:
            counts = dict(Job.objects.order_by().values_list("state").annotate(n=Count("pk")))
        except DatabaseError:
            # A scrape must not fail because the database is down; /readyz reports that.
            return
        for state in Job.State.values:
            family.add_metric([state], counts.get(state, 0))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering must not query the database (it runs at start-up).
        yield GaugeMetricFamily("labelvault_jobs", "Background jobs by state.", labels=["state"])


_registered = False


def metrics_register() -> None:
    """Register our collectors once per process."""
    global _registered
    if not _registered:
        REGISTRY.register(JobCollector())
        _registered = True
