"""REST endpoints under /api/v1/ for datasets, items, imports and assets."""

urlpatterns: list = []
