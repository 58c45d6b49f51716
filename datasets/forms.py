"""Forms of the dataset pages: parse and check input, then views call services/selectors."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from datasets.errors import InvalidDataset
from datasets.models import Dataset, Item
from datasets.selectors import META_KEY_PATTERN, ItemFilters
from datasets.services.datasets import SCHEMA_MAX_BYTES, metadata_schema_check

SCHEMA_PLACEHOLDER = """{
  "type": "object",
  "properties": {"camera": {"type": "string"}, "night": {"type": "boolean"}},
  "required": ["camera"]
}"""


class DatasetForm(forms.Form):
    """Name, description, kind (fixed once created) and an optional metadata JSON Schema."""

    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    kind = forms.ChoiceField(
        choices=Dataset.Kind.choices,
        widget=forms.RadioSelect,
        help_text="What every item is: an image file or a UTF-8 text. Fixed once created.",
    )
    metadata_schema = forms.CharField(
        label="Metadata JSON Schema",
        required=False,
        max_length=SCHEMA_MAX_BYTES,
        widget=forms.Textarea(
            attrs={
                "rows": 8,
                "class": "code",
                "placeholder": SCHEMA_PLACEHOLDER,
                "spellcheck": "false",
            }
        ),
        help_text="Optional. Every item's metadata must match it; leave empty for none.",
    )

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["kind"]

    def clean_metadata_schema(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("metadata_schema", "").strip()
        if not text:
            return None
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        try:
            return metadata_schema_check(schema)
        except InvalidDataset as exc:
            raise forms.ValidationError(str(exc)) from None

    @classmethod
    def initial_for(cls, dataset: Dataset) -> dict[str, Any]:
        schema = dataset.metadata_schema
        return {
            "name": dataset.name,
            "description": dataset.description,
            "metadata_schema": json.dumps(schema, indent=2) if schema is not None else "",
        }


SPLIT_ANY = ""
SPLIT_UNSET = "none"


class ItemFilterForm(forms.Form):
    """The grid's filters, from the query string: split, one tag, one metadata key=value."""

    split = forms.ChoiceField(
        required=False,
        choices=[(SPLIT_ANY, "Any split"), *Item.Split.choices[1:], (SPLIT_UNSET, "No split")],
    )
    tag = forms.CharField(required=False, max_length=100, strip=True)
    meta = forms.CharField(
        label="Metadata",
        required=False,
        max_length=300,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "key=value"}),
    )

    def clean_meta(self) -> str:
        meta = self.cleaned_data.get("meta", "")
        if not meta:
            return ""
        key, sep, value = meta.partition("=")
        key = key.strip()
        if not sep or not META_KEY_PATTERN.fullmatch(key):
            raise forms.ValidationError(
                "Write key=value, e.g. camera=front or weather.rain=true (a dotted key "
                "reaches into nested objects)."
            )
        return f"{key}={value.strip()}"

    def filters(self) -> ItemFilters:
        """The valid filters (call after is_valid(); invalid fields count as absent)."""
        data = getattr(self, "cleaned_data", {})
        split = data.get("split") or SPLIT_ANY
        key, _, value = (data.get("meta") or "").partition("=")
        return ItemFilters(
            split=None if split == SPLIT_ANY else "" if split == SPLIT_UNSET else split,
            tag=data.get("tag") or "",
            meta_key=key,
            meta_value=value,
        )


class ImportUploadForm(forms.Form):
    """Options of an upload into a dataset: tags and split for every item. The files
    (many, or zip/tar archives) are request.FILES.getlist("files"), passed as they are to
    the import service, which checks them."""

    tags = forms.CharField(
        required=False,
        max_length=1000,
        help_text="Comma-separated, given to every item of this upload.",
        widget=forms.TextInput(attrs={"placeholder": "night, reflections"}),
    )
    split = forms.ChoiceField(required=False, choices=[("", "No split"), *Item.Split.choices[1:]])

    def tag_list(self) -> list[str]:
        raw = self.cleaned_data.get("tags", "")
        return [tag.strip() for tag in raw.split(",") if tag.strip()]
