"""FAISS indexes over a model version's item embeddings, stored next to the version's artifacts.

Embeddings are L2-normalised, so inner product is cosine. Small catalogs get an exact flat index;
above `exact_max_items`, an IVF index with nlist ~ 4 * sqrt(n) and nprobe first from the catalog size,
then tuned on the shop's own customer queries (`tune_nprobe`, called by serving/prepare.py). The
parameters (type, nlist, nprobe, the tuning's measurement) are recorded in a JSON file beside the index
so serving and benchmarks know what they load.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)
INDEX_FILE = "items.faiss"
PARAMS_FILE = "items.faiss.json"
EXACT_MAX_ITEMS = 50_000
# Share of the inverted lists scanned per query: the budget is at most 5% of the catalog. With
# spherical k-means the lists are about equal in size, so this is also about the share of items scanned
# (tests/bench/serving.py measures the real share, recall@100 and latency per nprobe).
DEFAULT_PROBE_FRACTION = 0.045
# Tuning: the smallest nprobe whose recall@100 against exact search reaches TUNING_RECALL on a sample of
# the shop's queries (the issue asks 0.99; the margin covers the sample's noise), within the scan budget.
# A fixed share fits no catalog size: on the 1M shop 1.2% of the lists reached 0.995 while 4.5% were
# scanned (1.7 ms per query against 0.3), and on a 20k one 4.2% reached only 0.975.
TUNING_RECALL = 0.995
MAX_PROBE_FRACTION = 0.05
_PROBE_LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 448, 512)


@dataclass(frozen=True)
class IndexPolicy:
    """How a version's index is chosen and tuned (serving/prepare.py): exact up to `exact_max_items`,
    IVF above, its nprobe the smallest reaching `tuning_recall` within `max_probe_fraction` of the lists."""

    exact_max_items: int = EXACT_MAX_ITEMS
    max_probe_fraction: float = MAX_PROBE_FRACTION
    tuning_recall: float = TUNING_RECALL


DEFAULT_POLICY = IndexPolicy()


def choose_params(n_items: int, dim: int, *, exact_max_items: int | None = None) -> dict[str, Any]:
    """Index type and parameters from the catalog size."""
    if n_items <= (EXACT_MAX_ITEMS if exact_max_items is None else exact_max_items):
        return {"kind": "flat", "metric": "inner_product", "n_items": n_items, "dim": dim}
    nlist = max(1, min(n_items, round(4 * math.sqrt(n_items))))
    nprobe = max(1, min(nlist, math.ceil(nlist * DEFAULT_PROBE_FRACTION)))
    return {"kind": "ivf_flat", "metric": "inner_product", "n_items": n_items, "dim": dim,
            "nlist": nlist, "nprobe": nprobe, "clustering": "spherical"}


def build_index(
    embeddings: np.ndarray, params: dict[str, Any] | None = None, *, exact_max_items: int | None = None
) -> tuple[faiss.Index, dict[str, Any]]:
    """An index over `embeddings` (row i = item index i) and the parameters it was built with."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    n, dim = emb.shape
    params = dict(params or choose_params(n, dim, exact_max_items=exact_max_items))
    if params["kind"] == "flat":
        index = faiss.IndexFlatIP(dim)
    elif params["kind"] == "ivf_flat":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0  # the same embeddings always give the same lists
        # Unit-norm centroids for unit-norm vectors (cosine). Plain k-means on trained embeddings gave a few
        # huge lists: on a 20k-item shop two lists of 566 held 5% of the catalog, so a query scanned far more
        # than nprobe / nlist; spherical lists are balanced and reached the same recall scanning half as much.
        index.cp.spherical = params.get("clustering", "spherical") == "spherical"
        index.train(emb)
    else:
        raise ValueError(f"unknown index kind {params['kind']!r}")
    index.add(emb)
    set_search_params(index, params)
    return index, params


