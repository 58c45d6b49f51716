"""Server-rendered dataset pages: list, create/edit, item grid, item, import and report.

Views parse the request, call selectors and services, and shape the page; the rules
(who sees a dataset, what a valid schema is) live in datasets.selectors and
datasets.services. A dataset the user may not see is a 404, never a 403, so ids do not
leak; a dataset they see but may not change (import, edit) is a 403.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from datasets.errors import DatasetError
from datasets.forms import DatasetForm, ImportUploadForm, ItemFilterForm
from datasets.manifest import label_names
from datasets.models import Dataset, Import, Item, Version
from datasets.selectors import (
    dataset_can_create,
    dataset_can_edit,
    dataset_get_for_user,
    dataset_list_page,
    import_get,
    import_list_recent,
    import_rejected_page,
    item_get,
    item_neighbours,
    item_page,
)
from datasets.services import datasets as dataset_services
from datasets.services.diffs import version_diff
from datasets.services.thumbnails import text_read_head, thumbnail_url
from datasets.services.versions import (
    SNAPSHOT_JOB_KIND,
    InvalidSnapshot,
    snapshot_request_check,
    version_contributors,
    version_snapshot_submit,
)
from storage.keys import blob_key
from storage.services import presign_get
from workers.models import Job

# The item page shows at most this much of a text (the rest is a download away).
TEXT_DETAIL_MAX_BYTES = 256 * 1024


def _dataset_or_404(request: HttpRequest, dataset_id: int) -> Dataset:
    try:
        return dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    except Dataset.DoesNotExist:
        raise Http404("No such dataset.") from None


def _editable_dataset(request: HttpRequest, dataset_id: int) -> Dataset:
    dataset = _dataset_or_404(request, dataset_id)
    if not dataset_can_edit(request.user, dataset):
        raise PermissionDenied("Only ops, admins and the dataset's creator may change it.")
    return dataset


def _posted(request: HttpRequest) -> QueryDict | None:
    """The data to bind a form to: the POST data on a POST (even empty: an upload of
    files only has no other fields), None otherwise."""
    return request.POST if request.method == "POST" else None


def _query(params: QueryDict, **changes: str | None) -> str:
    """The query string of `params` with `changes` applied (None removes a key)."""
    query = params.copy()
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


def _pager(params: QueryDict, page: Any) -> dict[str, str | None]:
    """Links of a pager: first, previous, next, last (None where there is nowhere to go)."""
    return {
        "first": _query(params, cursor=None) if page.has_prev else None,
        "prev": _query(params, cursor=page.prev_cursor or None) if page.has_prev else None,
        "next": _query(params, cursor=page.next_cursor or None) if page.has_next else None,
        "last": _query(params, cursor=page.last_cursor) if page.has_next else None,
    }


# --- datasets ---------------------------------------------------------------------------


@require_GET
@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    page = dataset_list_page(user=request.user, cursor=request.GET.get("cursor"))
    return render(
        request,
        "datasets/dataset_list.html",
        {
            "page": page,
            "pager": _pager(request.GET, page),
            "can_create": dataset_can_create(request.user),
        },
    )


def _apply_service_error(form: DatasetForm, exc: DatasetError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc))


@require_http_methods(["GET", "POST"])
@login_required
def dataset_create(request: HttpRequest) -> HttpResponse:
    if not dataset_can_create(request.user):
        raise PermissionDenied("Only ops and admins create datasets.")
    form = DatasetForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_services.dataset_create(created_by=request.user, **form.cleaned_data)
        except DatasetError as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, f"Dataset {dataset.name!r} created. Import files into it.")
            return redirect("datasets:import", dataset_id=dataset.pk)
    return render(
        request,
        "datasets/dataset_form.html",
        {"form": form, "dataset": None},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@login_required
def dataset_edit(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = _editable_dataset(request, dataset_id)
    form = DatasetForm(_posted(request), initial=DatasetForm.initial_for(dataset), editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            dataset_services.dataset_update(
                dataset=dataset, updated_by=request.user, **form.cleaned_data
            )
        except DatasetError as exc:
            _apply_service_error(form, exc)
        else:
            messages.success(request, "Dataset saved.")
            return redirect("datasets:detail", dataset_id=dataset.pk)
    return render(
        request,
        "datasets/dataset_form.html",
        {"form": form, "dataset": dataset},
        status=400 if form.errors else 200,
    )


@dataclass(frozen=True)
class ItemCard:
    item: Item
    thumbnail_url: str | None


@require_GET
@login_required
def dataset_detail(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The item grid: filters, thumbnails (or text previews), cursor pager."""
    dataset = _dataset_or_404(request, dataset_id)
    filter_form = ItemFilterForm(request.GET)
    filter_form.is_valid()
    filters = filter_form.filters()
    page = item_page(dataset=dataset, filters=filters, cursor=request.GET.get("cursor"))
    is_image = dataset.kind == Dataset.Kind.IMAGE
    cards = [
        ItemCard(
            item=item,
            thumbnail_url=(
                thumbnail_url(item.asset_id) if is_image and item.asset.thumbnail_ready else None
            ),
        )
        for item in page.items
    ]
    back = request.GET.urlencode()
    return render(
        request,
        "datasets/dataset_detail.html",
        {
            "dataset": dataset,
            "filter_form": filter_form,
            "filters": filters,
            "page": page,
            "cards": cards,
            "pager": _pager(request.GET, page),
            "back": f"?{back}" if back else "",
            "can_edit": dataset_can_edit(request.user, dataset),
        },
    )


