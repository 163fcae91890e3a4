"""DLRM ranker over (customer, candidate, context) examples, output = click/interaction logit."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torchrec.models.dlrm import DLRM, DLRM_DCN
from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

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
    so a saved state dict is everything serving needs. Serving runs this forward in NumPy over views of
    the parameters (serving/forward.py; tests/serving/test_forward.py holds it to the same numbers)."""

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

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.dense_mean.copy_(mean)
        self.dense_std.copy_(torch.clamp(std, min=1e-6))

    def forward(self, dense: torch.Tensor, sparse: KeyedJaggedTensor) -> torch.Tensor:
        """Logits, shape (B,). Apply a sigmoid for probabilities."""
        x = (dense - self.dense_mean) / self.dense_std
        return self.dlrm(dense_features=x, sparse_features=sparse).squeeze(-1)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Probabilities strictly inside (0, 1): a saturated float32 sigmoid would return exactly
        0 or 1, which breaks log-loss and any downstream odds arithmetic."""
        return torch.sigmoid(logits.clamp(-15.0, 15.0))

    @torch.no_grad()
    def predict_proba(self, dense: torch.Tensor, sparse: KeyedJaggedTensor) -> torch.Tensor:
        return self.probabilities(self.forward(dense, sparse))
