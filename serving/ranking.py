"""Scoring stage of the funnel: the active DLRM ranker over the filtered candidates, in one forward pass.

The dense features are training's own definitions (training/features.py) fed from the online feature
source (serving/online_features.py): the item side from the version's memory-mapped item snapshot, the
customer side from one indexed aggregate over the customer's events, the taste side from the history
the funnel embedded the customer with. Sparse features come from the catalog the version was trained
with. tests/serving/test_ranking.py checks that this gives the same dense features as training's
FeatureContext for the same moment.

When the ranker cannot run, the retrieval scores come back unchanged (the funnel's order is then the
retrieval order, as before the ranker was served), with the reason in `Scores.source` and in the log:
* `retrieval:no_item_features` — the version was trained before the catalog was saved with it
  (retrain to serve the ranker);
* `retrieval:no_feature_snapshot` — no item snapshot yet (a build has been queued; every trained
  version ships one, so this only happens if it was deleted or failed to load).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from serving import online_features
from serving.bags import Bags
from serving.forward import ranker_forward
from serving.registry_cache import ServedModel
from training.registry.load import (
    CatalogFeatures,
    History,
    ItemSnapshot,
    customer_columns,
    dense_matrix,
    make_history,
    query_columns,
    ranker_parts,
)

log = logging.getLogger(__name__)


class ScoreSource:
    RANKER = "ranker"
    NO_ITEM_FEATURES = "retrieval:no_item_features"
    NO_SNAPSHOT = "retrieval:no_feature_snapshot"


@dataclass(frozen=True)
class Scores:
    scores: np.ndarray  # float32, one per candidate
    source: str  # ScoreSource
    snapshot_as_of: int | None = None  # the moment of the item features used (unix seconds)
    snapshot_age_seconds: float | None = None  # how long ago that snapshot was built


class Ranker(Protocol):
    """What the funnel scores its candidates with: `score`, or what a caller passes in its place."""

    def __call__(
        self, tenant_id: int, model: ServedModel, customer_pk: int | None, history_items: np.ndarray,
        history_weights: np.ndarray, candidate_items: np.ndarray, retrieval_scores: np.ndarray, *,
        activity: list[tuple] | None = None, cut: History | None = None,
    ) -> Scores: ...


_warned: set[tuple[int, int, str]] = set()


def _fallback(tenant_id: int, model: ServedModel, retrieval_scores: np.ndarray, source: str) -> Scores:
    if (tenant_id, model.version_id, source) not in _warned:
        _warned.add((tenant_id, model.version_id, source))
        log.warning("tenant %s version %s: candidates in retrieval order (%s)", tenant_id, model.version_id, source)
    return Scores(np.asarray(retrieval_scores, dtype=np.float32).copy(), source)


def online_dense(
    model: ServedModel,
    catalog: CatalogFeatures,
    snapshot: ItemSnapshot,
    customer: tuple[int, float],
    history: History,
    candidate_items: np.ndarray,
    retrieval_scores: np.ndarray,
) -> np.ndarray:
    """The ranker's dense input (K x F, float32) for one customer: what FeatureContext.ranker_inputs
    computes offline, from the online sources."""
    k = len(candidate_items)
    cols = query_columns(np.asarray(retrieval_scores).reshape(1, k))
    cols.update(snapshot.item_columns(candidate_items))
    n, weight_sum = customer
    custom = customer_columns(np.array([n]), np.array([weight_sum]), snapshot.global_mean_weight)
    cols.update({name: np.repeat(v, k) for name, v in custom.items()})
    cols.update(catalog.taste(history, candidate_items.reshape(1, k)))
    return dense_matrix(cols, model.ranker.config.dense_features)


def online_inputs(
    tenant_id: int,
    model: ServedModel,
    state: online_features.OnlineFeatures,
    customer_pk: int | None,
    history_items: np.ndarray,
    history_weights: np.ndarray,
    candidate_items: np.ndarray,
    retrieval_scores: np.ndarray,
    *,
    before: dt.datetime | None = None,
    activity: list[tuple] | None = None,
    cut: History | None = None,
) -> tuple[np.ndarray, History]:
    """(dense K x F, the cut history) of one request; `state` must have its catalog and snapshot.
    `activity`: the customer's per-type counts already read (serving.customer_state; not with `before`).
    `cut`: customer_history(model, history_items, history_weights) when the caller has made it."""
    assert state.catalog is not None and state.snapshot is not None
    history = cut if cut is not None else customer_history(model, history_items, history_weights)
    if activity is not None and before is None:
        customer = online_features.activity_totals(tenant_id, activity)
    else:
        customer = online_features.customer_activity(tenant_id, customer_pk, before=before)
    dense = online_dense(model, state.catalog, state.snapshot, customer, history,
                         np.asarray(candidate_items, dtype=np.int64), retrieval_scores)
    return dense, history


def customer_history(model: ServedModel, history_items: np.ndarray, history_weights: np.ndarray) -> History:
    """The funnel's history (item indices and event weights, oldest first), cut and weighted as training
    cuts it (the retrieval model's history length and recency decay)."""
    items = np.asarray(history_items, dtype=np.int64)
    weights = np.asarray(history_weights, dtype=np.float32)
    if len(items) != len(weights):
        raise ValueError("history_items and history_weights differ in length")
    known = (items >= 0) & (items < model.n_items)
    retrieval = model.retrieval
    return make_history([items[known]], [weights[known]], max_len=retrieval.history_len,
                        recency_decay=retrieval.recency_decay)


def score(
    tenant_id: int,
    model: ServedModel,
    customer_pk: int | None,
    history_items: np.ndarray,
    history_weights: np.ndarray,
    candidate_items: np.ndarray,
    retrieval_scores: np.ndarray,
    *,
    before: dt.datetime | None = None,
    activity: list[tuple] | None = None,
    cut: History | None = None,
) -> Scores:
    """`score_candidates` with where the scores came from (see the module doc). `before` bounds the
    customer's events (tests compare with training at one moment; serving counts them all); `activity`:
    the customer's per-type event counts when the caller has read them (serving.customer_state); `cut`:
    the history as customer_history cuts it, when the caller has made it (the funnel, for the embedding)."""
    candidates = np.asarray(candidate_items, dtype=np.int64)
    if len(candidates) != len(retrieval_scores):
        raise ValueError("candidate_items and retrieval_scores differ in length")
    if len(candidates) and (candidates.min() < 0 or candidates.max() >= model.n_items):
        raise ValueError("candidate item index outside the model's catalog")
    state = online_features.online_features(tenant_id, model)
    if state.items is None or state.catalog is None:
        return _fallback(tenant_id, model, retrieval_scores, ScoreSource.NO_ITEM_FEATURES)
    snapshot = state.snapshot
    if snapshot is None:
        return _fallback(tenant_id, model, retrieval_scores, ScoreSource.NO_SNAPSHOT)
    if len(candidates) == 0:
        return Scores(np.zeros(0, np.float32), ScoreSource.RANKER, snapshot.as_of, state.age_seconds())
    dense, history = online_inputs(
        tenant_id, model, state, customer_pk, history_items, history_weights, candidates, retrieval_scores,
        before=before, activity=activity, cut=cut,
    )
    ranker = model.ranker
    keys = ranker.config.sparse_features
    # The history is one bag shared by every candidate (pooled once: serving/forward.py).
    bags = dict(zip(keys, map(Bags.of, ranker_parts(state.items, candidates, history.items, keys)), strict=True))
    module = ranker.model()
    probs = module.probabilities(torch.from_numpy(ranker_forward(module)(dense, bags)))
    return Scores(probs.numpy().astype(np.float32), ScoreSource.RANKER, snapshot.as_of, state.age_seconds())


def score_candidates(
    tenant_id: int,
    model: ServedModel,
    customer_pk: int | None,
    history_items: np.ndarray,
    history_weights: np.ndarray,
    candidate_items: np.ndarray,
    retrieval_scores: np.ndarray,
) -> np.ndarray:
    """Ranker probability per candidate (float32, same length as `candidate_items`).

    `history_items`/`history_weights`: the customer's recent interactions as the model's item indices,
    oldest first (what the funnel embedded the customer with); `candidate_items`: item indices of the
    candidates in retrieval order; `retrieval_scores`: their retrieval scores. Falls back to the
    retrieval scores (see the module doc; `score` says which it was).
    """
    return score(
        tenant_id, model, customer_pk, history_items, history_weights, candidate_items, retrieval_scores
    ).scores
