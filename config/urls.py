"""Root URLs: UI pages, /api/v1/, the OpenAPI schema, health and metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health, views

api_v1 = [
    path("auth/token", views.TokenObtainView.as_view(), name="api-token"),
    path("me", views.MeView.as_view(), name="api-me"),
    path("", include("workers.api_urls")),
    path("", include("datasets.api_urls")),
    path("", include("labeling.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("jobs/", include("workers.urls")),
    path("datasets/", include("datasets.urls")),
    path("projects/", include("labeling.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
