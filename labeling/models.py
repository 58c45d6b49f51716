"""Labelling tables: projects and their label schema revisions, the task queue (tasks and
leases), annotations (append-only revisions), drafts, skips and pre-annotations.

Invariants live here as database constraints:
- one Task per (project, item);
- at most one unended Lease per (task, slot): two people can never hold the same slot
  (a partial unique index; the queue also never hands out a slot whose lease is live);
- one Annotation per (task, annotator) and per (task, slot): overlap N means N distinct
  annotators;
- a re-sent submit carries the same idempotency key and finds the revision it made.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class ReviewMode(models.TextChoices):
    OFF = "off", "No review"
    ALL = "all", "Review every task"
    SAMPLED = "sampled", "Review a sample"


class Project(models.Model):
    """A labelling job on a dataset (or a slice of it) under one label schema."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Markdown, rendered with raw HTML escaped (labeling.markdown).
    instructions = models.TextField(blank=True, default="")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="+")
    # The slice of the dataset that becomes tasks: {"split": "train", "tags": ["night"]}
    # (empty: every item). Applied when tasks are created.
    item_filter = models.JSONField(default=dict, blank=True)
    # How many different annotators label each item.
    overlap = models.PositiveSmallIntegerField(default=1)
    # [{"tag": "night", "priority": 10}, {"split": "test", "priority": 5}]: a task gets
    # the highest priority of the rules its item matches (0 when none); higher first.
    priority_rules = models.JSONField(default=list, blank=True)
    # The revision new annotations are made under (null only while being created).
    schema_revision = models.ForeignKey(
        "SchemaRevision", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The job that creates the tasks of new items (labeling.services.projects).
    tasks_job = models.ForeignKey(
        "workers.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Review (labeling.services.review): off, every finished task, or a sampled fraction
    # of them (chosen by a hash of the task id, so the sample is reproducible).
    review_mode = models.CharField(
        max_length=8, choices=ReviewMode.choices, default=ReviewMode.OFF, db_default="off"
    )
    review_fraction = models.FloatField(default=0.1, db_default=0.1)
    # With overlap > 1 a finished task's consensus is published when its confidence is at
    # least this; below it the task goes to review.
    consensus_threshold = models.FloatField(default=0.7, db_default=0.7)
    # Gold items (labeling.services.gold): the share of leases that serve a gold task,
    # and the gold accuracy under which an annotator is flagged (and, with gold_pause,
    # gets no more tasks) once they answered gold_min_answers gold tasks.
    gold_rate = models.FloatField(default=0.1, db_default=0.1)
    gold_threshold = models.FloatField(default=0.7, db_default=0.7)
    gold_min_answers = models.PositiveSmallIntegerField(default=5, db_default=5)
    gold_pause = models.BooleanField(default=True, db_default=True)
    # Running totals kept by the queue services: a dashboard must not count 1M rows.
    task_count = models.PositiveBigIntegerField(default=0, db_default=0)
    done_count = models.PositiveBigIntegerField(default=0, db_default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMember", related_name="labeling_projects"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="project_name_not_empty"),
            models.CheckConstraint(
                condition=Q(overlap__gte=1) & Q(overlap__lte=20), name="project_overlap_range"
            ),
            models.CheckConstraint(
                condition=Q(review_mode__in=["off", "all", "sampled"]), name="project_review_mode"
            ),
            models.CheckConstraint(
                condition=Q(review_fraction__gte=0)
                & Q(review_fraction__lte=1)
                & Q(consensus_threshold__gte=0)
                & Q(consensus_threshold__lte=1)
                & Q(gold_rate__gte=0)
                & Q(gold_rate__lte=1)
                & Q(gold_threshold__gte=0)
                & Q(gold_threshold__lte=1),
                name="project_quality_fractions",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ProjectMember(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        REVIEWER = "reviewer", "Reviewer"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ANNOTATOR)
    added_at = models.DateTimeField(auto_now_add=True)
    # Set when the member's gold accuracy fell under the project's threshold
    # (labeling.services.gold); `paused_at` too when the project pauses such annotators:
    # a paused member gets no task until ops resume them.
    flagged_at = models.DateTimeField(null=True, blank=True)
    flag_reason = models.CharField(max_length=300, blank=True, default="")
    paused_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="member_unique"),
            models.CheckConstraint(
                condition=Q(role__in=["annotator", "reviewer"]), name="member_role"
            ),
        ]
        indexes = [models.Index(fields=["user", "project"], name="member_user")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} of project {self.project_id}"


class SchemaRevision(models.Model):
    """One immutable version of a project's label schema (labeling.schema)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schema_revisions")
    number = models.PositiveIntegerField()
    schema = models.JSONField()
    # SHA-256 of the canonical JSON of `schema`: versions record it in their header.
    schema_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="schema_revision_number"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id} r{self.number}"


class Task(models.Model):
    """One item of a project, with `project.overlap` slots for annotations."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"  # some slot still needs an annotation
        DONE = "done", "Done"  # every slot has one
        # A gold item (GoldItem): served to any number of annotators, never published from
        # their answers. Shown to annotators as "open"/"done" (never as gold).
        GOLD = "gold", "Gold"

    class Review(models.TextChoices):
        NONE = "", "Not in review"
        PENDING = "pending", "Waiting for review"
        REJECTED = "rejected", "Rejected, back with its annotator"
        ACCEPTED = "accepted", "Accepted"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    item = models.ForeignKey("datasets.Item", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=4, choices=Status.choices, default=Status.OPEN)
    priority = models.IntegerField(default=0)
    # Slots still without an annotation: overlap minus annotations made.
    remaining = models.PositiveSmallIntegerField(default=1)
    review = models.CharField(
        max_length=8, choices=Review.choices, blank=True, default="", db_default=""
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "item"], name="task_item_per_project"),
            models.CheckConstraint(
                condition=Q(status__in=["open", "done", "gold"]), name="task_status"
            ),
            models.CheckConstraint(
                condition=Q(status="done", remaining=0)
                | Q(status="open", remaining__gt=0)
                | Q(status="gold"),
                name="task_status_matches_remaining",
            ),
            models.CheckConstraint(
                condition=Q(review__in=["", "pending", "rejected", "accepted"]),
                name="task_review",
            ),
        ]
        indexes = [
            # The queue: open tasks of a project, highest priority first, then oldest.
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="task_queue",
                condition=Q(status="open"),
            ),
            models.Index(fields=["project", "id"], name="task_project_id"),
            # The reviewers' queue.
            models.Index(
                F("project"),
                F("priority").desc(),
                F("id"),
                name="task_review_queue",
                condition=Q(review="pending"),
            ),
            models.Index(fields=["project", "id"], name="task_gold", condition=Q(status="gold")),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.status})"


