"""Attribute history: every change opens a version with a contiguous validity interval; stale updates are ignored."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from recs.models import Customer, CustomerVersion, Product, ProductVersion

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)


def _at(hours: int) -> str:
    return (T0 + dt.timedelta(hours=hours)).isoformat()


def _versions(model, tenant, **fk) -> list:
    return list(model.objects.for_tenant(tenant).filter(**fk).order_by("valid_from", "pk"))


def _assert_contiguous(versions) -> None:
    for earlier, later in itertools.pairwise(versions):
        assert earlier.valid_to == later.valid_from
        assert earlier.valid_from < earlier.valid_to
    assert versions[-1].valid_to is None


def test_each_price_change_opens_a_contiguous_version(api, tenant):
    assert api.put("/v1/products/p", {"title": "Cup", "price": "10.00", "updated_at": _at(0)},
                   format="json").status_code == 201
    assert api.patch("/v1/products/p", {"price": "12.00", "updated_at": _at(1)}, format="json").status_code == 200
    assert api.patch("/v1/products/p", {"price": "9.00", "updated_at": _at(2)}, format="json").status_code == 200

    product = Product.objects.for_tenant(tenant).get(external_id="p")
    versions = _versions(ProductVersion, tenant, product=product)
    assert [v.snapshot["price"] for v in versions] == ["10.00", "12.00", "9.00"]
    assert [v.valid_from for v in versions] == [T0, T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)]
    _assert_contiguous(versions)
    assert product.price == Decimal("9.00")
    assert product.source_updated_at == T0 + dt.timedelta(hours=2)


def test_changes_without_updated_at_use_server_time_and_stay_contiguous(api, tenant):
    api.put("/v1/products/p", {"title": "Cup", "price": "10.00"}, format="json")
    api.patch("/v1/products/p", {"price": "11.00"}, format="json")
    api.put("/v1/products/p", {"title": "Cup", "price": "11.00"}, format="json")  # no change: no version
    api.delete("/v1/products/p")  # soft delete is a change too
    versions = _versions(ProductVersion, tenant)
    assert [(v.snapshot["price"], v.snapshot["deleted"]) for v in versions] == [
        ("10.00", False), ("11.00", False), ("11.00", True),
    ]
    _assert_contiguous(versions)


def test_a_stale_update_is_ignored_and_leaves_history_alone(api, tenant):
    api.put("/v1/products/p", {"title": "Cup", "price": "10.00", "updated_at": _at(5)}, format="json")
    row_before = list(Product.objects.for_tenant(tenant).values())
    history_before = list(ProductVersion.objects.for_tenant(tenant).values())

    stale = api.put("/v1/products/p", {"title": "Old cup", "price": "3.00", "updated_at": _at(4)}, format="json")
    assert stale.status_code == 200
    assert stale.json()["title"] == "Cup"  # the answer shows what is stored
    bulk = api.post("/v1/products/bulk", {"items": [{"id": "p", "title": "Older", "updated_at": _at(1)}]},
                    format="json").json()
    assert bulk["stale"] == 1 and bulk["updated"] == 0
    api.patch("/v1/products/p", {"price": "1.00", "updated_at": _at(3)}, format="json")

    assert list(Product.objects.for_tenant(tenant).values()) == row_before
    assert list(ProductVersion.objects.for_tenant(tenant).values()) == history_before


def test_placeholder_customer_becomes_real_when_upserted(api, tenant):
    api.put("/v1/products/p", {"title": "Cup"}, format="json")
    assert api.post("/v1/events", {"type": "view", "customer_id": "visitor", "product_id": "p"},
                    format="json").status_code == 201
    placeholder = Customer.objects.for_tenant(tenant).get(external_id="visitor")
    assert placeholder.is_placeholder
    assert api.get("/v1/customers", {"is_placeholder": "true"}).json()["results"][0]["id"] == "visitor"

    upserted = api.put("/v1/customers/visitor", {"attributes": {"tier": "gold"}, "updated_at": _at(0)},
                       format="json")
    assert upserted.status_code == 200, upserted.content
    assert upserted.json()["is_placeholder"] is False
    customer = Customer.objects.for_tenant(tenant).get(external_id="visitor")
    assert customer.pk == placeholder.pk  # the same row: its events stay linked
    assert (customer.is_placeholder, customer.attributes) == (False, {"tier": "gold"})
    assert api.get("/v1/customers", {"is_placeholder": "true"}).json()["results"] == []
    versions = _versions(CustomerVersion, tenant, customer=customer)
    assert versions[-1].snapshot == {"attributes": {"tier": "gold"}} and versions[-1].valid_to is None
    _assert_contiguous(versions)


def test_customer_attribute_history(api, tenant):
    for hour, tier in enumerate(["bronze", "silver", "gold"]):
        api.put("/v1/customers/c", {"attributes": {"tier": tier}, "updated_at": _at(hour)}, format="json")
    versions = _versions(CustomerVersion, tenant)
    assert [v.snapshot["attributes"]["tier"] for v in versions] == ["bronze", "silver", "gold"]
    _assert_contiguous(versions)


def test_a_version_never_starts_before_its_predecessor(api, tenant):
    # First sent without updated_at (history on server time), then with a shop time before that.
    api.put("/v1/products/p", {"title": "Cup", "price": "10.00"}, format="json")
    api.patch("/v1/products/p", {"price": "12.00", "updated_at": _at(0)}, format="json")
    versions = _versions(ProductVersion, tenant)
    assert [v.snapshot["price"] for v in versions] == ["10.00", "12.00"]
    _assert_contiguous(versions)
