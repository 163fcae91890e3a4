from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.health import healthz, readyz
from recs.dashboard import urls as recs_dashboard_urls
from tenants.billing.views import stripe_webhook
from tenants.dashboard import urls as tenants_dashboard_urls
from training import dashboard_urls as training_dashboard_urls

# The dashboard is one namespace; each domain package owns its pages.
DASHBOARD_PAGES = [
    *recs_dashboard_urls.urlpatterns, *tenants_dashboard_urls.urlpatterns, *training_dashboard_urls.urlpatterns,
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("webhooks/stripe", stripe_webhook, name="stripe_webhook"),
    path("v1/", include("recs.api.urls")),
    path("v1/", include("training.urls")),
    path("webhooks/", include("recs.integrations.urls", namespace="integrations")),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include((DASHBOARD_PAGES, "dashboard"), namespace="dashboard")),
]

handler404 = "core.problems.not_found"
handler500 = "core.problems.server_error"
