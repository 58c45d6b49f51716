"""REST API for datasets, items, imports and assets: parse, call a service or selector,
shape the answer. Errors are raised as domain/DRF exceptions and shaped by
config.exceptions."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets import selectors
from datasets.models import Asset, Dataset, Export, Import, Item, Version
from datasets.services import imports, versions
from datasets.services.datasets import dataset_create, dataset_update
from storage.keys import blob_key, manifest_key
from storage.services import object_chunks, object_exists, presign_get
from workers.selectors import job_ref

# --- shapes -----------------------------------------------------------------------------


class DatasetOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "metadata_schema",
            "checks",
            "item_count",
            "total_bytes",
            "created_by",
            "created_at",
            "updated_at",
        ]


class AssetOutput(serializers.ModelSerializer):
    class Meta:
        model = Asset
        fields = ["sha256", "size", "media_type", "width", "height", "char_count"]


class ItemOutput(serializers.ModelSerializer):
    asset = AssetOutput()
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "external_id", "asset", "metadata", "tags", "split", "created_at"]

    def get_tags(self, item: Item) -> list[str]:
        return [t.tag for t in item.tags.all()]  # prefetched by the selector


class ImportOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    job = serializers.SerializerMethodField()

    class Meta:
        model = Import
        fields = [
            "id",
            "dataset",
            "source",
            "state",
            "total",
            "created",
            "unchanged",
            "duplicates",
            "rejected",
            "error",
            "job",
            "created_by",
            "created_at",
            "finished_at",
        ]

    def get_job(self, imp: Import) -> dict[str, Any] | None:
        return job_ref(imp.job_id)


def _dataset_or_404(request: Request, dataset_id: int) -> Dataset:
    try:
        return selectors.dataset_get_for_user(user=request.user, dataset_id=dataset_id)
    except Dataset.DoesNotExist:
        raise Http404(f"No dataset {dataset_id}.") from None


def _page_links(request: Request, page: selectors.Page[Any]) -> dict[str, str | None]:
    def link(cursor: str | None) -> str | None:
        if cursor is None:
            return None
        query = request.query_params.copy()
        query["cursor"] = cursor
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    return {"next": link(page.next_cursor), "previous": link(page.prev_cursor)}


# --- datasets ---------------------------------------------------------------------------


class DatasetPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


class DatasetListApi(APIView):
    """List the datasets you can see (newest first) or create one (ops and admins)."""

    class CreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=Dataset.Kind.choices)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        metadata_schema = serializers.JSONField(required=False, allow_null=True, default=None)

    @extend_schema(responses={200: DatasetOutput(many=True)})
    def get(self, request: Request) -> Response:
        paginator = DatasetPagination()
        rows = selectors.dataset_visible_to(request.user).select_related("created_by")
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DatasetOutput(page, many=True).data)

    @extend_schema(request=CreateInput, responses={201: DatasetOutput})
    def post(self, request: Request) -> Response:
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create(created_by=request.user, **data.validated_data)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    """One dataset: read it, or change its name, description or metadata schema."""

    class UpdateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        metadata_schema = serializers.JSONField(required=False, allow_null=True)
        checks = serializers.JSONField(required=False, allow_null=True)

    @extend_schema(responses={200: DatasetOutput})
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutput(_dataset_or_404(request, dataset_id)).data)

    @extend_schema(request=UpdateInput, responses={200: DatasetOutput})
    def patch(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        data = self.UpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_update(dataset=dataset, updated_by=request.user, **data.validated_data)
        return Response(DatasetOutput(dataset).data)


# --- items ------------------------------------------------------------------------------


class ItemListApi(APIView):
    """The dataset's items in id order, 48 a page, with cursor links; filter by split,
    tag and one metadata key (`meta=key=value`, dotted keys for nested values)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("split", str, description="train, val, test, or empty for unset"),
            OpenApiParameter("tag", str),
            OpenApiParameter("meta", str, description="key=value on item metadata"),
            OpenApiParameter("cursor", str),
            OpenApiParameter("last", bool, description="start from the last page"),
        ],
        responses={
            200: inline_serializer(
                "ItemPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": ItemOutput(many=True),
                },
            )
        },
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        params = request.query_params
        split = params.get("split")
        if split is not None and split not in Item.Split.values:
            raise serializers.ValidationError({"split": f"Unknown split {split!r}."})
        meta_key = meta_value = ""
        if "meta" in params:
            meta_key, sep, meta_value = params["meta"].partition("=")
            if not sep or not selectors.META_KEY_PATTERN.fullmatch(meta_key):
                raise serializers.ValidationError({"meta": "Expected key=value."})
        filters = selectors.ItemFilters(
            split=split, tag=params.get("tag", "").strip(), meta_key=meta_key, meta_value=meta_value
        )
        cursor = params.get("cursor")
        page = selectors.item_page(dataset=dataset, filters=filters, cursor=cursor)
        if params.get("last") in ("1", "true") and not cursor:
            page = selectors.item_page(dataset=dataset, filters=filters, cursor=page.last_cursor)
        return Response(
            {**_page_links(request, page), "results": ItemOutput(page.items, many=True).data}
        )