@require_GET
@login_required
def item_detail(request: HttpRequest, dataset_id: int, item_id: int) -> HttpResponse:
    """One item: the full-size image (presigned) or the text, metadata, tags, neighbours."""
    dataset = _dataset_or_404(request, dataset_id)
    try:
        item = item_get(dataset=dataset, item_id=item_id)
    except Item.DoesNotExist:
        raise Http404("No such item in this dataset.") from None
    asset = item.asset
    key = blob_key(asset.sha256)
    filename = os.path.basename(item.external_id) or asset.sha256
    context: dict[str, Any] = {
        "dataset": dataset,
        "item": item,
        "asset": asset,
        "download_url": presign_get(key, filename=filename, content_type=asset.media_type),
        "back": request.GET.get("back", ""),
        "metadata_json": json.dumps(item.metadata, indent=2, ensure_ascii=False, sort_keys=True),
    }
    if asset.media_type.startswith("image/"):
        context["image_url"] = presign_get(key, content_type=asset.media_type)
    else:
        context["text"] = text_read_head(asset.sha256, max_bytes=TEXT_DETAIL_MAX_BYTES)
        context["text_limit"] = TEXT_DETAIL_MAX_BYTES
    context["prev_id"], context["next_id"] = item_neighbours(dataset=dataset, item=item)
    return render(request, "datasets/item_detail.html", context)


