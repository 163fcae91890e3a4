"""Large id tables train with sparse updates (SparseAdam on the batch's rows), small ones with dense Adam."""

from __future__ import annotations

import numpy as np
import torch

from tests.training.conftest import make_tenant
from training.data import temporal_split
from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig
from training.trainers.two_tower import _optimizers, retrieval_metrics, train_two_tower

SMALL = {"dim": 16, "hidden": 32, "epochs": 8, "batch_size": 64, "lr": 1e-2, "history_len": 10}


def test_only_tables_above_the_threshold_go_sparse():
    cfg = TwoTowerConfig(n_customers=1000, n_items=50, n_categories=4, n_brands=5, n_price_buckets=5,
                         n_title_tokens=12, n_customer_attributes=1, dim=8, hidden=16, id_dropout=0.0)
    towers = torch.nn.ModuleList([CustomerTower(cfg), ItemTower(cfg)])
    dense, sparse = _optimizers(towers, 1e-3, 0.0, sparse_rows=1000)
    assert isinstance(sparse, torch.optim.SparseAdam)
    assert [p.shape[0] for g in sparse.param_groups for p in g["params"]] == [1000]
    n_dense = sum(p.numel() for g in dense.param_groups for p in g["params"])
    assert n_dense + 1000 * 8 == sum(p.numel() for p in towers.parameters())
    assert len(_optimizers(towers, 1e-3, 0.0, sparse_rows=None)) == 1


def test_a_model_with_every_table_sparse_still_learns():
    interactions, items = make_tenant(n_customers=60, events_per_customer=18)
    train, test = temporal_split(interactions, 0.2)
    model = train_two_tower(train, items, **SMALL, sparse_rows=1)
    assert np.isfinite(model.item_embeddings).all()
    assert retrieval_metrics(model, train, test)["hr@10"] > 0.5  # random would be ~ 10 / 60 per test item