# --- imports ----------------------------------------------------------------------------


class ImportListApi(APIView):
    """Start an import: 202 with the import and its job. GET lists recent imports.

    - files or zip/tar archives: multipart, field `files` (repeated);
    - `source=urls`: JSON `urls` (list of URLs or {url, external_id, tags, split,
      metadata}), or a multipart `list` file with `format` json/jsonl/csv;
    - `source=records` (text datasets): multipart `list` (jsonl/csv) with `format` and
      `options` {text_field, id_field};
    - `source=s3`: `options` {bucket, prefix, endpoint, secure, region} and
      `credentials` {access_key, secret_key} (encrypted at rest, erased at the end);
    - `source=folder`: `options` {folder} under an IMPORT_FOLDER_ROOTS directory.
    Optional everywhere: `tags` (list or comma-separated) and `split`."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "ImportUpload",
                {
                    "files": serializers.ListField(child=serializers.FileField()),
                    "tags": serializers.CharField(required=False),
                    "split": serializers.CharField(required=False),
                },
            )
        },
        responses={202: ImportOutput},
    )
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        if not selectors.dataset_can_edit(request.user, dataset):
            raise PermissionDenied("You may not import into this dataset.")
        data = request.data
        source = data.get("source") or "upload"
        tags = data.get("tags")  # a list or a comma-separated string: the service parses it
        if source == "upload":
            if request.content_type.startswith("application/json"):
                raise serializers.ValidationError(
                    {"files": "Send files as multipart/form-data in the field 'files'."}
                )
            imp = imports.import_submit_upload(
                dataset=dataset,
                files=request.FILES.getlist("files"),
                created_by=request.user,
                tags=tags,
                split=data.get("split", ""),
            )
        else:
            imp = imports.import_submit_source(
                dataset=dataset,
                source=source,
                created_by=request.user,
                list_file=request.FILES.get("list"),
                urls=data.get("urls"),
                fmt=data.get("format", ""),
                options=_json_object(data.get("options"), "options"),
                credentials=_json_object(data.get("credentials"), "credentials"),
                tags=tags,
                split=data.get("split", ""),
            )
        imp = Import.objects.select_related("created_by").get(pk=imp.pk)
        return Response(ImportOutput(imp).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: ImportOutput(many=True)})
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        return Response(ImportOutput(selectors.import_list_recent(dataset=dataset), many=True).data)


def _json_object(value: Any, field: str) -> dict[str, Any] | None:
    """An object given as JSON, or as a JSON string in a multipart form field."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise serializers.ValidationError({field: "Not valid JSON."}) from None
    if not isinstance(value, dict):
        raise serializers.ValidationError({field: "Expected a JSON object."})
    return value


