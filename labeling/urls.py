"""Labelling UI pages under /projects/."""

from django.urls import path  # noqa: F401

app_name = "labeling"

urlpatterns: list = []
