"""Id resolution for event batches: the shop's ids to database ids, within the acting tenant only."""

from __future__ import annotations

import pytest

from recs.ingest import store
from tenants.context import tenant_context
from tests.factories import CustomerFactory, ProductFactory

pytestmark = pytest.mark.django_db

# Ids a JSON or SQL array encoding could get wrong: quotes, braces, commas, backslashes, unicode, spaces.
AWKWARD = ['sku "1"', "{a,b}", "back\\slash", "naïve-😀", " padded ", "NULL", "a'b"]


def test_known_ids_resolve_and_unknown_or_other_tenants_ids_do_not(tenant, other_tenant):
    products = {ext: ProductFactory(tenant=tenant, external_id=ext).pk for ext in AWKWARD}
    customers = {ext: CustomerFactory(tenant=tenant, external_id=ext).pk for ext in AWKWARD[:3]}
    ProductFactory(tenant=other_tenant, external_id="theirs")
    CustomerFactory(tenant=other_tenant, external_id="their-customer")
    with tenant_context(tenant.pk):
        found_products, found_customers = store.resolve_ids(
            tenant.pk, {*AWKWARD, "ghost", "theirs"}, {*AWKWARD[:3], "new-visitor", "their-customer"}
        )
    assert found_products == products
    assert found_customers == customers


def test_one_side_empty_and_both_empty(tenant):
    product = ProductFactory(tenant=tenant, external_id="p1")
    with tenant_context(tenant.pk):
        assert store.resolve_ids(tenant.pk, {"p1"}, set()) == ({"p1": product.pk}, {})
        assert store.resolve_ids(tenant.pk, set(), {"nobody"}) == ({}, {})
        assert store.resolve_ids(tenant.pk, set(), set()) == ({}, {})
