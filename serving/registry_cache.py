"""Per-process cache of each tenant's active model: weights, FAISS index and the index <-> pk maps.

Retrieval searches the version's index in process, or, for a version with at least
RECSVC_ANN_SHARD_MIN_ITEMS items when shard servers are configured and its slices exist, the shard servers
(serving/shard_client.py): `ServedModel.search` is the one call for both. Item embeddings are read through
`ServedModel.item_rows`: from memory, or, for a table above RECSVC_SERVING_TABLE_BUDGET_BYTES whose row
shards exist, through memory-mapped row shards within that budget (serving/shards.py).

The active version id is looked up through the shared cache (`active_version_cache_key`, deleted by
activation once it commits; short TTL; database fallback), so activating a version swaps the served model
on every process's next request, without a restart. Artifacts are read only through the registry's load
API (training/registry/load.py).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from django.conf import settings
from django.core.cache import cache

from serving import index as item_index
from serving.shard_client import Hits, ShardClient
from serving.shards import ITEM_ROWS_DIR, ShardedTable, has_index_slices, is_sharded
from tenants.context import tenant_context
from training.registry.load import (
    ModelVersion,
    TrainedRanker,
    TrainedRetrieval,
    active_version,
    active_version_cache_key,
    local_path,
)

log = logging.getLogger(__name__)
_NO_VERSION = 0  # cached "this tenant has no active version" (None means a cache miss)


@dataclass
class ServedModel:
    version_id: int
    retrieval: TrainedRetrieval
    ranker: TrainedRanker
    num_candidates: int
    index: faiss.Index | None  # None: searched through the shard servers
    index_params: dict[str, Any]
    product_pks: np.ndarray  # item index -> Product.pk
    customer_pks: np.ndarray  # customer index -> Customer.pk
    _products: PkIndex
    _customers: PkIndex
    shards: ShardClient | None = None
    shard_index: str = ""  # the version's folder as the shard servers name it
    item_table: ShardedTable | None = None  # the item embeddings' row shards (a table above the budget)

    @property
    def n_items(self) -> int:
        return len(self.product_pks)

    def search(self, queries: np.ndarray, k: int) -> Hits:
        """Top k item indices (and scores) of each query, in process or over the shard servers."""
        k = max(1, min(int(k), self.n_items))
        if self.shards is not None:
            return self.shards.search(self.shard_index, queries, k)
        scores, ids = item_index.search(self.index, queries, k)
        return Hits(scores, ids)

    def item_rows(self, items: np.ndarray) -> np.ndarray:
        """The item embeddings of these item indices (float32, a copy)."""
        if self.item_table is not None:
            return self.item_table.take(np.asarray(items, dtype=np.int64))
        return np.asarray(self.retrieval.item_embeddings[items], dtype=np.float32)

    def item_indices(self, product_pks: np.ndarray) -> np.ndarray:
        """Item index of each product pk, -1 for products the model was not trained on."""
        return self._products.positions(product_pks)

    def customer_index(self, customer_pk: int | None) -> int:
        if customer_pk is None:
            return -1
        return int(self._customers.positions(np.array([customer_pk]))[0])


@dataclass(frozen=True)
class PkIndex:
    """Database pk -> position in a version's arrays, by binary search over the pks sorted once at load
    (sorting or gathering the million pks of a big catalog per request cost milliseconds)."""

    order: np.ndarray
    sorted_pks: np.ndarray

    @staticmethod
    def of(pks: np.ndarray) -> PkIndex:
        order = np.argsort(pks, kind="stable")
        return PkIndex(order, pks[order])

    def positions(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=np.int64)
        if len(self.sorted_pks) == 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.sorted_pks, wanted), 0, len(self.sorted_pks) - 1)
        return np.where(self.sorted_pks[pos] == wanted, self.order[pos], -1).astype(np.int64)


def active_version_id(tenant_id: int) -> int | None:
    """The tenant's active recommender version id (at most RECSVC_ACTIVE_VERSION_TTL_SECONDS stale)."""
    cached = cache.get(active_version_cache_key(tenant_id))
    if cached is None:
        # Its own scope: read from outside one, row-level security would show no version at all, and
        # "no active model" would be cached for every process.
        with tenant_context(tenant_id):
            version = active_version(tenant_id)
        cached = version.pk if version is not None else _NO_VERSION
        cache.set(active_version_cache_key(tenant_id), cached, settings.RECSVC_ACTIVE_VERSION_TTL_SECONDS)
    return int(cached) or None


def forget_active_version(tenant_id: int) -> None:
    """Make every process re-read the active version on its next request (activation does this itself)."""
    cache.delete(active_version_cache_key(tenant_id))


