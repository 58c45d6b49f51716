"""Import and export formats, one module each (datasets/formats/base.py says what they
share). `EXPORT_FORMATS` and `IMPORT_FORMATS` map the API's `format` names to them."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets.formats.base import ExportFormat, ImportFormat

# name -> "module:attribute"; modules are imported on first use (pyarrow, ijson ...).
_EXPORTERS = {
    "jsonl": "datasets.formats.jsonl:EXPORT",
    "csv": "datasets.formats.csv:EXPORT",
    "coco": "datasets.formats.coco:EXPORT",
    "yolo": "datasets.formats.yolo:EXPORT",
    "voc": "datasets.formats.voc:EXPORT",
    "conll": "datasets.formats.conll:EXPORT",
    "spacy": "datasets.formats.spacy:EXPORT",
    "parquet": "datasets.formats.hf_parquet:EXPORT",
    "sql": "datasets.formats.sql:EXPORT",
}
_IMPORTERS = {
    "jsonl": "datasets.formats.jsonl:IMPORT",
    "csv": "datasets.formats.csv:IMPORT",
    "coco": "datasets.formats.coco:IMPORT",
    "yolo": "datasets.formats.yolo:IMPORT",
    "voc": "datasets.formats.voc:IMPORT",
    "conll": "datasets.formats.conll:IMPORT",
    "labelstudio": "datasets.formats.labelstudio:IMPORT",
}


def _load(spec: str):  # type: ignore[no-untyped-def]
    module, _, attr = spec.partition(":")
    return getattr(import_module(module), attr)


def export_format(name: str) -> ExportFormat | None:
    spec = _EXPORTERS.get(name)
    return None if spec is None else _load(spec)


def import_format(name: str) -> ImportFormat | None:
    spec = _IMPORTERS.get(name)
    return None if spec is None else _load(spec)


def export_format_names() -> list[str]:
    return list(_EXPORTERS)


def import_format_names() -> list[str]:
    return list(_IMPORTERS)
