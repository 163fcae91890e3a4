"""One recommendation request: customer embedding -> FAISS candidates -> masks -> order -> answer.

Ranking: the DLRM ranker's inference path (`candidate_inputs` / `predict_ranker`) is in
`training.inference`, importable by serving; what it still lacks here is an online source for its
point-in-time features (item popularity windows, the customer's history) that does not rebuild a
FeatureContext over all of a tenant's events per request. Until then candidates are ordered by their
retrieval score (cosine of the two-tower embeddings); `score` and `retrieval_score` are then equal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import BooleanField, Count, ExpressionWrapper, Max, Q

from recs.ingest.event_types import event_weights
from recs.models import Event, Product
from serving import index as item_index
from serving.registry_cache import ServedModel, served_model
from training.data import make_history

POPULAR_WINDOW_DAYS = 30
# Retrieval goes deeper (x4 per round) while filters leave fewer than k items, up to this many candidates;
# what is still missing then comes from popular items that pass the same filters.
MAX_CANDIDATES = 10_000
PURCHASE = "purchase"


class Reason:
    PERSONALIZED = "personalized"
    SIMILAR = "similar_items"
    POPULAR = "popular"
    NO_ACTIVE_MODEL = "no_active_model"
    UNKNOWN_CUSTOMER = "unknown_customer"
    PRODUCT_NOT_IN_MODEL = "product_not_in_model"


@dataclass(frozen=True)
class ScoredItem:
    product_pk: int
    external_id: str
    title: str
    score: float
    retrieval_score: float | None = None


@dataclass
class Recommendation:
    items: list[ScoredItem]
    model_version: int | None
    reason: str
    candidates: int = 0  # how deep retrieval went (0: no retrieval)


def _in_stock() -> ExpressionWrapper:
    """Sellable now, from the current product row (not the trained catalog)."""
    return ExpressionWrapper(
        Q(available=True, deleted=False) & (Q(stock__isnull=True) | Q(stock__gt=0)), output_field=BooleanField()
    )


def purchased_products(tenant_id: int, customer_pk: int | None) -> np.ndarray:
    if customer_pk is None:
        return np.zeros(0, dtype=np.int64)
    pks = (
        Event.objects.for_tenant(tenant_id)
        .filter(customer_id=customer_pk, event_type=PURCHASE)
        .values_list("product_id", flat=True)
        .distinct()
    )
    return np.fromiter(pks, dtype=np.int64)


def recent_history(
    tenant_id: int, customer_pk: int | None, session_id: str | None, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(product pks, event weights), oldest first: the customer's latest events (newest first through
    the (tenant, customer, -ts) index) plus those of the current session, weighted as in training."""
    events = Event.objects.for_tenant(tenant_id)
    fields = ("id", "ts", "product_id", "event_type", "value")
    # Impressions and other zero-weight types are dropped below: read a few more than `limit`.
    wanted = []
    if customer_pk is not None:
        wanted.append(events.filter(customer_id=customer_pk))
    if session_id:  # an anonymous visitor's session, or a known customer's pre-login one
        wanted.append(events.filter(session_id=session_id))
    rows = {r[0]: r for qs in wanted for r in qs.order_by("-ts").values_list(*fields)[: 2 * limit]}
    weights = event_weights(tenant_id)
    products, kept = [], []
    for _, _, product, kind, value in sorted(rows.values(), key=lambda r: (r[1], r[0])):
        w = weights.get(kind, 0.0) * ((value or 0.0) if kind == "rating" else 1.0)
        if w > 0:
            products.append(product)
            kept.append(w)
    return np.array(products[-limit:], dtype=np.int64), np.array(kept[-limit:], dtype=np.float32)


def _filter_candidates(
    tenant_id: int, pks: np.ndarray, scores: np.ndarray, excluded: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[str, str]]]:
    """Keep candidates that are in stock now and not excluded; pks/scores stay in retrieval order."""
    rows = list(
        Product.objects.for_tenant(tenant_id)
        .filter(pk__in=pks.tolist())
        .annotate(sellable=_in_stock())
        .values_list("id", "sellable", "external_id", "title")
    )
    if not rows:
        return pks[:0], scores[:0], {}
    found = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sellable = np.fromiter((r[1] for r in rows), dtype=bool, count=len(rows))
    order = np.argsort(found)
    found, sellable = found[order], sellable[order]
    pos = np.clip(np.searchsorted(found, pks), 0, len(found) - 1)
    mask = (found[pos] == pks) & sellable[pos] & ~np.isin(pks, excluded)
    meta = {r[0]: (r[2], r[3]) for r in rows}
    return pks[mask], scores[mask], meta


