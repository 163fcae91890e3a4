"""The released 7-day trend reaches what a shop's customers see: the warm start of its training (the popularity
axis a customer without history starts on) takes the trend of the same month beside the popularity.

What they prove: with a popularity release alone, a customer without history starts on the product most taken
across the shops this month; with a trend release of the same month, the product rising in the last 7 days
comes first; a trend of another month is not mixed in; a shop that did not opt in gets neither.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from privacy.models import Release
from privacy.optin import set_opted_in
from privacy.public import released_popularity
from recs.models import Product
from tenants.context import tenant_context
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory
from training.datasets import load_tenant_dataset

AT = datetime(2026, 3, 28, 2, 0, tzinfo=UTC)
GTINS = {"kettle": "4006381333931", "teapot": "5901234123457", "mug": "0012345678905"}


def _key(name: str) -> str:
    return "gtin:" + GTINS[name].zfill(14)


def _release(kind: str, window: str, values: dict[str, float]) -> None:
    Release.objects.create(kind=kind, window=window, mechanism="opendp laplace", epsilon=1.0, delta=0.0,
                           sensitivity=1.0, noise_scale=1.0, n_shops=4, trim=1, poisoning_bound=50.0,
                           values={_key(name): value for name, value in values.items()}, released_at=AT)


@pytest.fixture
def shop(all_tenants):
    shop = TenantFactory()
    with tenant_context(shop.pk):
        customer = CustomerFactory(tenant=shop)
        for name, code in GTINS.items():
            product = ProductFactory(tenant=shop, title=f"{name} of mine", attributes={"ean": code})
            EventFactory(tenant=shop, customer=customer, product=product, ts=AT)
    return shop


def _first(shop) -> str:
    """The product a customer without history starts on: the largest popularity angle of the warm rows."""
    with tenant_context(shop.pk):
        dataset = load_tenant_dataset(shop.pk)
        titles = dict(Product.objects.for_tenant(shop.pk).values_list("pk", "title"))
    return titles[int(dataset.product_pks[int(np.argmax(dataset.item_init.rows[:, -1]))])].split()[0]


def test_the_trend_of_the_same_month_moves_the_rising_product_first(shop):
    _release("product_popularity", "2026-03", {"kettle": 100, "teapot": 50, "mug": 10})
    set_opted_in(shop.pk, True, at=AT)
    assert _first(shop) == "kettle"
    _release("product_trend", "2026-02", {"teapot": 90})  # another month: not mixed in
    assert _first(shop) == "kettle"
    _release("product_trend", "2026-03", {"mug": 80, "kettle": 5})
    assert _first(shop) == "mug"
    with tenant_context(shop.pk):
        prior = released_popularity(shop.pk, list(load_tenant_dataset(shop.pk).product_pks))
    assert prior.min() >= 0 and prior.max() <= 1


def test_a_shop_that_did_not_opt_in_gets_neither(shop):
    _release("product_popularity", "2026-03", {"kettle": 100})
    _release("product_trend", "2026-03", {"mug": 80})
    with tenant_context(shop.pk):
        assert released_popularity(shop.pk, list(load_tenant_dataset(shop.pk).product_pks)) is None
        assert load_tenant_dataset(shop.pk).item_init is None
