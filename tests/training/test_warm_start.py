"""A shop's own training warm-started from what the opted-in shops share (privacy.public: the shared cold-start
model's embeddings and the released popularity; training.warm_start.warm_start_rows).

What they prove: a product without events, whose shared embedding says it goes with what a group of customers
takes, is placed near the top for them when retrieval is warm-started, and far lower without; a customer
without history starts with the other shops' popular products; a shop's dataset carries the warm start of its
catalog only when it opted in and something is shared.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import spearmanr

from privacy.models import SharedModel
from privacy.optin import set_opted_in
from privacy.shared_model import to_bytes
from tenants.context import tenant_context
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory
from training.data import Interactions, ItemFeatures, make_history
from training.datasets import load_tenant_dataset
from training.inference import retrieve
from training.trainers.two_tower import train_two_tower
from training.warm_start import WarmStart, warm_start_rows

AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
N_GROUP = 12
NEW = 2 * N_GROUP  # the product without events


def _two_groups() -> tuple[Interactions, np.ndarray]:
    """Customers 0-29 take products of group A (0-11), 30-59 of group B (12-23); product 24 has no event.
    The shared embeddings: group A near one direction, group B near another, the new product with group A."""
    rng = np.random.default_rng(0)
    customers, items = [], []
    for c in range(60):
        group = c // 30
        for item in rng.choice(N_GROUP, size=6, replace=False) + group * N_GROUP:
            customers.append(c)
            items.append(int(item))
    n = len(customers)
    events = Interactions(customer=customers, item=items, ts=np.arange(n), weight=np.ones(n), n_customers=60,
                          n_items=NEW + 1)
    a, b = np.eye(8)[0], np.eye(8)[1]
    shared = np.array([a] * N_GROUP + [b] * N_GROUP + [a]) + rng.normal(0, 0.05, size=(NEW + 1, 8))
    return events, (shared / np.linalg.norm(shared, axis=1, keepdims=True)).astype(np.float32)


def _rank_of_new_product(model, events: Interactions) -> float:
    """Mean rank (0 = first) of the new product in group A customers' full rankings of unseen products."""
    top, _ = retrieve(model, events, np.arange(30), k=NEW + 1)
    return float(np.mean([list(row).index(NEW) if NEW in row else NEW for row in top]))


def test_the_warm_start_places_a_new_product_with_what_it_goes_with():
    events, shared = _two_groups()
    items = ItemFeatures.empty(NEW + 1)  # no content of the shop's own: only the shared model knows the product
    common = {"dim": 16, "epochs": 3, "batch_size": 64, "seed": 0}
    cold = train_two_tower(events, items, **common)
    warm = train_two_tower(events, items, item_init=warm_start_rows(shared, None), **common)
    assert warm.metrics["warm_started"] and not cold.metrics["warm_started"]
    cold_rank, warm_rank = _rank_of_new_product(cold, events), _rank_of_new_product(warm, events)
    assert warm_rank < 6 < cold_rank  # among group A's unseen products (6 of them) against below them


def test_the_shape_of_the_shared_embeddings_is_checked():
    events, shared = _two_groups()
    with pytest.raises(ValueError, match="item_init"):
        train_two_tower(events, ItemFeatures.empty(NEW + 1), dim=4, epochs=1, item_init=warm_start_rows(shared, None))


def test_a_new_customer_starts_with_the_other_shops_popular_products():
    """Before the shop's own events move anything (no epoch yet), a customer without history ranks the
    products by the shared popularity; a cold start ranks them at random."""
    events, _ = _two_groups()
    popularity = np.linspace(0, 1, NEW + 1)
    start = warm_start_rows(None, popularity)
    assert isinstance(start, WarmStart) and start.rows.shape == (NEW + 1, 1) and start.customer_default[-1] > 0
    nobody = np.array([-1])  # a customer unknown to the model, without history
    for item_init, low, high in ((start, 0.9, 1.0), (None, -0.5, 0.5)):
        model = train_two_tower(events, ItemFeatures.empty(NEW + 1), dim=16, epochs=0, item_init=item_init)
        scores = (model.embed_customers(nobody, make_history([[]])) @ model.item_embeddings.T)[0]
        assert low <= spearmanr(scores, popularity).statistic <= high


@pytest.mark.django_db
def test_a_shops_dataset_carries_its_catalogs_shared_embeddings_once_it_opted_in(all_tenants):
    shop = TenantFactory()
    with tenant_context(shop.pk):
        customer = CustomerFactory(tenant=shop)
        for title in ("copper kettle", "steel kettle", "glass teapot"):
            EventFactory(tenant=shop, customer=customer, product=ProductFactory(tenant=shop, title=title), ts=AT)
        assert load_tenant_dataset(shop.pk).item_init is None  # no model, not opted in
    SharedModel.objects.create(
        window="2026-03", mechanism="opacus DP-SGD, PRV accountant", epsilon=2.0, delta=1e-7, noise_multiplier=1.0,
        sample_rate=0.05, steps=10, max_grad_norm=1.0, max_items_per_customer=20, n_shops=3, n_buckets=64, dim=8,
        weights=to_bytes(np.random.default_rng(0).normal(size=(64, 8))), trained_at=AT,
    )
    with tenant_context(shop.pk):
        assert load_tenant_dataset(shop.pk).item_init is None  # not opted in
        set_opted_in(shop.pk, True, at=AT)
        start = load_tenant_dataset(shop.pk).item_init
    # The shared embeddings of its 3 products (no popularity release yet), at the warm rows' norm.
    assert start.rows.shape == (3, 8) and np.allclose(np.linalg.norm(start.rows, axis=1), 3.0, atol=1e-4)
