"""Server-rendered dataset pages."""

urlpatterns: list = []
