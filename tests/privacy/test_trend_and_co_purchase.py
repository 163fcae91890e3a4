"""Trend and co-purchase releases: the same path as popularity (bounding, catalog domain, trimmed mean, OpenDP
Laplace, the ledger), over the last days of the window or over pairs of products one customer took.

What they prove: product_trend counts only the last TREND_DAYS; co_purchase needs a popularity release (its
domain: that release's largest keys, so the domain reveals nothing more), releases pairs of keys sold by at
least 3 shops only, counts each customer for at most max_keys pairs, and charges every contributing shop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from privacy.bounding import Bounds, bounded_counts
from privacy.collect import _pairs, pair_key
from privacy.models import Charge
from privacy.optin import set_opted_in
from privacy.params import TREND_DAYS, release_params
from privacy.releases import ReleaseRefused, release
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory

AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
GTINS = {"kettle": "4006381333931", "teapot": "5901234123457", "mug": "0012345678905"}
# Little noise: these tests are about what is counted, the audit about the noise.
PARAMS = release_params(epsilon=200.0, bounds=Bounds(max_keys=3, max_per_key=1), shop_cap=100.0, min_shops=3)


def _key(name: str) -> str:
    return "gtin:" + GTINS[name].zfill(14)


def _shop(i: int):
    """20 customers who bought the kettle and the teapot this week, 20 who bought the mug three weeks ago."""
    shop = TenantFactory(name=f"Shop {i}", slug=f"shop-{i}")
    products = {name: ProductFactory(tenant=shop, title=f"{name} {i}", attributes={"ean": code})
                for name, code in GTINS.items()}
    for c in range(20):
        recent = CustomerFactory(tenant=shop, external_id=f"recent-{i}-{c}")
        for name in ("kettle", "teapot"):
            EventFactory(tenant=shop, customer=recent, product=products[name], event_type="purchase",
                         ts=AT - timedelta(days=1, minutes=c))
        old = CustomerFactory(tenant=shop, external_id=f"old-{i}-{c}")
        EventFactory(tenant=shop, customer=old, product=products["mug"], event_type="purchase",
                     ts=AT - timedelta(days=TREND_DAYS + 12))
    set_opted_in(shop.pk, True, at=AT - timedelta(days=30))
    return shop


@pytest.fixture
def shops(all_tenants, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 1000.0
    return [_shop(i) for i in range(4)]


def test_the_trend_counts_only_the_last_days(shops):
    popularity = release("product_popularity", AT, params=PARAMS).release.values
    trend = release("product_trend", AT, params=PARAMS).release.values
    assert popularity[_key("mug")] == pytest.approx(20, abs=2) and trend[_key("mug")] == pytest.approx(0, abs=2)
    assert trend[_key("kettle")] == pytest.approx(20, abs=2)


def test_co_purchase_needs_a_popularity_release_then_counts_pairs_and_charges(shops):
    with pytest.raises(ReleaseRefused):
        release("co_purchase", AT, params=PARAMS)
    assert not Charge.objects.for_tenant(shops[0]).filter(kind="co_purchase").exists()
    release("product_popularity", AT, params=PARAMS)
    outcome = release("co_purchase", AT, params=PARAMS)
    values = outcome.release.values
    assert set(values) == {pair_key(a, b) for a, b in (("kettle", "teapot"), ("kettle", "mug"), ("mug", "teapot"))
                           for a, b in [(_key(a), _key(b))]}
    assert values[pair_key(_key("kettle"), _key("teapot"))] == pytest.approx(20, abs=2)
    assert values[pair_key(_key("kettle"), _key("mug"))] == pytest.approx(0, abs=2)
    for shop in shops:
        assert Charge.objects.for_tenant(shop).get(kind="co_purchase").epsilon == outcome.release.epsilon


def test_one_customer_counts_for_at_most_max_keys_pairs():
    # One customer who took 6 products: 15 pairs, of which the bound keeps the 3 most recent.
    interactions = [("alice", f"k{i}") for i in range(6)] + [("bob", "k0"), ("bob", "k1")]
    counts = bounded_counts(_pairs(iter(interactions), {f"k{i}" for i in range(6)}), Bounds(max_keys=3, max_per_key=1))
    assert sum(counts.values()) == 3 + 1
    assert counts[pair_key("k0", "k1")] == 2  # alice's first pair and bob's
