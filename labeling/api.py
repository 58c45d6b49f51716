"""REST API for projects, the task queue, annotations, drafts and predictions: parse,
check membership, call a service or selector, shape the answer. Errors are raised as
domain/DRF exceptions and shaped by config.exceptions."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.models import Dataset
from datasets.selectors import dataset_get_for_user
from labeling import selectors
from labeling.models import (
    Annotation,
    GoldItem,
    LabelImport,
    Lease,
    Project,
    ProjectMember,
    Review,
    ReviewLease,
    Task,
)
from labeling.services import (
    annotations,
    gold,
    label_imports,
    predictions,
    projects,
    queue,
    review,
)
from storage.keys import blob_key
from storage.services import presign_get
from workers.selectors import job_ref

# --- shapes -----------------------------------------------------------------------------


class MemberOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = ProjectMember
        fields = ["username", "role", "flagged_at", "flag_reason", "paused_at"]


class ProjectOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    label_schema = serializers.JSONField(source="schema_revision.schema")
    schema_revision = serializers.IntegerField(source="schema_revision.number")
    schema_hash = serializers.CharField(source="schema_revision.schema_hash")
    tasks_job = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "instructions",
            "dataset",
            "item_filter",
            "overlap",
            "priority_rules",
            "review_mode",
            "review_fraction",
            "consensus_threshold",
            "gold_rate",
            "gold_threshold",
            "gold_min_answers",
            "gold_pause",
            "label_schema",
            "schema_revision",
            "schema_hash",
            "task_count",
            "done_count",
            "tasks_job",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_tasks_job(self, project: Project) -> dict[str, Any] | None:
        return job_ref(project.tasks_job_id)


class ProjectDetailOutput(ProjectOutput):
    members = MemberOutput(source="memberships", many=True)

    class Meta(ProjectOutput.Meta):
        fields = [*ProjectOutput.Meta.fields, "members"]


class LeaseOutput(serializers.ModelSerializer):
    heartbeat_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Lease
        fields = ["id", "task", "slot", "expires_at", "heartbeat_seconds"]

    def get_heartbeat_seconds(self, lease: Lease) -> int:
        return queue.heartbeat_seconds()


def public_slot(slot: int | None) -> int:
    """The slot an annotator is shown: a gold task has none (any number of annotators
    answer it) and shows 0, as the first slot of any task does, so that nothing in an
    annotator's answers tells a gold task apart (issue 7)."""
    return 0 if slot is None else slot


def public_status(task: Task) -> str:
    """A task's status as annotators see it: a gold task is "open" (it always takes
    another annotator)."""
    return Task.Status.OPEN if task.status == Task.Status.GOLD else task.status


def lease_shape(lease: Lease) -> dict[str, Any]:
    """LeaseOutput's fields as a plain dict: a ModelSerializer rebuilds its fields on every
    instance, and a lease goes out with every task."""
    return {
        "id": lease.pk,
        "task": lease.task_id,
        "slot": public_slot(lease.slot),
        "expires_at": serializers.DateTimeField().to_representation(lease.expires_at),
        "heartbeat_seconds": queue.heartbeat_seconds(),
    }


def _revision_shape(revision: Any, *, with_result: bool = True) -> dict[str, Any]:
    shape = {
        "id": revision.pk,
        "number": revision.number,
        "created_at": revision.created_at,
        "created_by": revision.created_by.get_username(),
        "lead_time_ms": revision.lead_time_ms,
        "schema_revision": revision.schema_revision.number,
    }
    if with_result:
        shape["result"] = revision.result
    return shape


def _item_shape(task: Task) -> dict[str, Any]:
    item = task.item
    asset = item.asset
    text = annotations.task_text(task) if asset.media_type.startswith("text/") else None
    return {
        "id": item.pk,
        "external_id": item.external_id,
        "media_type": asset.media_type,
        "width": asset.width,
        "height": asset.height,
        "char_count": asset.char_count,
        "url": presign_get(blob_key(asset.sha256)),
        "text": text,
    }


