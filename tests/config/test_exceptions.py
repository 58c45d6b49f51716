"""Unit tests of the error mapping (pure logic: no request, no database)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf

from config.exceptions import api_exception_handler
from storage.errors import ObjectNotFound, StorageUnavailable


def handle(exc):
    response = api_exception_handler(exc, {})
    return response.status_code, response.data


def test_storage_unavailable_is_503_with_retry_after():
    response = api_exception_handler(StorageUnavailable("object store at x:1 is down"), {})
    assert response.status_code == 503
    assert response.data == {
        "error": "storage_unavailable",
        "detail": "object store at x:1 is down",
    }
    assert response["Retry-After"] == "5"


def test_object_not_found_is_404():
    assert handle(ObjectNotFound("no object blobs/x")) == (
        404,
        {"error": "object_not_found", "detail": "no object blobs/x"},
    )


def test_nested_validation_error_names_the_deepest_field():
    status, body = handle(
        drf.ValidationError({"regions": [{}, {"label": ["Unknown label 'cat'."]}]})
    )
    assert status == 400
    assert body["error"] == "invalid"
    assert body["field"] == "regions.1.label"
    assert body["detail"] == "regions.1.label: Unknown label 'cat'."
    assert body["errors"] == {"regions": [{}, {"label": ["Unknown label 'cat'."]}]}


def test_non_field_validation_error_has_no_field():
    status, body = handle(drf.ValidationError({"non_field_errors": ["Pick one."]}))
    assert (status, body["detail"], "field" in body) == (400, "Pick one.", False)


def test_django_validation_error_and_404_are_mapped():
    status, body = handle(DjangoValidationError({"name": ["Too long."]}))
    assert (status, body["field"], body["detail"]) == (400, "name", "name: Too long.")
    assert handle(Http404("No such job.")) == (
        404,
        {"error": "not_found", "detail": "No such job."},
    )


def test_domain_error_code_and_field_attributes_are_used():
    class BadLabel(StorageUnavailable):
        code = "bad_label"
        field = "label"

    status, body = handle(BadLabel("nope"))
    assert (status, body) == (503, {"error": "bad_label", "detail": "nope", "field": "label"})


def test_unknown_exception_is_left_to_django():
    assert api_exception_handler(RuntimeError("boom"), {}) is None


def test_content_mismatch_is_400():
    from storage.errors import ContentMismatch

    status, body = handle(ContentMismatch("bytes hash to ab…, not cd…"))
    assert (status, body["error"]) == (400, "content_mismatch")
