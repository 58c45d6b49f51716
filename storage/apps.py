from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"

    def ready(self) -> None:
        # Connect the setting_changed receiver that drops cached clients when an S3_*
        # setting changes (tests, override_settings).
        from storage import client  # noqa: F401