def task_shape(task: Task, *, user: Any, mine: bool = True) -> dict[str, Any]:
    """Everything the annotator's page needs for one task, in a handful of queries.

    The same keys for every task: a gold task looks like any other (public_status,
    public_slot), and `review` is the reviewer's comment when the task came back to
    this annotator rejected (else null)."""
    project = task.project
    extras = selectors.task_extras(task=task, annotator=user)
    mine = (
        Annotation.objects.filter(task=task, annotator=user)
        .prefetch_related("revisions__created_by", "revisions__schema_revision")
        .first()
        if mine
        else None
    )
    latest = max(mine.revisions.all(), key=lambda r: r.number) if mine else None
    returned = selectors.rework_review(annotation=mine) if mine and mine.needs_rework else None
    return {
        "id": task.pk,
        "project": project.pk,
        "status": public_status(task),
        "item": _item_shape(task),
        "review": returned,
        "schema_revision": {
            "id": project.schema_revision.pk,
            "number": project.schema_revision.number,
            "schema": project.schema_revision.schema,
        },
        "draft": extras.draft,
        "predictions": extras.predictions,
        "annotation": (
            {"id": mine.pk, "slot": public_slot(mine.slot), "revision": _revision_shape(latest)}
            if mine and latest
            else None
        ),
        "progress": {
            "done_today": extras.done_today,
            "remaining": max(project.task_count - project.done_count, 0),
        },
    }


# --- access -----------------------------------------------------------------------------


def _project_or_404(request: Request, project_id: int) -> Project:
    try:
        return selectors.project_get_for_user(user=request.user, project_id=project_id)
    except Project.DoesNotExist:
        raise Http404(f"No project {project_id}.") from None


def _require_annotator(request: Request, project: Project) -> None:
    if selectors.member_role(user=request.user, project=project) is None:
        raise PermissionDenied(
            f"You are not a member of project {project.pk}; ask its owner to add you."
        )


def _task_or_404(request: Request, task_id: int) -> Task:
    """The task if the user may see it: ops/admins any, members of its project theirs."""
    try:
        return selectors.task_get_for_user(user=request.user, task_id=task_id)
    except Task.DoesNotExist:
        raise Http404(f"No task {task_id}.") from None


class ProjectPagination(CursorPagination):
    ordering = "-id"
    page_size = 50


# --- projects ---------------------------------------------------------------------------


class MemberInput(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=ProjectMember.Role.choices, default="annotator")


class QualitySettingsInput(serializers.Serializer):
    """Review, consensus and gold settings (projects.QUALITY_FIELDS), optional on create
    and update: checked by the service (400 naming the field); JSONField so a wrong type
    gets the service's message."""

    review_mode = serializers.JSONField(required=False)
    review_fraction = serializers.JSONField(required=False)
    consensus_threshold = serializers.JSONField(required=False)
    gold_rate = serializers.JSONField(required=False)
    gold_threshold = serializers.JSONField(required=False)
    gold_min_answers = serializers.JSONField(required=False)
    gold_pause = serializers.JSONField(required=False)


