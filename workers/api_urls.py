"""REST endpoints under /api/v1/ for jobs."""

urlpatterns: list = []
