"""What serving and training may use of privacy: the latest released aggregate of a kind, and the shared
cold-start model's embeddings of a shop's own products, for a shop that opted in (import-linter keeps them
to this module)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from privacy.keys import content_tokens
from privacy.models import Release, SharedModel
from privacy.optin import settings_for
from privacy.shared_model import embed, from_bytes, token_ids


def latest_release(tenant_id: int, kind: str) -> dict[str, float]:
    """Key -> released value of the newest release of `kind`; empty unless the shop opted in."""
    if not settings_for(tenant_id).opted_in:
        return {}
    row = Release.objects.filter(kind=kind).order_by("-released_at", "-pk").first()
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