class ProjectListApi(APIView):
    """The projects you can see (newest first), or create one (ops and admins)."""

    class CreateInput(QualitySettingsInput):
        class Meta:
            ref_name = "ProjectCreateInput"

        name = serializers.CharField(max_length=200)
        dataset = serializers.IntegerField()
        label_schema = serializers.JSONField()
        description = serializers.CharField(required=False, allow_blank=True, default="")
        instructions = serializers.CharField(required=False, allow_blank=True, default="")
        overlap = serializers.IntegerField(required=False, default=1)
        item_filter = serializers.JSONField(required=False, default=None)
        priority_rules = serializers.JSONField(required=False, default=None)
        members = MemberInput(many=True, required=False, default=list)

    @extend_schema(responses={200: ProjectOutput(many=True)})
    def get(self, request: Request) -> Response:
        paginator = ProjectPagination()
        rows = selectors.project_visible_to(request.user).select_related(
            "created_by", "schema_revision"
        )
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ProjectOutput(page, many=True).data)

    @extend_schema(request=CreateInput, responses={201: ProjectDetailOutput})
    def post(self, request: Request) -> Response:
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins create projects.")
        data = self.CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        try:
            dataset = dataset_get_for_user(user=request.user, dataset_id=fields.pop("dataset"))
        except Dataset.DoesNotExist:
            raise serializers.ValidationError(
                {"dataset": [f"No dataset {data.validated_data['dataset']}."]}
            ) from None
        project = projects.project_create(created_by=request.user, dataset=dataset, **fields)
        project = selectors.project_get_for_user(user=request.user, project_id=project.pk)
        return Response(ProjectDetailOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """One project; PATCH changes it (ops and admins). A changed label_schema becomes a
    new schema revision once annotations exist under the current one."""

    class UpdateInput(QualitySettingsInput):
        class Meta:
            ref_name = "ProjectUpdateInput"

        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        instructions = serializers.CharField(required=False, allow_blank=True)
        label_schema = serializers.JSONField(required=False)
        overlap = serializers.IntegerField(required=False)
        priority_rules = serializers.JSONField(required=False)
        members = MemberInput(many=True, required=False)

    @extend_schema(responses={200: ProjectDetailOutput})
    def get(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        body = ProjectDetailOutput(project).data
        if not selectors.user_manages_projects(request.user):
            # Gold flags are between ops and the annotator: members see only their own.
            me = request.user.get_username()
            for member in body["members"]:
                if member["username"] != me:
                    member.update(flagged_at=None, flag_reason="", paused_at=None)
        return Response(body)

    @extend_schema(request=UpdateInput, responses={200: ProjectDetailOutput})
    def patch(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        data = self.UpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        projects.project_update(project=project, by=request.user, **data.validated_data)
        project = selectors.project_get_for_user(user=request.user, project_id=project_id)
        return Response(ProjectDetailOutput(project).data)


# --- the queue --------------------------------------------------------------------------


class NextTaskApi(APIView):
    """Lease the next task slot for you (200), or 204 when nothing is left for you.

    Asking again while you hold a lease in this project returns that lease, renewed."""

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "LeasedTask",
                {"lease": LeaseOutput(), "task": serializers.DictField()},
            ),
            204: None,
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        _require_annotator(request, project)
        grant = queue.task_lease_next(project=project, annotator=request.user)
        if grant is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # A new lease is on a task the user never annotated (no annotation to look up),
        # unless a reviewer sent their annotation back.
        mine = grant.renewed or grant.task.review == Task.Review.REJECTED
        shape = task_shape(grant.task, user=request.user, mine=mine)
        return Response({"lease": lease_shape(grant.lease), "task": shape})


class LeaseApi(APIView):
    """PATCH renews your lease (the page's heartbeat); DELETE gives it back. Someone
    else's lease is a 404."""

    @extend_schema(request=None, responses={200: LeaseOutput})
    def patch(self, request: Request, lease_id: int) -> Response:
        try:
            lease = queue.lease_heartbeat(lease_id=lease_id, annotator=request.user)
        except Lease.DoesNotExist:
            raise Http404(f"No lease {lease_id} of yours.") from None
        return Response(lease_shape(lease))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, lease_id: int) -> Response:
        try:
            queue.lease_release(lease_id=lease_id, annotator=request.user)
        except Lease.DoesNotExist:
            raise Http404(f"No lease {lease_id} of yours.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskDetailApi(APIView):
    """A task as its annotator's page shows it. Annotators see tasks they hold a lease on
    or annotated; ops and admins any."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        user = request.user
        if not selectors.user_manages_projects(user):
            holds = Lease.objects.filter(task=task, annotator=user, ended_at__isnull=True).exists()
            if not holds and not Annotation.objects.filter(task=task, annotator=user).exists():
                raise Http404(f"No task {task_id} of yours.")
        return Response(task_shape(task, user=user))


class SkipApi(APIView):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "TaskSkipInput"

        reason = serializers.CharField(max_length=500)
        lease = serializers.IntegerField(required=False, allow_null=True, default=None)

    @extend_schema(request=Input, responses={200: None})
    def post(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_annotator(request, task.project)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        skip = queue.task_skip(
            task=task,
            annotator=request.user,
            reason=data.validated_data["reason"],
            lease_id=data.validated_data["lease"],
        )
        return Response({"task": task.pk, "reason": skip.reason, "created_at": skip.created_at})


class AnnotationListApi(APIView):
    """GET: the task's annotations with every revision (yours; ops and reviewers all).
    POST: submit your result (a new annotation with the lease from /next, or a new
    revision of yours). Send an `idempotency_key` (or Idempotency-Key header) to make a
    re-sent submit a no-op."""

    class SubmitInput(serializers.Serializer):
        class Meta:
            ref_name = "AnnotationSubmitInput"

        result = serializers.JSONField()
        lease = serializers.IntegerField(required=False, allow_null=True, default=None)
        lead_time_ms = serializers.JSONField(required=False, default=None)
        idempotency_key = serializers.CharField(
            required=False, allow_null=True, allow_blank=True, default=None
        )

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        rows = Annotation.objects.filter(task=task).select_related("annotator")
        user = request.user
        sees_all = selectors.user_manages_projects(user) or (
            selectors.member_role(user=user, project=task.project) == ProjectMember.Role.REVIEWER
        )
        if not sees_all:
            rows = rows.filter(annotator=user)
        rows = rows.prefetch_related("revisions__created_by", "revisions__schema_revision")
        return Response(
            {
                "task": task.pk,
                "annotations": [
                    {
                        "id": a.pk,
                        "slot": a.slot if sees_all else public_slot(a.slot),
                        "annotator": a.annotator.get_username(),
                        "created_at": a.created_at,
                        "updated_at": a.updated_at,
                        "revisions": [
                            _revision_shape(r)
                            for r in sorted(a.revisions.all(), key=lambda r: r.number)
                        ],
                    }
                    for a in rows.order_by("slot")
                ],
            }
        )

    @extend_schema(request=SubmitInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_annotator(request, task.project)
        data = self.SubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        outcome = annotations.annotation_submit(
            task=task,
            annotator=request.user,
            result=values["result"],
            lease_id=values["lease"],
            lead_time_ms=values["lead_time_ms"],
            idempotency_key=values["idempotency_key"] or request.headers.get("Idempotency-Key"),
        )
        revision = outcome.revision
        body = {
            "annotation": {
                "id": outcome.annotation.pk,
                "task": task.pk,
                "slot": public_slot(outcome.annotation.slot),
                "revision": {
                    "id": revision.pk,
                    "number": revision.number,
                    "created_at": revision.created_at,
                },
            },
            "task_status": outcome.task_status,
        }
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else 200)


class DraftApi(APIView):
    """Your unsubmitted work on a task: GET it back, PUT to autosave."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "DraftInput"

        result = serializers.JSONField()

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        draft = annotations.draft_get(task=task, annotator=request.user)
        if draft is None:
            raise Http404(f"No draft of yours on task {task_id}.")
        return Response({"task": task.pk, "result": draft.result, "updated_at": draft.updated_at})

    @extend_schema(request=Input, responses={204: None})
    def put(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_annotator(request, task.project)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        annotations.draft_save(
            task=task, annotator=request.user, result=data.validated_data["result"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryApi(APIView):
    """Your annotations in the project, most recently changed first ("go back").
    `?before=<updated_at of the last row>` pages on."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        before = request.query_params.get("before")
        parsed = None
        if before:
            parsed = parse_datetime(before)
            if parsed is None:
                raise serializers.ValidationError({"before": ["Not a date-time."]})
        rows = selectors.annotator_history(project=project, annotator=request.user, before=parsed)
        results = [
            {
                "task": a.task_id,
                "annotation": a.pk,
                "item_external_id": a.task.item.external_id,
                "updated_at": a.updated_at,
                "revision_count": a.revision_count,
            }
            for a in rows
        ]
        return Response(
            {"results": results, "next_before": results[-1]["updated_at"] if results else None}
        )


class PredictionImportApi(APIView):
    """Import pre-annotations (ops and admins): all rows valid or nothing stored."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "PredictionImportInput"

        predictions = serializers.JSONField()

    @extend_schema(request=Input, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins import predictions.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = predictions.predictions_import(
            project=project, rows=data.validated_data["predictions"]
        )
        return Response(
            {"created": outcome.created, "updated": outcome.updated},
            status=status.HTTP_201_CREATED,
        )


# --- label file imports -------------------------------------------------------------------


class LabelImportOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")
    url = serializers.SerializerMethodField()
    problems_url = serializers.SerializerMethodField()
    job = serializers.SerializerMethodField()

    class Meta:
        model = LabelImport
        fields = [
            "id",
            "project",
            "format",
            "mode",
            "match",
            "valid_only",
            "model_name",
            "file_name",
            "file_size",
            "state",
            "records",
            "imported",
            "rejected",
            "problem_count",
            "error",
            "job",
            "url",
            "problems_url",
            "created_by",
            "created_at",
            "finished_at",
        ]

    def get_url(self, row: LabelImport) -> str:
        return reverse("api-label-import", kwargs={"label_import_id": row.pk})

    def get_problems_url(self, row: LabelImport) -> str:
        return reverse("api-label-import-problems", kwargs={"label_import_id": row.pk})

    def get_job(self, row: LabelImport) -> dict[str, Any] | None:
        return job_ref(row.job_id)


class LabelImportPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50


class LabelImportListApi(APIView):
    """POST (multipart, ops and admins): import a label file into the project, as
    `ground_truth` (published labels), `predictions` (pre-annotations of `model_name`) or
    `gold` (a gold set: known answers that annotators are scored against).
    `format`: coco, yolo, voc, labelstudio, conll, csv or jsonl; `match`: how a record
    names its item (file_name, external_id or sha256); `valid_only`: import the valid
    records even when others have problems (by default one problem stores nothing).
    202 with the job; the import's `problems_url` lists every problem (row, field,
    reason). GET: the project's imports, newest first."""

    parser_classes = [MultiPartParser, FormParser]

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "LabelImportInput"

        file = serializers.FileField()
        format = serializers.CharField()
        mode = serializers.CharField(default="ground_truth")
        match = serializers.CharField(default="file_name")
        valid_only = serializers.BooleanField(default=False)
        model_name = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request={"multipart/form-data": Input}, responses={202: LabelImportOutput})
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins import labels.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        row = label_imports.label_import_create(
            project=project,
            upload=values["file"],
            fmt=values["format"],
            mode=values["mode"],
            match=values["match"],
            valid_only=values["valid_only"],
            model_name=values["model_name"],
            created_by=request.user,
        )
        return Response(LabelImportOutput(row).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: LabelImportOutput(many=True)})
    def get(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        paginator = LabelImportPagination()
        rows = LabelImport.objects.filter(project=project).select_related("created_by")
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(LabelImportOutput(page, many=True).data)


def _label_import_or_404(request: Request, label_import_id: int) -> LabelImport:
    row = LabelImport.objects.select_related("created_by").filter(pk=label_import_id).first()
    if row is None:
        raise Http404(f"No label import {label_import_id}.")
    _project_or_404(request, row.project_id)
    return row


class LabelImportDetailApi(APIView):
    """One label import: its state and counts."""

    @extend_schema(responses={200: LabelImportOutput})
    def get(self, request: Request, label_import_id: int) -> Response:
        return Response(LabelImportOutput(_label_import_or_404(request, label_import_id)).data)


class LabelImportProblemPagination(CursorPagination):
    ordering = "seq"
    page_size = 200


class LabelImportProblemsApi(APIView):
    """Every problem of a label import in file order: {row, field, reason}, 200 a page
    (follow `next`)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, label_import_id: int) -> Response:
        row = _label_import_or_404(request, label_import_id)
        paginator = LabelImportProblemPagination()
        page = paginator.paginate_queryset(row.problems.all(), request, view=self)
        return paginator.get_paginated_response(
            [{"row": p.row, "field": p.field, "reason": p.reason} for p in page]
        )


class ProjectExportApi(APIView):
    """Export the project's current labels (ops and admins): its dataset is snapshotted
    (or its latest version reused when nothing changed) and that version exported, as
    POST /api/v1/datasets/{id}/exports does. 202 with the job; its report names the
    version and the export."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ProjectExportInput"

        format = serializers.CharField()
        options = serializers.JSONField(required=False, default=dict)
        code_commit = serializers.CharField(required=False, default="none")
        message = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, project_id: int) -> Response:
        from datasets.services.exports import dataset_export_submit
        from datasets.services.versions import snapshot_request_check

        project = _project_or_404(request, project_id)
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins export projects.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["format"] == "sql":
            raise PermissionDenied("Export a version to SQL through /api/v1/versions/{id}/exports.")
        snapshot = snapshot_request_check(
            code_commit=values["code_commit"],
            message=values["message"] or f"export of project {project.name}",
        )
        job = dataset_export_submit(
            dataset=project.dataset,
            fmt=values["format"],
            options=values["options"],
            request=snapshot,
            created_by=request.user,
        )
        return Response(
            {"job": job_ref(job.pk)},
            status=status.HTTP_202_ACCEPTED,
        )


# --- review ------------------------------------------------------------------------------


def _require_reviewer(request: Request, project: Project) -> None:
    if not selectors.user_reviews(user=request.user, project=project):
        raise PermissionDenied(
            f"Only reviewers of project {project.pk}, ops and admins review its tasks."
        )


def review_lease_shape(lease: ReviewLease) -> dict[str, Any]:
    return {
        "id": lease.pk,
        "task": lease.task_id,
        "expires_at": serializers.DateTimeField().to_representation(lease.expires_at),
        "heartbeat_seconds": queue.heartbeat_seconds(),
    }


def review_task_shape(task: Task) -> dict[str, Any]:
    """What the reviewer's page needs: the item, every current annotation, the proposed
    label (the one annotation, or the consensus of several with its confidence) and the
    task's earlier reviews."""
    project = task.project
    revisions = review.latest_revisions(task_id=task.pk)
    proposal = None
    if revisions:
        result, consensus, chosen = review.task_proposal(
            task=task, project=project, revisions=revisions
        )
        proposal = {
            "result": result,
            "source": "annotation" if chosen is not None else "consensus",
            "method": consensus.method,
            "annotation": chosen.annotation_id if chosen is not None else None,
            "confidence": round(consensus.confidence, 6),
        }
    return {
        "id": task.pk,
        "project": project.pk,
        "status": task.status,
        "review": task.review,
        "item": _item_shape(task),
        "schema_revision": {
            "id": project.schema_revision.pk,
            "number": project.schema_revision.number,
            "schema": project.schema_revision.schema,
        },
        "annotations": [
            {
                "id": r.annotation_id,
                "slot": r.annotation.slot,
                "annotator": r.annotation.annotator.get_username(),
                "needs_rework": r.annotation.needs_rework,
                "revision": _revision_shape(r),
            }
            for r in revisions
        ],
        "proposal": proposal,
        "reviews": selectors.task_reviews(task=task),
        "progress": {"pending": selectors.review_pending_count(project=project)},
    }


class ReviewNextApi(APIView):
    """Lease the next task waiting for review (200), or 204 when none waits. Asking
    again while you hold a review lease in this project returns it, renewed.
    Reviewers, ops and admins."""

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "ReviewLeasedTask",
                {"lease": serializers.DictField(), "task": serializers.DictField()},
            ),
            204: None,
        },
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        _require_reviewer(request, project)
        grant = review.review_lease_next(project=project, reviewer=request.user)
        if grant is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            {"lease": review_lease_shape(grant.lease), "task": review_task_shape(grant.task)}
        )


class ReviewLeaseApi(APIView):
    """PATCH renews your review lease; DELETE gives the task back to the review queue.
    Someone else's lease is a 404."""

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    def patch(self, request: Request, lease_id: int) -> Response:
        try:
            lease = review.review_lease_heartbeat(lease_id=lease_id, reviewer=request.user)
        except ReviewLease.DoesNotExist:
            raise Http404(f"No review lease {lease_id} of yours.") from None
        return Response(review_lease_shape(lease))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, lease_id: int) -> Response:
        try:
            review.review_lease_release(lease_id=lease_id, reviewer=request.user)
        except ReviewLease.DoesNotExist:
            raise Http404(f"No review lease {lease_id} of yours.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskReviewApi(APIView):
    """GET: the task as the reviewer's page shows it (annotations, proposal, reviews).
    POST: decide: accept (publish the proposal, or `annotation`'s result), fix (your
    `result` becomes a new revision and is published), reject (`comment` required: the
    annotation goes back to its annotator). Reviewers, ops and admins."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ReviewDecisionInput"

        decision = serializers.ChoiceField(choices=Review.Decision.choices)
        comment = serializers.CharField(required=False, allow_blank=True, default="")
        annotation = serializers.IntegerField(required=False, allow_null=True, default=None)
        result = serializers.JSONField(required=False, default=None)
        lease = serializers.IntegerField(required=False, allow_null=True, default=None)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_reviewer(request, task.project)
        return Response(review_task_shape(task))

    @extend_schema(request=Input, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_reviewer(request, task.project)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        decided = review.review_decide(
            task=task,
            reviewer=request.user,
            decision=values["decision"],
            comment=values["comment"],
            annotation_id=values["annotation"],
            result=values["result"],
            review_lease_id=values["lease"],
        )
        return Response(
            {
                "review": {
                    "id": decided.pk,
                    "decision": decided.decision,
                    "comment": decided.comment,
                    "annotation": decided.annotation_id,
                    "revision": decided.revision_id,
                    "created_at": decided.created_at,
                },
                "task": {"id": task.pk, "review": review.STATE_AFTER[decided.decision]},
            },
            status=status.HTTP_201_CREATED,
        )


class TaskHistoryApi(APIView):
    """Everything that happened to a task, oldest first: leases, revisions, skips,
    review leases and decisions. Reviewers, ops and admins."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, task_id: int) -> Response:
        task = _task_or_404(request, task_id)
        _require_reviewer(request, task.project)
        return Response({"task": task.pk, "events": selectors.task_history(task=task)})


# --- gold ---------------------------------------------------------------------------------


class GoldPagination(CursorPagination):
    ordering = "-id"
    page_size = 100


class GoldListApi(APIView):
    """The project's gold items with their answers' scores (GET), or mark an item as
    gold with its known answer (POST; marking it again changes the answer). Ops and
    admins only: gold items are never shown to annotators."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "GoldItemInput"

        item = serializers.IntegerField()
        result = serializers.JSONField()

    @staticmethod
    def _shape(marked: GoldItem) -> dict[str, Any]:
        return {
            "task": marked.task_id,
            "item": marked.task.item_id,
            "external_id": marked.task.item.external_id,
            "result": marked.result,
            "schema_revision": marked.schema_revision.number,
            "created_by": marked.created_by.get_username(),
            "created_at": marked.created_at,
            "updated_at": marked.updated_at,
            "answers": getattr(marked, "answers", None),
            "mean_score": getattr(marked, "mean_score", None),
        }

    def _manager_project(self, request: Request, project_id: int) -> Project:
        project = _project_or_404(request, project_id)
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins see and mark gold items.")
        return project

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, project_id: int) -> Response:
        project = self._manager_project(request, project_id)
        paginator = GoldPagination()
        rows = gold.gold_items(project=project)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([self._shape(g) for g in page])

    @extend_schema(request=Input, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, project_id: int) -> Response:
        project = self._manager_project(request, project_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        marked = gold.gold_mark(
            project=project,
            item=data.validated_data["item"],
            result=data.validated_data["result"],
            by=request.user,
        )
        marked = gold.gold_items(project=project).get(pk=marked.pk)
        return Response(self._shape(marked), status=status.HTTP_201_CREATED)


class MemberResumeApi(APIView):
    """Clear a member's gold flag and pause (ops and admins)."""

    @extend_schema(request=None, responses={200: MemberOutput})
    def post(self, request: Request, project_id: int, username: str) -> Response:
        project = _project_or_404(request, project_id)
        try:
            member = gold.member_resume(project=project, username=username, by=request.user)
        except ProjectMember.DoesNotExist:
            raise Http404(f"{username!r} is not a member of project {project_id}.") from None
        return Response(MemberOutput(member).data)


class ProjectConsensusApi(APIView):
    """Apply Dawid-Skene consensus to the project's finished classification tasks (ops
    and admins): 202 with the job. Tasks under the consensus threshold go to review;
    the others get the Dawid-Skene class as their label."""

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, project_id: int) -> Response:
        project = _project_or_404(request, project_id)
        if not selectors.user_manages_projects(request.user):
            raise PermissionDenied("Only ops and admins resolve a project's consensus.")
        job = review.project_consensus_submit(project=project, created_by=request.user)
        return Response({"job": job_ref(job.pk)}, status=status.HTTP_202_ACCEPTED)
