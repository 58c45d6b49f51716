"""Server-rendered job pages (the htmx progress bar), under /jobs/."""

from django.urls import path

from workers import views

app_name = "workers"

urlpatterns = [
    path("<uuid:job_id>", views.job_detail, name="job-detail"),
    path("<uuid:job_id>/progress", views.job_progress, name="job-progress"),
]
