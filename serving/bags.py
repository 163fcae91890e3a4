"""Pooling a TorchRec EmbeddingBagCollection's tables in NumPy, without a KeyedJaggedTensor, for serving.

A served request embeds one customer and scores their few hundred candidates. Through the collection's
own forward, building the KeyedJaggedTensor, splitting it per feature (`to_dict`) and reassembling a
KeyedTensor is Python that costs more than the lookups themselves (about 0.4 ms of a 1 ms ranker call,
measured in process on MovieLens); and at these sizes each torch call's dispatch costs more than its
arithmetic too, so serving pools with NumPy (serving/plain_layers.py says what that saved). The
tables are views of the collection's own weights (`Tensor.numpy()` shares the memory), so the numbers
are the module's (tests/serving/test_forward.py compares them with its forward) and weights loaded in
place stay in use; training keeps TorchRec for sharding. A bag shared by every row (the customer's
history, the same for all candidates) is pooled once and broadcast instead of being repeated per
candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torchrec.modules.embedding_configs import PoolingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection

from serving.plain_layers import as_array
from training.registry.load import Jagged

_POOLINGS = (PoolingType.SUM, PoolingType.MEAN)


@dataclass(frozen=True)
class Bags:
    """One feature's bags: row r pools values[offsets[r]:offsets[r + 1]] (an empty bag pools to zeros);
    `weights` per value for a weighted collection."""

    values: np.ndarray  # int64
    offsets: np.ndarray  # int64, one per row (the start of each bag)
    weights: np.ndarray | None = None  # float32
    one_per_row: bool = False  # every bag holds exactly one value

    @staticmethod
    def of(jagged: Jagged, weights: np.ndarray | None = None) -> Bags:
        n_rows = len(jagged.offsets) - 1
        return Bags(
            np.asarray(jagged.values, dtype=np.int64),
            np.asarray(jagged.offsets[:-1], dtype=np.int64),
            None if weights is None else np.asarray(weights, dtype=np.float32),
            len(jagged.values) == n_rows and bool((jagged.lengths == 1).all()),
        )

    @staticmethod
    def single(ids: np.ndarray) -> Bags:
        """One id per row."""
        values = np.asarray(ids, dtype=np.int64)
        return Bags(values, np.arange(len(values), dtype=np.int64), one_per_row=True)

    @property
    def n_rows(self) -> int:
        return len(self.offsets)


@dataclass(frozen=True)
class _Table:
    weight: np.ndarray  # (rows x dim) float32, a view of the module's table
    mean: bool


class FeatureTables:
    """Each feature's table (weight, pooling) in an EmbeddingBagCollection, in the collection's order."""

    def __init__(self, ebc: EmbeddingBagCollection) -> None:
        self._tables: dict[str, _Table] = {}
        self.weighted = ebc.is_weighted()
        for config in ebc.embedding_bag_configs():
            if config.pooling not in _POOLINGS or (self.weighted and config.pooling != PoolingType.SUM):
                raise ValueError(f"pooling {config.pooling} has no embedding_bag mode here")
            table = _Table(as_array(ebc.embedding_bags[config.name].weight), config.pooling == PoolingType.MEAN)
            for feature in config.feature_names:
                self._tables[feature] = table

    @property
    def features(self) -> list[str]:
        return list(self._tables)

    def pool(self, feature: str, bags: Bags) -> np.ndarray:
        """(rows x dim) pooled embeddings of one feature, as the collection pools it."""
        table = self._tables[feature]
        weights = bags.weights if self.weighted else None
        if self.weighted and weights is None:
            raise ValueError(f"{feature}: a weighted collection needs weights")
        rows = np.take(table.weight, bags.values, axis=0)  # a copy (np.take is twice as fast as [])
        if weights is not None:
            rows *= weights[:, None]
        if bags.one_per_row:  # a bag of one value pools to that value (times its weight)
            return rows
        if bags.n_rows == 1:  # one bag (the customer's history): a plain sum, empty or not
            pooled = rows.sum(axis=0, keepdims=True)
            return pooled / max(len(rows), 1) if table.mean else pooled
        # Bag sums by reduceat over the non-empty bags' starts (an empty bag is zeros; reduceat would give
        # it the next value instead).
        lengths = np.diff(bags.offsets, append=len(bags.values))
        nonempty = lengths > 0
        if nonempty.all():
            pooled = np.add.reduceat(rows, bags.offsets, axis=0)
        else:
            pooled = np.zeros((bags.n_rows, rows.shape[1]), dtype=rows.dtype)
            if len(rows):
                pooled[nonempty] = np.add.reduceat(rows, bags.offsets[nonempty], axis=0)
        if table.mean:
            pooled /= np.maximum(lengths, 1)[:, None]
        return pooled

    def pool_all(self, bags: dict[str, Bags], rows: int) -> list[np.ndarray]:
        """Every feature's (rows x dim) pooled embeddings in the collection's order; a feature given one
        bag is pooled once and broadcast to every row."""
        if set(bags) != set(self._tables):
            raise ValueError(f"bags for {sorted(bags)}, the collection has {sorted(self._tables)}")
        pooled = []
        for feature in self._tables:
            x = self.pool(feature, bags[feature])
            if len(x) != rows:
                if len(x) != 1:
                    raise ValueError(f"{feature}: {len(x)} bags for {rows} rows")
                x = np.broadcast_to(x, (rows, x.shape[1]))
            pooled.append(x)
        return pooled
