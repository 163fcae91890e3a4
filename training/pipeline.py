"""The served pipeline end to end: two-tower retrieval -> DLRM re-scoring of the top candidates."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.artifacts import TrainedRanker, TrainedRetrieval
from training.data import CustomerFeatures, Interactions, ItemFeatures, validation_split
from training.features import FeatureContext
from training.trainers.common import ProgressFn
from training.trainers.ranker import candidate_inputs, predict_ranker, train_ranker
from training.trainers.two_tower import train_two_tower

# Tuned on the MovieLens validation split (nested: never on test); see training/cli_eval.py.
DEFAULT_RETRIEVAL: dict[str, Any] = {
    "dim": 64,
    "epochs": 5,
    "batch_size": 1024,
    "lr": 3e-3,
    "temperature": 0.1,
    "history_len": 50,
    "recency_decay": 0.9,
}
# Without item-id / history embeddings: on ~100k events they overfitted within one epoch and
# lost to the attribute-only ranker on every seed tried; large tenants can switch them on.
DEFAULT_RANKER: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 512,
    "lr": 1e-3,
    "sparse_features": ("category", "brand", "price_bucket"),
}


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


def train_pipeline(
    train: Interactions,
    items: ItemFeatures,
    *,
    customer_features: CustomerFeatures | None = None,
    retrieval_params: dict[str, Any] | None = None,
    ranker_params: dict[str, Any] | None = None,
    num_candidates: int = 200,
    validation_fraction: float = 0.2,
    refit_retrieval: bool = True,
    device: Any = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> TrainedPipeline:
    """Train retrieval on the first part of every customer's history, the ranker on what those
    customers did next (stacking, no leakage), then (optionally) refit retrieval on everything.

    Why stacking: a ranker trained on examples the retrieval model has already fitted would learn
    to trust in-sample retrieval scores that are far better than anything it sees when serving.
    Why the refit: the newest events matter most on a temporal split; on the nested MovieLens
    validation the refit retrieval + the same ranker scored NDCG@10 0.165 against 0.153 without
    (mean of three ranker seeds). All three trainings (retrieval twice, ranker once) take about
    30 s on MovieLens on one CPU thread.
    """
    started = time.perf_counter()
    r_params = {**DEFAULT_RETRIEVAL, **(retrieval_params or {})}
    k_params = {**DEFAULT_RANKER, **(ranker_params or {})}
    inner, future = validation_split(train, validation_fraction)
    common = {"device": device, "seed": seed, "progress": progress, "customer_features": customer_features}
    stage_retrieval = train_two_tower(inner, items, **r_params, **common)
    ranker = train_ranker(inner, future, items, stage_retrieval, num_candidates=num_candidates, **k_params, **common)
    retrieval = train_two_tower(train, items, **r_params, **common) if refit_retrieval else stage_retrieval
    return TrainedPipeline(
        retrieval=retrieval,
        ranker=ranker,
        num_candidates=num_candidates,
        metrics={"train_seconds": round(time.perf_counter() - started, 3), "refit_retrieval": refit_retrieval},
    )


def recommend(
    pipeline: TrainedPipeline,
    events: Interactions,
    items: ItemFeatures,
    customers: np.ndarray,
    *,
    k: int = 100,
    customer_features: CustomerFeatures | None = None,
    context: FeatureContext | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (items, probabilities) per customer as of just after their last event in `events`.

    `context` can be passed in to reuse the point-in-time indexes across calls.
    """
    retrieval = pipeline.retrieval
    ctx = context or FeatureContext(events, items, retrieval.item_embeddings, retrieval.history_len)
    inputs = candidate_inputs(
        retrieval, ctx, np.asarray(customers, dtype=np.int64), pipeline.num_candidates, customer_features
    )
    probs = predict_ranker(pipeline.ranker, inputs, items)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(inputs.candidates, order, 1), np.take_along_axis(probs, order, 1)
