"""REST endpoints under /api/v1/ for projects, tasks, leases, annotations, predictions."""

from django.urls import path

from labeling import api, api_quality

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
    path(
        "projects/<int:project_id>/review/next",
        api.ReviewNextApi.as_view(),
        name="api-project-review-next",
    ),
    path("review-leases/<int:lease_id>", api.ReviewLeaseApi.as_view(), name="api-review-lease"),
    path("tasks/<int:task_id>/reviews", api.TaskReviewApi.as_view(), name="api-task-reviews"),
    path("tasks/<int:task_id>/history", api.TaskHistoryApi.as_view(), name="api-task-history"),
    path("projects/<int:project_id>/gold", api.GoldListApi.as_view(), name="api-project-gold"),
    path(
        "projects/<int:project_id>/consensus",
        api.ProjectConsensusApi.as_view(),
        name="api-project-consensus",
    ),
    path(
        "projects/<int:project_id>/members/<str:username>/resume",
        api.MemberResumeApi.as_view(),
        name="api-member-resume",
    ),
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
    path(
        "projects/<int:project_id>/dashboard",
        api_quality.DashboardApi.as_view(),
        name="api-project-dashboard",
    ),
    path(
        "projects/<int:project_id>/quality-reports",
        api_quality.QualityReportListApi.as_view(),
        name="api-project-quality-reports",
    ),
    path(
        "projects/<int:project_id>/quality-reports/latest",
        api_quality.QualityReportLatestApi.as_view(),
        name="api-project-quality-report-latest",
    ),
]
