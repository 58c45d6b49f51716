"""The one place that maps errors to HTTP: every API error is JSON
`{"error": code, "detail": message}` (plus `"field"` when one input field is at fault).

Domain services raise their own exceptions (storage.errors, datasets.errors, ...); this
module alone knows which status each one gets. Any exception class may carry `code`
(a short snake_case word) and `field` attributes; `str(exc)` is the message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from datasets.errors import DatasetError
from labeling.errors import AnnotatorPaused, LabelingError, LeaseLost, NotAllowed, ReviewConflict
from labeling.services.queue import QueueBusy
from storage.errors import ContentMismatch, ObjectNotFound, StorageUnavailable

# Domain exception class -> (HTTP status, default error code). Subclasses inherit.
DOMAIN_ERRORS: list[tuple[type[Exception], int, str]] = [
    (StorageUnavailable, 503, "storage_unavailable"),
    (ObjectNotFound, 404, "object_not_found"),
    (ContentMismatch, 400, "content_mismatch"),
    # Every datasets error is about the request (InvalidImport, InvalidDataset, ...).
    (DatasetError, 400, "invalid"),
    # The lease ended and its slot may be someone else's now: a conflict, not bad input.
    (LeaseLost, 409, "lease_lost"),
    (NotAllowed, 403, "forbidden"),
    (AnnotatorPaused, 403, "annotator_paused"),
    (ReviewConflict, 409, "review_conflict"),
    (QueueBusy, 503, "queue_busy"),
    # Every other labeling error is about the request (InvalidSchema, InvalidAnnotation...).
    (LabelingError, 400, "invalid"),
]


def register_domain_error(exc_class: type[Exception], status: int, code: str) -> None:
    """Map a domain exception to a status; called from config only (see DOMAIN_ERRORS)."""
    DOMAIN_ERRORS.append((exc_class, status, code))


def error_body(code: str, detail: Any, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if field:
        body["field"] = field
    return body


def _first_field_error(detail: Any) -> tuple[str | None, str]:
    """Flatten DRF's nested validation detail to (field path, first message)."""
    path: list[str] = []
    while True:
        if isinstance(detail, dict) and detail:
            key, detail = next(iter(detail.items()))
            if key != "non_field_errors":
                path.append(str(key))
        elif isinstance(detail, list) and detail:
            # a list of per-item errors: find the first non-empty one and keep its index
            for index, item in enumerate(detail):
                if item:
                    if isinstance(item, dict | list) and len(detail) > 1:
                        path.append(str(index))
                    detail = item
                    break
            else:
                return (".".join(path) or None, "invalid")
            if not isinstance(detail, dict | list):
                break
        else:
            break
    return (".".join(path) or None, str(detail))


def _validation_response(detail: Any) -> Response:
    field, message = _first_field_error(detail)
    body = error_body("invalid", f"{field}: {message}" if field else message, field)
    body["errors"] = detail
    return Response(body, status=400)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER: shape every error; unknown exceptions stay 500s."""
    for exc_class, status, code in DOMAIN_ERRORS:
        if isinstance(exc, exc_class):
            body = error_body(
                getattr(exc, "code", None) or code, str(exc), getattr(exc, "field", None)
            )
            if getattr(exc, "errors", None):
                body["errors"] = exc.errors  # every problem found, each with its field
            return Response(
                body,
                status=status,
                headers={"Retry-After": "5"} if status == 503 else None,
            )
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied(str(exc) or None)

    if isinstance(exc, drf.ValidationError):
        return _validation_response(exc.detail)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf.APIException):
        detail = exc.detail
        code = exc.get_codes() if not isinstance(detail, dict | list) else exc.default_code
        response.data = error_body(str(code), str(detail))
    return response
