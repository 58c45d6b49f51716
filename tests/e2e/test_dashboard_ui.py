"""The project quality page in real Chromium, on the demo's quality project (seed_demo's
simulated crowd: five annotators of known accuracy through the real queue, gold, review
and agreement services): every chart is drawn by Chart.js with data, the table flags
the weak annotators, "Recompute agreement" runs its job and the page shows the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labeling.management.commands.seed_demo import DEMO_CROWD, demo_quality_ensure
from labeling.models import Project, ProjectMember, QualityReport
from labeling.services.dashboard import quality_report_job_active
from tests.e2e.test_labeling_ui import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHARTS = ("chart-throughput", "chart-gold", "chart-agreement", "chart-lead-time", "chart-rejection")

# How many datasets a canvas's Chart.js chart has, and how many of its values are numbers
# (null when Chart.js did not draw on that canvas). A heat map cell is {x, y, v}.
CHART_FACTS = """id => {
  const chart = Chart.getChart(document.getElementById(id));
  if (!chart) return null;
  const values = chart.data.datasets.flatMap(d => d.data)
    .map(v => (v !== null && typeof v === "object" && "v" in v ? v.v : v))
    .filter(v => typeof v === "number");
  return {datasets: chart.data.datasets.length, numbers: values.length,
          nonzero: values.filter(v => v !== 0).length, type: chart.config.type,
          width: chart.width, height: chart.height};
}"""


def wait_for_charts(page: Any) -> None:
    page.wait_for_function(
        "ids => ids.every(id => window.Chart && Chart.getChart(document.getElementById(id)))",
        arg=list(CHARTS),
    )


@pytest.mark.django_db(transaction=True)
def test_quality_page_draws_every_chart_for_the_demo_crowd(live_server, page, screenshot):
    ops = UserFactory(username="olga", roles=["ops"])
    UserFactory(username="reviewer", roles=["reviewer"])
    demo_quality_ensure(owner=ops)
    project = Project.objects.get(name="Demo: time of day (crowd)")
    assert QualityReport.objects.filter(project=project).count() == 1

    log_in(page, live_server, "olga", f"/projects/{project.pk}/")
    page.click("nav.tabs a:has-text('Quality')")
    page.wait_for_url(f"**/projects/{project.pk}/quality")
    wait_for_charts(page)
    facts = {name: page.evaluate(CHART_FACTS, name) for name in CHARTS}
    for name, fact in facts.items():
        assert fact is not None, f"{name} was not drawn"
        assert fact["numbers"] > 0 and fact["nonzero"] > 0, (name, fact)
        assert fact["width"] > 200 and fact["height"] > 100, (name, fact)
    # Throughput: one stacked dataset per annotator; the heat map (chartjs-chart-matrix):
    # a cell per annotator pair, numbers off the diagonal.
    assert facts["chart-throughput"]["datasets"] == len(DEMO_CROWD)
    assert facts["chart-agreement"]["type"] == "matrix"
    assert facts["chart-agreement"]["numbers"] == len(DEMO_CROWD) * (len(DEMO_CROWD) - 1)
    # Gold: one line per annotator and the threshold.
    assert facts["chart-gold"]["datasets"] == len(DEMO_CROWD) + 1
    assert page.locator("table.quality-table tbody tr").count() == len(DEMO_CROWD)
    # The members the gold service flagged (low gold accuracy) are marked in the table.
    flagged = set(
        ProjectMember.objects.filter(project=project, flagged_at__isnull=False).values_list(
            "user__username", flat=True
        )
    )
    shown = page.eval_on_selector_all(
        "table.quality-table tr.flagged", "rows => rows.map(r => r.dataset.annotator)"
    )
    assert set(shown) == flagged
    screenshot("quality-dashboard")

    # Recompute: the job's bar appears (htmx), a worker would run it; here it runs in this
    # process, and the page's poll reloads it with the second report.
    page.click("[data-test=recompute]")
    page.wait_for_selector("#quality-job .job")
    job = quality_report_job_active(project=project)
    assert job is not None
    from workers.services import job_run

    job_run(job.pk)
    page.wait_for_function("() => !document.querySelector('#quality-job .job')", timeout=15_000)
    wait_for_charts(page)
    assert QualityReport.objects.filter(project=project).count() == 2

    # The CSV download.
    with page.expect_download() as download:
        page.click("[data-test=download-csv]")
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert body.splitlines()[0].startswith("username,role,annotations")
    assert len(body.splitlines()) == 1 + len(DEMO_CROWD)
