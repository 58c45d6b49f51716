from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, object]:
    """Expose what every page shows: the deployed code commit."""
    return {"GIT_COMMIT_SHORT": settings.GIT_COMMIT[:12]}
