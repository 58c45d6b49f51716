"""Errors of the datasets package. config/exceptions.py maps them to HTTP."""

from __future__ import annotations


class DatasetError(Exception):
    """Base of the package's errors; `code` and `field` shape the API error body."""

    code = "dataset_error"
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class InvalidImport(DatasetError):
    """An import request that cannot start (bad source, bad options): nothing was stored."""

    code = "invalid_import"


class FileRejected(DatasetError):
    """One file of an import was refused; the import goes on and reports it by name."""

    code = "file_rejected"


class InvalidDataset(DatasetError):
    """A dataset create/update request with a bad field (named by `field`); nothing
    changed."""

    code = "invalid_dataset"