def _retrieve(
    tenant_id: int, model: ServedModel, query: np.ndarray, k: int, excluded: np.ndarray
) -> tuple[list[ScoredItem], int]:
    """Top-k sellable, non-excluded items for one query vector, retrieving deeper while filters bite."""
    n = min(model.n_items, max(model.num_candidates, 4 * k + len(excluded)))
    while True:
        scores, ids = item_index.search(model.index, query[None, :], n)
        hit = ids[0] >= 0
        pks = model.product_pks[ids[0][hit]]
        kept_pks, kept_scores, meta = _filter_candidates(tenant_id, pks, scores[0][hit], excluded)
        if len(kept_pks) >= k or n >= min(model.n_items, MAX_CANDIDATES):
            break
        n = min(model.n_items, MAX_CANDIDATES, n * 4)
    # Ranking by retrieval score (see the module doc): FAISS already returns them in that order.
    items = [
        ScoredItem(int(pk), *meta[int(pk)], score=float(s), retrieval_score=float(s))
        for pk, s in zip(kept_pks[:k], kept_scores[:k], strict=True)
    ]
    return items, n


def _fill(tenant_id: int, items: list[ScoredItem], k: int, excluded: np.ndarray) -> list[ScoredItem]:
    if len(items) >= k:
        return items
    taken = np.array([i.product_pk for i in items], dtype=np.int64)
    return items + popular_items(tenant_id, k - len(items), exclude=np.concatenate([excluded, taken]))


def recommend(
    tenant_id: int,
    customer_pk: int | None,
    *,
    session_id: str | None = None,
    k: int = 10,
    exclude: Collection[int] = (),
) -> Recommendation:
    """Top-k products for a customer (None: unknown; then the session's events alone personalise)."""
    excluded = np.concatenate([np.asarray(list(exclude), dtype=np.int64), purchased_products(tenant_id, customer_pk)])
    model = served_model(tenant_id)
    if model is None:
        return Recommendation(popular_items(tenant_id, k, exclude=excluded), None, Reason.NO_ACTIVE_MODEL)
    retrieval = model.retrieval
    history_pks, weights = recent_history(tenant_id, customer_pk, session_id, retrieval.history_len)
    items = model.item_indices(history_pks)
    known = items >= 0  # products newer than the model carry no embedding yet
    items, weights = items[known], weights[known]
    customer = model.customer_index(customer_pk)
    if customer < 0 and len(items) == 0:
        return Recommendation(
            popular_items(tenant_id, k, exclude=excluded), model.version_id, Reason.UNKNOWN_CUSTOMER
        )
    history = make_history([items.tolist()], [weights.tolist()], max_len=retrieval.history_len,
                           recency_decay=retrieval.recency_decay)
    query = retrieval.embed_customers(np.array([customer], dtype=np.int64), history)[0]
    found, n = _retrieve(tenant_id, model, query, k, excluded)
    return Recommendation(_fill(tenant_id, found, k, excluded), model.version_id, Reason.PERSONALIZED, n)


def similar_items(tenant_id: int, product_pk: int, *, k: int = 10, exclude: Collection[int] = ()) -> Recommendation:
    """Item-to-item: nearest items of the product's embedding, never the product itself."""
    excluded = np.asarray([product_pk, *exclude], dtype=np.int64)
    model = served_model(tenant_id)
    if model is None:
        return Recommendation(popular_items(tenant_id, k, exclude=excluded), None, Reason.NO_ACTIVE_MODEL)
    item = int(model.item_indices(np.array([product_pk]))[0])
    if item < 0:
        return Recommendation(
            popular_items(tenant_id, k, exclude=excluded), model.version_id, Reason.PRODUCT_NOT_IN_MODEL
        )
    query = np.ascontiguousarray(model.retrieval.item_embeddings[item], dtype=np.float32)
    found, n = _retrieve(tenant_id, model, query, k, excluded)
    return Recommendation(_fill(tenant_id, found, k, excluded), model.version_id, Reason.SIMILAR, n)


def popular_items(
    tenant_id: int,
    k: int,
    *,
    window_days: int = POPULAR_WINDOW_DAYS,
    category: str | None = None,
    exclude: Collection[int] | np.ndarray = (),
) -> list[ScoredItem]:
    """The most interacted-with sellable products over the trailing window, score = share of the top one.

    The window ends at the tenant's newest event rather than now, so a shop whose feed paused (or a
    historical demo data set) still has a meaningful "recent"."""
    events = Event.objects.for_tenant(tenant_id)
    latest = events.aggregate(latest=Max("ts"))["latest"]
    if latest is None or k <= 0:
        return []
    positive = [name for name, weight in event_weights(tenant_id).items() if weight > 0]
    qs = events.filter(ts__gt=latest - dt.timedelta(days=window_days), event_type__in=positive).filter(
        Q(product__stock__isnull=True) | Q(product__stock__gt=0), product__available=True, product__deleted=False
    )
    excluded = [int(pk) for pk in np.asarray(exclude, dtype=np.int64)]
    if excluded:
        qs = qs.exclude(product_id__in=excluded)
    if category:
        if connection.vendor == "postgresql":
            qs = qs.filter(product__category_path__contains=[category])
        else:  # SQLite has no JSON containment: match the quoted element in the stored text
            qs = qs.filter(product__category_path__icontains=json.dumps(category))
    rows = list(
        qs.values("product_id", "product__external_id", "product__title")
        .annotate(n=Count("id"))
        .order_by("-n", "product_id")[:k]
    )
    top = max((r["n"] for r in rows), default=1)
    return [
        ScoredItem(r["product_id"], r["product__external_id"], r["product__title"], score=round(r["n"] / top, 6))
        for r in rows
    ]
