from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_after_migrate(sender: AppConfig, **kwargs: object) -> None:
    from labeling.services.roles import roles_ensure

    roles_ensure()


class LabelingConfig(AppConfig):
    name = "labeling"

    def ready(self) -> None:
        # Bootstrap data, not business logic: the groups must exist in every database,
        # test databases included, once the permissions table is filled.
        # Sent after every app's permissions exist (labeling is listed after them).
        post_migrate.connect(_roles_after_migrate, sender=self, dispatch_uid="labeling.roles")
