from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Opt-in, the privacy budget ledger and the released cross-shop aggregates."""

    name = "privacy"
    label = "privacy"
    default_auto_field = "django.db.models.BigAutoField"
