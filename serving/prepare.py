"""Getting a model version ready to serve, and keeping its hottest answers warm.

* `prepare_version`: the last step of a version's validation. Builds its FAISS index into the version's
  artifact folder (exact below `index.EXACT_MAX_ITEMS` items, IVF above, parameters from the catalog
  size), records the parameters on the version (`metrics["index"]`) and, when asked, activates it. The
  training job queues it (by name: training never imports serving) instead of activating by itself, so
  a version becomes active only once its index exists: no request ever waits for an index build.
* `precompute_active_customers`: after an activation and nightly, the default-shape answers of the
  tenant's recently active customers are written into the answer cache the API reads, so their next
  request is a Redis read.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from recs.models import Customer, Event
from serving import forward, shards
from serving import index as item_index
from serving.answers import precompute_recommendations
from serving.funnel import recent_history
from serving.registry_cache import PkIndex, version_pks
from tenants.context import dangerously_all_tenants
from training.registry import load as registry
from training.registry.load import ModelVersion, TrainedRetrieval, make_history

log = logging.getLogger(__name__)
# Versions whose index may be (re)built: trained ones. A failed or archived version never serves.
SERVABLE = (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE)
PRECOMPUTE_TASK = "serving.tasks.precompute_recommendations"
PRECOMPUTE_CHUNK = 500  # customers per call of the answer writer (progress is logged per chunk)
# An IVF index's nprobe is tuned on the queries of this many recently active customers (fewer than the
# minimum: a new shop, and nprobe stays the one chosen from the catalog size).
TUNING_QUERIES = 300
MIN_TUNING_QUERIES = 50


def build_version_index(
    version: ModelVersion, *, policy: item_index.IndexPolicy = item_index.DEFAULT_POLICY
) -> dict[str, Any]:
    """Build (or find) the version's index and record its parameters on the version; idempotent."""
    folder = registry.local_path(version.artifact_uri)
    retrieval = TrainedRetrieval.load(folder / "retrieval")
    embeddings = retrieval.item_embeddings
    n_items, dim = embeddings.shape
    params = item_index.stored_params(folder)
    if not item_index.is_current(folder, n_items, dim):
        started = time.perf_counter()
        index, params = item_index.build_index(embeddings, exact_max_items=policy.exact_max_items)
        if params["kind"] == "ivf_flat":
            customers = recently_active_customers(version.tenant_id, TUNING_QUERIES)
            if len(customers) >= MIN_TUNING_QUERIES:  # else nprobe stays the one from the catalog size
                queries = customer_queries(version.tenant_id, retrieval, *version_pks(folder), customers)
                params.update(item_index.tune_nprobe(index, embeddings, queries, target=policy.tuning_recall,
                                                     max_probe_fraction=policy.max_probe_fraction))
                item_index.set_search_params(index, params)
        params["build_seconds"] = round(time.perf_counter() - started, 3)
        item_index.write_index(index, params, folder)
        # With an object store, other serving machines download the index instead of rebuilding it.
        registry.publish(version.artifact_uri, [item_index.INDEX_FILE, item_index.PARAMS_FILE])
        log.info("built the %s index of version %s (%d items) in %.1f s", params["kind"], version.pk, n_items,
                 params["build_seconds"])
    build_serving_shards(version, embeddings, params, policy=policy)
    with transaction.atomic():
        row = ModelVersion.objects.for_tenant(version.tenant_id).select_for_update().get(pk=version.pk)
        if row.metrics.get("index") != params:
            row.metrics = {**row.metrics, "index": params}
            row.save(update_fields=["metrics"])
    return params


