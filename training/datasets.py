"""A tenant's database rows as the plain arrays the trainers take (read only; recs models only, and the shared
cold-start model's embeddings of the catalog through privacy.public).

Products become dense item indices in primary-key order, customers likewise; the index -> primary key
maps travel with the model so serving can translate back. Item features come twice: `items` from the
current catalog row (retrieval's item tower and serving embed items as they are now), `item_versions`
from the attribute history (the ranker's examples read each item as it was at the example's time;
training/item_versions.py). Both share one vocabulary, built current catalog first, so the ids of
today's values do not depend on the history.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection

from privacy.public import released_popularity, shared_item_embeddings
from recs.ingest.event_types import event_weights
from recs.models import Customer, Event, Product, ProductVersion
from training.data import Interactions, ItemFeatures, Jagged, hash_tokens
from training.item_versions import ALWAYS, ItemVersions
from training.warm_start import WarmStart, warm_start_rows

TITLE_BUCKETS = 1 << 14
PRICE_BUCKETS = 32
FEATURE_VERSION = "catalog-v2"


@dataclass(frozen=True)
class TenantDataset:
    interactions: Interactions
    items: ItemFeatures
    product_pks: np.ndarray  # item index -> Product.pk
    customer_pks: np.ndarray  # customer index -> Customer.pk
    item_versions: ItemVersions | None = None  # attribute history (same vocabularies as `items`)
    # The warm start of the catalog's item rows from what the opted-in shops share (privacy.public):
    # the shared cold-start model's embeddings and the released popularity (training.trainers.two_tower).
    item_init: WarmStart | None = None

    @property
    def data_start(self) -> dt.datetime | None:
        ts = self.interactions.ts
        return dt.datetime.fromtimestamp(int(ts.min()), dt.UTC) if len(ts) else None

    @property
    def data_end(self) -> dt.datetime | None:
        ts = self.interactions.ts
        return dt.datetime.fromtimestamp(int(ts.max()), dt.UTC) if len(ts) else None


def _price_bucket(price) -> int:
    # Log2 buckets: 1 for under 2, 2 for [2, 4), ... (0 = no price). Snapshots hold prices as strings.
    try:
        price = None if price is None else float(price)
    except (TypeError, ValueError):
        price = None
    if price is None or price <= 0:
        return 0
    return int(min(PRICE_BUCKETS - 1, 1 + max(0, math.floor(math.log2(float(price))))))


def _vocab_ids(rows: list[list[str]]) -> tuple[Jagged, int]:
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(token, len(vocab) + 1) for token in row] for row in rows]
    return Jagged.from_lists(ids), len(vocab) + 1


def min_category_items(n_products: int) -> int:
    """How many of the catalog's products must carry a category or tag for it to get an id of its own.

    An id that few products carry learns little more than their item ids already do, and crowds out the
    shared ones in the mean the towers pool: a shop whose paths list every genre of a film ("Movies >
    Drama > Comedy > Romance") makes about a thousand prefixes, most carried by a handful of films. On
    the nested MovieLens validation split, with the demo shop's paths and tags, keeping only ids carried
    by at least 10 films (192 of 1,021) took the pipeline from NDCG@10 0.164 / Recall@100 0.421 to
    0.172-0.176 / 0.426-0.428 (two orders of the ids; at least 30 films: 0.170 / 0.425). Small catalogs
    keep ids carried by a hundredth of them, never a product's alone."""
    return max(2, min(10, n_products // 100))


def _common_only(rows: list[list[str]], owners: list[Any]) -> list[list[str]]:
    """`rows` without the tokens that fewer than min_category_items products (`owners`, one per row: a
    product's attribute versions count once) carry."""
    carried = Counter(token for token, _ in {(t, owner) for row, owner in zip(rows, owners, strict=True) for t in row})
    floor = min_category_items(len(set(owners)))
    return [[token for token in row if carried[token] >= floor] for row in rows]


def item_features(products: list[tuple]) -> ItemFeatures:
    """(pk, title, category_path, brand, price, tags) rows (a product's versions share its pk) ->
    ItemFeatures. Category ids cover every prefix of the path ("Home", "Home > Kitchen") and the tags, so
    related leaves share ids, when enough products carry them (`min_category_items`)."""
    categories = []
    for _, _, path, _, _, tags in products:
        path = path or []
        categories.append([" > ".join(path[: i + 1]) for i in range(len(path))] + [f"#{t}" for t in tags or []])
    category, n_categories = _vocab_ids(_common_only(categories, [p[0] for p in products]))
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


def _version_rows(tenant_id: int) -> list[tuple]:
    """(product pk, valid_from unix s, title, category_path, brand, price, tags) of every attribute version.

    Only the fields the features read are fetched (a snapshot also holds descriptions)."""
    rows = ProductVersion.objects.for_tenant(tenant_id).order_by("product_id", "valid_from", "id").values_list(
        "product_id", "valid_from", "snapshot__title", "snapshot__category_path", "snapshot__brand",
        "snapshot__price", "snapshot__tags",
    )
    return [
        (pk, int(when.timestamp()), _text(title), path, _text(brand), _number(price), tags)
        for pk, when, title, path, brand, price, tags in rows.iterator(chunk_size=20_000)
    ]


def _text(value: Any) -> str | None:
    # SQLite's JSON_EXTRACT hands back a numeric-looking string ("1984") as a number.
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    """Snapshots keep prices as decimal strings (exact); a bad one counts as no price."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def item_features_with_history(
    products: list[tuple], product_pks: np.ndarray, versions: list[tuple]
) -> tuple[ItemFeatures, ItemVersions]:
    """Current features and the version history in one vocabulary (current catalog first).

    A product without recorded versions (created before the history existed) gets its current row as a
    version valid at every moment."""
    version_pks = np.array([v[0] for v in versions], dtype=np.int64)
    missing = np.flatnonzero(~np.isin(product_pks, version_pks))
    rows = [*products, *((pk, *rest) for pk, _, *rest in versions)]
    every = item_features(rows)
    n = len(products)
    current = every.take(np.arange(n))
    # Version rows: the recorded versions, then the "always valid" current rows of products without any.
    version_rows = np.concatenate([n + np.arange(len(versions)), missing]).astype(np.int64)
    item = np.concatenate([np.searchsorted(product_pks, version_pks), missing]).astype(np.int64)
    valid_from = np.concatenate(
        [np.array([v[1] for v in versions], dtype=np.int64), np.full(len(missing), ALWAYS, dtype=np.int64)]
    )
    history = ItemVersions.build(item, valid_from, every.take(version_rows), n)
    return current, history


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


def weighted_events(
    tenant_id: int, *, until: dt.datetime | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer pk, product pk, unix ts, weight) of the tenant's preference events in time order: the
    event-type weight (x the value for ratings); impressions and zero-weight types are dropped. Training
    and serving's online item features read events through this one definition."""
    weights = event_weights(tenant_id)
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
    return (
        np.array(customers, dtype=np.int64),
        np.array(items, dtype=np.int64),
        np.array(ts, dtype=np.int64),
        np.array(weight, dtype=np.float32),
    )


def load_tenant_dataset(tenant_id: int, *, until: dt.datetime | None = None) -> TenantDataset:
    """Everything a training run needs from one tenant (the caller is in the tenant's context)."""
    products = list(
        Product.objects.for_tenant(tenant_id).order_by("id").values_list(
            "id", "title", "category_path", "brand", "price", "tags"
        )
    )
    product_pks = np.array([p[0] for p in products], dtype=np.int64)
    customer_pks = np.fromiter(
        Customer.objects.for_tenant(tenant_id).order_by("id").values_list("id", flat=True), dtype=np.int64
    )
    customers, items, ts, weight = weighted_events(tenant_id, until=until)
    interactions = Interactions(
        customer=np.searchsorted(customer_pks, customers),
        item=np.searchsorted(product_pks, items),
        ts=ts,
        weight=weight,
        n_customers=len(customer_pks),
        n_items=len(product_pks),
    )
    features, item_versions = item_features_with_history(products, product_pks, _version_rows(tenant_id))
    item_init = warm_start_rows(
        shared_item_embeddings(tenant_id, [(title, brand, path) for _, title, path, brand, _, _ in products]),
        released_popularity(tenant_id, product_pks),
    )
    return TenantDataset(interactions, features, product_pks, customer_pks, item_versions, item_init)
