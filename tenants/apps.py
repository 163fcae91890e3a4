from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        from tenants import storefront

        # CORS on the storefront's paths, for the origins of the shops' publishable keys.
        check_request_enabled.connect(storefront.cors_enabled, dispatch_uid="tenants.storefront")
