"""Where a shop's retrieval starts from what the opted-in shops share (privacy.public): plain arrays, no torch,
so the dataset loader that serving also imports (training.datasets) never pulls in the trainers.
`training.trainers.two_tower.warm_start` copies them into the towers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Warm-start rows have this norm: well above the towers' initial MLP outputs (about 0.3), which would otherwise
# scramble the order the shared rows give before the shop's own events have moved anything.
WARM_ROW_NORM = 3.0
# The largest share of a row's direction the popularity prior takes (the most popular product's).
PRIOR_SHARE = 0.9


@dataclass(frozen=True)
class WarmStart:
    """The start of a shop's retrieval from what the opted-in shops share (`warm_start_rows`)."""

    rows: np.ndarray  # n_items x k (k at most the towers' dim): each product's id and history rows
    customer_default: np.ndarray  # k: where a customer without any history points at first


def warm_start_rows(embeddings: np.ndarray | None, popularity: np.ndarray | None) -> WarmStart | None:
    """The warm start from the shared content embeddings (unit rows) and the released cross-shop popularity (in
    [0, 1]) of each catalog product: rows WARM_ROW_NORM x [sqrt(1 - p^2) x embedding, p] with p = PRIOR_SHARE x
    popularity. The towers compare directions (cosine), so popularity is an angle toward one shared axis, and a
    customer without history starts on that axis: the other shops' popular products first. A customer's
    history pool leans toward it too (most products taken are popular ones): among products alike, the
    popular come first until the shop's own events say otherwise. Without popularity, a new customer starts at
    the embeddings' mean. None when neither is there."""
    if embeddings is None and popularity is None:
        return None
    if popularity is None:
        rows = WARM_ROW_NORM * np.asarray(embeddings, dtype=np.float64)
        centre = rows.mean(axis=0)
        return WarmStart(rows.astype(np.float32),
                         (WARM_ROW_NORM * centre / max(np.linalg.norm(centre), 1e-12)).astype(np.float32))
    p = PRIOR_SHARE * np.asarray(popularity, dtype=np.float64)[:, None]
    rows = p if embeddings is None else np.hstack([np.sqrt(1 - p**2) * embeddings, p])
    axis = np.zeros(rows.shape[1], dtype=np.float32)
    axis[-1] = WARM_ROW_NORM
    return WarmStart((WARM_ROW_NORM * rows).astype(np.float32), axis)
