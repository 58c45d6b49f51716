"""Server-rendered project pages: the list, create/edit with the schema editor, the
dashboard, and the annotator page.

Views parse the request, call labeling.selectors and labeling.services, and shape the
page. A project the user may not see is a 404 (ids do not leak); one they see but may
not change is a 403. The annotator page is a shell: its script works through the REST
API (labeling.api), which checks membership again on every call.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from datasets.models import Dataset
from datasets.selectors import dataset_visible_to
from labeling import selectors
from labeling.errors import LabelingError
from labeling.forms import (
    SCHEMA_EXAMPLES,
    ProjectForm,
    schema_parse,
    schema_problem,
    schema_text,
)
from labeling.markdown import instructions_html
from labeling.models import Project, ProjectMember
from labeling.schema import schema_media_kind
from labeling.services import gold as gold_services
from labeling.services import projects as project_services

PROJECTS_PER_PAGE = 50
# Keys of the annotator page that a label's hotkey shadows (labeling/static/labeling/
# annotator.js); the reserved ones (s, z, y, b) a schema cannot take at all.
PAGE_KEYS = {
    "n": "add a box or point in the middle of the view",
    "0": "fit the image",
    # The reviewer's page (reviewer.js): there the decision wins over the label.
    "a": "accept on the review page",
    "r": "reject on the review page",
    "f": "fix & accept on the review page",
}
SCHEMA_TYPE_NAMES = {
    "bbox": "Bounding boxes",
    "polygon": "Polygons",
    "keypoint": "Keypoints",
    "image_class": "Image classification",
    "text_class": "Text classification",
    "ner": "Entity spans (NER)",
}


def project_or_404(request: HttpRequest, project_id: int) -> Project:
    """The project if the user may see it, else 404 (shared by the project pages in
    views_review and views_quality)."""
    try:
        return selectors.project_get_for_user(user=request.user, project_id=project_id)
    except Project.DoesNotExist:
        raise Http404("No such project.") from None


def _require_manager(request: HttpRequest) -> None:
    if not selectors.user_manages_projects(request.user):
        raise PermissionDenied("Only ops and admins create and change projects.")


def schema_type_of(project: Project) -> str:
    return project.schema_revision.schema["type"] if project.schema_revision else ""


# --- the list ---------------------------------------------------------------------------


@require_GET
@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    """My projects (ops and admins: all), newest first, with their progress."""
    rows = (
        selectors.project_visible_to(request.user)
        .select_related("dataset", "schema_revision")
        .order_by("-id")
    )
    page = Paginator(rows, PROJECTS_PER_PAGE).get_page(request.GET.get("page"))
    roles = dict(
        request.user.project_memberships.filter(
            project_id__in=[p.pk for p in page.object_list]
        ).values_list("project_id", "role")
    )
    cards = [
        {
            "project": project,
            "type": SCHEMA_TYPE_NAMES.get(schema_type_of(project), schema_type_of(project)),
            "role": roles.get(project.pk),
            "percent": _percent(project.done_count, project.task_count),
        }
        for project in page.object_list
    ]
    return render(
        request,
        "labeling/project_list.html",
        {
            "page": page,
            "cards": cards,
            "can_create": selectors.user_manages_projects(request.user),
        },
    )


def _percent(done: int, total: int) -> int:
    return int(done * 100 / total) if total else 0


# --- create and edit --------------------------------------------------------------------


def _apply_service_error(form: ProjectForm, exc: LabelingError) -> None:
    field = form.field_for(exc.field)
    details = [e["detail"] for e in exc.errors] if exc.errors else [str(exc)]
    for detail in details:
        form.add_error(field, detail)


def _form_context(form: ProjectForm, project: Project | None) -> dict[str, Any]:
    return {
        "form": form,
        "project": project,
        "schema_examples": {k: schema_text(v) for k, v in SCHEMA_EXAMPLES.items()},
        "schema_type_names": SCHEMA_TYPE_NAMES,
    }


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    initial = {"label_schema": schema_text(SCHEMA_EXAMPLES["bbox"])}
    dataset_id = request.GET.get("dataset")
    if dataset_id and dataset_id.isdigit():
        initial["dataset"] = int(dataset_id)
    form = ProjectForm(
        request.POST if request.method == "POST" else None, user=request.user, initial=initial
    )
    if request.method == "POST" and form.is_valid():
        try:
            project = project_services.project_create(
                created_by=request.user, **form.service_fields()
            )
        except LabelingError as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(
                request, f"Project {project.name!r} created; its tasks are being made."
            )
            return redirect("labeling:detail", project_id=project.pk)
    return render(
        request,
        "labeling/project_form.html",
        _form_context(form, None),
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_edit(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_or_404(request, project_id)
    _require_manager(request)
    form = ProjectForm(
        request.POST if request.method == "POST" else None,
        user=request.user,
        project=project,
        initial=ProjectForm.initial_for(project),
    )
    if request.method == "POST" and form.is_valid():
        before = project.schema_revision.number if project.schema_revision else 0
        try:
            project_services.project_update(
                project=project, by=request.user, **form.service_fields()
            )
        except LabelingError as exc:
            _apply_service_error(form, exc)
        else:
            project = project_or_404(request, project_id)
            after = project.schema_revision.number if project.schema_revision else 0
            note = (
                f" The label schema is now revision {after}; earlier annotations keep theirs."
                if after != before
                else ""
            )
            messages.success(request, f"Project saved.{note}")
            return redirect("labeling:detail", project_id=project.pk)
    return render(
        request,
        "labeling/project_form.html",
        _form_context(form, project),
        status=400 if form.errors else 200,
    )


@require_POST
@login_required
def schema_preview(request: HttpRequest) -> HttpResponse:
    """The schema editor's "Validate & preview" (htmx): every problem with its field
    path, or the label buttons annotators will see. Always 200, so htmx swaps it in."""
    _require_manager(request)
    schema, problems = schema_parse(request.POST.get("label_schema", ""))
    dataset_note = None
    if schema is not None:
        dataset = _posted_dataset(request)
        if dataset is not None and schema_media_kind(schema) != dataset.kind:
            problems = [
                schema_problem(
                    "type",
                    f"a {schema['type']} schema labels {schema_media_kind(schema)}s, but "
                    f"dataset {dataset.name!r} holds {dataset.kind}s",
                )
            ]
            schema = None
        elif dataset is not None:
            dataset_note = dataset
    shadowed = []
    if schema is not None:
        shadowed = [
            {"label": label["name"], "key": label["hotkey"], "does": PAGE_KEYS[label["hotkey"]]}
            for label in schema["labels"]
            if label["hotkey"] in PAGE_KEYS
        ]
    response = render(
        request,
        "labeling/_schema_preview.html",
        {
            "schema": schema,
            "problems": problems,
            "type_name": SCHEMA_TYPE_NAMES.get(schema["type"], "") if schema else "",
            "shadowed": shadowed,
            "dataset": dataset_note,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def _posted_dataset(request: HttpRequest) -> Dataset | None:
    raw = request.POST.get("dataset") or request.POST.get("project_dataset") or ""
    if not raw.isdigit():
        return None
    return dataset_visible_to(request.user).filter(pk=int(raw)).first()


# --- dashboard --------------------------------------------------------------------------


def _dashboard_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    user = request.user
    manages = selectors.user_manages_projects(user)
    role = selectors.member_role(user=user, project=project)
    progress = selectors.project_progress(project=project, annotator=user)
    counts = selectors.annotator_counts(project=project)
    annotators = counts if manages or role == "reviewer" else []
    return {
        "project": project,
        "schema": project.schema_revision.schema if project.schema_revision else None,
        "type_name": SCHEMA_TYPE_NAMES.get(schema_type_of(project), ""),
        "progress": progress,
        "percent": _percent(progress.done, progress.total),
        "open_tasks": max(progress.total - progress.done, 0),
        "annotations_today": sum(row["today"] for row in counts),
        "annotators": annotators,
        "manages": manages,
        "role": role,
        "can_annotate": role is not None,
        "tasks_job": project.tasks_job if manages else None,
        "review_pending": selectors.review_pending_count(project=project),
    }


@require_GET
@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_or_404(request, project_id)
    context = _dashboard_context(request, project)
    context["instructions"] = mark_safe(instructions_html(project.instructions))  # noqa: S308 (escaped by labeling.markdown)
    context["members"] = list(project.memberships.select_related("user").order_by("user__username"))
    return render(request, "labeling/project_detail.html", context)


@require_GET
@login_required
def project_stats(request: HttpRequest, project_id: int) -> HttpResponse:
    """The dashboard's numbers, as an htmx partial refreshing itself."""
    project = project_or_404(request, project_id)
    response = render(request, "labeling/_project_stats.html", _dashboard_context(request, project))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def member_resume(request: HttpRequest, project_id: int, username: str) -> HttpResponse:
    """Ops clear a member's gold flag and pause (labeling.services.gold.member_resume)."""
    project = project_or_404(request, project_id)
    try:
        gold_services.member_resume(project=project, username=username, by=request.user)
    except ProjectMember.DoesNotExist:
        raise Http404(f"{username} is not a member of this project.") from None
    messages.success(request, f"{username} is resumed: their queue is open again.")
    return redirect("labeling:detail", project_id=project.pk)