def _of_visible_dataset(request: Request, model: type[Any], pk: Any, what: str) -> Any:
    """The `model` row (an import, a version) if its dataset is visible to the user; 404
    otherwise, also when it exists in someone else's dataset (ids do not leak)."""
    row = model.objects.select_related("created_by", "dataset").filter(pk=pk).first()
    if (
        row is None
        or not selectors.dataset_visible_to(request.user).filter(pk=row.dataset_id).exists()
    ):
        raise Http404(f"No {what} {pk}.")
    return row


def _import_or_404(request: Request, import_id: int) -> Import:
    return _of_visible_dataset(request, Import, import_id, "import")


class ImportDetailApi(APIView):
    """An import's state and counts."""

    @extend_schema(responses={200: ImportOutput})
    def get(self, request: Request, import_id: int) -> Response:
        return Response(ImportOutput(_import_or_404(request, import_id)).data)


class ImportRejectedApi(APIView):
    """The files an import refused, with the reason for each, in upload order."""

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str)],
        responses={
            200: inline_serializer(
                "RejectedPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": inline_serializer(
                        "RejectedEntry",
                        {
                            "seq": serializers.IntegerField(),
                            "name": serializers.CharField(),
                            "reason": serializers.CharField(),
                        },
                        many=True,
                    ),
                },
            )
        },
    )
    def get(self, request: Request, import_id: int) -> Response:
        imp = _import_or_404(request, import_id)
        page = selectors.import_rejected_page(
            import_run=imp, cursor=request.query_params.get("cursor")
        )
        results = [{"seq": e.seq, "name": e.name, "reason": e.reason} for e in page.items]
        return Response({**_page_links(request, page), "results": results})


# --- assets -----------------------------------------------------------------------------


class AssetDetailApi(APIView):
    """An asset's facts and a short-lived download URL, if you can see a dataset that
    holds it (a hash is not a permission)."""

    @extend_schema(
        responses={
            200: inline_serializer(
                "AssetWithUrl",
                {
                    "sha256": serializers.CharField(),
                    "size": serializers.IntegerField(),
                    "media_type": serializers.CharField(),
                    "width": serializers.IntegerField(allow_null=True),
                    "height": serializers.IntegerField(allow_null=True),
                    "char_count": serializers.IntegerField(allow_null=True),
                    "url": serializers.URLField(),
                    "url_expires_in": serializers.IntegerField(),
                },
            )
        },
        parameters=[OpenApiParameter("sha256", OpenApiTypes.STR, OpenApiParameter.PATH)],
    )
    def get(self, request: Request, sha256: str) -> Response:
        visible = Item.objects.filter(
            asset_id=sha256, dataset__in=selectors.dataset_visible_to(request.user)
        )
        asset = Asset.objects.filter(pk=sha256).first()
        if asset is None or not visible.exists():
            raise Http404(f"No asset {sha256}.")
        expires = settings.S3_PRESIGN_EXPIRY
        url = presign_get(blob_key(sha256), expires=expires, content_type=asset.media_type)
        return Response({**AssetOutput(asset).data, "url": url, "url_expires_in": expires})


# --- versions ---------------------------------------------------------------------------


class VersionOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    manifest_url = serializers.SerializerMethodField()

    class Meta:
        model = Version
        fields = [
            "id",
            "dataset",
            "parent",
            "code_commit",
            "code_repo",
            "message",
            "item_count",
            "labelled_count",
            "manifest_size",
            "class_counts",
            "split_counts",
            "checks",
            "checks_passed",
            "tags",
            "manifest_url",
            "created_by",
            "created_at",
        ]

    def get_manifest_url(self, version: Version) -> str:
        return reverse("api-version-manifest", kwargs={"version_id": version.pk})


class VersionPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50


