from django.apps import AppConfig


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Labelvault"

    def ready(self) -> None:
        from config.metrics import metrics_register

        metrics_register()
