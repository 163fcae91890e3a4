"""Ordering stage of the funnel: promotions, boosts and buries, the diversity cap and a re-ranker hook.

Order of operations, per segment of candidates (model-scored ones, then popular fallback ones):
1. boosts: score x factor for every boost whose predicate matches (factors multiply; < 1 buries);
2. promotions: a promoted product whose *ranking* score (before boosts) reaches the promotion's
   threshold gets score 1.0 (the promotion has the last word over boosts on that product);
3. sort by the final score (ties keep the incoming order, i.e. ranker then retrieval order).
The segments are then concatenated (model items always before popular fallback items), the diversity
cap drops items beyond `max_per_category` of one category (the most specific one, the last element of
category_path; products without a category are not capped), and finally the request's re-ranker, if it has
one (a bandit variant's, serving/bandit.py), may reorder the head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from serving.catalog import CandidateTable
from serving.rules import CompiledBoost, CompiledPromotion

log = logging.getLogger(__name__)


@dataclass
class Adjusted:
    """Final scores of a segment and what touched each row (masks aligned with the segment)."""

    scores: np.ndarray  # float64 final scores
    order: np.ndarray  # row indices, best first
    boosts: list[tuple[CompiledBoost, np.ndarray]]  # (boost, rows it matched)
    promotions: list[tuple[CompiledPromotion, np.ndarray, np.ndarray]]  # (promotion, matched, lifted)


def apply_boosts(scores: np.ndarray, boosts: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """score x factor on the rows each (factor, mask) selects."""
    out = np.asarray(scores, dtype=np.float64).copy()
    for factor, mask in boosts:
        out[mask] *= factor
    return out


def apply_promotions(
    scores: np.ndarray, ranking_scores: np.ndarray, promotions: Sequence[tuple[float, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Score 1.0 where a (threshold, mask) promotion selects the row and its ranking score reaches the
    threshold; below it the row is untouched. Returns (scores, lifted mask)."""
    out = np.asarray(scores, dtype=np.float64).copy()
    lifted = np.zeros(len(out), dtype=bool)
    for threshold, mask in promotions:
        lifted |= mask & (np.asarray(ranking_scores) >= threshold)
    out[lifted] = 1.0
    return out, lifted


def adjust(
    table: CandidateTable, rows: np.ndarray, ranking_scores: np.ndarray,
    boosts: Sequence[CompiledBoost], promotions: Sequence[CompiledPromotion],
) -> Adjusted:
    """Boosts, then promotions, over `rows` of `table` (ranking_scores aligned with rows); sorted."""
    boost_masks = [(b, b.selects(table)[rows]) for b in boosts]
    scores = apply_boosts(ranking_scores, [(b.factor, m) for b, m in boost_masks])
    touched = []
    for p in promotions:
        matched = p.selects(table)[rows]
        touched.append((p, matched, matched & (np.asarray(ranking_scores) >= p.threshold)))
    scores, _ = apply_promotions(scores, ranking_scores, [(p.threshold, m) for p, m, _ in touched])
    order = np.argsort(-scores, kind="stable")
    return Adjusted(scores, order, boost_masks, touched)


def diversity_keep(categories: np.ndarray, cap: int | None) -> np.ndarray:
    """For items in their final order, True for those within the first `cap` of their category
    ("" = no category, never capped). Vectorised: rank of each item inside its category."""
    n = len(categories)
    if cap is None or n == 0:
        return np.ones(n, dtype=bool)
    _, codes = np.unique(categories, return_inverse=True)
    by_code = np.argsort(codes, kind="stable")  # grouped by category, order kept inside each group
    sorted_codes = codes[by_code]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_code] = np.arange(n) - group_start
    return (rank < cap) | (np.asarray(categories) == "")


def capped_count(categories: np.ndarray, cap: int | None) -> int:
    """How many items survive the cap whatever their order (min(count, cap) per category)."""
    if cap is None:
        return len(categories)
    named = categories[categories != ""]
    _, counts = np.unique(named, return_counts=True)
    return int(np.minimum(counts, cap).sum()) + int(len(categories) - len(named))


# --- re-ranker (serving/bandit.py's Thompson sampling is the one serving passes) -------------------------


@runtime_checkable
class Reranker(Protocol):
    """Reorders the head of an answer. `items` are the funnel's ScoredItems, best first; return a
    permutation of range(len(items)) (an invalid answer, or an exception, leaves the order as it was)."""

    name: str

    def rerank(self, tenant_id: int, items: Sequence[Any], context: dict[str, Any]) -> Sequence[int]: ...


def rerank_head(tenant_id: int, items: list[Any], context: dict[str, Any],
                reranker: Reranker | None = None) -> tuple[list[Any], str | None]:
    """Apply the request's re-ranker (a bandit variant's, else none) to `items`; returns (items, its name or
    None). A failing re-ranker costs the answer nothing but its reordering."""
    if reranker is None or len(items) < 2:
        return items, None
    try:
        order = [int(i) for i in reranker.rerank(tenant_id, list(items), context)]
    except Exception:
        log.exception("re-ranker %r failed for tenant %s; keeping the order", getattr(reranker, "name", "?"),
                      tenant_id)
        return items, None
    if sorted(order) != list(range(len(items))):
        log.warning("re-ranker %r returned no permutation; keeping the order", getattr(reranker, "name", "?"))
        return items, None
    return [items[i] for i in order], getattr(reranker, "name", type(reranker).__name__)