class Lease(models.Model):
    """One annotator's hold on one slot of a task until `expires_at`.

    Rows are kept after they end (submit, skip, release, expiry) as the queue's history:
    the benchmark counts overlapping leases of a slot from them. A lease is live while
    `ended_at` is null and `expires_at` is in the future; an expired lease is ended by
    whoever takes its slot next.
    """

    class End(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="leases")
    # Denormalised from task: the expiry sweep scans one project's live leases.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # Null on a gold task, which has no slots (any number of annotators answer it).
    slot = models.PositiveSmallIntegerField(null=True, blank=True)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=End.choices, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "slot"],
                condition=Q(ended_at__isnull=True),
                name="lease_one_per_slot",
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=F("leased_at")), name="lease_expiry"),
        ]
        indexes = [
            models.Index(
                fields=["annotator", "project"],
                condition=Q(ended_at__isnull=True),
                name="lease_live_by_annotator",
            ),
            models.Index(
                fields=["project", "expires_at"],
                condition=Q(ended_at__isnull=True),
                name="lease_unended_by_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} on task {self.task_id} slot {self.slot}"


class Annotation(models.Model):
    """One annotator's work on one slot of a task; its content is its latest revision."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    # Null on a gold task (see Lease.slot).
    slot = models.PositiveSmallIntegerField(null=True, blank=True)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # Denormalised for "my recent tasks" and the dashboard.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    revision_count = models.PositiveIntegerField(default=1)
    # A reviewer rejected it: it is back in its annotator's queue (with the review's
    # comment) until they submit again.
    needs_rework = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="annotation_per_annotator"),
            models.UniqueConstraint(fields=["task", "slot"], name="annotation_per_slot"),
        ]
        indexes = [
            models.Index(fields=["annotator", "project", "-updated_at"], name="annotation_recent"),
            models.Index(
                fields=["annotator", "project", "updated_at"],
                name="annotation_rework",
                condition=Q(needs_rework=True),
            ),
            models.Index(fields=["project", "created_at"], name="annotation_project_created"),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} of task {self.task_id}"


class AnnotationRevision(models.Model):
    """What an annotation said at one moment: never changed, never deleted."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    # A list of regions in the shape documented in labeling.results.
    result = models.JSONField()
    schema_revision = models.ForeignKey(SchemaRevision, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    # Time the annotator spent on it, as reported by the client (milliseconds).
    lead_time_ms = models.PositiveIntegerField(null=True, blank=True)
    # A client-chosen key (a UUID per submit): the same key again returns this revision.
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 (null: no key; "" would collide)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotation", "number"], name="revision_number"),
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="revision_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"revision {self.number} of annotation {self.annotation_id}"


class Draft(models.Model):
    """Unsubmitted work of one annotator on one task, autosaved by the UI."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    result = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="draft_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"draft of task {self.task_id} by {self.annotator_id}"


class Skip(models.Model):
    """An annotator passed on a task, with a reason; they are not offered it again."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="skips")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "annotator"], name="skip_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"skip of task {self.task_id} by {self.annotator_id}"


class Prediction(models.Model):
    """A model's pre-annotation of an item, shown to annotators as a starting point and
    never counted as an annotation."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="predictions")
    item = models.ForeignKey("datasets.Item", on_delete=models.CASCADE, related_name="+")
    model_name = models.CharField(max_length=200)
    score = models.FloatField(null=True, blank=True)
    result = models.JSONField()
    schema_revision = models.ForeignKey(SchemaRevision, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "item", "model_name"], name="prediction_per_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} on item {self.item_id}"


class LabelImport(models.Model):
    """One import of a label file (COCO, YOLO, VOC, Label Studio, CoNLL, CSV, our JSONL)
    into a project: as pre-annotations (Prediction rows) or as accepted ground truth
    (datasets.Label, published like an accepted annotation).

    The file waits in staging/ while a job reads it twice: first every record is matched
    to an item and validated against the project's schema revision (problems are stored
    as LabelImportProblem rows), then, only if there were none or `valid_only` was asked
    for, the valid records are written in one transaction. A failed import stores no
    label.
    """

    class Mode(models.TextChoices):
        PREDICTIONS = "predictions", "Pre-annotations"
        GROUND_TRUTH = "ground_truth", "Accepted ground truth"
        GOLD = "gold", "Gold items (known answers to score annotators)"

    class Match(models.TextChoices):
        FILE_NAME = "file_name", "File name"
        EXTERNAL_ID = "external_id", "External id"
        SHA256 = "sha256", "Content hash (SHA-256)"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_imports")
    format = models.CharField(max_length=32)
    mode = models.CharField(max_length=12, choices=Mode.choices)
    match = models.CharField(max_length=12, choices=Match.choices, default=Match.FILE_NAME)
    valid_only = models.BooleanField(default=False)
    model_name = models.CharField(max_length=200, blank=True, default="")
    file_name = models.CharField(max_length=500)
    file_size = models.PositiveBigIntegerField(default=0)
    staged_key = models.CharField(max_length=300, blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    job = models.ForeignKey(
        "workers.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    records = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="labelimport_recent")]

    def __str__(self) -> str:
        return f"{self.format} import {self.pk} into project {self.project_id}"


class LabelImportProblem(models.Model):
    """One problem of a label import's record: where (row), which field, why."""

    label_import = models.ForeignKey(LabelImport, on_delete=models.CASCADE, related_name="problems")
    seq = models.PositiveIntegerField()
    row = models.CharField(max_length=100)
    field = models.CharField(max_length=300)
    reason = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["label_import", "seq"], name="labelimportproblem_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.row} {self.field}: {self.reason}"


class ReviewLease(models.Model):
    """One reviewer's hold on a task waiting for review, like Lease for annotators: at
    most one unended review lease per task; an expired one is ended by the next reviewer
    who takes the task."""

    class End(models.TextChoices):
        DECIDED = "decided", "Decided"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="review_leases")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=10, choices=End.choices, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(ended_at__isnull=True),
                name="review_lease_one_per_task",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("leased_at")), name="review_lease_expiry"
            ),
        ]
        indexes = [
            models.Index(
                fields=["reviewer", "project"],
                condition=Q(ended_at__isnull=True),
                name="review_lease_live",
            ),
        ]

    def __str__(self) -> str:
        return f"review lease {self.pk} on task {self.task_id}"


