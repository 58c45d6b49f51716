"""Forms of the project pages: parse and check input; views call services and selectors.

The label schema is checked by labeling.schema.schema_validate (the one place for its
rules), here only so that every problem shows under the field at once; the services
check it again.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from datasets.models import Item
from datasets.selectors import dataset_visible_to
from labeling.errors import InvalidSchema
from labeling.models import Project, ProjectMember, ReviewMode
from labeling.schema import schema_validate
from labeling.services.projects import MAX_OVERLAP, NAME_MAX_LENGTH, Member

# What the schema editor starts from, one per schema type ("Start from an example").
SCHEMA_EXAMPLES: dict[str, dict[str, Any]] = {
    "bbox": {
        "type": "bbox",
        "labels": [{"name": "car"}, {"name": "person"}, {"name": "bicycle"}],
        "attributes": [{"name": "occluded", "type": "bool", "default": False}],
    },
    "polygon": {"type": "polygon", "labels": [{"name": "road"}, {"name": "sidewalk"}]},
    "keypoint": {"type": "keypoint", "labels": [{"name": "left eye"}, {"name": "right eye"}]},
    "image_class": {
        "type": "image_class",
        "multiple": False,
        "labels": [{"name": "day"}, {"name": "night"}],
    },
    "text_class": {
        "type": "text_class",
        "multiple": True,
        "labels": [{"name": "billing"}, {"name": "shipping"}, {"name": "complaint"}],
    },
    "ner": {"type": "ner", "labels": [{"name": "PER"}, {"name": "ORG"}, {"name": "LOC"}]},
}
SPLIT_ANY = ""


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False)


def schema_parse(text: str) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """Parse and validate the editor's JSON: (normalised schema, []) or (None, problems),
    each problem {"field": path, "detail": message, "message": message without the path}."""
    text = (text or "").strip()
    if not text:
        return None, [schema_problem("schema", "Write the label schema as JSON.")]
    try:
        raw = json.loads(text)
    except ValueError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return None, [schema_problem(where, f"Not valid JSON: {exc.msg} ({where}).")]
    try:
        return schema_validate(raw), []
    except InvalidSchema as exc:
        errors = exc.errors or [{"field": exc.field or "schema", "detail": str(exc)}]
        return None, [schema_problem(e.get("field") or "schema", e["detail"]) for e in errors]


def schema_problem(field: str, detail: str) -> dict[str, str]:
    """A schema problem: its path, the full message, and the message without the path
    in front (shown beside the path)."""
    message = detail.removeprefix(f"{field}: ")
    return {"field": field, "detail": detail, "message": message[:1].upper() + message[1:]}


class MemberChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_username()


# The quality settings asked as percentages: form field -> Project field (a fraction).
PERCENT_FIELDS = {
    "review_percent": "review_fraction",
    "consensus_percent": "consensus_threshold",
    "gold_percent": "gold_rate",
    "gold_threshold_percent": "gold_threshold",
}


def _percent_field(label: str, initial: int, help_text: str, min_value: int = 0) -> Any:
    """An optional whole percentage (left empty: the setting keeps its value)."""
    return forms.IntegerField(
        required=False,
        label=label,
        min_value=min_value,
        max_value=100,
        initial=initial,
        help_text=help_text,
    )


class ProjectForm(forms.Form):
    """A project's settings. On edit the dataset and the item filter are fixed (tasks
    were made from them)."""

    name = forms.CharField(max_length=NAME_MAX_LENGTH, strip=True)
    dataset = forms.ModelChoiceField(
        queryset=None,
        empty_label="Choose a dataset…",
        help_text="Its items become the project's tasks. An image schema needs an image dataset.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Markdown. Annotators open it with the ? key.",
    )
    overlap = forms.IntegerField(
        min_value=1,
        max_value=MAX_OVERLAP,
        initial=1,
        help_text="How many different annotators label each item.",
    )
    split = forms.ChoiceField(
        label="Only items of split",
        required=False,
        choices=[(SPLIT_ANY, "Any split"), *Item.Split.choices[1:]],
    )
    tags = forms.CharField(
        label="Only items tagged",
        required=False,
        max_length=1000,
        help_text="Comma-separated; an item with any of these tags is in. Empty: every item.",
        widget=forms.TextInput(attrs={"placeholder": "night, rain"}),
    )
    annotators = MemberChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    reviewers = MemberChoiceField(
        queryset=None, required=False, widget=forms.CheckboxSelectMultiple
    )
    # Quality: review, consensus and gold (labeling.services.review / .gold). Shares are
    # asked as percentages and stored as fractions.
    review_mode = forms.ChoiceField(
        required=False,
        label="Review",
        choices=ReviewMode.choices,
        initial=ReviewMode.OFF,
        help_text="Reviewed tasks publish their label only when a reviewer accepts it.",
    )
    review_percent = _percent_field(
        "Review sample (%)",
        10,
        "With “Review a sample”: the share of finished tasks reviewers see.",
        min_value=1,
    )
    consensus_percent = _percent_field(
        "Consensus threshold (%)",
        70,
        "With overlap > 1: a task whose annotators agree less goes to review.",
    )
    gold_percent = _percent_field(
        "Gold tasks in queues (%)",
        10,
        "The share of tasks served from the gold items (when the project has some).",
    )
    gold_threshold_percent = _percent_field(
        "Gold accuracy threshold (%)", 70, "Annotators under it are flagged."
    )
    gold_min_answers = forms.IntegerField(
        required=False,
        label="Gold answers before judging",
        min_value=1,
        max_value=1000,
        initial=5,
    )
    gold_pause = forms.BooleanField(
        label="Pause flagged annotators",
        required=False,
        initial=True,
        help_text="A paused annotator gets no task until ops resume them.",
    )
    label_schema = forms.CharField(
        label="Label schema",
        widget=forms.Textarea(attrs={"rows": 16, "class": "code", "spellcheck": "false"}),
        help_text=(
            "JSON: type (bbox, polygon, keypoint, image_class, text_class, ner), labels "
            "with optional color and hotkey, optional attributes, multiple, allow_empty."
        ),
    )

    def __init__(self, *args: Any, user: Any, project: Project | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.project = project
        dataset_field = self.fields["dataset"]
        dataset_field.queryset = dataset_visible_to(user).order_by("name")
        dataset_field.label_from_instance = lambda d: f"{d.name} ({d.get_kind_display()})"
        people = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["annotators"].queryset = people
        self.fields["reviewers"].queryset = people
        if project is not None:
            for fixed in ("dataset", "split", "tags"):
                del self.fields[fixed]

    @classmethod
    def initial_for(cls, project: Project) -> dict[str, Any]:
        members = list(project.memberships.select_related("user"))
        return {
            "name": project.name,
            "description": project.description,
            "instructions": project.instructions,
            "overlap": project.overlap,
            "annotators": [m.user for m in members if m.role == ProjectMember.Role.ANNOTATOR],
            "reviewers": [m.user for m in members if m.role == ProjectMember.Role.REVIEWER],
            "label_schema": schema_text(project.schema_revision.schema)
            if project.schema_revision
            else "",
            "review_mode": project.review_mode,
            **{
                percent: round(getattr(project, name) * 100)
                for percent, name in PERCENT_FIELDS.items()
            },
            "gold_min_answers": project.gold_min_answers,
            "gold_pause": project.gold_pause,
            # The sample's field starts at 1% (a 0 set through the API shows as 1).
        } | {"review_percent": max(round(project.review_fraction * 100), 1)}

    def clean_label_schema(self) -> dict[str, Any]:
        schema, problems = schema_parse(self.cleaned_data.get("label_schema", ""))
        if problems:
            raise forms.ValidationError([p["detail"] for p in problems])
        assert schema is not None
        return schema

    def clean_tags(self) -> list[str]:
        raw = self.cleaned_data.get("tags", "")
        return sorted({tag.strip() for tag in raw.split(",") if tag.strip()})

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        both = set(data.get("annotators") or []) & set(data.get("reviewers") or [])
        if both:
            names = ", ".join(sorted(u.get_username() for u in both))
            self.add_error("reviewers", f"A member has one role; {names} is also an annotator.")
        return data

    def members(self) -> list[Member]:
        data = self.cleaned_data
        return [
            Member(u.get_username(), ProjectMember.Role.ANNOTATOR) for u in data["annotators"]
        ] + [Member(u.get_username(), ProjectMember.Role.REVIEWER) for u in data["reviewers"]]

    def item_filter(self) -> dict[str, Any]:
        data = self.cleaned_data
        item_filter: dict[str, Any] = {}
        if data.get("split"):
            item_filter["split"] = data["split"]
        if data.get("tags"):
            item_filter["tags"] = data["tags"]
        return item_filter

    def service_fields(self) -> dict[str, Any]:
        """The keyword arguments of project_create / project_update."""
        data = self.cleaned_data
        fields: dict[str, Any] = {
            "name": data["name"],
            "description": data.get("description", ""),
            "instructions": data.get("instructions", ""),
            "overlap": data["overlap"],
            "label_schema": data["label_schema"],
            "members": self.members(),
            "gold_pause": data["gold_pause"],
        }
        # A setting left empty keeps its current (or default) value.
        if data.get("review_mode"):
            fields["review_mode"] = data["review_mode"]
        if data.get("gold_min_answers") is not None:
            fields["gold_min_answers"] = data["gold_min_answers"]
        for percent, name in PERCENT_FIELDS.items():
            if data.get(percent) is not None:
                fields[name] = data[percent] / 100
        if self.project is None:
            fields["dataset"] = data["dataset"]
            fields["item_filter"] = self.item_filter()
        return fields

    def field_for(self, path: str | None) -> str | None:
        """The form field a service error path names (`label_schema.labels[0].name`,
        `item_filter.split`, `members`), or None for the form as a whole."""
        if not path:
            return None
        head = path.split(".", 1)[0].split("[", 1)[0]
        mapped = {
            "item_filter": "split",
            "members": "annotators",
            **{name: percent for percent, name in PERCENT_FIELDS.items()},
        }.get(head, head)
        if path.startswith("item_filter.tags"):
            mapped = "tags"
        return mapped if mapped in self.fields else None
