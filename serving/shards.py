"""Serving from shards: an embedding table larger than a serving process's memory budget is stored as row
shards (.npy files) and memory-mapped, and a catalog's ANN index is split across FAISS index shards.

A `ShardedTable` maps a shard only when a lookup needs one of its rows and keeps at most as many shards mapped
as fit in half its budget (least recently used first out): a mapped page is resident once read, so what
bounds the process's resident memory is what stays mapped, not what the file holds. `sharded_index` builds
one sub-index per slice of the catalog inside a `faiss.IndexShards`, which searches every shard and merges
the top k (ids continue from one shard to the next), so recall is that of the sub-indexes.

Across processes or machines the same slices would sit behind shard servers; FAISS's own
`contrib.client_server` pickles over raw sockets and is not used here.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

META_FILE = "shards.json"


def rows_per_shard(dim: int, budget_bytes: int, itemsize: int = 4, shards_in_budget: int = 8) -> int:
    """Rows of a shard such that `shards_in_budget` shards fit in the budget."""
    return max(1, budget_bytes // (shards_in_budget * dim * itemsize))


def write_row_shards(matrix: np.ndarray, folder: str | Path, rows_per_file: int) -> Path:
    """Store `matrix` (rows x dim) as consecutive row shards under `folder`, with their description."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, dim = matrix.shape
    files = []
    for i, lo in enumerate(range(0, n, rows_per_file)):
        name = f"rows-{i:05d}.npy"
        np.save(folder / name, np.ascontiguousarray(matrix[lo : lo + rows_per_file]))
        files.append({"file": name, "start": lo, "rows": min(rows_per_file, n - lo)})
    meta = {"rows": n, "dim": dim, "dtype": str(matrix.dtype), "rows_per_shard": rows_per_file, "shards": files}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def is_sharded(folder: str | Path) -> bool:
    return (Path(folder) / META_FILE).is_file()


class ShardedTable:
    """Rows of a table stored by `write_row_shards`, read through memory maps within `budget_bytes`."""

    def __init__(self, folder: str | Path, budget_bytes: int) -> None:
        self.folder = Path(folder)
        self.meta: dict[str, Any] = json.loads((self.folder / META_FILE).read_text())
        self.shape = (int(self.meta["rows"]), int(self.meta["dim"]))
        self.dtype = np.dtype(self.meta["dtype"])
        self._per_shard = int(self.meta["rows_per_shard"])
        shard_bytes = self._per_shard * self.shape[1] * self.dtype.itemsize
        # Half the budget for mapped shards, the rest for the answers and the process itself.
        self.max_mapped = max(1, (budget_bytes // 2) // max(shard_bytes, 1))
        self._mapped: OrderedDict[int, np.ndarray] = OrderedDict()
        self.maps_opened = 0

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def _shard(self, i: int) -> np.ndarray:
        if i in self._mapped:
            self._mapped.move_to_end(i)
            return self._mapped[i]
        while len(self._mapped) >= self.max_mapped:
            self._mapped.popitem(last=False)  # dropping the last reference unmaps it
        # allow_pickle=False: a shard is plain numbers, reading one never runs code.
        array = np.load(self.folder / self.meta["shards"][i]["file"], mmap_mode="r", allow_pickle=False)
        self._mapped[i] = array
        self.maps_opened += 1
        return array

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows asked for, in order (a copy: nothing returned keeps a shard mapped)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"rows outside 0..{self.shape[0] - 1}")
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        shard_of = rows // self._per_shard
        for i in np.unique(shard_of):
            at = np.flatnonzero(shard_of == i)
            out[at] = self._shard(int(i))[rows[at] - i * self._per_shard]
        return out

    def mapped_shards(self) -> list[int]:
        return list(self._mapped)


def sharded_index(slices: list[np.ndarray], build: Any) -> faiss.IndexShards:
    """One FAISS index per consecutive slice of the catalog (`build(slice) -> index`), searched as one:
    `faiss.IndexShards` with successive ids, so item i of slice s answers as its catalog row."""
    dim = slices[0].shape[1]
    shards = faiss.IndexShards(dim, False, True)  # not threaded (serving processes are single-core), successive ids
    for part in slices:
        shards.add_shard(build(np.ascontiguousarray(part, dtype=np.float32)))  # FAISS's wrapper keeps a reference
    return shards