def tune_nprobe(
    index: faiss.Index, embeddings: np.ndarray, queries: np.ndarray, *, target: float = TUNING_RECALL, k: int = 100,
    max_probe_fraction: float = MAX_PROBE_FRACTION,
) -> dict[str, Any]:
    """{"nprobe", "tuning"}: the smallest nprobe (of a ladder, at most `max_probe_fraction` of the lists)
    whose recall@k against exact search over `embeddings` reaches `target` on `queries`, and what was
    measured there (recall, share of the catalog scanned, queries, whether the target was reached)."""
    ivf = faiss.extract_index_ivf(index)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, index.ntotal)
    exact = faiss.IndexFlatIP(emb.shape[1])
    exact.add(emb)
    truth = exact.search(q, k)[1]
    cap = max(1, math.floor(ivf.nlist * max_probe_fraction))
    previous, stats = ivf.nprobe, faiss.cvar.indexIVF_stats
    try:
        for nprobe in [p for p in _PROBE_LADDER if p < cap] + [cap]:
            ivf.nprobe = nprobe
            stats.reset()
            found = index.search(q, k)[1]
            recall = float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True)])) / k
            if recall >= target:
                break
    finally:
        ivf.nprobe = previous
    scanned = stats.ndis / (len(q) * index.ntotal)
    return {"nprobe": nprobe, "tuning": {"target_recall": target, "recall": round(recall, 4), "k": k,
                                         "scanned": round(scanned, 4), "queries": len(q), "reached": recall >= target}}


def set_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    if params["kind"] == "ivf_flat":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def write_index(index: faiss.Index, params: dict[str, Any], folder: str | Path) -> Path:
    """Write atomically (temp file + rename): a concurrent reader sees the old file or the new one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INDEX_FILE
    tmp = folder / f".{INDEX_FILE}.{os.getpid()}.tmp"
    faiss.write_index(index, str(tmp))
    tmp_params = folder / f".{PARAMS_FILE}.{os.getpid()}.tmp"
    tmp_params.write_text(json.dumps(params, indent=2, sort_keys=True))
    os.replace(tmp_params, folder / PARAMS_FILE)
    os.replace(tmp, path)
    return path


def load_index(folder: str | Path) -> tuple[faiss.Index, dict[str, Any]]:
    """Read the index memory-mapped where its type allows (flat codes, IVF lists)."""
    folder = Path(folder)
    params = json.loads((folder / PARAMS_FILE).read_text())
    flag = faiss.IO_FLAG_MMAP_IFC if params["kind"] == "flat" else faiss.IO_FLAG_MMAP
    try:
        index = faiss.read_index(str(folder / INDEX_FILE), flag)
    except RuntimeError:
        index = faiss.read_index(str(folder / INDEX_FILE))
    if params["kind"] == "ivf_flat":
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
        if hasattr(lists, "prefetch_nthread"):
            # Memory-mapped lists are OnDiskInvertedLists, which start 32 threads per search to prefetch
            # the lists it will scan: on the 1M shop a query then cost 1.45 ms (more in CPU) against 0.30
            # without them and 0.20 from the heap. The mapped pages are in the page cache anyway.
            lists.prefetch_nthread = 0
    set_search_params(index, params)
    return index, params


def stored_params(folder: str | Path) -> dict[str, Any] | None:
    """The parameters of the index stored in `folder`, None if there is none."""
    folder = Path(folder)
    if not (folder / INDEX_FILE).exists():
        return None
    try:
        return json.loads((folder / PARAMS_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_current(folder: str | Path, n_items: int, dim: int) -> bool:
    """Whether `folder` holds an index over a catalog of this shape (written by `write_index`)."""
    params = stored_params(folder)
    return params is not None and params.get("n_items") == n_items and params.get("dim") == dim


def ensure_index(
    folder: str | Path, embeddings: np.ndarray, *, reason: str = "", **kwargs: Any
) -> tuple[faiss.Index, dict[str, Any]]:
    """Load the version's index, building and storing it first if it is missing (or stale).

    Indexes are built by the `serving.tasks.build_index` job before a version is activated; a build
    here means that job did not run (or its files were lost), so it is logged."""
    folder = Path(folder)
    if is_current(folder, len(embeddings), embeddings.shape[1]):
        index, params = load_index(folder)
        if index.ntotal == len(embeddings) and index.d == embeddings.shape[1]:
            return index, params
    if reason:
        log.warning("no index in %s: building it %s (%d items)", folder, reason, len(embeddings))
    index, params = build_index(embeddings, **kwargs)
    write_index(index, params, folder)
    return load_index(folder)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, item indices) of shape (Q, k'); k' = min(k, catalog size); missing hits have index -1."""
    k = max(1, min(int(k), index.ntotal))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids
