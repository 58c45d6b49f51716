"""The roles people have in Labelvault, as Django auth groups.

- admin: everything, including user management.
- ops: manages datasets, projects, vendors and batches; sees every job.
- reviewer: reviews annotations in the projects they are a member of.
- annotator: labels tasks in the projects they are a member of.
- vendor: staff of an outside labelling vendor (each belongs to one vendor).
"""

from __future__ import annotations

from typing import Final

ADMIN: Final = "admin"
OPS: Final = "ops"
REVIEWER: Final = "reviewer"
ANNOTATOR: Final = "annotator"
VENDOR: Final = "vendor"

ROLES: Final = (ADMIN, OPS, REVIEWER, ANNOTATOR, VENDOR)

# Model permissions ("app_label.codename") each role's group holds; admin holds all.
# Object-level rules (project membership, vendor of a batch) live in the services.
ROLE_PERMISSIONS: Final[dict[str, tuple[str, ...]]] = {
    OPS: ("workers.view_job",),
    REVIEWER: (),
    ANNOTATOR: (),
    VENDOR: (),
}
