"""Labelling UI pages under /projects/."""

from django.urls import path

from labeling import views, views_quality, views_review

app_name = "labeling"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new", views.project_create, name="create"),
    path("schema-preview", views.schema_preview, name="schema-preview"),
    path("<int:project_id>/", views.project_detail, name="detail"),
    path("<int:project_id>/stats", views.project_stats, name="stats"),
    path("<int:project_id>/edit", views.project_edit, name="edit"),
    path("<int:project_id>/annotate", views.annotate, name="annotate"),
    path(
        "<int:project_id>/members/<str:username>/resume",
        views.member_resume,
        name="member-resume",
    ),
    path("<int:project_id>/review", views_review.review, name="review"),
    path(
        "<int:project_id>/tasks/<int:task_id>/history",
        views_review.task_history,
        name="task-history",
    ),
    path("<int:project_id>/quality", views_quality.quality, name="quality"),
    path("<int:project_id>/quality/job", views_quality.quality_job, name="quality-job"),
    path("<int:project_id>/quality.csv", views_quality.quality_csv, name="quality-csv"),
    path("<int:project_id>/imports", views.label_import_list, name="label-imports"),
    path(
        "<int:project_id>/imports/<int:label_import_id>",
        views.label_import_detail,
        name="label-import",
    ),
]
