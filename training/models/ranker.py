"""DLRM ranker over (customer, candidate, context) examples, output = click/interaction logit."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torchrec.models.dlrm import DLRM, DLRM_DCN, InteractionArch, InteractionDCNArch
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from training.models.bags import Bags, FeatureTables
from training.models.plain_layers import as_array, plain_layers, run

# "history" (the customer's recent items) shares the item table with "item_id": DLRM's pairwise
# dot products then compare the candidate with what the customer just did, in one learned space.
RANKER_KEYS: tuple[str, ...] = ("item_id", "history", "category", "brand", "price_bucket")


@dataclass(frozen=True)
class RankerConfig:
    n_items: int
    n_categories: int
    n_brands: int
    n_price_buckets: int
    dense_features: tuple[str, ...]
    embedding_dim: int = 16
    dense_layers: tuple[int, ...] = (64,)
    over_layers: tuple[int, ...] = (64, 32)
    arch: str = "dlrm"
    dcn_layers: int = 2
    dcn_low_rank: int = 16
    sparse_features: tuple[str, ...] = RANKER_KEYS

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> RankerConfig:
        d = dict(d)
        for key in ("dense_features", "dense_layers", "over_layers", "sparse_features"):
            d[key] = tuple(d[key])
        return RankerConfig(**d)


def _table(name: str, rows: int, dim: int, features: list[str]) -> EmbeddingBagConfig:
    return EmbeddingBagConfig(
        name=f"t_{name}",
        embedding_dim=dim,
        num_embeddings=max(rows, 1),
        feature_names=features,
        pooling=PoolingType.MEAN,
        weight_init_min=-0.05,
        weight_init_max=0.05,
    )


class Ranker(nn.Module):
    """TorchRec DLRM (or DLRM-DCN) with the dense-feature standardisation baked in as buffers,
    so a saved state dict is everything serving needs."""

    def __init__(self, cfg: RankerConfig) -> None:
        super().__init__()
        d = cfg.embedding_dim
        unknown = set(cfg.sparse_features) - set(RANKER_KEYS)
        if unknown or not cfg.sparse_features:
            raise ValueError(f"sparse_features must be a non-empty subset of {RANKER_KEYS}")
        rows = {"item": cfg.n_items, "category": cfg.n_categories, "brand": cfg.n_brands,
                "price_bucket": cfg.n_price_buckets}  # fmt: skip
        table_of = {"item_id": "item", "history": "item"}
        tables: dict[str, list[str]] = {}
        for key in cfg.sparse_features:
            tables.setdefault(table_of.get(key, key), []).append(key)
        ebc = EmbeddingBagCollection(tables=[_table(t, rows[t], d, feats) for t, feats in tables.items()])
        n_dense = len(cfg.dense_features)
        common = {
            "embedding_bag_collection": ebc,
            "dense_in_features": n_dense,
            "dense_arch_layer_sizes": [*cfg.dense_layers, d],
            "over_arch_layer_sizes": [*cfg.over_layers, 1],
        }
        if cfg.arch == "dcn":
            self.dlrm: nn.Module = DLRM_DCN(dcn_num_layers=cfg.dcn_layers, dcn_low_rank_dim=cfg.dcn_low_rank, **common)
        elif cfg.arch == "dlrm":
            self.dlrm = DLRM(**common)
        else:
            raise ValueError(f"unknown ranker arch {cfg.arch!r}")
        self.register_buffer("dense_mean", torch.zeros(n_dense))
        self.register_buffer("dense_std", torch.ones(n_dense))
        self._served: _ServedForward | None = None

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.dense_mean.copy_(mean)
        self.dense_std.copy_(torch.clamp(std, min=1e-6))

    def forward(self, dense: torch.Tensor, sparse: KeyedJaggedTensor) -> torch.Tensor:
        """Logits, shape (B,). Apply a sigmoid for probabilities."""
        x = (dense - self.dense_mean) / self.dense_std
        return self.dlrm(dense_features=x, sparse_features=sparse).squeeze(-1)

    def forward_bags(self, dense: np.ndarray, bags: dict[str, Bags]) -> np.ndarray:
        """forward() in NumPy, with the sparse features as bags (training/models/bags.py) instead of a
        KeyedJaggedTensor: the same logits (float32, shape (B,)), without TorchRec's per-call Python or
        torch's per-call dispatch (serving's path). A feature given one bag (the customer's history) is
        shared by every row. Built on the first call, over the parameters as they are then."""
        if self._served is None:
            self._served = _ServedForward(self)
        return self._served(np.asarray(dense, dtype=np.float32), bags)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Probabilities strictly inside (0, 1): a saturated float32 sigmoid would return exactly
        0 or 1, which breaks log-loss and any downstream odds arithmetic."""
        return torch.sigmoid(logits.clamp(-15.0, 15.0))

    @torch.no_grad()
    def predict_proba(self, dense: torch.Tensor, sparse: KeyedJaggedTensor) -> torch.Tensor:
        return self.probabilities(self.forward(dense, sparse))


class _ServedForward:
    """Ranker.forward in NumPy over views of the ranker's parameters: DLRM's dense arch, pooled sparse
    features, interaction (pairwise dot products, or DCN's low-rank cross net) and over arch."""

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
