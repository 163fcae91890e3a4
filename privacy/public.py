"""What serving and training may use of privacy: the latest released aggregate of a kind, and for a shop's own
products the shared cold-start model's embeddings and the released cross-shop popularity (with the 7-day
trend of the same month), for a shop that opted in (import-linter keeps them to this module)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from privacy.keys import content_tokens, product_key
from privacy.models import Release, SharedModel
from privacy.optin import settings_for
from privacy.shared_model import embed, from_bytes, token_ids
from recs.models import Product


def _newest(kind: str) -> Release | None:
    return Release.objects.filter(kind=kind).order_by("-released_at", "-pk").first()


def latest_release(tenant_id: int, kind: str) -> dict[str, float]:
    """Key -> released value of the newest release of `kind`; empty unless the shop opted in."""
    if not settings_for(tenant_id).opted_in:
        return {}
    row = _newest(kind)
    return dict(row.values) if row else {}


def shared_item_embeddings(
    tenant_id: int, products: Sequence[tuple[str | None, str | None, Sequence[Any] | None]]
) -> np.ndarray | None:
    """Unit embeddings (len(products) x the model's dim) of (title, brand, category path) products from the
    newest shared cold-start model; None unless the shop opted in and a model exists. Computed from the
    products' content alone, so a product without any event gets one too."""
    if not settings_for(tenant_id).opted_in:
        return None
    row = SharedModel.objects.order_by("-trained_at", "-pk").first()
    if row is None:
        return None
    tokens = [token_ids(content_tokens(title=t or "", brand=b or "", category_path=c), row.n_buckets)
              for t, b, c in products]
    return embed(from_bytes(row.weights), tokens)


def popularity_prior(values: dict[str, float], keys: Sequence[str | None]) -> np.ndarray:
    """Released per-key popularity -> a prior in [0, 1] per product: log(1 + value) over the largest, 0 for a
    key the release does not hold (or a negative noisy value)."""
    raw = np.array([max(values.get(k, 0.0), 0.0) if k else 0.0 for k in keys], dtype=np.float64)
    top = np.log1p(max(values.values(), default=0.0))
    return (np.log1p(raw) / top).astype(np.float32) if top > 0 else np.zeros(len(keys), np.float32)


def released_popularity(tenant_id: int, product_pks: Sequence[int]) -> np.ndarray | None:
    """The newest product_popularity release as a prior in [0, 1] for each of the shop's products (matched by
    normalised key, privacy/keys.py); None unless the shop opted in and a release exists.

    When a product_trend release of the same window exists, the prior is the mean of the two priors: a product
    rising across the shops in the last 7 days moves up, one that sold earlier in the month and no longer does
    moves down. A trend of another window (older or newer than the popularity) is left out: the two describe
    the same month or are not mixed."""
    if not settings_for(tenant_id).opted_in:
        return None
    popularity = _newest("product_popularity")
    if popularity is None or not popularity.values:
        return None
    rows = Product.objects.for_tenant(tenant_id).filter(pk__in=list(product_pks)).values(
        "pk", "title", "brand", "category_path", "attributes")
    key_of = {r["pk"]: product_key(title=r["title"], brand=r["brand"], category_path=r["category_path"],
                                   attributes=r["attributes"]) for r in rows}
    keys = [key_of.get(pk) for pk in product_pks]
    prior = popularity_prior(popularity.values, keys)
    trend = _newest("product_trend")
    if trend is not None and trend.window == popularity.window and trend.values:
        prior = ((prior + popularity_prior(trend.values, keys)) / 2).astype(np.float32)
    return prior
