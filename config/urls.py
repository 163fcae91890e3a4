from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from core.health import healthz, readyz
from core.metrics import metrics_view
from experiments import dashboard_urls as experiments_dashboard_urls
from privacy import dashboard_urls as privacy_dashboard_urls
from recs.dashboard import urls as recs_dashboard_urls
from tenants.billing.views import stripe_webhook
from tenants.dashboard import urls as tenants_dashboard_urls
from training import dashboard_urls as training_dashboard_urls

# The dashboard is one namespace; each domain package owns its pages.
DASHBOARD_PAGES = [
    *recs_dashboard_urls.urlpatterns, *tenants_dashboard_urls.urlpatterns, *training_dashboard_urls.urlpatterns,
    *experiments_dashboard_urls.urlpatterns,
    *privacy_dashboard_urls.urlpatterns,
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; not for the public (core/metrics.py)
    path("webhooks/stripe", stripe_webhook, name="stripe_webhook"),
    path("v1/", include("recs.api.urls")),
    path("v1/", include("training.urls")),
    path("v1/", include("privacy.urls")),
    path("v1/", include("experiments.urls")),
    path("webhooks/", include("recs.integrations.urls", namespace="integrations")),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    # Swagger's start-up script is served as a file of its own (`/v1/docs?script`), not inline, so the
    # docs run under the Content-Security-Policy's script-src 'self'. ReDoc's page loads no web fonts,
    # and its search index runs in a worker ReDoc's own script makes from a blob: URL.
    path("v1/docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("v1/redoc", csp_update({"worker-src": ["'self'", "blob:"]})(
        SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html")
    ), name="redoc"),
    path("", include((DASHBOARD_PAGES, "dashboard"), namespace="dashboard")),
]

handler404 = "core.problems.not_found"
handler500 = "core.problems.server_error"
