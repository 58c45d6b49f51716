"""Server-rendered job pages (the htmx progress bar)."""

urlpatterns: list = []
