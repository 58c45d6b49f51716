"""Views of the composition root: home page, API token, current user, error pages."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from config.exceptions import error_body


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"roles": _roles(request.user)})


def _roles(user: object) -> list[str]:
    if not getattr(user, "is_authenticated", False):
        return []
    names = sorted(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    if getattr(user, "is_superuser", False) and "admin" not in names:
        names.insert(0, "admin")
    return names


class TokenObtainView(APIView):
    """Exchange a username and password for the user's API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenObtainInput"

        username = serializers.CharField()
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenObtainOutput"

        token = serializers.CharField()
        username = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None or not user.is_active:
            return Response(
                error_body("invalid_credentials", "Wrong username or password."), status=400
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key, "username": user.get_username()})


class MeView(APIView):
    """The authenticated user and their roles."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Me"

        id = serializers.IntegerField()
        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"id": user.pk, "username": user.get_username(), "roles": _roles(user)})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("not_found", f"No API endpoint at {request.path}."), status=404
        )
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("server_error", "Internal error; it has been logged."), status=500
        )
    return render(request, "500.html", status=500)
