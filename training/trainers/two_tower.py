"""Trainer for the two-tower retrieval model (one process; TorchRec two_tower_train.py style)."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from training.artifacts import TrainedRetrieval
from training.data import (
    CustomerFeatures,
    HistoryIndex,
    Interactions,
    ItemFeatures,
    customer_kjt,
    item_kjt,
)
from training.evaluation import evaluate_scores
from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig, TwoTowerRetrievalTask
from training.trainers.common import (
    Progress,
    ProgressFn,
    across_processes,
    batches,
    full_state,
    fused_optimizers,
    pick_device,
    seed_everything,
    uses_torch_threads,
    warmup_cosine,
    wrap_for_training,
)
from training.warm_start import WarmStart

_NOT_HPARAMS = {
    "train", "items", "customer_features", "validation", "device", "progress", "num_threads", "started", "item_init",
}


def _optimizers(
    task: torch.nn.Module, lr: float, weight_decay: float, sparse_rows: int | None
) -> list[torch.optim.Optimizer]:
    """Adam for the towers, and for id tables of at least `sparse_rows` rows SparseAdam on sparse gradients.

    Dense Adam touches every row of every table each step: with a million customers that is 1.2 s per step
    on one CPU thread against 0.13 s when only the batch's rows are updated (tests/bench/training.py), and
    the table's update cost, not the examples, sets the pace. Small tables (MovieLens, most shops) stay on
    dense Adam, the setting the evaluation protocol was tuned with. Sparse tables get no weight decay
    (SparseAdam has none)."""
    sparse: list[torch.nn.Parameter] = []
    if sparse_rows is not None:
        for module in task.modules():
            if isinstance(module, torch.nn.EmbeddingBag) and module.num_embeddings >= sparse_rows:
                module.sparse = True  # read at each forward: the backward now yields only the touched rows
                sparse.append(module.weight)
    sparse_ids = {id(p) for p in sparse}
    dense = [p for p in task.parameters() if id(p) not in sparse_ids]
    out: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay)]
    if sparse:
        out.append(torch.optim.SparseAdam(sparse, lr=lr))
    return out


@torch.no_grad()
def warm_start(customer_tower: CustomerTower, item_tower: ItemTower, start: WarmStart) -> None:
    """Start each item's id row and history row from `start.rows` (their first columns), and the customer
    tower's output bias from `start.customer_default`.

    Before any training a customer's history pool then points at the products that go with it in the other
    shops, a customer without history at what the other shops take most, and a product without events
    (whose id row no gradient reaches: negatives are drawn among products with events) keeps its place."""
    rows, dim = start.rows.shape
    tables = (item_tower.ebc.embedding_bags["t_item_id"].weight, customer_tower.ebc.embedding_bags["t_history"].weight)
    if rows != tables[0].shape[0] or dim > tables[0].shape[1]:
        raise ValueError(f"item_init is {rows} x {dim}; the tables are {tuple(tables[0].shape)}")
    for weight in tables:
        weight[:, :dim] = torch.from_numpy(start.rows).to(weight.device)
    bias = customer_tower.mlp[-1].bias
    bias.zero_()
    bias[:dim] = torch.from_numpy(start.customer_default).to(bias.device)


@torch.no_grad()
def _item_matrix(tower: ItemTower, items: ItemFeatures, device: torch.device, chunk: int = 8192) -> torch.Tensor:
    was_training = tower.training
    tower.eval()
    out = [
        tower(item_kjt(items, np.arange(lo, min(lo + chunk, items.n_items)), device))
        for lo in range(0, items.n_items, chunk)
    ]
    tower.train(was_training)
    return torch.cat(out)


@uses_torch_threads
def train_two_tower(
    train: Interactions,
    items: ItemFeatures,
    *,
    customer_features: CustomerFeatures | None = None,
    dim: int = 64,
    hidden: int = 128,
    epochs: int = 5,
    batch_size: int = 1024,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    temperature: float = 0.1,
    logq_correction: bool = True,
    negatives: str = "in_batch",
    sampled_negatives: int = 0,
    history_len: int = 50,
    recency_decay: float = 0.9,
    future_window: int = 1,
    id_dropout: float = 0.1,
    sparse_rows: int | None = 50_000,
    item_init: WarmStart | None = None,
    validation: Interactions | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    num_threads: int | None = 1,
) -> TrainedRetrieval:
    """Train the two-tower model on `train` (every event is a positive for the customer's history
    before it) and return the towers, the item embedding matrix and the hyper-parameters.

    With `validation` (later events of the same customers), NDCG@10 is measured after every
    epoch and the best epoch's weights are kept (early stopping by selection). Id tables with at least
    `sparse_rows` rows are updated sparsely (see `_optimizers`; None: every table dense).
    `sampled_negatives` items drawn uniformly from the catalog per batch join the in-batch negatives
    (mixed negatives, see `TwoTowerRetrievalTask`). With `future_window` W > 1 each event is the positive of
    the customer's history cut 0 to W-1 events before it (drawn afresh each epoch), so the embedding learns the
    next few events, not only the next one. `item_init`, given, warm-starts the item rows and new
    customers from what the opted-in shops share (`warm_start_rows`, `warm_start`).
    """
    started = time.perf_counter()
    hparams = {k: v for k, v in locals().items() if k not in _NOT_HPARAMS}
    dev = pick_device(device)
    rng = seed_everything(seed)
    if items.n_items != train.n_items:
        raise ValueError(f"ItemFeatures has {items.n_items} items, interactions say {train.n_items}")
    cfg = TwoTowerConfig(
        n_customers=train.n_customers,
        n_items=train.n_items,
        n_categories=items.n_categories,
        n_brands=items.n_brands,
        n_price_buckets=items.n_price_buckets,
        n_title_tokens=items.n_title_tokens,
        n_customer_attributes=customer_features.n_attributes if customer_features else 1,
        dim=dim,
        hidden=hidden,
        id_dropout=id_dropout,
    )
    customer_tower, item_tower = CustomerTower(cfg).to(dev), ItemTower(cfg).to(dev)
    if item_init is not None:
        warm_start(customer_tower, item_tower, item_init)
    counts = train.item_counts().astype(np.float64)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / max(counts.sum(), 1.0)))
    # Uniform negatives are drawn among items with events: a product nobody took would otherwise only ever
    # be pushed away, and with it the content features a new product is embedded from (cold start).
    negative_pool = np.flatnonzero(counts > 0)
    # Under torchrun each process scores its share of the batch against every process's positives.
    task = TwoTowerRetrievalTask(
        customer_tower, item_tower, log_q, temperature, logq_correction, negatives, sampled_pool=len(negative_pool),
        across=across_processes(),
    ).to(dev)
    # Alone `net` is `task`; under torchrun (training/distributed) its tables are sharded and its optimizers
    # join the list so the schedule reaches them.
    net = wrap_for_training(task, lr=lr)
    optimizers = _optimizers(task, lr, weight_decay, sparse_rows) + fused_optimizers(net)

    hist = HistoryIndex(train)
    n = len(train)
    steps_per_epoch = -(-n // batch_size)
    total = steps_per_epoch * epochs
    schedulers = [warmup_cosine(opt, total) for opt in optimizers]
    report = Progress(progress, "retrieval", total, every=max(steps_per_epoch // 4, 1))
    all_items = item_kjt(items, np.arange(items.n_items), dev) if negatives == "full" else None
    best: tuple[float, int, dict, dict] | None = None
    history_curve: list[dict] = []
    step = 0
    for epoch in range(epochs):
        task.train()
        epoch_loss = 0.0
        # Drawn for every event at once, so processes sharing a batch (torchrun) keep one generator state.
        offsets = rng.integers(0, future_window, n) if future_window > 1 else np.zeros(n, dtype=np.int64)
        for idx in batches(n, batch_size, rng):
            cust = hist.customer[idx]
            h = hist.before(hist.cut_before(idx, offsets[idx]), cust, history_len, recency_decay)
            ckjt = customer_kjt(cust, h, customer_features, dev)
            target = hist.item[idx]
            ikjt = item_kjt(items, target, dev)
            sampled = rng.choice(negative_pool, sampled_negatives) if sampled_negatives else None
            loss = net(
                ckjt, ikjt, torch.from_numpy(target).to(dev), all_items,
                item_kjt(items, sampled, dev) if sampled is not None else None,
                torch.from_numpy(sampled).to(dev) if sampled is not None else None,
            )
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt, scheduler in zip(optimizers, schedulers, strict=True):
                opt.step()
                scheduler.step()
            step += 1
            epoch_loss += float(loss.detach()) * len(idx)
            report(epoch, step, float(loss.detach()))
        record = {"epoch": epoch, "loss": epoch_loss / max(n, 1)}
        if validation is not None:
            task.eval()
            trained = _package(cfg, hparams, customer_tower, item_tower, items, dev, {})
            record["val_ndcg@10"] = retrieval_metrics(trained, train, validation, customer_features)["ndcg@10"]
            if best is None or record["val_ndcg@10"] > best[0]:
                best = (
                    record["val_ndcg@10"],
                    epoch,
                    copy.deepcopy(customer_tower.state_dict()),
                    copy.deepcopy(item_tower.state_dict()),
                )
        history_curve.append(record)
        extra = {k: v for k, v in record.items() if k not in ("loss", "epoch")}
        report(epoch, step, record["loss"], force=True, **extra)

    if best is not None:
        customer_tower.load_state_dict(best[2])
        item_tower.load_state_dict(best[3])
    metrics = {
        "train_seconds": round(time.perf_counter() - started, 3),
        "epochs": history_curve,
        "best_epoch": best[1] if best is not None else epochs - 1,
        "warm_started": item_init is not None,
    }
    return _package(cfg, hparams, customer_tower, item_tower, items, dev, metrics)


def _package(
    cfg: TwoTowerConfig,
    hparams: dict,
    customer_tower: CustomerTower,
    item_tower: ItemTower,
    items: ItemFeatures,
    dev: torch.device,
    metrics: dict,
) -> TrainedRetrieval:
    matrix = _item_matrix(item_tower, items, dev).cpu().numpy().astype(np.float32)
    return TrainedRetrieval(
        config=cfg,
        hparams=hparams,
        customer_tower_state=full_state(customer_tower),
        item_tower_state=full_state(item_tower),
        item_embeddings=matrix,
        metrics=metrics,
    )


def retrieval_metrics(
    model: TrainedRetrieval,
    train: Interactions,
    test: Interactions,
    customer_features: CustomerFeatures | None = None,
) -> dict[str, float]:
    """Protocol metrics of retrieval alone: customer embedding from train history . every item."""
    items = torch.from_numpy(model.item_embeddings)
    index = HistoryIndex(train)

    def score(customers: np.ndarray) -> torch.Tensor:
        emb = model.embed_known_customers(index, customers, customer_features)
        return torch.from_numpy(emb) @ items.T

    return evaluate_scores(score, train, test)
