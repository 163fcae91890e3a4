"""Trainer for the DLRM ranker (TorchRec dlrm.py style, one process).

Examples are stacked, so nothing leaks: the retrieval model is trained on `history` only; for
each customer with later events (`future`), the retrieval model's top-K unseen candidates as of
the end of their history become examples, labelled 1 if the customer interacted with the
candidate in `future` and 0 otherwise (hard negatives: things the retrieval model liked but the
customer did not take). Features are computed from `history` events strictly before that time, and
(given `item_versions`) the attributes of the candidate and of the history items (sparse features and the
dense taste features) are the versions valid at that time.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from training.artifacts import TrainedRanker, TrainedRetrieval
from training.data import CustomerFeatures, Interactions, ItemFeatures
from training.evaluation import SeenIndex, classification_metrics
from training.features import DENSE_FEATURES, FeatureContext, RankerInputs, ranker_kjt, ranker_kjt_at
from training.inference import candidate_inputs
from training.item_versions import ItemVersions
from training.models.ranker import Ranker, RankerConfig
from training.trainers.common import (
    Progress,
    ProgressFn,
    batches,
    full_state,
    pick_device,
    seed_everything,
    uses_torch_threads,
    wrap_for_training,
)


def sparse_inputs(
    inputs: RankerInputs,
    rows: np.ndarray,
    items: ItemFeatures,
    item_versions: ItemVersions | None,
    keys: tuple[str, ...],
    device: torch.device | None = None,
):
    """The ranker's sparse input for flat example rows: the candidate's attributes as of the example's
    time when the catalog's version history is given, else the catalog's current attributes."""
    q, item, _ = inputs.take(rows)
    history = inputs.history.take(q)
    if item_versions is None:
        return ranker_kjt(items, item, history, device, keys=keys)
    return ranker_kjt_at(item_versions, item, inputs.at_ts[q], history, device, keys=keys)


def _labels(inputs: RankerInputs, future: Interactions) -> np.ndarray:
    truth = SeenIndex(future)
    return truth.contains(inputs.customers[:, None], inputs.candidates).reshape(-1).astype(np.float32)


@uses_torch_threads
def train_ranker(
    history: Interactions,
    future: Interactions,
    items: ItemFeatures,
    retrieval: TrainedRetrieval,
    *,
    customer_features: CustomerFeatures | None = None,
    item_versions: ItemVersions | None = None,
    num_candidates: int = 200,
    embedding_dim: int = 16,
    dense_layers: tuple[int, ...] = (64,),
    over_layers: tuple[int, ...] = (64, 32),
    arch: str = "dlrm",
    sparse_features: tuple[str, ...] = ("category", "brand", "price_bucket"),
    epochs: int = 3,
    batch_size: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    holdout_fraction: float = 0.1,
    device: torch.device | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    num_threads: int | None = 1,
) -> TrainedRanker:
    """Train the DLRM on stacked examples (see module doc). `retrieval` must have been trained on
    `history` only. A `holdout_fraction` of customers is kept out to pick the best epoch by
    log-loss and to report AUC / log-loss / calibration. `item_versions` (the catalog's attribute history,
    same item indices and vocabularies as `items`) makes every example read the candidate's attributes
    as of the example's time instead of today's."""
    started = time.perf_counter()
    hparams = {
        "num_candidates": num_candidates, "embedding_dim": embedding_dim, "dense_layers": list(dense_layers),
        "over_layers": list(over_layers), "arch": arch, "sparse_features": list(sparse_features),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "holdout_fraction": holdout_fraction, "seed": seed,
    }  # fmt: skip
    dev = pick_device(device)
    rng = seed_everything(seed)
    if item_versions is not None and item_versions.n_items != items.n_items:
        raise ValueError(f"item_versions covers {item_versions.n_items} items, the catalog {items.n_items}")
    vocab = item_versions.features if item_versions is not None else items
    ctx = FeatureContext(history, items, retrieval.item_embeddings, retrieval.history_len, item_versions)
    has_history = np.bincount(history.customer, minlength=history.n_customers) > 0
    customers = np.flatnonzero(has_history & (np.bincount(future.customer, minlength=future.n_customers) > 0))
    inputs = candidate_inputs(retrieval, ctx, customers, num_candidates, customer_features)
    labels = _labels(inputs, future)
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise ValueError(
            "no usable ranker examples: the retrieval candidates of customers with later events hold "
            f"{int(labels.sum())} positives out of {len(labels)}; more events are needed"
        )
    k = inputs.candidates.shape[1]

    holdout_q = rng.random(len(customers)) < holdout_fraction
    row_q = np.repeat(np.arange(len(customers)), k)
    train_rows = np.flatnonzero(~holdout_q[row_q])
    hold_rows = np.flatnonzero(holdout_q[row_q])

    cfg = RankerConfig(
        n_items=items.n_items,
        n_categories=vocab.n_categories,
        n_brands=vocab.n_brands,
        n_price_buckets=vocab.n_price_buckets,
        dense_features=DENSE_FEATURES,
        embedding_dim=embedding_dim,
        dense_layers=tuple(dense_layers),
        over_layers=tuple(over_layers),
        arch=arch,
        sparse_features=tuple(sparse_features),
    )
    model = Ranker(cfg)
    dense_train = torch.from_numpy(inputs.dense[train_rows])
    model.set_standardisation(dense_train.mean(0), dense_train.std(0))
    model = model.to(dev)
    # Start the output bias at the base rate so the first steps learn ranking, not the prior.
    base = float(np.clip(labels[train_rows].mean(), 1e-4, 1 - 1e-4)) if len(train_rows) else 0.5
    last_linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last_linear.bias.fill_(float(np.log(base / (1 - base))))
    net = wrap_for_training(model, lr=lr)  # `model` alone; under torchrun, sharded (training/distributed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = -(-len(train_rows) // batch_size)
    report = Progress(progress, "ranker", steps_per_epoch * epochs, every=max(steps_per_epoch // 4, 1))
    y_all = torch.from_numpy(labels)

    def forward(rows: np.ndarray) -> torch.Tensor:
        kjt = sparse_inputs(inputs, rows, items, item_versions, cfg.sparse_features, dev)
        return net(torch.from_numpy(inputs.dense[rows]).to(dev), kjt)

    best: tuple[float, int, dict] | None = None
    curve: list[dict] = []
    step = 0
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for b in batches(len(train_rows), batch_size, rng):
            rows = train_rows[b]
            loss = F.binary_cross_entropy_with_logits(forward(rows), y_all[rows].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(rows)
            report(epoch, step, float(loss.detach()))
        record: dict = {"epoch": epoch, "loss": total / max(len(train_rows), 1)}
        if len(hold_rows):
            model.eval()
            with torch.no_grad():
                logits = torch.cat([forward(hold_rows[i : i + 16384]) for i in range(0, len(hold_rows), 16384)])
            probs = torch.sigmoid(logits).cpu().numpy()
            record.update({f"holdout_{k_}": v for k_, v in classification_metrics(labels[hold_rows], probs).items()})
            if best is None or record["holdout_log_loss"] < best[0]:
                best = (record["holdout_log_loss"], epoch, full_state(model))
        curve.append(record)
        report(epoch, step, record["loss"], force=True)

    state = best[2] if best is not None else full_state(model)
    metrics = {
        "train_seconds": round(time.perf_counter() - started, 3),
        "examples": len(train_rows),
        "positive_rate": float(labels[train_rows].mean()) if len(train_rows) else 0.0,
        "epochs": curve,
        "best_epoch": best[1] if best is not None else epochs - 1,
    }
    return TrainedRanker(config=cfg, hparams=hparams, state=state, metrics=metrics)