# --- imports ----------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_http_methods(["GET", "POST"])
@login_required
def dataset_import(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The upload page (drop zone) and its POST: files or archives become an import job.

    A script POST (Accept: application/json) gets {"url": <report page>} or
    {"error", "detail", "field"}; a plain form POST is redirected to the report.
    """
    dataset = _editable_dataset(request, dataset_id)
    form = ImportUploadForm(_posted(request))
    if request.method == "POST":
        # Imported on use: the import pipeline imports this package's dataset and
        # thumbnail services, and is loaded only by the pages that start imports.
        from datasets.services.imports import import_submit_upload

        error: DatasetError | None = None
        if form.is_valid():
            try:
                imp = import_submit_upload(
                    dataset=dataset,
                    files=request.FILES.getlist("files"),
                    created_by=request.user,
                    tags=form.tag_list(),
                    split=form.cleaned_data.get("split", ""),
                )
            except DatasetError as exc:
                error = exc
            else:
                url = reverse("datasets:import-detail", args=[dataset.pk, imp.pk])
                if _wants_json(request):
                    return JsonResponse({"import_id": imp.pk, "url": url}, status=201)
                return redirect(url, permanent=False)
        if error is not None:
            code, field, detail = error.code, error.field, str(error)
            form.add_error(field if field in form.fields else None, detail)
        else:
            field, messages_ = next(iter(form.errors.items()))
            code, detail = "invalid", " ".join(messages_)
        if _wants_json(request):
            return JsonResponse({"error": code, "detail": detail, "field": field}, status=400)
    return render(
        request,
        "datasets/import.html",
        {
            "dataset": dataset,
            "form": form,
            "imports": import_list_recent(dataset=dataset),
            "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
            "max_file_bytes": settings.IMPORT_MAX_FILE_BYTES,
        },
        status=400 if form.errors else 200,
    )


def _import_context(request: HttpRequest, dataset_id: int, import_id: int) -> dict[str, Any]:
    dataset = _dataset_or_404(request, dataset_id)
    try:
        imp = import_get(dataset=dataset, import_id=import_id)
    except Import.DoesNotExist:
        raise Http404("No such import in this dataset.") from None
    finished = imp.state in (Import.State.DONE, Import.State.FAILED)
    rejected = import_rejected_page(import_run=imp, cursor=request.GET.get("cursor"))
    return {
        "dataset": dataset,
        "import": imp,
        "finished": finished,
        "rejected": rejected,
        "pager": _pager(request.GET, rejected),
    }


@require_GET
@login_required
def import_detail(request: HttpRequest, dataset_id: int, import_id: int) -> HttpResponse:
    """An import's job progress, its counts and its rejected files."""
    return render(
        request, "datasets/import_detail.html", _import_context(request, dataset_id, import_id)
    )


@require_GET
@login_required
def import_summary(request: HttpRequest, dataset_id: int, import_id: int) -> HttpResponse:
    """The counts and first rejected files, as an htmx partial polling itself until the
    import is done."""
    response = render(
        request, "datasets/_import_summary.html", _import_context(request, dataset_id, import_id)
    )
    response["Cache-Control"] = "no-store"
    return response


# --- versions ---------------------------------------------------------------------------

# The versions list shows this many, newest first (the API pages through all of them).
VERSIONS_LISTED = 100
# The lineage walks `parent` this far up: one small query per step.
LINEAGE_DEPTH = 20
# The diff partial lists this many examples of each kind (the counts are always whole).
DIFF_EXAMPLES = 10
# Contributors listed per kind (annotators, sources, batches; counting them is
# datasets.services.versions.version_contributors).
CONTRIBUTORS_LISTED = 20
# Forges whose commit pages we can link: host -> path between the repository and the sha.
FORGE_COMMIT_PATHS = {
    "github.com": "commit",
    "gitlab.com": "-/commit",
    "bitbucket.org": "commits",
}
_SSH_REPO = re.compile(r"^git@(?P<host>[\w.-]+):(?P<path>[\w.~/-]+)$")


def commit_url(code_repo: str, code_commit: str) -> str | None:
    """The commit's page on a known forge (GitHub, GitLab, Bitbucket), or None: for other
    hosts, for `none`, for anything that is not a plain repository URL."""
    if not code_repo or code_commit == "none":
        return None
    ssh = _SSH_REPO.match(code_repo.strip())
    if ssh:
        host, path = ssh["host"], ssh["path"]
    else:
        parsed = urlparse(code_repo.strip())
        if parsed.scheme not in ("https", "http") or parsed.query or parsed.fragment:
            return None
        host, path = (parsed.hostname or ""), parsed.path
    host = host.lower().removeprefix("www.")
    segment = FORGE_COMMIT_PATHS.get(host)
    path = path.strip("/").removesuffix(".git")
    if segment is None or path.count("/") < 1 or not re.fullmatch(r"[\w.~/-]+", path):
        return None
    return f"https://{host}/{path}/{segment}/{code_commit}"


def _version_or_404(dataset: Dataset, version_id: str) -> Version:
    version = (
        Version.objects.filter(dataset=dataset, pk=version_id)
        .select_related("created_by", "parent")
        .prefetch_related("tags")
        .first()
    )
    if version is None:
        raise Http404("No such version of this dataset.")
    return version


def _snapshot_job(request: HttpRequest, dataset: Dataset) -> Job | None:
    """The snapshot job named by ?job=, if it is one of this dataset's."""
    job_id = request.GET.get("job", "")
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    return Job.objects.filter(
        pk=job_id, kind=SNAPSHOT_JOB_KIND, params__dataset_id=dataset.pk
    ).first()


@require_http_methods(["GET", "POST"])
@login_required
def version_list(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The dataset's versions, newest first, and (ops, admins, the creator) the "Snapshot
    now" form: a POST submits the snapshot job and comes back here showing its progress;
    a bad commit is a 400 with the error by its field."""
    dataset = _dataset_or_404(request, dataset_id)
    can_edit = dataset_can_edit(request.user, dataset)
    errors: dict[str, str] = {}
    values = {"code_commit": "", "code_repo": "", "message": ""}
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("Only ops, admins and the dataset's creator snapshot it.")
        values = {name: request.POST.get(name, "") for name in values}
        try:
            checked = snapshot_request_check(**values)
        except InvalidSnapshot as exc:
            errors[exc.field or "code_commit"] = str(exc)
        else:
            job = version_snapshot_submit(dataset=dataset, request=checked, created_by=request.user)
            return redirect(f"{reverse('datasets:versions', args=[dataset.pk])}?job={job.pk}")
    versions = list(
        Version.objects.filter(dataset=dataset)
        .select_related("created_by")
        .prefetch_related("tags")
        .order_by("-created_at")[:VERSIONS_LISTED]
    )
    return render(
        request,
        "datasets/version_list.html",
        {
            "dataset": dataset,
            "versions": versions,
            "versions_limit": VERSIONS_LISTED,
            "can_edit": can_edit,
            "job": _snapshot_job(request, dataset),
            "values": values,
            "errors": errors,
        },
        status=400 if errors else 200,
    )


def _lineage(version: Version) -> list[Version]:
    """The version's ancestors, parent first, at most LINEAGE_DEPTH of them."""
    chain: list[Version] = []
    parent_id = version.parent_id
    while parent_id and len(chain) < LINEAGE_DEPTH:
        parent = (
            Version.objects.filter(pk=parent_id)
            .only("id", "parent_id", "message", "created_at", "code_commit", "checks_passed")
            .first()
        )
        if parent is None:
            break
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


@require_GET
@login_required
def version_detail(request: HttpRequest, dataset_id: int, version_id: str) -> HttpResponse:
    """One version: header, counts, tags, checks, class and split charts, lineage. The
    diff against the parent and the contributors read manifests, so they come as htmx
    partials after the page has rendered."""
    dataset = _dataset_or_404(request, dataset_id)
    version = _version_or_404(dataset, version_id)
    lineage = _lineage(version)
    classes = sorted(version.class_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return render(
        request,
        "datasets/version_detail.html",
        {
            "dataset": dataset,
            "version": version,
            "can_edit": dataset_can_edit(request.user, dataset),
            "commit_url": commit_url(version.code_repo, version.code_commit),
            "tags": list(version.tags.all()),
            "lineage": lineage,
            "lineage_truncated": bool(lineage and lineage[-1].parent_id),
            "unlabelled": version.item_count - version.labelled_count,
            "classes": classes,
            "chart_data": {
                "classes": {"labels": [n for n, _ in classes], "counts": [c for _, c in classes]},
                "splits": {
                    "labels": list(version.split_counts),
                    "counts": list(version.split_counts.values()),
                },
            },
        },
    )


def _names(value: Any) -> str:
    """A label value as its label names, "car, car, bus" (or "no label")."""
    if value is None:
        return "no label"
    return ", ".join(label_names(value)) or "no named regions"


@require_GET
@login_required
def version_diff_partial(request: HttpRequest, dataset_id: int, version_id: str) -> HttpResponse:
    """The diff against the parent, as an htmx partial. Computed on each view for now:
    version_diff streams both manifests from storage through a merge join (bounded
    memory, ~10 s at 1M items), which is why the page loads it after rendering."""
    dataset = _dataset_or_404(request, dataset_id)
    version = _version_or_404(dataset, version_id)
    diff = None
    if version.parent is not None:
        diff = version_diff(a=version.parent, b=version, examples=DIFF_EXAMPLES)
        classes = sorted(diff["class_counts"].items())
        diff["chart"] = {
            "labels": [name for name, _ in classes],
            "a": [c["a"] for _, c in classes],
            "b": [c["b"] for _, c in classes],
        }
        diff["class_rows"] = classes
        # Examples name the labels (one name per region), not the raw region JSON.
        diff["relabelled_rows"] = [
            {
                "id": row["id"],
                "before": _names(row["before"]),
                "after": _names(row["after"]),
            }
            for row in diff["examples"]["relabelled"]
        ]
    return render(
        request,
        "datasets/_version_diff.html",
        {"dataset": dataset, "version": version, "diff": diff},
    )


@require_GET
@login_required
def version_contributors_partial(
    request: HttpRequest, dataset_id: int, version_id: str
) -> HttpResponse:
    """Contributing annotators, label sources and batches of a version, as an htmx partial
    (it streams the manifest once)."""
    dataset = _dataset_or_404(request, dataset_id)
    version = _version_or_404(dataset, version_id)
    return render(
        request,
        "datasets/_version_contributors.html",
        {
            "version": version,
            "contributors": version_contributors(version, listed=CONTRIBUTORS_LISTED),
            "listed": CONTRIBUTORS_LISTED,
        },
    )


EXPORTS_LISTED = 20


def _export_formats_for(dataset: Dataset) -> list[Any]:
    """The file formats the version page offers for this dataset (sql is API-only: it
    needs a database URL)."""
    from datasets.formats import export_format, export_format_names

    formats = [export_format(name) for name in export_format_names()]
    return [
        f
        for f in formats
        if f is not None and dataset.kind in f.kinds and getattr(f, "cached", True)
    ]


@require_http_methods(["GET", "POST"])
@login_required
def version_exports_partial(request: HttpRequest, dataset_id: int, version_id: str) -> HttpResponse:
    """The version's exports and the export form, as an htmx partial. POST asks for an
    export (a cached one comes back at once) and answers the refreshed list; a bad option
    is a 400 with the error above the form. While an export builds, the list re-fetches
    itself every 2 s (each building row also shows its job's progress bar)."""
    from datasets.formats.base import InvalidExport
    from datasets.models import Export
    from datasets.services.exports import export_request

    dataset = _dataset_or_404(request, dataset_id)
    version = _version_or_404(dataset, version_id)
    error = ""
    values: dict[str, Any] = {
        "format": "",
        "images": False,
        "splits": ["train", "val", "test"],
        "classes": [],
    }
    if request.method == "POST":
        values = {
            "format": request.POST.get("format", ""),
            "images": request.POST.get("images") == "on",
            "splits": request.POST.getlist("splits"),
            "classes": request.POST.getlist("classes"),
        }
        options: dict[str, Any] = {"images": values["images"], "splits": values["splits"]}
        if values["classes"]:
            options["classes"] = values["classes"]
        try:
            export_request(
                version=version, fmt=values["format"], options=options, created_by=request.user
            )
        except InvalidExport as exc:
            error = str(exc)
    exports = list(
        Export.objects.filter(version=version)
        .select_related("job", "created_by")
        .order_by("-created_at")[:EXPORTS_LISTED]
    )
    return render(
        request,
        "datasets/_version_exports.html",
        {
            "dataset": dataset,
            "version": version,
            "exports": exports,
            "building": any(e.state in ("queued", "running") for e in exports),
            "formats": _export_formats_for(dataset),
            "classes": sorted(version.class_counts),
            "values": values,
            "error": error,
        },
        status=400 if error else 200,
    )


@require_GET
@login_required
def export_download(request: HttpRequest, dataset_id: int, export_id: int) -> HttpResponse:
    """Redirect to a fresh presigned URL of a built export (404 until it is built)."""
    from datasets.models import Export
    from datasets.services.exports import export_download_url

    dataset = _dataset_or_404(request, dataset_id)
    export = (
        Export.objects.select_related("version__dataset")
        .filter(pk=export_id, version__dataset=dataset)
        .first()
    )
    url = export_download_url(export) if export is not None else None
    if url is None:
        raise Http404("No built export here.")
    return redirect(url)
