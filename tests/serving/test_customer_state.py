"""One statement reads what the three per-customer queries read (serving/customer_state.py)."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings
from django.db.models import Count

from recs.models import Customer, Event
from serving.customer_state import customer_pk, read_customer_events
from serving.funnel import consumed_products, recent_history
from serving.online_features import activity_totals, customer_activity
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
CONSUMED = ("purchase", "rating")  # the default setting: consumed_products' default too
# The combined read is PostgreSQL's (on the embedded SQLite the callers read each part on its own).
postgres_only = pytest.mark.skipif(not settings.IS_POSTGRES, reason="the combined read is one PostgreSQL statement")


@postgres_only
@pytest.mark.parametrize("consumed_days", [None, 0, 1, 30])
def test_the_combined_read_means_what_the_separate_queries_mean(shop, consumed_days):
    tenant, _ = shop
    limit = 5
    busiest = (Event.objects.for_tenant(tenant).values("customer_id").annotate(n=Count("id")).order_by("-n")
               .values_list("customer_id", flat=True)[:6])
    buyers = Event.objects.for_tenant(tenant).filter(event_type="purchase").values_list("customer_id", flat=True)[:6]
    customers = {*busiest, *buyers}
    assert any(Event.objects.for_tenant(tenant).filter(customer_id=c).count() > 2 * limit for c in customers)
    for customer in customers:
        events = read_customer_events(tenant.pk, customer, recent_limit=2 * limit, consumed_types=CONSUMED,
                                      consumed_days=consumed_days)

        assert sorted(events.consumed.tolist()) == sorted(consumed_products(tenant.pk, customer, consumed_days))
        combined = recent_history(tenant.pk, customer, None, limit, events.recent)
        separate = recent_history(tenant.pk, customer, None, limit)
        assert np.array_equal(combined[0], separate[0]) and np.array_equal(combined[1], separate[1])
        assert activity_totals(tenant.pk, events.activity) == customer_activity(tenant.pk, customer)

        external_id = Customer.objects.for_tenant(tenant).get(pk=customer).external_id
        by_shop_id = read_customer_events(tenant.pk, None, recent_limit=2 * limit, consumed_types=CONSUMED,
                                          consumed_days=consumed_days,
                                          external_id=external_id)
        assert by_shop_id.customer_pk == events.customer_pk == customer
        assert by_shop_id.recent == events.recent and by_shop_id.activity == events.activity
        assert np.array_equal(by_shop_id.consumed, events.consumed)


def test_no_customer_reads_nothing(shop):
    tenant, _ = shop
    assert read_customer_events(tenant.pk, None, recent_limit=10, consumed_types=CONSUMED, consumed_days=None) is None


def test_the_customer_id_resolves_within_the_acting_shop_only(tenant, other_tenant):
    ours = CustomerFactory(tenant=tenant, external_id="c-1")
    CustomerFactory(tenant=other_tenant, external_id="c-2")
    assert customer_pk(tenant.pk, "c-1") == ours.pk
    assert customer_pk(tenant.pk, "c-2") is None  # another shop's customer
    assert customer_pk(tenant.pk, "never-seen") is None
    assert customer_pk(tenant.pk, None) is None and customer_pk(tenant.pk, "") is None


@postgres_only
def test_the_combined_read_resolves_the_shop_id_within_the_acting_shop_only(tenant, other_tenant):
    ours = CustomerFactory(tenant=tenant, external_id="c-1")  # no events yet: still found
    CustomerFactory(tenant=other_tenant, external_id="c-2")

    def read(external_id):
        return read_customer_events(tenant.pk, None, recent_limit=10, consumed_types=CONSUMED, consumed_days=None,
                                    external_id=external_id)

    found = read("c-1")
    assert found.customer_pk == ours.pk and found.recent == [] and len(found.consumed) == 0
    assert read("c-2") is None  # another shop's customer
    assert read("never-seen") is None
