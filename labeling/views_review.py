"""Server-rendered review pages: the reviewer's page and a task's history.

The reviewer's page is a shell like the annotator's (labeling.views.annotate): the same
template and script (annotate.html + annotator.js) in their "review" mode, working
through the review API (labeling.api), which checks the reviewer again on every call.
Who may review: the project's reviewers, and ops/admins. A project the user may not
see is a 404; one they see but may not review (an annotator) is a 403.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from labeling import selectors
from labeling.markdown import instructions_html
from labeling.models import Project, Review, Task
from labeling.schema import schema_media_kind
from labeling.views import header_context, project_or_404, schema_type_of

# Keys of a history event shown in their own columns; the others are its details.
EVENT_COLUMNS = {"at", "kind", "user"}
EVENT_KINDS = {
    "lease": "taken",
    "review_lease": "taken for review",
    "revision": "revision",
    "skip": "skipped",
    "review": "review",
}
DECISIONS = dict(Review.Decision.choices)


def _require_reviewer(request: HttpRequest, project: Project) -> None:
    if not selectors.user_reviews(user=request.user, project=project):
        raise PermissionDenied(
            "Only the project's reviewers (and ops) review its tasks: ops make you one "
            "in its settings."
        )


@require_GET
@login_required
def review(request: HttpRequest, project_id: int) -> HttpResponse:
    """The reviewer's page: one task at a time from the review queue."""
    project = project_or_404(request, project_id)
    _require_reviewer(request, project)
    config = {
        "mode": "review",
        "projectId": project.pk,
        # The API's root (/api/v1/): the script appends projects/<id>/review/next ...
        "apiRoot": reverse("api-project-list").removesuffix("projects/"),
        "csrfToken": get_token(request),
        "dashboardUrl": reverse("labeling:detail", args=[project.pk]),
        # The script appends tasks/<id>/history for the task history page.
        "projectUrl": reverse("labeling:detail", args=[project.pk]),
        # A consensus less sure than this went to review on its own: flagged "low".
        "consensusThreshold": project.consensus_threshold,
    }
    return render(
        request,
        "labeling/review.html",
        {
            "project": project,
            "config": config,
            "media_kind": schema_media_kind(project.schema_revision.schema)
            if project.schema_revision
            else "image",
            "schema_type": schema_type_of(project),
            "instructions": mark_safe(instructions_html(project.instructions)),  # noqa: S308 (escaped by labeling.markdown)
        },
    )


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    """One history event as the page shows it: time, kind, user, and its other keys as
    (name, text, structured) details; lists and objects (a result) as indented JSON."""
    at = event.get("at")
    if isinstance(at, str):
        at = parse_datetime(at) or at
    details = []
    for key, value in event.items():
        if key in EVENT_COLUMNS or value is None or value == "":
            continue
        structured = isinstance(value, dict | list)
        if structured:
            text = json.dumps(value, indent=1, ensure_ascii=False)
        elif isinstance(value, datetime):
            text = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
        else:
            text = str(value)
        details.append({"name": key.replace("_", " "), "text": text, "structured": structured})
    kind = event.get("kind", "")
    name = EVENT_KINDS.get(kind, kind.replace("_", " "))
    if kind == "review" and event.get("decision") in DECISIONS:
        name = f"review: {DECISIONS[event['decision']].lower()}"
    return {
        "at": at,
        "at_is_datetime": isinstance(at, datetime),
        "kind": kind,
        "name": name,
        "user": event.get("user") or "",
        "details": details,
    }


@require_GET
@login_required
def task_history(request: HttpRequest, project_id: int, task_id: int) -> HttpResponse:
    """Everything that happened to one task, oldest first: leases, revisions, skips and
    reviews (labeling.selectors.task_history)."""
    project = project_or_404(request, project_id)
    _require_reviewer(request, project)
    task = Task.objects.select_related("item").filter(pk=task_id, project=project).first()
    if task is None:
        raise Http404("No such task in this project.")
    events = [_event_row(event) for event in selectors.task_history(task=task)]
    return render(
        request,
        "labeling/task_history.html",
        {
            **header_context(request, project),
            "tab": "review",
            "task": task,
            "events": events,
        },
    )