_loaded: dict[int, ServedModel] = {}
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def version_pks(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(product pks, customer pks) of a version's artifacts, by its item and customer indices."""
    return tuple(np.load(Path(folder) / name, allow_pickle=False).astype(np.int64)
                 for name in ("product_pks.npy", "customer_pks.npy"))


_shard_client: ShardClient | None = None
_shard_client_lock = threading.Lock()


def shard_client() -> ShardClient | None:
    """The process's client of the shard servers (None: none configured)."""
    global _shard_client
    servers = list(settings.RECSVC_ANN_SHARD_SERVERS)
    with _shard_client_lock:
        if not servers:
            return None
        if _shard_client is None or _shard_client.addresses != servers:
            _shard_client = ShardClient(servers, settings.RECSVC_ANN_SHARD_SECRET.encode(),
                                        settings.RECSVC_ANN_SHARD_TIMEOUT_MS / 1000)
        return _shard_client


def shard_index_name(folder: Path) -> str | None:
    """The version folder as the shard servers name it (relative to the artifact folder), None if outside it."""
    try:
        return Path(folder).resolve().relative_to(Path(settings.RECSVC_ARTIFACT_DIR).resolve()).as_posix()
    except ValueError:
        return None


def _item_table(folder: Path, n_items: int, dim: int, version_id: int) -> ShardedTable | None:
    """The item embeddings' row shards when the table is above the process's budget (None: read it whole)."""
    budget = settings.RECSVC_SERVING_TABLE_BUDGET_BYTES
    if not budget or n_items * dim * 4 <= budget:
        return None
    if not is_sharded(folder / ITEM_ROWS_DIR):
        log.warning("version %s: item table above the budget of %d bytes has no row shards: read whole",
                    version_id, budget)
        return None
    return ShardedTable(folder / ITEM_ROWS_DIR, budget)


def load_served_model(version: ModelVersion) -> ServedModel:
    folder = local_path(version.artifact_uri)
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    n_items, dim = np.load(folder / "retrieval" / "item_embeddings.npy", mmap_mode="r").shape  # the header only
    table = _item_table(folder, n_items, dim, version.pk)
    retrieval = TrainedRetrieval.load(folder / "retrieval", mmap_embeddings=table is not None)
    ranker = TrainedRanker.load(folder / "ranker")
    client, name = shard_client(), shard_index_name(folder)
    if client is not None and n_items >= settings.RECSVC_ANN_SHARD_MIN_ITEMS and name is not None and (
            has_index_slices(folder, len(client.addresses), n_items)):
        index, params = None, item_index.stored_params(folder) or {}
    else:
        if client is not None and n_items >= settings.RECSVC_ANN_SHARD_MIN_ITEMS:
            log.warning("version %s: no index slices for the %d shard servers: searched in process",
                        version.pk, len(client.addresses))
        client = None
        index, params = item_index.ensure_index(
            folder, retrieval.item_embeddings, reason=f"in this serving process for version {version.pk}"
        )
    product_pks, customer_pks = version_pks(folder)
    if len(product_pks) != len(retrieval.item_embeddings):
        raise ValueError(f"version {version.pk}: {len(product_pks)} product pks for "
                         f"{len(retrieval.item_embeddings)} item embeddings")
    return ServedModel(
        version_id=version.pk,
        retrieval=retrieval,
        ranker=ranker,
        num_candidates=int(manifest["num_candidates"]),
        index=index,
        index_params=params,
        product_pks=product_pks,
        customer_pks=customer_pks,
        _products=PkIndex.of(product_pks),
        _customers=PkIndex.of(customer_pks),
        shards=client,
        shard_index=name or "",
        item_table=table,
    )


def served_model(tenant_id: int) -> ServedModel | None:
    """The loaded active model of the tenant, or None (no active version, or its artifacts unreadable:
    the caller degrades to popular items rather than failing the request)."""
    version_id = active_version_id(tenant_id)
    if version_id is None:
        return None
    current = _loaded.get(tenant_id)
    if current is not None and current.version_id == version_id:
        return current
    with _locks_guard:
        lock = _locks.setdefault(tenant_id, threading.Lock())
    with lock:  # one load per tenant at a time; other tenants are not blocked
        current = _loaded.get(tenant_id)
        if current is not None and current.version_id == version_id:
            return current
        version = ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id).first()
        if version is None or not version.artifact_uri:
            forget_active_version(tenant_id)
            return None
        try:
            model = load_served_model(version)
        except Exception:
            log.exception("cannot load version %s of tenant %s; serving without a model", version_id, tenant_id)
            return current
        _loaded[tenant_id] = model  # the previous version is dropped with its last reference
        return model


def clear() -> None:
    """Drop every loaded model (tests, and a process that must free memory)."""
    _loaded.clear()
