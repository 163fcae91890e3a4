"""A serving process keeps the candidate rows it read until a published write changes them."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.cache import cache as django_cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from serving import candidate_rows, catalog, catalog_changes
from tests.factories import ProductFactory, TenantFactory, change_products

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the change log is in Redis"),
]


class Reads:
    """The real statement, recording which pks each call asked for."""

    def __init__(self, tenant_id: int, keys: tuple[str, ...] = ()):
        self.tenant_id, self.keys, self.asked = tenant_id, keys, []

    def __call__(self, pks: np.ndarray) -> list:
        self.asked.append(sorted(pks.tolist()))
        return catalog._rows_through_sql(self.tenant_id, pks, self.keys)

    def rows(self, pks: list[int], clock: Callable[[], float] = time.monotonic) -> dict[int, list]:
        got = candidate_rows.read_through(self.tenant_id, np.array(pks, dtype=np.int64), self.keys, self, clock=clock)
        return {row[0]: row for row in got}


@pytest.fixture
def products(all_tenants):
    tenant = TenantFactory()
    # A tenant's first notice starts its counter, and a process then drops every row it kept: the
    # tests start after that.
    catalog_changes.publish_changes(tenant.pk, [10**12])
    return tenant, [ProductFactory(tenant=tenant, stock=5) for _ in range(4)]


def test_rows_are_read_once_and_a_published_change_rereads_only_the_changed_row(products):
    tenant, (a, b, c, d) = products
    reads = Reads(tenant.pk)
    assert set(reads.rows([a.pk, b.pk, c.pk])) == {a.pk, b.pk, c.pk}
    assert set(reads.rows([c.pk, b.pk, d.pk])) == {b.pk, c.pk, d.pk}
    assert reads.asked == [sorted([a.pk, b.pk, c.pk]), [d.pk]]

    change_products(tenant, {b: {"stock": 0}, c: {"title": "Renamed"}})
    rows = reads.rows([a.pk, b.pk, c.pk, d.pk])

    assert reads.asked[2:] == [sorted([b.pk, c.pk])]
    assert rows[b.pk][5] == 0.0 and rows[c.pk][2] == "Renamed" and rows[a.pk][5] == 5.0


def test_the_candidate_table_reads_nothing_for_kept_rows_and_sees_a_stock_change_at_once(products):
    tenant, (a, b, c, _) = products
    pks = np.array([a.pk, b.pk, c.pk], dtype=np.int64)
    first = catalog.load_candidates(tenant.pk, pks)
    with CaptureQueriesContext(connection) as queries:
        again = catalog.load_candidates(tenant.pk, pks)
    assert len(queries) == 0 and again.in_stock.tolist() == first.in_stock.tolist() == [True] * 3

    change_products(tenant, {b: {"stock": 0}})

    assert catalog.load_candidates(tenant.pk, pks).in_stock.tolist() == [True, False, True]


def test_an_unchanged_write_publishes_nothing_and_a_new_product_is_read(products):
    tenant, (a, *_) = products
    reads = Reads(tenant.pk)
    reads.rows([a.pk])
    seq = catalog_changes.current_seq(tenant.pk)
    change_products(tenant, {a: {"stock": 5}})  # as stored: nothing changed
    assert catalog_changes.current_seq(tenant.pk) == seq
    fresh = ProductFactory(tenant=tenant)
    assert set(reads.rows([a.pk, fresh.pk])) == {a.pk, fresh.pk}
    assert reads.asked == [[a.pk], [fresh.pk]]


def test_everything_is_reread_when_the_log_cannot_say_what_changed(products):
    tenant, (a, b, *_) = products
    reads = Reads(tenant.pk)
    reads.rows([a.pk, b.pk])

    catalog_changes.publish_changes(tenant.pk, None)  # an erasure: any row may have changed
    reads.rows([a.pk, b.pk])
    for _ in range(catalog_changes.LOG_LENGTH + 1):  # more writes than the log keeps
        catalog_changes.publish_changes(tenant.pk, [10**12])
    reads.rows([a.pk, b.pk])
    catalog_changes.publish_changes(tenant.pk, range(10**12, 10**12 + catalog_changes.MAX_PKS_PER_ENTRY + 1))
    reads.rows([a.pk, b.pk])
    django_cache.clear()  # Redis lost the log; its next counter starts far ahead of what was seen
    catalog_changes.publish_changes(tenant.pk, [10**12])
    reads.rows([a.pk, b.pk])

    assert reads.asked == [sorted([a.pk, b.pk])] * 5


def test_a_row_read_while_a_change_is_published_is_not_kept(products):
    tenant, (a, b, *_) = products
    reads = Reads(tenant.pk)
    reads.rows([b.pk])

    def read_during_a_change(pks: np.ndarray) -> list:
        rows = reads(pks)  # the old row ...
        change_products(tenant, {a: {"stock": 0}})  # ... is changed and published before it is kept,
        reads.rows([b.pk])  # and another request of this process syncs to the change first
        return rows

    candidate_rows.read_through(tenant.pk, np.array([a.pk]), (), read_during_a_change)
    assert reads.rows([a.pk])[a.pk][5] == 0.0
    assert reads.asked == [[b.pk], [a.pk], [a.pk]]


def test_rows_are_kept_per_tenant_and_per_attribute_keys(products):
    tenant, (a, b, *_) = products
    other = TenantFactory()
    theirs = Reads(other.pk)
    Reads(tenant.pk).rows([a.pk, b.pk])
    assert theirs.rows([a.pk, b.pk]) == {} and theirs.asked == [sorted([a.pk, b.pk])]

    colored = Reads(tenant.pk, ("color",))
    assert set(colored.rows([a.pk])) == {a.pk} and colored.asked == [[a.pk]]
    assert len(colored.rows([a.pk])[a.pk]) == len(catalog.COLUMNS) + 1


def test_at_most_the_configured_rows_are_kept_and_none_when_off(products, settings):
    tenant, prods = products
    more = prods + [ProductFactory(tenant=tenant) for _ in range(6)]
    pks = [p.pk for p in more]
    settings.RECSVC_CANDIDATE_ROWS = 5
    reads = Reads(tenant.pk)
    reads.rows(pks)
    kept = [key[2] for key in candidate_rows._rows]
    assert 0 < len(kept) <= 5
    reads.rows(kept)
    assert len(reads.asked) == 1

    settings.RECSVC_CANDIDATE_ROWS = 0
    reads.rows(pks[-1:])
    reads.rows(pks[-1:])
    assert reads.asked[1:] == [[pks[-1]], [pks[-1]]]


def test_rows_older_than_the_maximum_age_are_reread(products, settings):
    tenant, (a, *_) = products
    reads = Reads(tenant.pk)
    now = 1_000.0
    reads.rows([a.pk], clock=lambda: now)
    reads.rows([a.pk], clock=lambda: now + settings.RECSVC_CANDIDATE_ROWS_MAX_AGE_S - 1)
    reads.rows([a.pk], clock=lambda: now + settings.RECSVC_CANDIDATE_ROWS_MAX_AGE_S)
    assert reads.asked == [[a.pk], [a.pk]]


def test_kept_rows_leave_the_garbage_collectors_watch(products):
    tenant, prods = products
    prods.append(ProductFactory(tenant=tenant, attributes={"sizes": [38, 39], "color": "red"}, tags=["new"]))
    rows = Reads(tenant.pk, ("sizes", "color")).rows([p.pk for p in prods])
    gc.collect()
    gc.collect()  # the first untracks the inner tuples, the second the rows holding them
    kept = list(candidate_rows._rows.values())
    assert len(kept) == len(rows) == 5 and not any(map(gc.is_tracked, kept))
    table = catalog.load_candidates(tenant.pk, np.array([p.pk for p in prods]), ("sizes", "color"))
    assert table.category_paths[0] == ("Home", "Kitchen") and table.leaf_category.tolist() == ["Kitchen"] * 5
