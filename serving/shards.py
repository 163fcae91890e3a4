"""Serving from shards: an embedding table larger than a serving process's memory budget is stored as row
shards (.npy files) and memory-mapped, and a catalog's ANN index is split across FAISS index shards.

A `ShardedTable` maps a shard only when a lookup needs one of its rows and keeps at most as many shards mapped
as fit in half its budget (least recently used first out): a mapped page is resident once read, so what
bounds the process's resident memory is what stays mapped, not what the file holds. `sharded_index` builds
one sub-index per slice of the catalog inside a `faiss.IndexShards`, which searches every shard and merges
the top k (ids continue from one shard to the next), so recall is that of the sub-indexes.

Across processes or machines the slices are written by `write_index_slices` and each is served by a shard
server (serving/shard_server.py) behind a scatter-gather client (serving/shard_client.py); FAISS's own
`contrib.client_server` pickles over raw sockets and is not used.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from serving import index as item_index

META_FILE = "shards.json"
SLICES_DIR = "ann-shards"  # a version's index slices, one per shard server
ITEM_ROWS_DIR = "item-rows"  # a version's item embeddings as row shards (a table above the serving budget)


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


def slice_name(shard: int, shards: int) -> str:
    return f"{shard}-of-{shards}"


def write_index_slices(embeddings: np.ndarray, folder: str | Path, shards: int, build: Any) -> list[dict[str, Any]]:
    """Split the catalog into `shards` consecutive slices, build each (`build(slice) -> (index, params)`) and
    write it under `folder`/ann-shards as `<i>-of-<n>.faiss` with its description (`offset`: the catalog row
    of its first item, so a shard server answers catalog rows). Each file is written atomically."""
    out = Path(folder) / SLICES_DIR
    out.mkdir(parents=True, exist_ok=True)
    described, offset = [], 0
    for i, part in enumerate(np.array_split(np.asarray(embeddings), shards)):
        index, params = build(np.ascontiguousarray(part, dtype=np.float32))
        name = slice_name(i, shards)
        meta = {"offset": offset, "rows": len(part), "shard": i, "shards": shards, "params": params}
        tmp = out / f".{name}.{os.getpid()}.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, out / f"{name}.faiss")
        (out / f".{name}.json.tmp").write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(out / f".{name}.json.tmp", out / f"{name}.json")
        described.append(meta)
        offset += len(part)
    return described


def has_index_slices(folder: str | Path, shards: int, n_items: int) -> bool:
    """Whether `folder` holds `shards` slices covering a catalog of `n_items`."""
    out = Path(folder) / SLICES_DIR
    try:
        metas = [json.loads((out / f"{slice_name(i, shards)}.json").read_text()) for i in range(shards)]
    except (OSError, ValueError):
        return False
    return all((out / f"{slice_name(i, shards)}.faiss").is_file() for i in range(shards)) and (
        sum(m["rows"] for m in metas) == n_items)


def read_index_slice(folder: str | Path, shard: int, shards: int) -> tuple[faiss.Index, dict[str, Any]]:
    """One slice written by `write_index_slices`, memory-mapped where FAISS allows, with its description."""
    out = Path(folder) / SLICES_DIR
    meta = json.loads((out / f"{slice_name(shard, shards)}.json").read_text())
    path = str(out / f"{slice_name(shard, shards)}.faiss")
    try:
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP)
    except RuntimeError:
        index = faiss.read_index(path)
    if meta["params"]["kind"] == "ivf_flat":
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
        if hasattr(lists, "prefetch_nthread"):
            lists.prefetch_nthread = 0  # as serving.index.load_index: no prefetch threads per search
    item_index.set_search_params(index, meta["params"])
    return index, meta
