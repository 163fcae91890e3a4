from django.apps import AppConfig


class RecsConfig(AppConfig):
    name = "recs"
    default_auto_field = "django.db.models.BigAutoField"
