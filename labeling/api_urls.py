"""REST endpoints under /api/v1/ for projects, tasks, leases, annotations, predictions."""

from django.urls import path

from labeling import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-project-list"),
    path("projects/<int:project_id>", api.ProjectDetailApi.as_view(), name="api-project-detail"),
    path("projects/<int:project_id>/next", api.NextTaskApi.as_view(), name="api-project-next"),
    path("projects/<int:project_id>/history", api.HistoryApi.as_view(), name="api-project-history"),
    path(
        "projects/<int:project_id>/predictions/",
        api.PredictionImportApi.as_view(),
        name="api-project-predictions",
    ),
    path("leases/<int:lease_id>", api.LeaseApi.as_view(), name="api-lease"),
    path("tasks/<int:task_id>", api.TaskDetailApi.as_view(), name="api-task-detail"),
    path(
        "tasks/<int:task_id>/annotations/",
        api.AnnotationListApi.as_view(),
        name="api-task-annotations",
    ),
    path("tasks/<int:task_id>/skip", api.SkipApi.as_view(), name="api-task-skip"),
    path("tasks/<int:task_id>/draft", api.DraftApi.as_view(), name="api-task-draft"),
    path(
        "projects/<int:project_id>/label-imports",
        api.LabelImportListApi.as_view(),
        name="api-label-imports",
    ),
    path(
        "projects/<int:project_id>/exports",
        api.ProjectExportApi.as_view(),
        name="api-project-exports",
    ),
    path(
        "label-imports/<int:label_import_id>",
        api.LabelImportDetailApi.as_view(),
        name="api-label-import",
    ),
    path(
        "label-imports/<int:label_import_id>/problems",
        api.LabelImportProblemsApi.as_view(),
        name="api-label-import-problems",
    ),
]