class DatasetVersionListApi(APIView):
    """GET: the dataset's versions, newest first. POST: snapshot it now (202 with the
    job; its report names the version). `code_commit` is required: the git commit that
    will train on this data (7-40 hex digits), or the word `none`."""

    class SnapshotInput(serializers.Serializer):
        class Meta:
            ref_name = "SnapshotInput"

        code_commit = serializers.CharField()
        code_repo = serializers.CharField(required=False, allow_blank=True, default="")
        message = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses={200: VersionOutput(many=True)})
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        paginator = VersionPagination()
        rows = Version.objects.filter(dataset=dataset).select_related("created_by")
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(VersionOutput(page, many=True).data)

    @extend_schema(request=SnapshotInput, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, dataset_id: int) -> Response:
        dataset = _dataset_or_404(request, dataset_id)
        if not selectors.dataset_can_edit(request.user, dataset):
            raise PermissionDenied("You may not snapshot this dataset.")
        data = self.SnapshotInput(data=request.data)
        data.is_valid(raise_exception=True)
        checked = versions.snapshot_request_check(**data.validated_data)
        job = versions.version_snapshot_submit(
            dataset=dataset, request=checked, created_by=request.user
        )
        return Response(
            {"job": job_ref(job.pk)},
            status=status.HTTP_202_ACCEPTED,
        )


def _version_or_404(request: Request, version_id: str) -> Version:
    return _of_visible_dataset(request, Version, version_id, "version")


class VersionDetailApi(APIView):
    """One version. Versions are immutable: this endpoint only reads."""

    @extend_schema(responses={200: VersionOutput})
    def get(self, request: Request, version_id: str) -> Response:
        return Response(VersionOutput(_version_or_404(request, version_id)).data)


class VersionManifestApi(APIView):
    """The version's canonical manifest, streamed as JSON Lines (its SHA-256 is the id)."""

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.STR})
    def get(self, request: Request, version_id: str) -> StreamingHttpResponse:
        version = _version_or_404(request, version_id)
        response = StreamingHttpResponse(
            versions.manifest_stream(version), content_type="application/jsonl; charset=utf-8"
        )
        response["Content-Length"] = str(version.manifest_size)
        response["Content-Disposition"] = f'attachment; filename="{version.pk}.jsonl"'
        return response


class VersionTagApi(APIView):
    """Tag a version (`v1.2`, `release`): 201. Tags are unique per dataset and never move;
    `release` needs the version's data checks passed."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "VersionTagInput"

        name = serializers.CharField(max_length=100)

    @extend_schema(request=Input, responses={201: VersionOutput})
    def post(self, request: Request, version_id: str) -> Response:
        version = _version_or_404(request, version_id)
        if not selectors.dataset_can_edit(request.user, version.dataset):
            raise PermissionDenied("You may not tag versions of this dataset.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        versions.version_tag(
            version=version, name=data.validated_data["name"], created_by=request.user
        )
        return Response(VersionOutput(_version_or_404(request, version_id)).data, status=201)


class VersionAssetsApi(APIView):
    """The distinct assets of a version (read from its manifest, so they stay those of the
    version whatever happens to the items), 1000 a page, each with a presigned GET URL:
    what `manage.py pull` downloads. Follow `next` until null (the cursor is opaque)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, OpenApiParameter.QUERY),
            OpenApiParameter("limit", OpenApiTypes.INT, OpenApiParameter.QUERY),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, version_id: str) -> Response:
        from datasets.services import pull

        version = _version_or_404(request, version_id)
        limit = request.query_params.get("limit", str(pull.ASSETS_PAGE_MAX))
        if not limit.isdigit() or not 1 <= int(limit) <= pull.ASSETS_PAGE_MAX:
            raise serializers.ValidationError({"limit": f"1 to {pull.ASSETS_PAGE_MAX}"})
        try:
            page = pull.version_assets_page(
                version=version, cursor=request.query_params.get("cursor"), limit=int(limit)
            )
        except ValueError as exc:
            raise serializers.ValidationError({"cursor": str(exc)}) from None
        next_url = None
        if page.next_cursor is not None:
            query = request.query_params.copy()
            query["cursor"] = page.next_cursor
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response(
            {
                "version": version.pk,
                "next": next_url,
                "url_expires_in": settings.S3_PRESIGN_EXPIRY,
                "results": [entry.as_dict() for entry in page.assets],
            }
        )


