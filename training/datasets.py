"""A tenant's database rows as the plain arrays the trainers take (read only; recs models only).

Products become dense item indices in primary-key order, customers likewise; the index -> primary key
maps travel with the model so serving can translate back. Item features come from the current
catalog row (see the README on point-in-time attributes).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from django.db import connection

from recs.ingest.event_types import event_weights
from recs.models import Customer, Event, Product
from training.data import Interactions, ItemFeatures, Jagged, hash_tokens

TITLE_BUCKETS = 1 << 14
PRICE_BUCKETS = 32
FEATURE_VERSION = "catalog-v1"


@dataclass(frozen=True)
class TenantDataset:
    interactions: Interactions
    items: ItemFeatures
    product_pks: np.ndarray  # item index -> Product.pk
    customer_pks: np.ndarray  # customer index -> Customer.pk

    @property
    def data_start(self) -> dt.datetime | None:
        ts = self.interactions.ts
        return dt.datetime.fromtimestamp(int(ts.min()), dt.UTC) if len(ts) else None

    @property
    def data_end(self) -> dt.datetime | None:
        ts = self.interactions.ts
        return dt.datetime.fromtimestamp(int(ts.max()), dt.UTC) if len(ts) else None


def _price_bucket(price) -> int:
    # Log2 buckets: 1 for under 2, 2 for [2, 4), ... (0 = no price).
    if price is None or price <= 0:
        return 0
    return int(min(PRICE_BUCKETS - 1, 1 + max(0, math.floor(math.log2(float(price))))))


def _vocab_ids(rows: list[list[str]]) -> tuple[Jagged, int]:
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(token, len(vocab) + 1) for token in row] for row in rows]
    return Jagged.from_lists(ids), len(vocab) + 1


def item_features(products: list[tuple]) -> ItemFeatures:
    """(pk, title, category_path, brand, price, tags) rows -> ItemFeatures. Category ids cover every
    prefix of the path ("Home", "Home > Kitchen") and the tags, so related leaves share ids."""
    categories = []
    for _, _, path, _, _, tags in products:
        path = path or []
        categories.append([" > ".join(path[: i + 1]) for i in range(len(path))] + [f"#{t}" for t in tags or []])
    category, n_categories = _vocab_ids(categories)
    brand, n_brands = _vocab_ids([[b] if b else [] for _, _, _, b, _, _ in products])
    # Every item has exactly one brand id (0 = none), as the item tower expects.
    brand_ids = np.zeros(len(products), np.int64)
    brand_ids[brand.lengths > 0] = brand.values
    return ItemFeatures(
        category=category,
        brand=Jagged.from_single(brand_ids),
        price_bucket=Jagged.from_single([_price_bucket(p[4]) for p in products]),
        title_tokens=hash_tokens([p[1] for p in products], TITLE_BUCKETS),
        n_categories=n_categories,
        n_brands=n_brands,
        n_price_buckets=PRICE_BUCKETS,
        n_title_tokens=TITLE_BUCKETS,
    )


def _event_rows(tenant_id: int, until: dt.datetime | None):
    """(customer pk, product pk, unix ts, type, value) in time order, streamed from the database."""
    if connection.vendor == "postgresql":
        sql = (
            "SELECT customer_id, product_id, extract(epoch FROM ts)::bigint, event_type, value"
            " FROM recs_event WHERE tenant_id = %s" + (" AND ts < %s" if until else "") + " ORDER BY ts, id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [tenant_id, until] if until else [tenant_id])
            while rows := cursor.fetchmany(50_000):
                yield from rows
        return
    events = Event.objects.for_tenant(tenant_id)
    if until:
        events = events.filter(ts__lt=until)
    for customer, product, ts, kind, value in events.order_by("ts", "id").values_list(
        "customer_id", "product_id", "ts", "event_type", "value"
    ).iterator(chunk_size=20_000):
        yield customer, product, int(ts.timestamp()), kind, value


def load_tenant_dataset(tenant_id: int, *, until: dt.datetime | None = None) -> TenantDataset:
    """Everything a training run needs from one tenant (the caller is in the tenant's context)."""
    weights = event_weights(tenant_id)
    products = list(
        Product.objects.for_tenant(tenant_id).order_by("id").values_list(
            "id", "title", "category_path", "brand", "price", "tags"
        )
    )
    product_pks = np.array([p[0] for p in products], dtype=np.int64)
    customer_pks = np.fromiter(
        Customer.objects.for_tenant(tenant_id).order_by("id").values_list("id", flat=True), dtype=np.int64
    )
    customers, items, ts, weight = [], [], [], []
    for customer, product, when, kind, value in _event_rows(tenant_id, until):
        w = weights.get(kind, 0.0)
        if kind == "rating":
            w *= value or 0.0
        if w <= 0:
            continue  # impressions and zero-weight types are exposures, not preferences
        customers.append(customer)
        items.append(product)
        ts.append(when)
        weight.append(w)
    interactions = Interactions(
        customer=np.searchsorted(customer_pks, np.array(customers, dtype=np.int64)),
        item=np.searchsorted(product_pks, np.array(items, dtype=np.int64)),
        ts=np.array(ts, dtype=np.int64),
        weight=np.array(weight, dtype=np.float32),
        n_customers=len(customer_pks),
        n_items=len(product_pks),
    )
    return TenantDataset(interactions, item_features(products), product_pks, customer_pks)
