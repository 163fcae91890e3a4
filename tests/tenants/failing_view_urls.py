"""A URLconf for tests: one tenant view that fails unhandled after it has queried as its tenant."""

from __future__ import annotations

from django.urls import path

from recs.models import Product
from tenants.viewsets import TenantViewSet


class FailingProductViewSet(TenantViewSet):
    model = Product
    required_scope = "ingest"  # as the catalog views

    def list(self, request, *args, **kwargs):
        self.get_queryset().count()  # the tenant's setting is now on the connection
        raise RuntimeError("boom")


urlpatterns = [path("v1/failing-products", FailingProductViewSet.as_view({"get": "list"}))]
