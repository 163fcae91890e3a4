from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "tenants.billing"
    label = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Fail at start-up, not at the first checkout, when the plan table is inconsistent.
        from tenants.billing import plans

        plans.all_plans()