# --- annotate ---------------------------------------------------------------------------


@require_GET
@login_required
def annotate(request: HttpRequest, project_id: int) -> HttpResponse:
    """The annotator page: members only (ops who are not members see the dashboard)."""
    project = project_or_404(request, project_id)
    if selectors.member_role(user=request.user, project=project) is None:
        raise PermissionDenied(
            "You are not a member of this project: ops add members in its settings."
        )
    schema_type = schema_type_of(project)
    # The API's root (/api/v1/): the script appends projects/<id>/next, tasks/<id>/... .
    api_root = reverse("api-project-list").removesuffix("projects/")
    config = {
        "projectId": project.pk,
        "apiRoot": api_root,
        "csrfToken": get_token(request),
        "dashboardUrl": reverse("labeling:detail", args=[project.pk]),
    }
    return render(
        request,
        "labeling/annotate.html",
        {
            "project": project,
            "config": config,
            "media_kind": schema_media_kind(project.schema_revision.schema)
            if project.schema_revision
            else "image",
            "schema_type": schema_type,
            "instructions": mark_safe(instructions_html(project.instructions)),  # noqa: S308 (escaped by labeling.markdown)
        },
    )


# --- label file imports -------------------------------------------------------------------

LABEL_IMPORTS_LISTED = 20
PROBLEMS_SHOWN = 200


