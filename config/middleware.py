"""Middleware of the composition root."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from config.exceptions import error_body
from storage.errors import StorageUnavailable


class StorageUnavailableMiddleware:
    """Answer 503 with a clear message when a page or API call finds storage down.

    DRF views already get this from config.exceptions; this covers plain Django views
    (UI pages, downloads), so a dead object store is never a 500.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, StorageUnavailable):
            return None
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse(
                error_body("storage_unavailable", str(exception)), status=503
            )
        else:
            response = TemplateResponse(request, "503.html", {"detail": str(exception)}, status=503)
            response.render()
        response["Retry-After"] = "5"
        return response
