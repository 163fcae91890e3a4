"""The first wall: tenant-owned querysets cannot be built without naming a tenant."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from recs.api.catalog_views import ProductViewSet
from recs.models import Product
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tenants.viewsets import TenantViewSet
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_default_manager_returns_nothing_even_with_rows(tenant, other_tenant):
    ProductFactory.create_batch(2, tenant=tenant)
    ProductFactory(tenant=other_tenant)
    assert Product.dangerously_unscoped.count() == 3  # the rows are there (all_tenants fixture)...
    assert list(Product.objects.all()) == []  # ...yet the default manager shows none
    assert Product.objects.count() == 0
    assert Product.objects.filter(tenant=tenant).count() == 0


def test_for_tenant_scopes_to_one_tenant(tenant, other_tenant):
    mine = set(p.pk for p in ProductFactory.create_batch(2, tenant=tenant))
    theirs = ProductFactory(tenant=other_tenant)
    assert set(Product.objects.for_tenant(tenant).values_list("pk", flat=True)) == mine
    assert set(Product.objects.for_tenant(tenant.pk).values_list("pk", flat=True)) == mine
    assert list(Product.objects.for_tenant(other_tenant)) == [theirs]
    assert Product.objects.dangerously_all_tenants().count() == 3


@pytest.mark.parametrize("bad", [None, "1", True, 1.0])
def test_for_tenant_refuses_anything_but_a_tenant_or_id(bad):
    with pytest.raises(TypeError):
        Product.objects.for_tenant(bad)
    with pytest.raises(TypeError):
        tenant_context(bad)


def test_bulk_update_without_a_tenant_is_refused_not_silently_ignored(tenant):
    product = ProductFactory(tenant=tenant, title="old")
    product.title = "new"
    with pytest.raises(TypeError, match="for_tenant"):
        Product.objects.bulk_update([product], ["title"])
    Product.objects.for_tenant(tenant).bulk_update([product], ["title"])
    assert Product.objects.for_tenant(tenant).get().title == "new"


@pytest.mark.parametrize("method", ["get_queryset", "get_object"])
@pytest.mark.parametrize("base", [TenantViewSet, ProductViewSet])
def test_a_viewset_cannot_override_the_tenant_lookups(base, method):
    with pytest.raises(TypeError, match=method):
        type("SneakyViewSet", (base,), {method: lambda self: None})


def test_a_refined_viewset_stays_inside_its_tenant(tenant, other_tenant):
    class LiveProducts(TenantViewSet):
        model = Product

        def safely_get_queryset(self, queryset):
            return queryset.filter(deleted=False)

    live = ProductFactory(tenant=tenant)
    ProductFactory(tenant=tenant, deleted=True)
    ProductFactory(tenant=other_tenant)
    key, _ = create_api_key(tenant, name="k", scopes=["ingest"])
    view = LiveProducts()
    view.request = SimpleNamespace(auth=key)
    assert list(view.get_queryset()) == [live]
