"""The activation metric excludes what the funnel's consumed filter removes (docs/training.md, "Offline and
served"): for a shop whose events are consumed types (ratings, purchases), a customer's excluded items in the
offline evaluation are exactly the funnel's consumed products; views are where they differ."""

from __future__ import annotations

import datetime as dt

import numpy as np

from recs.ingest.catalog import upsert_products
from recs.ingest.event_schema import EventIn
from recs.ingest.events import ingest_events
from recs.models import Customer, Product
from serving.funnel import consumed_products
from tenants.context import tenant_context
from tests.factories import TenantFactory
from training.datasets import load_tenant_dataset
from training.evaluation import SeenIndex

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def _event(kind: str, customer: str, product: str, minute: int, value: float | None = None) -> EventIn:
    return EventIn(type=kind, customer_id=customer, product_id=product, timestamp=T0 + dt.timedelta(minutes=minute),
                   value=value, event_id=f"{kind}-{customer}-{product}-{minute}")


def _offline_excluded(dataset, customer_pk: int) -> set[int]:
    """Product pks the offline protocol masks out of this customer's list (SeenIndex over their events)."""
    c = int(np.searchsorted(dataset.customer_pks, customer_pk))
    _, items = SeenIndex(dataset.interactions).rows_cols(np.array([c]))
    return set(dataset.product_pks[items].tolist())


def test_offline_exclusion_is_the_funnel_consumed_set_for_ratings_and_purchases(all_tenants):
    tenant = TenantFactory()
    with tenant_context(tenant.pk):
        upsert_products(tenant.pk, [{"external_id": f"p{i}", "title": f"P {i}"} for i in range(6)])
        ingest_events(tenant.pk, [
            _event("rating", "a", "p0", 1, 4.0), _event("purchase", "a", "p1", 2), _event("rating", "a", "p2", 3, 1.0),
            _event("purchase", "b", "p3", 4), _event("view", "b", "p4", 5),
        ])
        dataset = load_tenant_dataset(tenant.pk)
        customers = dict(Customer.objects.for_tenant(tenant.pk).values_list("external_id", "pk"))
        a, b = customers["a"], customers["b"]
        pks = dict(Product.objects.for_tenant(tenant.pk).values_list("external_id", "pk"))
        assert _offline_excluded(dataset, a) == set(consumed_products(tenant.pk, a).tolist()) == {
            pks["p0"], pks["p1"], pks["p2"]}
        # A view: the offline protocol masks every item the customer has an event of, the funnel only what they
        # consumed (a viewed product may be recommended back).
        assert _offline_excluded(dataset, b) == {pks["p3"], pks["p4"]}
        assert set(consumed_products(tenant.pk, b).tolist()) == {pks["p3"]}