def build_serving_shards(
    version: ModelVersion, embeddings: np.ndarray, params: dict[str, Any], *,
    policy: item_index.IndexPolicy = item_index.DEFAULT_POLICY,
) -> None:
    """The version's index slices for the shard servers (a catalog of at least RECSVC_ANN_SHARD_MIN_ITEMS, with
    servers configured) and its item embeddings as row shards (a table above RECSVC_SERVING_TABLE_BUDGET_BYTES);
    each only if missing."""
    folder = registry.local_path(version.artifact_uri)
    n_items, dim = embeddings.shape
    servers = len(settings.RECSVC_ANN_SHARD_SERVERS)
    written: list[str] = []
    if servers and n_items >= settings.RECSVC_ANN_SHARD_MIN_ITEMS and not shards.has_index_slices(
            folder, servers, n_items):
        started = time.perf_counter()
        shards.write_index_slices(embeddings, folder, servers, lambda part: _slice_index(part, params, policy))
        written += [f"{shards.SLICES_DIR}/{shards.slice_name(i, servers)}{ext}"
                    for i in range(servers) for ext in (".faiss", ".json")]
        log.info("wrote %d index slices of version %s in %.1f s", servers, version.pk, time.perf_counter() - started)
    budget = settings.RECSVC_SERVING_TABLE_BUDGET_BYTES
    if budget and embeddings.nbytes > budget and not shards.is_sharded(folder / shards.ITEM_ROWS_DIR):
        out = shards.write_row_shards(embeddings, folder / shards.ITEM_ROWS_DIR, shards.rows_per_shard(dim, budget))
        written += [f"{shards.ITEM_ROWS_DIR}/{p.name}" for p in sorted(out.iterdir())]
    if written:
        registry.publish(version.artifact_uri, written)


def _slice_index(part: np.ndarray, whole: dict[str, Any], policy: item_index.IndexPolicy) -> tuple[Any, dict]:
    """One slice's index: chosen from the slice's size, probing the share of its lists that the whole catalog's
    (tuned) index probes, so each slice scans what the whole index would of it."""
    index, params = item_index.build_index(part, exact_max_items=policy.exact_max_items)
    if params["kind"] == "ivf_flat" and whole.get("kind") == "ivf_flat":
        share = int(whole["nprobe"]) / int(whole["nlist"])
        params["nprobe"] = max(1, min(int(params["nlist"]), math.ceil(share * int(params["nlist"]))))
        item_index.set_search_params(index, params)
    return index, params


def recently_active_customers(tenant_id: int, limit: int) -> list[int]:
    """Pks of up to `limit` customers with the newest events (through the tenant's time-ordered index)."""
    pks: dict[int, None] = {}
    for pk in Event.objects.for_tenant(tenant_id).order_by("-ts").values_list("customer_id", flat=True)[:50 * limit]:
        pks.setdefault(pk)
        if len(pks) == limit:
            break
    return list(pks)


def customer_queries(
    tenant_id: int, retrieval: TrainedRetrieval, product_pks: np.ndarray, customer_pks: np.ndarray,
    customers: list[int],
) -> np.ndarray:
    """The retrieval queries of these customers (pks), built as the funnel builds them: their latest
    events, weighted, through the version's customer tower."""
    products, known_customers = PkIndex.of(product_pks), PkIndex.of(customer_pks)
    histories, weights = [], []
    for pk in customers:
        history_pks, w = recent_history(tenant_id, pk, None, retrieval.history_len)
        items = products.positions(history_pks)
        histories.append(items[items >= 0].tolist())
        weights.append(w[items >= 0].tolist())
    history = make_history(histories, weights, max_len=retrieval.history_len, recency_decay=retrieval.recency_decay)
    indices = known_customers.positions(np.array(customers, dtype=np.int64))
    return forward.embed_customers(retrieval, indices, history)


