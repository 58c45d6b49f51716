"""The project quality dashboard: throughput, lead time, gold accuracy, agreement and
rejection rate per project and per annotator, and the stored agreement reports.

What it guarantees:

- `project_dashboard` reads only: a fixed number of grouped aggregate queries (no query
  per annotator, no Python loop over annotations), each on an index range of the
  project: annotation (project, created_at), gold_answer (project, annotator,
  created_at), review (project, created_at). It stays fast on a million annotations.
- Agreement is never computed on a page view: `project_quality` takes seconds on a large
  project, so `quality_report_submit` runs it in a job that stores a QualityReport, and
  the dashboard reads the latest one.
- The dict is plain JSON: days and times as ISO strings, ratios as floats rounded to
  DIGITS decimals, None where there is nothing to measure (no gold answer, no review,
  no report).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Avg, Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.errors import LabelingError
from labeling.models import (
    Annotation,
    AnnotationRevision,
    GoldAnswer,
    GoldItem,
    Project,
    ProjectMember,
    QualityReport,
    Review,
    Task,
)
from labeling.services.quality import project_quality
from workers.models import Job
from workers.services import job_submit
from workers.types import JobContext

QUALITY_JOB_KIND = "labeling.quality_report"
QUALITY_JOB_HANDLER = "labeling.services.dashboard.quality_report_job_run"
DIGITS = 4
# Longest window of daily series: a year of days is ~365 points per annotator, still a
# small page; more is a different report.
MAX_DAYS = 366
# The pairwise matrix of each kind of project_quality report: classification has
# Cohen's kappa, regions F1 at the IoU threshold, spans exact-match F1.
PAIR_MEASURES = (
    ("cohen_kappa", "Cohen's kappa"),
    ("pair_f1", "F1 (IoU matched)"),
    ("pair_f1_exact", "span F1 (exact)"),
)
CSV_COLUMNS = (
    "username",
    "role",
    "annotations",
    "annotations_in_window",
    "revisions_in_window",
    "median_lead_time_ms",
    "gold_answers",
    "gold_accuracy",
    "agreement",
    "reviewed",
    "rejected",
    "rejection_rate",
    "flagged",
    "flag_reason",
    "paused",
)


class InvalidDashboardRequest(LabelingError):
    """A dashboard request with a bad parameter (e.g. `days`). (400)"""

    code = "invalid_dashboard_request"


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _clean_days(days: Any) -> int:
    try:
        value = int(days)
    except (TypeError, ValueError):
        raise InvalidDashboardRequest(
            f"days must be a whole number, got {days!r}", field="days"
        ) from None
    if not 1 <= value <= MAX_DAYS:
        raise InvalidDashboardRequest(
            f"days must be between 1 and {MAX_DAYS}, got {value}", field="days"
        )
    return value


# --- aggregate queries ------------------------------------------------------------------


def _median_lead_times(project: Project, since: datetime) -> dict[int, tuple[int, float | None]]:
    """{annotator id: (revisions they made of their own annotations made since `since`,
    median lead time in ms of those with a lead time)}. Limited to the window so the
    annotation (project, created_at) index bounds the scan: on PostgreSQL one grouped
    query (percentile_cont); on SQLite (development) the lead times are streamed in
    annotator order and the median taken per group, as SQLite has no ordered-set
    aggregate."""
    revisions = AnnotationRevision._meta.db_table
    annotations = Annotation._meta.db_table
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT r.created_by_id, COUNT(*), "  # noqa: S608 (table names, not input)
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY r.lead_time_ms) "
            f"FROM {annotations} a JOIN {revisions} r ON r.annotation_id = a.id "
            "WHERE a.project_id = %s AND a.created_at >= %s AND r.created_by_id = a.annotator_id "
            "GROUP BY r.created_by_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [project.pk, since])
            return {
                user_id: (count, None if median is None else float(median))
                for user_id, count, median in cursor.fetchall()
            }
    rows = (
        AnnotationRevision.objects.filter(
            annotation__project=project,
            annotation__created_at__gte=since,
            created_by_id=F("annotation__annotator_id"),
        )
        .order_by("created_by_id", "lead_time_ms")
        .values_list("created_by_id", "lead_time_ms")
    )
    out: dict[int, tuple[int, float | None]] = {}
    current: int | None = None
    times: list[int] = []
    count = 0

    def flush() -> None:
        if current is not None:
            out[current] = (count, float(statistics.median(times)) if times else None)

    for user_id, lead_time in rows.iterator(chunk_size=5000):
        if user_id != current:
            flush()
            current, times, count = user_id, [], 0
        count += 1
        if lead_time is not None:
            times.append(lead_time)
    flush()
    return out


def _reviews_by_annotator(project: Project) -> dict[int, dict[str, int]]:
    """{annotator id: {"n", "rejected", "fixed"}}: the reviews that judged each
    annotator's annotations. A review names the annotation it decided on, or none when
    a task's consensus was accepted: that one judged every annotation of the task. One
    grouped query (review (project, created_at), then annotations by task)."""
    reviews = Review._meta.db_table
    annotations = Annotation._meta.db_table
    sql = (
        "SELECT a.annotator_id, COUNT(*), "  # noqa: S608 (table names, not input)
        "SUM(CASE WHEN r.decision = %s THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN r.decision = %s THEN 1 ELSE 0 END) "
        f"FROM {reviews} r JOIN {annotations} a ON a.task_id = r.task_id "
        "WHERE r.project_id = %s AND (r.annotation_id IS NULL OR r.annotation_id = a.id) "
        "GROUP BY a.annotator_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Review.Decision.REJECT, Review.Decision.FIX, project.pk])
        return {
            uid: {"n": n, "rejected": int(rejected or 0), "fixed": int(fixed or 0)}
            for uid, n, rejected, fixed in cursor.fetchall()
        }


def _days(days: int) -> list[date]:
    today = timezone.localdate()
    return [today - timedelta(days=days - 1 - n) for n in range(days)]


def _since(first_day: date) -> Any:
    return timezone.make_aware(datetime.combine(first_day, time.min))


def _agreement(report: QualityReport | None) -> dict[str, Any] | None:
    """The pairwise matrix of the report with its measure, and each annotator's mean
    agreement with the others (their row without the diagonal, pairs with no shared
    task left out)."""
    if report is None:
        return None
    data = report.data or {}
    names = data.get("annotators") or []
    key, label = next(((k, t) for k, t in PAIR_MEASURES if k in data), ("", ""))
    matrix = data.get(key) or [] if key else []
    means: dict[str, float | None] = {}
    for i, name in enumerate(names):
        values = [v for j, v in enumerate(matrix[i] if matrix else []) if j != i and v is not None]
        means[name] = _ratio(sum(values) / len(values)) if values else None
    overall = data.get("alpha", data.get("f1", data.get("f1_exact")))
    return {
        "report": report.pk,
        "created_at": report.created_at.isoformat(),
        "annotation_count": report.annotation_count,
        "type": data.get("type"),
        "measure": key,
        "measure_label": label,
        "overall": overall,
        "overall_label": "Krippendorff's alpha" if "alpha" in data else label,
        "annotators": names,
        "matrix": matrix,
        "mean_by_annotator": means,
    }


# --- the dashboard ----------------------------------------------------------------------


def project_dashboard(*, project: Project, days: Any = 30) -> dict[str, Any]:
    """Return the quality dashboard of `project` over the last `days` days (today
    included) as plain JSON (see the module doc for the shape's rules).

    Totals come from the project's counters and grouped counts; series are per day
    (today last). Per annotator (everyone who annotated, and annotator members who did
    not yet): annotations (all time and in the window), their own revisions of the
    annotations they made in the window and the median lead time of those, gold answers
    and mean gold score (all time, and per day in the window), mean agreement with the others in the latest quality
    report, reviews of their annotations and the share rejected, flagged and paused.
    Raises InvalidDashboardRequest for a bad `days`.
    """
    days = _clean_days(days)
    day_list = _days(days)
    since = _since(day_list[0])
    index = {d: n for n, d in enumerate(day_list)}

    annotations = Annotation.objects.filter(project=project)
    counts = {
        row["annotator_id"]: row
        for row in annotations.order_by()
        .values("annotator_id")
        .annotate(n=Count("id"), window=Count("id", filter=Q(created_at__gte=since)))
    }
    throughput: dict[int, list[int]] = {}
    for row in (
        annotations.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values("annotator_id", "day")
        .annotate(n=Count("id"))
    ):
        series = throughput.setdefault(row["annotator_id"], [0] * days)
        if row["day"] in index:
            series[index[row["day"]]] = row["n"]
    lead = _median_lead_times(project, since)

    answers = GoldAnswer.objects.filter(project=project).order_by()
    gold = {
        row["annotator_id"]: row
        for row in answers.values("annotator_id").annotate(n=Count("id"), score=Avg("score"))
    }
    gold_series: dict[int, list[float | None]] = {}
    gold_day_counts: dict[int, list[int]] = {}
    for row in (
        answers.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("annotator_id", "day")
        .annotate(n=Count("id"), score=Avg("score"))
    ):
        if row["day"] not in index:
            continue
        series = gold_series.setdefault(row["annotator_id"], [None] * days)
        series[index[row["day"]]] = _ratio(row["score"])
        day_counts = gold_day_counts.setdefault(row["annotator_id"], [0] * days)
        day_counts[index[row["day"]]] = row["n"]

    reviews = _reviews_by_annotator(project)
    review_states = dict(
        Task.objects.filter(project=project)
        .exclude(review="")
        .order_by()
        .values_list("review")
        .annotate(n=Count("id"))
    )
    members = {
        m["user_id"]: m
        for m in ProjectMember.objects.filter(project=project).values(
            "user_id", "role", "flagged_at", "flag_reason", "paused_at"
        )
    }
    report = quality_report_latest(project=project)
    agreement = _agreement(report)

    people = set(counts) | set(gold) | set(reviews)
    people |= {uid for uid, m in members.items() if m["role"] == ProjectMember.Role.ANNOTATOR}
    names = dict(get_user_model().objects.filter(pk__in=people).values_list("pk", "username"))
    rows = []
    for uid in people:
        member = members.get(uid) or {}
        count = counts.get(uid) or {}
        revisions, median = lead.get(uid, (0, None))
        g = gold.get(uid) or {}
        r = reviews.get(uid) or {}
        reviewed = r.get("n", 0)
        rows.append(
            {
                "username": names.get(uid, str(uid)),
                "role": member.get("role") or "",
                "annotations": count.get("n", 0),
                "annotations_in_window": count.get("window", 0),
                "revisions_in_window": revisions,
                "median_lead_time_ms": None if median is None else round(median, 1),
                "gold_answers": g.get("n", 0),
                "gold_accuracy": _ratio(g.get("score")),
                "gold_accuracy_series": gold_series.get(uid, [None] * days),
                "gold_answers_series": gold_day_counts.get(uid, [0] * days),
                "agreement": (agreement or {}).get("mean_by_annotator", {}).get(names.get(uid)),
                "reviewed": reviewed,
                "rejected": r.get("rejected", 0),
                "fixed": r.get("fixed", 0),
                "rejection_rate": _ratio(r["rejected"] / reviewed) if reviewed else None,
                "flagged": member.get("flagged_at") is not None,
                "flagged_at": member["flagged_at"].isoformat()
                if member.get("flagged_at")
                else None,
                "flag_reason": member.get("flag_reason") or "",
                "paused": member.get("paused_at") is not None,
                "throughput": throughput.get(uid, [0] * days),
            }
        )
    rows.sort(key=lambda row: (-row["annotations"], row["username"]))
    total_series = [sum(row["throughput"][n] for row in rows) for n in range(days)]
    answered = sum(row["gold_answers"] for row in rows)
    reviewed_all = sum(row["reviewed"] for row in rows)
    rejected_all = sum(row["rejected"] for row in rows)
    return {
        "project": project.pk,
        "name": project.name,
        "type": project.schema_revision.schema["type"] if project.schema_revision else None,
        "overlap": project.overlap,
        "days": [d.isoformat() for d in day_list],
        "generated_at": timezone.now().isoformat(),
        "totals": {
            "tasks": project.task_count,
            "done": project.done_count,
            "gold_items": GoldItem.objects.filter(project=project).count(),
            "annotations": sum(row["annotations"] for row in rows),
            "annotations_in_window": sum(total_series),
            "annotators": sum(1 for row in rows if row["annotations"]),
            "review_pending": review_states.get(Task.Review.PENDING, 0),
            "review_accepted": review_states.get(Task.Review.ACCEPTED, 0),
            "review_rejected": review_states.get(Task.Review.REJECTED, 0),
            "reviewed": reviewed_all,
            "rejection_rate": _ratio(rejected_all / reviewed_all) if reviewed_all else None,
            "gold_answers": answered,
            "gold_accuracy": _ratio(
                sum(
                    row["gold_accuracy"] * row["gold_answers"]
                    for row in rows
                    if row["gold_answers"]
                )
                / answered
            )
            if answered
            else None,
            "flagged": sum(1 for row in rows if row["flagged"]),
            "paused": sum(1 for row in rows if row["paused"]),
        },
        "throughput": total_series,
        "annotators": rows,
        "agreement": agreement,
    }


def dashboard_csv_rows(*, dashboard: dict[str, Any]) -> Iterator[str]:
    """The per-annotator table of a project_dashboard dict as CSV lines (header first),
    one string per line, for a StreamingHttpResponse. Empty cells for no value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for row in dashboard["annotators"]:
        values = []
        for column in CSV_COLUMNS:
            value = row.get(column)
            if isinstance(value, bool):
                value = "yes" if value else "no"
            values.append("" if value is None else value)
        yield line(values)


# --- stored agreement reports -----------------------------------------------------------


def quality_report_latest(*, project: Project) -> QualityReport | None:
    """The project's newest QualityReport, or None."""
    return QualityReport.objects.filter(project=project).order_by("-created_at", "-pk").first()


def quality_report_job_active(*, project: Project) -> Job | None:
    """The project's newest quality report job still queued or running, or None."""
    return (
        Job.objects.filter(
            kind=QUALITY_JOB_KIND,
            state__in=Job.ACTIVE_STATES,
            params__project_id=project.pk,
        )
        .order_by("-created_at")
        .first()
    )


def quality_report_submit(*, project: Project, by: Any) -> Job:
    """Submit the job that computes the project's agreement and consensus and stores a
    QualityReport (sent after commit). Returns the Job. Raises InvalidDashboardRequest
    when the project's schema type has no agreement measure (keypoints)."""
    kind = project.schema_revision.schema["type"] if project.schema_revision else None
    if kind not in ("image_class", "text_class", "bbox", "polygon", "ner"):
        raise InvalidDashboardRequest(
            f"project {project.pk}: no agreement measure for {kind!r} schemas", field="project"
        )
    return job_submit(
        kind=QUALITY_JOB_KIND,
        handler=QUALITY_JOB_HANDLER,
        params={"project_id": project.pk},
        created_by=by,
        total=1,
    )


def quality_report_create(*, project: Project, job_id: Any = None) -> QualityReport:
    """Run project_quality now (seconds on a large project: from a job, or a command)
    with the project's consensus threshold and store it as a QualityReport."""
    data = project_quality(project=project, threshold=project.consensus_threshold)
    return QualityReport.objects.create(
        project=project,
        job_id=job_id,
        data=data,
        annotation_count=data.get("annotations", 0),
    )


def quality_report_job_run(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"project_id"}. Run project_quality with the project's
    consensus threshold and store its dict as a QualityReport of this job.

    Safe to run twice: a second run of the same job finds its report and stores no
    other. Stops quietly if the project is gone.
    """
    project = (
        Project.objects.select_related("schema_revision")
        .filter(pk=ctx.params.get("project_id"))
        .first()
    )
    if project is None:
        return {"project": "gone"}
    found = QualityReport.objects.filter(job_id=ctx.job_id).first()
    if found is None:
        found = quality_report_create(project=project, job_id=ctx.job_id)
    ctx.progress(1, 1)
    return {"report": found.pk, "annotations": found.annotation_count}
