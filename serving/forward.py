"""The customer tower's and the ranker's forward passes in NumPy, over views of the trained modules'
parameters: what serving runs per request instead of the modules' TorchRec forward.

A request embeds one customer and scores their few hundred candidates, sizes at which TorchRec's per-call
Python and torch's per-call dispatch cost more than the arithmetic (serving/bags.py and
serving/plain_layers.py say how much). The pieces: pooled sparse features (`bags.FeatureTables`), MLPs as
plain layers (`plain_layers`), and DLRM's interaction (pairwise dot products, or DCN's low-rank cross net).
The arrays are views of the modules' own parameters (`Tensor.numpy()` shares the memory), so weights loaded
in place stay in use, and the numbers are the modules' own: tests/serving/test_forward.py compares them with
`Ranker.forward` and `CustomerTower.forward`, which stay the definitions (training runs them, and a change
there must be made here too).

Each module's NumPy form is built on its first use and kept while the module lives (a weak reference:
a replaced model version takes its forms with it).
"""

from __future__ import annotations

import weakref

import numpy as np
from torchrec.models.dlrm import InteractionArch, InteractionDCNArch

from serving.bags import Bags, FeatureTables
from serving.plain_layers import as_array, plain_layers, run
from training.registry.load import (
    CUSTOMER_KEYS,
    CustomerFeatures,
    CustomerTower,
    History,
    Ranker,
    TrainedRetrieval,
)


class CustomerTowerForward:
    """CustomerTower.forward in NumPy (eval mode: no id dropout), with the features as weighted bags."""

    def __init__(self, tower: CustomerTower) -> None:
        self.tables = FeatureTables(tower.ebc)
        self.mlp = plain_layers(tower.mlp)

    def __call__(self, bags: dict[str, Bags]) -> np.ndarray:
        """Unit vectors (float32), one per row of the bags."""
        ids, hist, attrs = self.tables.pool_all(bags, bags[CUSTOMER_KEYS[0]].n_rows)
        # As CustomerTower._head; F.normalize divides by the norm, at least 1e-12.
        out = hist + run(self.mlp, np.concatenate([ids, hist, attrs], axis=1))
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class RankerForward:
    """Ranker.forward in NumPy: DLRM's dense arch, pooled sparse features, interaction (pairwise dot
    products, or DCN's low-rank cross net) and over arch."""

    def __init__(self, ranker: Ranker) -> None:
        dlrm = ranker.dlrm
        self.mean, self.std = as_array(ranker.dense_mean), as_array(ranker.dense_std)
        self.tables = FeatureTables(dlrm.sparse_arch.embedding_bag_collection)
        # The pooled features in the order DLRM's interaction reads them (pool_all gives the tables' order).
        self.order = [self.tables.features.index(name) for name in dlrm.sparse_arch.sparse_feature_names]
        self.dense_layers = plain_layers(dlrm.dense_arch)
        self.over_layers = plain_layers(dlrm.over_arch)
        inter = dlrm.inter_arch
        if isinstance(inter, InteractionDCNArch):
            net = inter.crossnet
            self.cross = [(as_array(v).T, as_array(w).T, as_array(b))
                          for v, w, b in zip(net.V_kernels, net.W_kernels, net.bias, strict=True)]
            self.triu = None
        elif isinstance(inter, InteractionArch):
            self.cross = []
            self.triu = tuple(as_array(inter.triu_indices))
        else:
            raise TypeError(f"no NumPy form for {type(inter).__name__}")

    def __call__(self, dense: np.ndarray, bags: dict[str, Bags]) -> np.ndarray:
        """Logits (float32, shape (B,)) of B rows: `dense` (B x F) and the sparse features as bags; a feature
        given one bag (the customer's history) is shared by every row."""
        dense = np.asarray(dense, dtype=np.float32)
        x = run(self.dense_layers, (dense - self.mean) / self.std)
        pooled = self.tables.pool_all(bags, len(dense))
        combined = np.stack([x, *(pooled[i] for i in self.order)], axis=1)  # B x (F + 1) x D
        if self.triu is not None:  # DLRM: the dense output and every pair's dot product
            interactions = combined @ combined.transpose(0, 2, 1)
            features = np.concatenate([x, interactions[:, self.triu[0], self.triu[1]]], axis=1)
        else:  # DCN: x_{l+1} = x_0 * (W_l V_l x_l + b_l) + x_l
            x0 = combined.reshape(len(dense), -1)
            features = x0
            for v_t, w_t, bias in self.cross:
                features = x0 * ((features @ v_t) @ w_t + bias) + features
        return run(self.over_layers, features)[:, 0]


_customer_towers: weakref.WeakKeyDictionary[CustomerTower, CustomerTowerForward] = weakref.WeakKeyDictionary()
_rankers: weakref.WeakKeyDictionary[Ranker, RankerForward] = weakref.WeakKeyDictionary()


def customer_tower_forward(tower: CustomerTower) -> CustomerTowerForward:
    """The tower's NumPy forward (built once per tower, over its parameters as they are then)."""
    forward = _customer_towers.get(tower)
    if forward is None:  # two threads may both build it: the same arrays, the last one is kept
        forward = _customer_towers[tower] = CustomerTowerForward(tower)
    return forward


def ranker_forward(ranker: Ranker) -> RankerForward:
    """The ranker's NumPy forward (built once per ranker, over its parameters as they are then)."""
    forward = _rankers.get(ranker)
    if forward is None:
        forward = _rankers[ranker] = RankerForward(ranker)
    return forward


def embed_customers(
    retrieval: TrainedRetrieval,
    customers: np.ndarray,
    history: History,
    customer_features: CustomerFeatures | None = None,
) -> np.ndarray:
    """`TrainedRetrieval.embed_customers` through the NumPy forward (float32, one row per customer): the
    same inputs (`customer_inputs`, unknown customers included), the same vectors."""
    parts, weights = retrieval.customer_inputs(customers, history, customer_features)
    bags = {key: Bags.of(part, w) for key, part, w in zip(CUSTOMER_KEYS, parts, weights, strict=True)}
    return customer_tower_forward(retrieval.customer_tower())(bags).astype(np.float32, copy=False)
