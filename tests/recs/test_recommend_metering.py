"""Recommendation requests are metered for billing: each answered request counts once, refusals never,
and a free shop past its monthly quota is refused (recs/api/recommend_views.py, tenants/billing)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from recs.models import Product
from tenants.billing import usage
from tenants.models import Tenant
from tests import stripe_fake
from tests.conftest import _client_for

pytestmark = pytest.mark.django_db


def _counted(tenant) -> int:
    usage.flush_pending()  # what this process counted waits for its next admission
    return usage.live(tenant.pk, usage.RECOMMENDATIONS)


def test_each_answered_request_counts_once_and_refusals_never(recommend_api, ingest_api, tenant, trained):
    product = Product.objects.for_tenant(tenant).values_list("external_id", flat=True).first()
    assert _counted(tenant) == 0
    answered = [
        recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}),  # computed
        recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}),  # cached
        recommend_api.get("/v1/recommendations", {"customer_id": "c-1", "explain": "true"}),
        recommend_api.get(f"/v1/products/{product}/similar"),
        recommend_api.get("/v1/popular", {"window_days": 7}),
    ]
    assert [r.status_code for r in answered] == [200] * 5
    refused = [
        recommend_api.get("/v1/recommendations", {"customer_id": "c-1", "k": 0}),  # 400
        recommend_api.get("/v1/products/no-such-product/similar"),  # 404
        ingest_api.get("/v1/recommendations", {"customer_id": "c-1"}),  # 403: no recommend scope
    ]
    assert [r.status_code for r in refused] == [400, 404, 403]
    assert _counted(tenant) == 5


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="counts wait for the admission pipeline only on Redis")
def test_waiting_counts_ride_on_the_next_admission_before_its_usage_read(recommend_api, tenant, trained):
    recommend_api.get("/v1/recommendations", {"customer_id": "c-2"})
    usage.record_soon(tenant.pk, usage.RECOMMENDATIONS, 40)
    assert usage.live(tenant.pk, usage.RECOMMENDATIONS) == 0  # nothing sent yet
    recommend_api.get("/v1/recommendations", {"customer_id": "c-2"})  # its admission sends the 41
    assert usage.live(tenant.pk, usage.RECOMMENDATIONS) == 41
    assert _counted(tenant) == 42


def test_a_free_shop_past_its_quota_is_refused_on_every_recommendation_endpoint(tenant, settings):
    settings.RECSVC_BILLING_PLANS = stripe_fake.plans_with_prices(free_recommendations=2)
    Tenant.objects.filter(pk=tenant.pk).update(plan=Tenant.Plan.FREE)
    client = _client_for(tenant, ["recommend"])
    assert client.get("/v1/recommendations", {"customer_id": "u1"}).status_code == 200
    assert client.get("/v1/recommendations", {"customer_id": "u1"}).status_code == 200  # cached
    for path, params in [("/v1/recommendations", {"customer_id": "u1"}), ("/v1/popular", {})]:
        refused = client.get(path, params)
        assert refused.status_code == 429, refused.content
        assert refused.json()["meter"] == "recommendations" and refused.json()["limit"] == 2
    assert _counted(tenant) == 2
