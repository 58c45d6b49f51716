"""Create and change projects: their label schema revisions, members, and tasks.

Only ops, admins and superusers manage projects (labeling.selectors
.user_manages_projects); these services check it, so the UI and the API share one rule.
Tasks of a project's items are made by a job (`project_tasks_job_run`): a dataset may
hold a million items, too many for a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from datasets.models import Dataset, Item
from labeling.errors import InvalidProject, InvalidSchema
from labeling.models import (
    Annotation,
    Prediction,
    Project,
    ProjectMember,
    ReviewMode,
    SchemaRevision,
    Task,
)
from labeling.schema import schema_hash, schema_media_kind, schema_validate
from labeling.selectors import user_manages_projects
from workers.services import job_submit
from workers.types import JobContext

NAME_MAX_LENGTH = 200
MAX_OVERLAP = 20
MAX_PRIORITY_RULES = 50
PRIORITY_RANGE = (-1_000_000, 1_000_000)
# Items per INSERT … SELECT of tasks: ~0.3 s each on PostgreSQL here, so a job's
# progress moves and a retry redoes little.
TASKS_CHUNK = 50_000
TASKS_JOB_KIND = "project_tasks"
TASKS_JOB_HANDLER = "labeling.services.projects.project_tasks_job_run"
_UNSET: Any = object()


@dataclass(frozen=True)
class Member:
    username: str
    role: str = ProjectMember.Role.ANNOTATOR


# --- cleaning ---------------------------------------------------------------------------


def _clean_name(name: Any) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidProject("A project needs a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidProject(
            f"The name is {len(name)} characters long; at most {NAME_MAX_LENGTH} are allowed.",
            field="name",
        )
    return name


def _clean_overlap(overlap: Any) -> int:
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
        raise InvalidProject(
            f"overlap is how many annotators label each item: a whole number from 1 to "
            f"{MAX_OVERLAP}, not {overlap!r}.",
            field="overlap",
        )
    return overlap


def _clean_item_filter(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise InvalidProject(
            'item_filter must be an object like {"split": "train", "tags": ["night"]}.',
            field="item_filter",
        )
    unknown = sorted(set(raw) - {"split", "tags"})
    if unknown:
        raise InvalidProject(
            f"item_filter has unknown keys {', '.join(unknown)}; it takes split and tags.",
            field="item_filter",
        )
    cleaned: dict[str, Any] = {}
    split = raw.get("split")
    if split not in (None, ""):
        if split not in ("train", "val", "test"):
            raise InvalidProject(
                f"item_filter.split must be train, val or test, not {split!r}.",
                field="item_filter.split",
            )
        cleaned["split"] = split
    tags = raw.get("tags")
    if tags not in (None, []):
        if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
            raise InvalidProject(
                "item_filter.tags must be a list of tag names (an item with any of them "
                "is in the project).",
                field="item_filter.tags",
            )
        cleaned["tags"] = sorted({t.strip() for t in tags})
    return cleaned


def _clean_priority_rules(raw: Any) -> list[dict[str, Any]]:
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or len(raw) > MAX_PRIORITY_RULES:
        raise InvalidProject(
            f"priority_rules must be a list (at most {MAX_PRIORITY_RULES}) of rules like "
            '{"tag": "night", "priority": 10} or {"split": "test", "priority": 5}.',
            field="priority_rules",
        )
    rules = []
    for index, rule in enumerate(raw):
        where = f"priority_rules[{index}]"
        if not isinstance(rule, dict) or set(rule) not in (
            {"tag", "priority"},
            {"split", "priority"},
        ):
            raise InvalidProject(
                f'{where}: a rule has "priority" and one of "tag" or "split".', field=where
            )
        priority = rule["priority"]
        low, high = PRIORITY_RANGE
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not low <= priority <= high
        ):
            raise InvalidProject(
                f"{where}.priority must be a whole number from {low} to {high}.",
                field=f"{where}.priority",
            )
        if "tag" in rule:
            if not isinstance(rule["tag"], str) or not rule["tag"].strip():
                raise InvalidProject(f"{where}.tag must be a tag name.", field=f"{where}.tag")
            rules.append({"tag": rule["tag"].strip(), "priority": priority})
        else:
            if rule["split"] not in ("", "train", "val", "test"):
                raise InvalidProject(
                    f'{where}.split must be train, val, test or "" (no split).',
                    field=f"{where}.split",
                )
            rules.append({"split": rule["split"], "priority": priority})
    return rules


def _clean_members(members: Iterable[Member | dict[str, Any]] | None) -> list[tuple[Any, str]]:
    if members is None:
        return []
    wanted: list[Member] = []
    for index, member in enumerate(members):
        if isinstance(member, dict):
            if not isinstance(member.get("username"), str):
                raise InvalidProject(
                    f"members[{index}] needs a username.", field=f"members[{index}].username"
                )
            member = Member(member["username"], member.get("role") or ProjectMember.Role.ANNOTATOR)
        if member.role not in ProjectMember.Role.values:
            raise InvalidProject(
                f"members[{index}].role must be annotator or reviewer, not {member.role!r}.",
                field=f"members[{index}].role",
            )
        wanted.append(member)
    users = {
        u.get_username(): u
        for u in get_user_model().objects.filter(
            username__in=[m.username for m in wanted], is_active=True
        )
    }
    missing = [m.username for m in wanted if m.username not in users]
    if missing:
        raise InvalidProject(f"No active user named {', '.join(missing)}.", field="members")
    return [(users[m.username], m.role) for m in wanted]


# Review, consensus and gold settings (labeling.services.review, .gold): name -> check.
QUALITY_FIELDS = (
    "review_mode",
    "review_fraction",
    "consensus_threshold",
    "gold_rate",
    "gold_threshold",
    "gold_min_answers",
    "gold_pause",
)
_FRACTIONS = {
    "review_fraction": "the share of finished tasks to review",
    "consensus_threshold": "the consensus confidence under which a task goes to review",
    "gold_rate": "the share of leases that serve a gold task",
    "gold_threshold": "the gold accuracy under which an annotator is flagged",
}


def _clean_quality(values: dict[str, Any]) -> dict[str, Any]:
    """Check the given quality settings; return them cleaned. Raises InvalidProject
    naming the field."""
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name == "review_mode":
            if value not in ReviewMode.values:
                raise InvalidProject(
                    f"review_mode must be one of {', '.join(ReviewMode.values)}, not {value!r}.",
                    field=name,
                )
        elif name in _FRACTIONS:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise InvalidProject(
                    f"{name} is {_FRACTIONS[name]}: a number from 0 to 1, not {value!r}.",
                    field=name,
                )
            value = float(value)
        elif name == "gold_min_answers":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InvalidProject(
                    "gold_min_answers is how many gold tasks an annotator answers before "
                    f"their accuracy counts: a whole number from 1 to 1000, not {value!r}.",
                    field=name,
                )
        elif name == "gold_pause" and not isinstance(value, bool):
            raise InvalidProject(f"gold_pause is true or false, not {value!r}.", field=name)
        clean[name] = value
    return clean


def _schema_clean(raw: Any) -> dict[str, Any]:
    """schema_validate, with error paths under `label_schema` (the request field)."""
    try:
        return schema_validate(raw)
    except InvalidSchema as exc:

        def under(path: str | None) -> str:
            return f"label_schema.{path}" if path else "label_schema"

        raise InvalidSchema(
            f"label_schema.{exc}" if exc.field else f"label_schema: {exc}",
            field=under(exc.field),
            errors=[{**e, "field": under(e.get("field"))} for e in exc.errors],
        ) from None


def _check_schema_fits(schema: dict[str, Any], dataset: Dataset) -> None:
    kind = schema_media_kind(schema)
    if kind != dataset.kind:
        raise InvalidProject(
            f"A {schema['type']} schema labels {kind}s, but dataset {dataset.name!r} holds "
            f"{dataset.kind}s.",
            field="label_schema.type",
        )


def _require_manager(user: Any) -> None:
    if not user_manages_projects(user):
        raise PermissionDenied("Only ops and admins manage projects.")


# --- create and update ------------------------------------------------------------------


def project_create(
    *,
    created_by: Any,
    name: str,
    dataset: Dataset,
    label_schema: Any,
    description: str = "",
    instructions: str = "",
    overlap: int = 1,
    item_filter: Any = None,
    priority_rules: Any = None,
    members: Iterable[Member | dict[str, Any]] | None = None,
    **quality: Any,
) -> Project:
    """Create a project with revision 1 of its label schema and its members, and submit
    the job that makes its tasks (project.tasks_job), sent after commit. `quality` are
    the review, consensus and gold settings (QUALITY_FIELDS; the model's defaults when
    not given).

    Transactional: on any error nothing is stored. Raises InvalidProject /
    InvalidSchema naming the field, PermissionDenied for a user who is not ops/admin.
    """
    _require_manager(created_by)
    name = _clean_name(name)
    schema = _schema_clean(label_schema)
    _check_schema_fits(schema, dataset)
    overlap = _clean_overlap(overlap)
    item_filter = _clean_item_filter(item_filter)
    priority_rules = _clean_priority_rules(priority_rules)
    member_rows = _clean_members(members)
    unknown = sorted(set(quality) - set(QUALITY_FIELDS))
    if unknown:
        raise TypeError(f"project_create() got unexpected arguments {unknown}")
    quality = _clean_quality(quality)
    with transaction.atomic(durable=True):
        project = Project.objects.create(
            **quality,
            name=name,
            description=description or "",
            instructions=instructions or "",
            dataset=dataset,
            item_filter=item_filter,
            overlap=overlap,
            priority_rules=priority_rules,
            created_by=created_by,
        )
        project.schema_revision = SchemaRevision.objects.create(
            project=project,
            number=1,
            schema=schema,
            schema_hash=schema_hash(schema),
            created_by=created_by,
        )
        ProjectMember.objects.bulk_create(
            [ProjectMember(project=project, user=user, role=role) for user, role in member_rows]
        )
        project.tasks_job = project_tasks_submit(project=project, created_by=created_by)
        project.save(update_fields=["schema_revision", "tasks_job"])
    return project


def project_update(
    *,
    project: Project,
    by: Any,
    name: Any = _UNSET,
    description: Any = _UNSET,
    instructions: Any = _UNSET,
    label_schema: Any = _UNSET,
    overlap: Any = _UNSET,
    priority_rules: Any = _UNSET,
    members: Any = _UNSET,
    **quality: Any,
) -> Project:
    """Change the given fields of a project (`quality`: any of QUALITY_FIELDS).

    A changed label schema becomes a new revision when anything (an annotation or a
    prediction) was made under the current one, which keeps its meaning; otherwise the
    current revision is corrected in place. Overlap changes only while the project has
    no annotations. `members` replaces the member list. Transactional.
    """
    _require_manager(by)
    unknown = sorted(set(quality) - set(QUALITY_FIELDS))
    if unknown:
        raise TypeError(f"project_update() got unexpected arguments {unknown}")
    quality = _clean_quality(quality)
    changed: list[str] = []
    with transaction.atomic(durable=True):
        project = (
            Project.objects.select_for_update(of=("self",))
            .select_related("schema_revision", "dataset")
            .get(pk=project.pk)
        )
        if name is not _UNSET:
            project.name = _clean_name(name)
            changed.append("name")
        if description is not _UNSET:
            project.description = description or ""
            changed.append("description")
        if instructions is not _UNSET:
            project.instructions = instructions or ""
            changed.append("instructions")
        if label_schema is not _UNSET:
            _schema_change(project=project, raw=label_schema, by=by)
            changed.append("schema_revision")
        if overlap is not _UNSET and overlap != project.overlap:
            overlap = _clean_overlap(overlap)
            if Annotation.objects.filter(project=project).exists():
                raise InvalidProject(
                    "overlap cannot change once the project has annotations.", field="overlap"
                )
            Task.objects.filter(project=project).exclude(status=Task.Status.GOLD).update(
                remaining=overlap, status=Task.Status.OPEN
            )
            project.overlap = overlap
            project.done_count = 0
            changed += ["overlap", "done_count"]
        if priority_rules is not _UNSET:
            project.priority_rules = _clean_priority_rules(priority_rules)
            changed.append("priority_rules")
        for name, value in quality.items():
            setattr(project, name, value)
            changed.append(name)
        if members is not _UNSET:
            rows = _clean_members(members)
            ProjectMember.objects.filter(project=project).exclude(
                user__in=[user for user, _ in rows]
            ).delete()
            for user, role in rows:
                ProjectMember.objects.update_or_create(
                    project=project, user=user, defaults={"role": role}
                )
        if changed:
            project.save(update_fields=[*changed, "updated_at"])
    return project


def _schema_change(*, project: Project, raw: Any, by: Any) -> None:
    schema = _schema_clean(raw)
    _check_schema_fits(schema, project.dataset)
    current = project.schema_revision
    digest = schema_hash(schema)
    if current is not None and current.schema_hash == digest:
        return
    in_use = current is not None and (
        Annotation.objects.filter(project=project, revisions__schema_revision=current).exists()
        or Prediction.objects.filter(project=project, schema_revision=current).exists()
    )
    if current is not None and not in_use:
        current.schema = schema
        current.schema_hash = digest
        current.save(update_fields=["schema", "schema_hash"])
        return
    number = (current.number if current else 0) + 1
    project.schema_revision = SchemaRevision.objects.create(
        project=project, number=number, schema=schema, schema_hash=digest, created_by=by
    )


# --- tasks ------------------------------------------------------------------------------


def project_tasks_submit(*, project: Project, created_by: Any = None) -> Any:
    """Submit the job that makes the tasks of the project's items that have none yet
    (after commit). Safe to call again: tasks already made are left alone."""
    return job_submit(
        kind=TASKS_JOB_KIND,
        handler=TASKS_JOB_HANDLER,
        params={"project_id": project.pk},
        created_by=created_by,
    )


def _tasks_insert_sql(
    project: Project, *, after_item_id: int, upto_item_id: int
) -> tuple[str, list[Any]]:
    """INSERT … SELECT of the tasks of one id range of the project's items, with each
    task's priority from the rules (the highest rule matched: CASE in descending order),
    skipping items that have a task (ON CONFLICT: PostgreSQL, and SQLite ≥ 3.24)."""
    task_table = Task._meta.db_table
    item_table = Item._meta.db_table
    tag_table = Item.tags.rel.related_model._meta.db_table  # datasets.ItemTag
    params: list[Any] = [project.pk]
    case = "0"
    rules = sorted(project.priority_rules, key=lambda r: -r["priority"])
    if rules:
        whens = []
        for rule in rules:
            if "tag" in rule:
                whens.append(
                    f"WHEN EXISTS (SELECT 1 FROM {tag_table} g WHERE g.item_id = i.id "  # noqa: S608
                    "AND g.tag = %s) THEN %s"
                )
                params += [rule["tag"], rule["priority"]]
            else:
                whens.append("WHEN i.split = %s THEN %s")
                params += [rule["split"], rule["priority"]]
        case = f"CASE {' '.join(whens)} ELSE 0 END"
    params += [project.overlap, timezone.now(), project.dataset_id, after_item_id, upto_item_id]
    where = ["i.dataset_id = %s", "i.id > %s", "i.id <= %s"]
    if "split" in project.item_filter:
        where.append("i.split = %s")
        params.append(project.item_filter["split"])
    tags = project.item_filter.get("tags") or []
    if tags:
        where.append(
            f"EXISTS (SELECT 1 FROM {tag_table} g WHERE g.item_id = i.id AND g.tag IN "  # noqa: S608
            f"({', '.join(['%s'] * len(tags))}))"
        )
        params += tags
    sql = (
        f"INSERT INTO {task_table} (project_id, item_id, status, priority, remaining, updated_at) "  # noqa: S608
        f"SELECT %s, i.id, 'open', {case}, %s, %s FROM {item_table} i "
        f"WHERE {' AND '.join(where)} ORDER BY i.id "
        "ON CONFLICT (project_id, item_id) DO NOTHING"
    )
    return sql, params


def project_tasks_create(
    *, project: Project, after_item_id: int = 0, upto_item_id: int | None = None
) -> int:
    """Make the missing tasks of the project's items with ids in (after, upto]; return
    how many were made, and add them to project.task_count.

    Idempotent (existing tasks are skipped by the unique (project, item) constraint);
    one transaction; runs in the caller's transaction when there is one.
    """
    if upto_item_id is None:
        upto_item_id = (
            Item.objects.filter(dataset_id=project.dataset_id)
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
            or 0
        )
    sql, params = _tasks_insert_sql(project, after_item_id=after_item_id, upto_item_id=upto_item_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        made = max(cursor.rowcount, 0)
        if made:
            Project.objects.filter(pk=project.pk).update(task_count=F("task_count") + made)
    return made


def project_tasks_job_run(ctx: JobContext) -> dict[str, Any]:
    """Job handler: params {"project_id"}. Make the tasks of every item of the project's
    dataset (in its item filter) that has none, TASKS_CHUNK items per transaction.

    Safe to run twice and after new items arrive: existing tasks are skipped. Stops
    quietly if the project is gone.
    """
    project_id = ctx.params.get("project_id")
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"made": 0, "project": "gone"}
    ids = Item.objects.filter(dataset_id=project.dataset_id)
    last = ids.order_by("-id").values_list("id", flat=True).first() or 0
    first = ids.order_by("id").values_list("id", flat=True).first() or 0
    made = 0
    start = max(first - 1, 0)
    span = max(last - start, 0)
    while start < last:
        upto = start + TASKS_CHUNK
        made += project_tasks_create(project=project, after_item_id=start, upto_item_id=upto)
        start = upto
        ctx.progress(min(start, last) - (first - 1), span)
    return {"made": made}