class Review(models.Model):
    """A reviewer's decision on a task: accept its proposed label, reject an annotation
    (back to its annotator with the comment) or fix it (a new revision by the reviewer,
    `revision`). Never changed: a task's reviews are its review history."""

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accepted"
        REJECT = "reject", "Rejected"
        FIX = "fix", "Fixed"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="reviews")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(max_length=6, choices=Decision.choices)
    comment = models.TextField(blank=True, default="")
    # The annotation decided on (null: a consensus of several was accepted).
    annotation = models.ForeignKey(
        Annotation, on_delete=models.CASCADE, null=True, blank=True, related_name="reviews"
    )
    # The fix's revision, or the revision that was accepted.
    revision = models.ForeignKey(
        AnnotationRevision, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # The published result when accepted or fixed (a consensus has no revision).
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(decision__in=["accept", "reject", "fix"]), name="review_decision"
            ),
        ]
        indexes = [
            models.Index(fields=["task", "created_at"], name="review_task"),
            models.Index(fields=["project", "created_at"], name="review_project"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} of task {self.task_id}"


class GoldItem(models.Model):
    """An item of a project with a known answer (its task has status gold): annotators
    get it mixed into their queue and their answers are scored against `result`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_items")
    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="gold")
    result = models.JSONField()
    schema_revision = models.ForeignKey(SchemaRevision, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"gold task {self.task_id}"


class GoldAnswer(models.Model):
    """The score (0..1) of an annotation of a gold task against its known answer, kept
    current as the annotation changes: an annotator's gold accuracy over time."""

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="gold")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    score = models.FloatField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="gold_answer_score"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "annotator", "created_at"], name="gold_answer_time"),
        ]

    def __str__(self) -> str:
        return f"gold score {self.score} of annotation {self.annotation_id}"


class QualityReport(models.Model):
    """A stored run of labeling.services.quality.project_quality (agreement and consensus
    over every annotation of the project): too slow to compute per page view on a large
    project, so a job computes it and the dashboard shows the latest."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_reports")
    job = models.ForeignKey(
        "workers.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    data = models.JSONField(default=dict)
    annotation_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="quality_report_latest")]

    def __str__(self) -> str:
        return f"quality report {self.pk} of project {self.project_id}"