class VersionDiffApi(APIView):
    """What changed from version `a` to version `b` of one dataset: items added, removed,
    relabelled (before/after), moved between splits, per-class counts, and the shift of
    the label distribution (chi-square p-value, Jensen-Shannon distance) overall, per
    split and per tag (datasets.diff). Both manifests are streamed; `examples` caps the
    example ids listed per kind (0-1000, default 100), never the counts."""

    class DiffQuery(serializers.Serializer):
        class Meta:
            ref_name = "VersionDiffQuery"

        examples = serializers.IntegerField(min_value=0, max_value=1000, default=100)

    @extend_schema(parameters=[DiffQuery], responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, version_id: str, other_id: str) -> Response:
        from datasets.services.diffs import version_diff

        query = self.DiffQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        a = _version_or_404(request, version_id)
        b = _version_or_404(request, other_id)
        return Response(version_diff(a=a, b=b, examples=query.validated_data["examples"]))


class VersionParquetApi(APIView):
    """The Parquet copy of the version's manifest, for analytics (404 until the snapshot
    job has written it; datasets.services.parquet documents the columns)."""

    @extend_schema(responses={(200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY})
    def get(self, request: Request, version_id: str) -> StreamingHttpResponse:
        version = _version_or_404(request, version_id)
        key = manifest_key(version.pk, "parquet")
        if not object_exists(key):
            raise Http404(f"The Parquet copy of version {version.pk} is not written yet.")
        response = StreamingHttpResponse(
            object_chunks(key), content_type="application/vnd.apache.parquet"
        )
        response["Content-Disposition"] = f'attachment; filename="{version.pk}.parquet"'
        return response


# --- exports ----------------------------------------------------------------------------


class ExportOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "version",
            "format",
            "options",
            "state",
            "size",
            "sha256",
            "counts",
            "error",
            "job",
            "url",
            "download_url",
            "created_by",
            "created_at",
            "finished_at",
        ]

    def get_url(self, export: Export) -> str:
        return reverse("api-export-detail", kwargs={"export_id": export.pk})

    def get_download_url(self, export: Export) -> str | None:
        from datasets.services.exports import export_download_url

        return export_download_url(export)

    def get_job(self, export: Export) -> dict[str, Any] | None:
        return job_ref(export.job_id)


class ExportInput(serializers.Serializer):
    class Meta:
        ref_name = "ExportInput"

    format = serializers.CharField(
        help_text="jsonl, csv, coco, yolo, voc, conll, spacy, parquet or sql "
        "(GET /api/v1/export-formats lists them with the dataset kinds they fit)."
    )
    options = serializers.JSONField(
        required=False,
        default=dict,
        help_text='{"images": false, "splits": ["train", "val", "test"], "classes": [...]} '
        "(sql adds url, table, if_exists).",
    )


class ExportPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50


def _export_answer(export: Export, building: bool) -> Response:
    """202 while it is being built (follow `job`, then GET `url`), 200 once it is."""
    code = status.HTTP_200_OK if export.state == Export.State.DONE else status.HTTP_202_ACCEPTED
    return Response({**ExportOutput(export).data, "building": building}, status=code)


