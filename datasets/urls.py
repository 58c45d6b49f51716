"""Server-rendered dataset pages, under /datasets/."""

from django.urls import path

from datasets import views

app_name = "datasets"

urlpatterns = [
    path("", views.dataset_list, name="list"),
    path("new", views.dataset_create, name="create"),
    path("<int:dataset_id>", views.dataset_detail, name="detail"),
    path("<int:dataset_id>/edit", views.dataset_edit, name="edit"),
    path("<int:dataset_id>/items/<int:item_id>", views.item_detail, name="item"),
    path("<int:dataset_id>/import", views.dataset_import, name="import"),
    path("<int:dataset_id>/imports/<int:import_id>", views.import_detail, name="import-detail"),
    path(
        "<int:dataset_id>/imports/<int:import_id>/summary",
        views.import_summary,
        name="import-summary",
    ),
    path("<int:dataset_id>/versions", views.version_list, name="versions"),
    path("<int:dataset_id>/versions/<str:version_id>", views.version_detail, name="version"),
    path(
        "<int:dataset_id>/versions/<str:version_id>/diff",
        views.version_diff_partial,
        name="version-diff",
    ),
    path(
        "<int:dataset_id>/versions/<str:version_id>/contributors",
        views.version_contributors_partial,
        name="version-contributors",
    ),
    path(
        "<int:dataset_id>/versions/<str:version_id>/exports",
        views.version_exports_partial,
        name="version-exports",
    ),
    path(
        "<int:dataset_id>/exports/<int:export_id>/download",
        views.export_download,
        name="export-download",
    ),
]
