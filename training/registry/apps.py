from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """The model registry: where training hands models to serving (a ModelVersion row + its artifacts)."""

    name = "training.registry"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"
