"""The candidate table: one plain statement on PostgreSQL, the ORM on the embedded SQLite; the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from serving import catalog
from tests.factories import ProductFactory, TenantFactory

pytestmark = pytest.mark.django_db


def test_the_statement_reads_what_the_orm_reads(all_tenants):
    shop, other = TenantFactory(), TenantFactory()
    products = [
        ProductFactory(tenant=shop, attributes={"color": "red", "size": 42, "tags": ["a"]}, tags=["new", "sale"]),
        ProductFactory(tenant=shop, stock=None, price=None, category_path=[], attributes={}, brand="",
                       available=False),
        ProductFactory(tenant=shop, deleted=True, stock=0, title="Crème brûlée ☕", category_path=["Food"]),
    ]
    theirs = ProductFactory(tenant=other)
    pks = np.array([products[2].pk, theirs.pk, products[0].pk, 10**12, products[1].pk], dtype=np.int64)
    keys = ("color", "size", "tags", "absent")

    table = catalog.load_candidates(shop.pk, pks, keys)
    statement = sorted(tuple(row) for row in catalog._rows_through_sql(shop.pk, pks, keys))
    orm = sorted(catalog._rows_through_the_orm(shop.pk, pks, keys))

    assert [r[0] for r in statement] == sorted(p.pk for p in products)  # another shop's product is not read
    assert statement == orm
    assert table.found.tolist() == [True, False, True, False, True]
    assert table.title[0] == "Crème brûlée ☕" and table.deleted.tolist() == [True, True, False, True, False]
    assert np.isnan(table.stock[4]) and table.price[2] == pytest.approx(19.9)
    assert table.category_paths[2] == ["Home", "Kitchen"] and table.tag_lists[2] == ["new", "sale"]
