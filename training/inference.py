"""Inference with trained models: retrieval, point-in-time ranker inputs, ranker scores.

Serving imports this module (never the trainers); the trainers and the offline evaluation use the same
functions, so what is evaluated is what is served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.artifacts import TrainedRanker, TrainedRetrieval
from training.data import CustomerFeatures, HistoryIndex, Interactions, ItemFeatures
from training.evaluation import SeenIndex, topk_from_scores
from training.features import FeatureContext, RankerInputs, ranker_kjt, ranker_kjt_at
from training.item_versions import ItemVersions


@dataclass
class TrainedPipeline:
    retrieval: TrainedRetrieval
    ranker: TrainedRanker
    num_candidates: int
    metrics: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        self.retrieval.save(path / "retrieval")
        self.ranker.save(path / "ranker")
        (path / "manifest.json").write_text(
            json.dumps(
                {"kind": "pipeline", "num_candidates": self.num_candidates, "metrics": self.metrics},
                indent=2,
                sort_keys=True,
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> TrainedPipeline:
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        return cls(
            retrieval=TrainedRetrieval.load(path / "retrieval"),
            ranker=TrainedRanker.load(path / "ranker"),
            num_candidates=int(manifest["num_candidates"]),
            metrics=manifest.get("metrics", {}),
        )


def retrieve(
    retrieval: TrainedRetrieval,
    events: Interactions,
    customers: np.ndarray,
    k: int,
    *,
    exclude_seen: bool = True,
    customer_features: CustomerFeatures | None = None,
    history: HistoryIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (items, scores) per customer from their latest events in `events` (exact search;
    serving does the same with FAISS). `history` may pass a prebuilt index of `events`."""
    item_emb = torch.from_numpy(retrieval.item_embeddings)
    index = history or HistoryIndex(events)

    def score(part: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(retrieval.embed_known_customers(index, part, customer_features)) @ item_emb.T

    exclude = SeenIndex(events) if exclude_seen else None
    return topk_from_scores(score, customers, k, exclude=exclude, n_items=retrieval.config.n_items)


def query_times(events: Interactions, customers: np.ndarray) -> np.ndarray:
    """The moment a customer's next recommendation is made, as the protocol sees it: just after
    their last known event (never a timestamp from the events being predicted). Customers
    without events get the moment after the newest event overall."""
    now = int(events.ts.max()) + 1 if len(events) else 0
    last = np.full(events.n_customers, now - 1, dtype=np.int64)
    if len(events):
        has = np.bincount(events.customer, minlength=events.n_customers) > 0
        last[has] = np.iinfo(np.int64).min
        np.maximum.at(last, events.customer, events.ts)
    return last[np.asarray(customers, dtype=np.int64)] + 1


def candidate_inputs(
    retrieval: TrainedRetrieval,
    ctx: FeatureContext,
    customers: np.ndarray,
    num_candidates: int,
    customer_features: CustomerFeatures | None = None,
    at: int | None = None,
) -> RankerInputs:
    """The ranker's inputs for each customer's top retrieval candidates, asked at `at` (unix seconds; None: the
    protocol's query time, just after each customer's own last event)."""
    cand, scores = retrieve(
        retrieval, ctx.events, customers, num_candidates, customer_features=customer_features, history=ctx.hist
    )
    at_ts = query_times(ctx.events, customers) if at is None else np.full(len(customers), at, dtype=np.int64)
    return ctx.ranker_inputs(customers, at_ts, cand, scores, retrieval.recency_decay)


@torch.no_grad()
def predict_ranker(
    ranker: TrainedRanker,
    inputs: RankerInputs,
    items: ItemFeatures,
    batch_size: int = 16384,
    item_versions: ItemVersions | None = None,
) -> np.ndarray:
    """Probabilities, shape (Q, K) like inputs.candidates. With `item_versions` (offline evaluation at past
    query times) the candidates' attributes are those as of each query's time, as in training."""
    model = ranker.model()
    out = []
    for lo in range(0, inputs.n_examples, batch_size):
        rows = np.arange(lo, min(lo + batch_size, inputs.n_examples))
        q, item, dense = inputs.take(rows)
        if item_versions is None:
            kjt = ranker_kjt(items, item, inputs.history.take(q), keys=ranker.config.sparse_features)
        else:
            kjt = ranker_kjt_at(item_versions, item, inputs.at_ts[q], inputs.history.take(q),
                                keys=ranker.config.sparse_features)
        out.append(model.predict_proba(torch.from_numpy(dense), kjt).numpy())
    probs = np.concatenate(out) if out else np.zeros(0, np.float32)
    return probs.reshape(inputs.candidates.shape)


def recommend(
    pipeline: TrainedPipeline,
    events: Interactions,
    items: ItemFeatures,
    customers: np.ndarray,
    *,
    k: int = 100,
    customer_features: CustomerFeatures | None = None,
    context: FeatureContext | None = None,
    item_versions: ItemVersions | None = None,
    at: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (items, probabilities) per customer as of just after their last event in `events`, or as of `at`
    (unix seconds) for every customer, as serving asks at the request's moment.

    `context` can be passed in to reuse the point-in-time indexes across calls (build it with the same
    `item_versions`: its dense taste features read the attributes it was built with).
    """
    retrieval = pipeline.retrieval
    ctx = context or FeatureContext(events, items, retrieval.item_embeddings, retrieval.history_len, item_versions)
    inputs = candidate_inputs(
        retrieval, ctx, np.asarray(customers, dtype=np.int64), pipeline.num_candidates, customer_features, at
    )
    probs = predict_ranker(pipeline.ranker, inputs, items, item_versions=item_versions)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(inputs.candidates, order, 1), np.take_along_axis(probs, order, 1)
