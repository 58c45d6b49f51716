"""Errors of the labeling package. config/exceptions.py maps them to HTTP.

Each carries `code`, an optional `field` (the path of the input at fault, e.g.
`result[1].value.x`) and an optional list `errors` of every problem found
(`[{"field": ..., "detail": ...}]`), so a client can show them all at once.
"""

from __future__ import annotations

from typing import Any


class LabelingError(Exception):
    code = "labeling_error"
    field: str | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field
        self.errors = errors or []


class InvalidSchema(LabelingError):
    """A label schema that cannot be used; nothing was stored. (400)"""

    code = "invalid_schema"


class InvalidAnnotation(LabelingError):
    """An annotation result that breaks its schema revision; nothing was stored. (400)"""

    code = "invalid_annotation"


class InvalidProject(LabelingError):
    """A project create/update request with a bad field; nothing changed. (400)"""

    code = "invalid_project"


class InvalidPrediction(LabelingError):
    """A pre-annotation import with bad rows; nothing was stored. (400)"""

    code = "invalid_prediction"


class LeaseLost(LabelingError):
    """The lease ended or expired and its slot went to someone else. (409)"""

    code = "lease_lost"


class NotAllowed(LabelingError):
    """The user may not do this in this project (not a member, not ops). (403)"""

    code = "forbidden"


class InvalidReview(LabelingError):
    """A review decision with a bad field (no comment on a reject, a bad fix ...);
    nothing was stored. (400)"""

    code = "invalid_review"


class ReviewConflict(LabelingError):
    """The task is not waiting for review, or another reviewer holds it. (409)"""

    code = "review_conflict"


class InvalidGold(LabelingError):
    """A gold item that cannot be stored (not a task of the project, a bad answer);
    nothing changed. (400)"""

    code = "invalid_gold"


class AnnotatorPaused(LabelingError):
    """The annotator's queue is paused (gold accuracy under the project's threshold)
    until ops resume them. (403)"""

    code = "annotator_paused"
