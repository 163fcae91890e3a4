"""Fixtures of the tenancy tests."""

from __future__ import annotations

import pytest

from tenants.context import dangerously_all_tenants
from tests.factories import ProductFactory, TenantFactory


@pytest.fixture
def two_shops(db):
    """Shops A and B with 3 and 2 products, made with the wall lifted; tests look from outside it."""
    a, b = TenantFactory(), TenantFactory()
    with dangerously_all_tenants():
        ProductFactory.create_batch(3, tenant=a)
        ProductFactory.create_batch(2, tenant=b)
    return a, b
