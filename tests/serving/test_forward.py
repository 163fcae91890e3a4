"""Serving's NumPy forward passes (serving/forward.py, over serving/bags.py and serving/plain_layers.py) give the
numbers of the TorchRec modules' own forward, which stays the definition: this is their contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serving.bags import Bags, FeatureTables
from serving.forward import customer_tower_forward, embed_customers, ranker_forward
from training.artifacts import TrainedRetrieval
from training.data import (
    CUSTOMER_KEYS,
    CustomerFeatures,
    ItemFeatures,
    Jagged,
    customer_kjt,
    customer_parts,
    make_history,
)
from training.features import ranker_kjt, ranker_parts
from training.models.ranker import RANKER_KEYS, Ranker, RankerConfig
from training.models.two_tower import CustomerTower, ItemTower, TwoTowerConfig


def _items(rng: np.random.Generator, n: int = 30) -> ItemFeatures:
    # Category paths of 0 to 3 ids: empty bags and bags of several values both occur.
    paths = Jagged.from_lists([list(rng.integers(0, 6, rng.integers(0, 4))) for _ in range(n)])
    return ItemFeatures(
        paths, Jagged.from_single(rng.integers(0, 3, n)), Jagged.from_single(rng.integers(0, 4, n)),
        Jagged.from_single(np.zeros(n, np.int64)), 6, 3, 4, 1,
    )  # fmt: skip


def _trained_looking(module: torch.nn.Module) -> None:
    """Weights away from their init, so a mixed-up table or feature order would show."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)


@pytest.mark.parametrize("arch", ["dlrm", "dcn"])
@pytest.mark.parametrize("keys", [RANKER_KEYS, ("item_id", "category", "price_bucket")])
@pytest.mark.parametrize("history", [[4, 9, 9, 17], []])
def test_the_ranker_forward_equals_the_modules_with_the_history_shared(arch, keys, history):
    rng = np.random.default_rng(0)
    items = _items(rng)
    cfg = RankerConfig(n_items=30, n_categories=6, n_brands=3, n_price_buckets=4, dense_features=("a", "b", "c"),
                       arch=arch, sparse_features=keys)
    model = Ranker(cfg).eval()
    _trained_looking(model)
    candidates = rng.permutation(30)[:12]
    dense = torch.from_numpy(rng.standard_normal((12, 3)).astype(np.float32))
    one_history = Jagged.from_lists([history])

    repeated = ranker_kjt(items, candidates, one_history.take(np.zeros(12, np.int64)), keys=keys)
    bags = dict(zip(keys, map(Bags.of, ranker_parts(items, candidates, one_history, keys)), strict=True))
    with torch.no_grad():
        expected = model(dense, repeated)
    got = torch.from_numpy(ranker_forward(model)(dense.numpy(), bags))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(Ranker.probabilities(got), model.predict_proba(dense, repeated))


TOWER = TwoTowerConfig(n_customers=8, n_items=30, n_categories=1, n_brands=1, n_price_buckets=1, n_title_tokens=1,
                       n_customer_attributes=5, dim=8, hidden=16)
HISTORY = make_history([[1, 2, 3], [5], [], [29, 28, 1, 1]], [[1, 3, 5], [1], [], [1, 1, 2, 5]], max_len=3,
                       recency_decay=0.1)


def test_the_customer_tower_forward_equals_the_modules_for_known_and_unknown_customers():
    model = CustomerTower(TOWER).eval()
    _trained_looking(model)
    customers = np.array([3, -1, 7, 0])
    history = HISTORY
    features = CustomerFeatures(Jagged.from_lists([[1], [2, 3], [], [4], [0, 1, 2], [], [], [3]]), 5)

    parts, weights = customer_parts(customers, history, features)
    bags = {key: Bags.of(part, w) for key, part, w in zip(CUSTOMER_KEYS, parts, weights, strict=True)}
    with torch.no_grad():
        expected = model(customer_kjt(customers, history, features))
    got = torch.from_numpy(customer_tower_forward(model)(bags))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_served_customer_embeddings_equal_the_artifacts_own():
    """serving.forward.embed_customers is TrainedRetrieval.embed_customers (the tower's forward) in NumPy,
    customers beyond the trained ones included (they count as unknown)."""
    tower = CustomerTower(TOWER)
    _trained_looking(tower)
    retrieval = TrainedRetrieval(TOWER, {"history_len": 3, "recency_decay": 0.1}, tower.state_dict(),
                                 ItemTower(TOWER).state_dict(), np.zeros((30, TOWER.dim), np.float32))
    customers = np.array([3, -1, 7, 8])  # 8: a customer newer than the model
    served = embed_customers(retrieval, customers, HISTORY)
    assert served.dtype == np.float32
    np.testing.assert_allclose(served, retrieval.embed_customers(customers, HISTORY), rtol=1e-5, atol=1e-6)
    last_history = make_history([[29, 28, 1, 1]], [[1, 1, 2, 5]], max_len=3, recency_decay=0.1)  # HISTORY's row 3
    np.testing.assert_allclose(served[3], embed_customers(retrieval, np.array([-1]), last_history)[0], rtol=1e-6,
                               atol=1e-7)


def test_feature_tables_refuse_missing_features_and_mismatched_rows():
    model = Ranker(RankerConfig(n_items=5, n_categories=2, n_brands=2, n_price_buckets=2, dense_features=("a",),
                                sparse_features=("item_id", "brand")))
    tables = FeatureTables(model.dlrm.sparse_arch.embedding_bag_collection)
    assert tables.features == ["item_id", "brand"]
    with pytest.raises(ValueError, match="the collection has"):
        tables.pool_all({"item_id": Bags.single(np.array([1, 2]))}, 2)
    with pytest.raises(ValueError, match="3 bags for 2 rows"):
        tables.pool_all({"item_id": Bags.single(np.array([1, 2])), "brand": Bags.single(np.array([0, 1, 1]))}, 2)