def prepare_version(
    tenant_id: int, version_id: int, *, activate: bool = False,
    policy: item_index.IndexPolicy = item_index.DEFAULT_POLICY,
) -> str:
    """Index the version; then activate it (`activate`) or, if it is the active one, precompute answers.

    Returns what happened: "activated", "refused", "indexed", "precomputing", "skipped" or "failed"."""
    version = ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id).first()
    if version is None or version.status not in SERVABLE or not version.artifact_uri:
        return "skipped"  # deleted, failed or archived meanwhile: a late message does no harm
    try:
        build_version_index(version, policy=policy)
    except Exception as exc:
        log.exception("index build of version %s (tenant %s) failed", version_id, tenant_id)
        if version.status == ModelVersion.Status.READY:
            ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id).update(
                status_reason=f"not activated: index build failed: {type(exc).__name__}: {exc}"
            )
        return "failed"
    if activate and version.status == ModelVersion.Status.READY:
        try:
            registry.activate(version)  # queues this task again (a no-op build) and the precompute
        except registry.ActivationRefused:
            return "refused"  # the reason is stored on the version
        return "activated"
    if version.status == ModelVersion.Status.ACTIVE:
        registry.send_task_by_name(PRECOMPUTE_TASK, tenant_id, version_id)
        return "precomputing"
    ModelVersion.objects.for_tenant(tenant_id).filter(
        pk=version_id, status=ModelVersion.Status.READY, status_reason__startswith="index build queued"
    ).update(status_reason="indexed, ready to activate")
    return "indexed"


def active_customers(tenant_id: int, *, days: int, limit: int) -> list[str]:
    """External ids of the customers with events in the trailing `days`, most recently active first.

    The window ends at the tenant's newest event rather than now (as for popular items): a shop whose
    feed paused, or a historical demo data set, still has customers worth warming."""
    events = Event.objects.for_tenant(tenant_id)
    latest = events.aggregate(latest=Max("ts"))["latest"]
    if latest is None or limit <= 0:
        return []
    recent = (
        events.filter(ts__gt=latest - dt.timedelta(days=days))
        .values("customer_id")
        .annotate(last=Max("ts"))
        .order_by("-last", "customer_id")
        .values_list("customer_id", flat=True)[:limit]
    )
    pks = list(recent)
    names = dict(Customer.objects.for_tenant(tenant_id).filter(pk__in=pks).values_list("pk", "external_id"))
    return [names[pk] for pk in pks if pk in names]


def precompute_active_customers(
    tenant_id: int, version_id: int | None = None, *, k: int = 10, chunk: int = PRECOMPUTE_CHUNK
) -> dict[str, Any]:
    """Write the default-shape answers of the tenant's active customers into the answer cache.

    Skipped when `version_id` is given and is no longer the active version (a newer activation queued
    its own precompute). Progress is logged per chunk; the counts are the task's result."""
    active = registry.active_version(tenant_id)
    if active is None or (version_id is not None and active.pk != version_id):
        return {"status": "skipped", "customers": 0, "written": 0}
    started = time.perf_counter()
    customers = active_customers(
        tenant_id, days=settings.RECSVC_PRECOMPUTE_ACTIVE_DAYS, limit=settings.RECSVC_PRECOMPUTE_MAX_CUSTOMERS
    )
    written = 0
    for lo in range(0, len(customers), chunk):
        written += precompute_recommendations(tenant_id, customers[lo:lo + chunk], k=k)  # the API's cache writer
        log.info("precompute of tenant %s (version %s): %d of %d customers done", tenant_id, active.pk,
                 min(lo + chunk, len(customers)), len(customers))
    seconds = round(time.perf_counter() - started, 2)
    log.info("precomputed %d answers for %d active customers of tenant %s in %.1f s", written, len(customers),
             tenant_id, seconds)
    return {"status": "done", "version": active.pk, "customers": len(customers), "written": written,
            "seconds": seconds}


def tenants_with_active_version() -> list[int]:
    with dangerously_all_tenants():  # only to list them; each precompute runs as its tenant
        return sorted(
            ModelVersion.objects.dangerously_all_tenants()
            .filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.RECOMMENDER)
            .values_list("tenant_id", flat=True)
            .distinct()
        )