def header_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    role = selectors.member_role(user=request.user, project=project)
    return {
        "project": project,
        "type_name": SCHEMA_TYPE_NAMES.get(schema_type_of(project), ""),
        "manages": selectors.user_manages_projects(request.user),
        "can_annotate": role is not None,
    }


@require_http_methods(["GET", "POST"])
@login_required
def label_import_list(request: HttpRequest, project_id: int) -> HttpResponse:
    """Import a label file (ops and admins): the form and the project's recent imports.
    A POST stages the file and starts the import job, then shows the import; a bad
    request is a 400 with the reason by its field."""
    from datasets.formats import import_format, import_format_names
    from labeling.models import LabelImport
    from labeling.services.label_imports import label_import_create

    project = project_or_404(request, project_id)
    _require_manager(request)
    formats = [
        f
        for f in (import_format(name) for name in import_format_names())
        if f is not None and project.dataset.kind in f.kinds
    ]
    values = {
        "format": "",
        "mode": "ground_truth",
        "match": "file_name",
        "valid_only": False,
        "model_name": "",
    }
    error = field = ""
    if request.method == "POST":
        values = {
            "format": request.POST.get("format", ""),
            "mode": request.POST.get("mode", ""),
            "match": request.POST.get("match", ""),
            "valid_only": request.POST.get("valid_only") == "on",
            "model_name": request.POST.get("model_name", ""),
        }
        upload = request.FILES.get("file")
        if upload is None:
            error, field = "Choose a label file.", "file"
        else:
            try:
                row = label_import_create(
                    project=project,
                    upload=upload,
                    fmt=values["format"],
                    mode=values["mode"],
                    match=values["match"],
                    valid_only=values["valid_only"],
                    model_name=values["model_name"],
                    created_by=request.user,
                )
            except LabelingError as exc:
                error, field = str(exc), exc.field or "file"
            else:
                return redirect(
                    "labeling:label-import", project_id=project.pk, label_import_id=row.pk
                )
    imports = list(
        LabelImport.objects.filter(project=project)
        .select_related("created_by")
        .order_by("-created_at")[:LABEL_IMPORTS_LISTED]
    )
    return render(
        request,
        "labeling/label_imports.html",
        {
            **header_context(request, project),
            "tab": "imports",
            "formats": formats,
            "modes": LabelImport.Mode.choices,
            "matches": LabelImport.Match.choices,
            "values": values,
            "error": error,
            "field": field,
            "imports": imports,
        },
        status=400 if error else 200,
    )


@require_GET
@login_required
def label_import_detail(
    request: HttpRequest, project_id: int, label_import_id: int
) -> HttpResponse:
    """One label import: its job's progress, counts and the first problems (row, field,
    reason); the API lists them all."""
    from labeling.models import LabelImport

    project = project_or_404(request, project_id)
    _require_manager(request)
    row = (
        LabelImport.objects.select_related("job", "created_by")
        .filter(pk=label_import_id, project=project)
        .first()
    )
    if row is None:
        raise Http404("No such import in this project.")
    return render(
        request,
        "labeling/label_import_detail.html",
        {
            **header_context(request, project),
            "tab": "imports",
            "label_import": row,
            "problems": list(row.problems.order_by("seq")[:PROBLEMS_SHOWN]),
            "problems_shown": PROBLEMS_SHOWN,
        },
    )