class VersionExportListApi(APIView):
    """POST: export the version in a format (datasets.formats). The same version, format
    and options give the same bytes, so a repeated request returns the cached export (200
    with `download_url` when built, 202 with its `job` while building). GET: the exports
    of this version, newest first."""

    @extend_schema(request=ExportInput, responses={200: ExportOutput, 202: ExportOutput})
    def post(self, request: Request, version_id: str) -> Response:
        from datasets.services.exports import export_request

        version = _version_or_404(request, version_id)
        data = ExportInput(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["format"] == "sql" and not selectors.dataset_can_edit(
            request.user, version.dataset
        ):
            # The server connects to the database it is given: not for every reader.
            raise PermissionDenied("Only ops, admins and the dataset's creator export to SQL.")
        export, building = export_request(
            version=version,
            fmt=data.validated_data["format"],
            options=data.validated_data["options"],
            created_by=request.user,
        )
        return _export_answer(export, building)

    @extend_schema(responses={200: ExportOutput(many=True)})
    def get(self, request: Request, version_id: str) -> Response:
        version = _version_or_404(request, version_id)
        paginator = ExportPagination()
        rows = Export.objects.filter(version=version).select_related(
            "created_by", "version__dataset"
        )
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ExportOutput(page, many=True).data)


class ExportDetailApi(APIView):
    """One export: its state, counts and, once built, a presigned `download_url`."""

    @extend_schema(responses={200: ExportOutput})
    def get(self, request: Request, export_id: int) -> Response:
        export = (
            Export.objects.select_related("created_by", "version__dataset")
            .filter(pk=export_id)
            .first()
        )
        if (
            export is None
            or not selectors.dataset_visible_to(request.user)
            .filter(pk=export.version.dataset_id)
            .exists()
        ):
            raise Http404(f"No export {export_id}.")
        return Response(ExportOutput(export).data)


class DatasetExportApi(APIView):
    """Export the dataset as it is now: snapshot it (or reuse its latest version when
    nothing changed), then export that version. 202 with the job; its report names the
    version and the export. `code_commit` defaults to `none`."""

    class Input(ExportInput):
        class Meta:
            ref_name = "DatasetExportInput"

        code_commit = serializers.CharField(required=False, default="none")
        code_repo = serializers.CharField(required=False, allow_blank=True, default="")
        message = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, dataset_id: int) -> Response:
        from datasets.services.exports import dataset_export_submit

        dataset = _dataset_or_404(request, dataset_id)
        if not selectors.dataset_can_edit(request.user, dataset):
            raise PermissionDenied("You may not snapshot this dataset.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        snapshot = versions.snapshot_request_check(
            code_commit=values["code_commit"],
            code_repo=values["code_repo"],
            message=values["message"],
        )
        job = dataset_export_submit(
            dataset=dataset,
            fmt=values["format"],
            options=values["options"],
            request=snapshot,
            created_by=request.user,
        )
        return Response(
            {"job": job_ref(job.pk)},
            status=status.HTTP_202_ACCEPTED,
        )


class ExportFormatListApi(APIView):
    """The export and import formats, with the dataset kinds each fits."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        from datasets.formats import (
            export_format,
            export_format_names,
            import_format,
            import_format_names,
        )

        exports = [export_format(name) for name in export_format_names()]
        imports = [import_format(name) for name in import_format_names()]
        return Response(
            {
                "exports": [
                    {"format": f.name, "title": f.title, "kinds": sorted(f.kinds)}
                    for f in exports
                    if f is not None
                ],
                "imports": [
                    {"format": f.name, "title": f.title, "kinds": sorted(f.kinds)}
                    for f in imports
                    if f is not None
                ],
            }
        )


class VersionAssetRedirectApi(APIView):
    """The stable URL an export gives an item (instead of a presigned URL, which expires
    and would change the export's bytes): 302 to a fresh presigned URL of the asset, if
    the asset is in this version's dataset."""

    @extend_schema(responses={302: None}, operation_id="v1_versions_asset_redirect")
    def get(self, request: Request, version_id: str, sha256: str) -> HttpResponseRedirect:
        from datasets.services.exports import asset_url

        version = _version_or_404(request, version_id)
        asset = Asset.objects.filter(pk=sha256, items__dataset_id=version.dataset_id).first()
        if asset is None:
            raise Http404(f"No asset {sha256} in the dataset of version {version.pk[:12]}.")
        return HttpResponseRedirect(asset_url(sha256, media_type=asset.media_type))
