"""Serving benchmark: recommendation latency against a no-op on the same server, ANN quality on trained
item embeddings, and the cost of 1,000 requests.

    python tests/bench/serving.py                  # 1,000,000-product synthetic shop (the issue's figure)
    python tests/bench/serving.py --items 20000    # quick check, a couple of minutes

DATABASE_URL / REDIS_URL default to the local services (see tests/bench/_load.py). The script migrates,
loads two tenants through the product's own ingestion functions: the MovieLens demo tenant and a
synthetic shop with `--items` products; trains the project's own models on both through the training
job (`training.jobs.run_training`, a small/fast hyper-parameter set for the shop: see SHOP_PARAMS), which
hands the version to the index build job (`serving.tasks.build_index`, run in process here) that indexes
and activates it. Then gunicorn as deployed (`config/gunicorn.py`) serves both tenants on a loopback port
and 8 concurrent clients measure, alternating phases so they share the machine's noise:

* no-op: GET /healthz, a JSON view without dependencies, on the same server;
* uncached recommendations: GET /v1/recommendations for distinct customers, each asked once (misses);
* cached recommendations: customers whose answers the batch precompute wrote into the answer cache;
* similar products: GET /v1/products/<id>/similar for distinct products, each asked once (misses).

ANN quality: over the shop's trained item embeddings, with customer embeddings as queries (the funnel's
own query vectors from each customer's latest events: the recommendation path), Recall@100 of the IVF
index against the exact top-100 per nprobe, with the share of the catalog each query scans (FAISS's own
distance count) and the single-query latency; item embeddings as queries (similar products) are
reported beside each row. The smallest nprobe reaching Recall@100 >= 0.99 while scanning <= 5% is the
operating point (serving/index.py's own choice is printed beside it); if serving's nlist cannot reach
it, twice as many lists are tried.

Cost per 1,000 requests: measured uncached throughput per core of this machine (all of its cores: the
server, PostgreSQL, Redis and the load generator share them, so this over-states the cost) at a stated
price per vCPU-hour (--price-per-core-hour, default: AWS m7i.large on-demand, us-east-1, $0.1008/h for
2 vCPUs = $0.0504 per vCPU-hour). The LAST line is one JSON object with the figures.

The machine is small and shared: compare figures of one run with each other, not across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

CLIENTS = 8
# Small and fast for a large catalog: one epoch, a narrow embedding, big batches. MovieLens uses the
# project's defaults (its hyper-parameters were tuned on it).
SHOP_PARAMS = {
    "retrieval": {"dim": 32, "epochs": 1, "batch_size": 8192, "history_len": 20},
    "ranker": {"epochs": 1, "batch_size": 8192},
    "num_candidates": 100,
}
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 200, 256, 320, 400, 512)
SCAN_BUDGET = 0.05
RECALL_TARGET = 0.99


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="products in the synthetic shop")
    parser.add_argument("--customers", type=int, default=None, help="customers (default: items / 25, >= 10,000)")
    parser.add_argument("--events", type=int, default=None, help="events (default: 2 x items, >= 200,000)")
    parser.add_argument("--requests", type=int, default=2_000, help="timed requests per latency phase")
    parser.add_argument("--queries", type=int, default=1_000, help="ANN queries of each kind")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: config/gunicorn.py's)")
    parser.add_argument("--worker-class", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, help="threads per gthread worker")
    parser.add_argument("--price-per-core-hour", type=float, default=0.0504, help="USD per vCPU-hour")
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--skip-ann", action="store_true", help="no ANN quality curve (e.g. with --reuse)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the bench tenants for --reuse (the next run without --reuse removes them)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure the tenants a --keep run left (no loading, no training)")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- tenants ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BenchTenant:
    tenant_id: int
    api_key: str
    version_id: int = 0
    load_s: float = 0.0
    train_s: float = 0.0
    n_items: int = 0


def _new_tenant(name: str) -> BenchTenant:
    from tenants.api_keys import create_api_key
    from tenants.models import Tenant

    # A paid plan: the benchmark measures serving, not the free plan's monthly quota. The slug names this
    # process, so a concurrent run never takes its tenants for leftovers.
    tenant = Tenant.objects.create(
        name=name, slug=f"bench-serving-{os.getpid()}-{uuid.uuid4().hex[:8]}", plan=Tenant.Plan.SCALE
    )
    _, raw_key = create_api_key(tenant, name="bench", scopes=["recommend"])
    return BenchTenant(tenant.pk, raw_key)


_PRODUCT_FK_INDEX = "bench_serving_tmp_event_product_idx"


def _delete_tenant(tenant_id: int) -> None:
    """Raw deletes, children first (millions of events through the ORM's collector take far too long)."""
    from django.db import connection

    from tenants.context import tenant_context
    from tenants.models import Tenant
    from training.registry import storage
    from training.registry.models import ModelVersion

    with tenant_context(tenant_id):
        for version_id in ModelVersion.objects.for_tenant(tenant_id).values_list("pk", flat=True):
            storage.discard(tenant_id, version_id)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM recs_event WHERE tenant_id = %s", [tenant_id])
            cursor.execute("DELETE FROM training_modelversion WHERE tenant_id = %s", [tenant_id])
            cursor.execute("VACUUM recs_event")
            # recs_event has no index on product_id: without this one each deleted product's foreign-key
            # check would scan the event table (see tests/bench/ingest.py).
            cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_PRODUCT_FK_INDEX} ON recs_event (product_id)")
            try:
                for table in ("recs_eventtype", "recs_customerversion", "recs_productversion", "recs_customer",
                              "recs_product"):
                    cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])
            finally:
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_PRODUCT_FK_INDEX}")
        Tenant.objects.filter(pk=tenant_id).delete()


def _remove_stale_bench_tenants() -> None:
    from tenants.models import Tenant

    for tenant_id, slug in Tenant.objects.filter(slug__startswith="bench-serving-").values_list("pk", "slug"):
        pid = slug.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists():
            continue  # another benchmark run, still going
        if not pid.isdigit():
            continue  # not named by this script's current scheme: left alone
        _log(f"removing a bench tenant left by an interrupted run (id {tenant_id})")
        _delete_tenant(tenant_id)


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE recs_customer; ANALYZE recs_product; ANALYZE recs_event")


def _train(bench: BenchTenant, hyperparameters: dict) -> None:
    from tenants.context import tenant_context
    from training.jobs import run_training
    from training.registry.models import ModelVersion

    started = time.perf_counter()
    with tenant_context(bench.tenant_id):
        version = ModelVersion.objects.create(tenant_id=bench.tenant_id, trigger="cli", hyperparameters=hyperparameters)
        version = run_training(version)
    bench.train_s = time.perf_counter() - started
    if version.status != ModelVersion.Status.ACTIVE:
        raise RuntimeError(f"version {version.pk} is {version.status}: {version.status_reason}")
    bench.version_id, bench.n_items = version.pk, version.n_items


def load_movielens_tenant() -> BenchTenant:
    from demo.load import load_movielens
    from tenants.context import tenant_context

    bench = _new_tenant("Serving benchmark: MovieLens")
    started = time.perf_counter()
    with tenant_context(bench.tenant_id):
        load_movielens(bench.tenant_id)
        _analyze()
    bench.load_s = time.perf_counter() - started
    _log(f"movielens loaded in {bench.load_s:.0f} s; training")
    _train(bench, {})
    _log(f"movielens trained and activated in {bench.train_s:.0f} s")
    return bench


def load_shop_tenant(spec) -> BenchTenant:
    from demo.load import load_events, synthetic_events
    from demo.synthetic import generate_catalog, iter_event_chunks
    from recs.ingest.catalog import upsert_customers, upsert_products
    from tenants.context import tenant_context

    bench = _new_tenant("Serving benchmark: synthetic shop")
    catalog = generate_catalog(spec)
    started = time.perf_counter()
    with tenant_context(bench.tenant_id):
        n_products, n_customers = len(catalog.products), len(catalog.customers)
        for start in range(0, n_products, 1_000):
            upsert_products(bench.tenant_id, list(catalog.iter_product_records(start, min(start + 1_000, n_products))))
            if start % 100_000 == 0:
                _analyze()  # statistics of an empty table make the upserts' lookups seq scans
                _log(f"shop: {start:,} of {n_products:,} products")
        for start in range(0, n_customers, 1_000):
            records = catalog.iter_customer_records(start, min(start + 1_000, n_customers))
            upsert_customers(bench.tenant_id, [{k: v for k, v in r.items() if k != "created_at"} for r in records])
        _analyze()
        progress_every = max(1, spec.n_events // 10)

        def progress(stage: str, done: int, total: int) -> None:
            if done % progress_every < 10_000:
                _log(f"shop: {done:,} of ~{total:,} events")

        load_events(bench.tenant_id, synthetic_events(iter_event_chunks(spec, catalog)), spec.n_events, progress)
        _analyze()
    bench.load_s = time.perf_counter() - started
    _log(f"shop loaded in {bench.load_s:.0f} s; training")
    _train(bench, SHOP_PARAMS)
    _log(f"shop trained, indexed and activated in {bench.train_s:.0f} s")
    return bench


def _kept_tenants() -> tuple[BenchTenant | None, BenchTenant]:
    """The MovieLens and shop tenants a `--keep` run left, each with a fresh API key."""
    from tenants.api_keys import create_api_key
    from tenants.context import tenant_context
    from tenants.models import Tenant
    from training.registry import lifecycle

    found: dict[str, BenchTenant] = {}
    for tenant in Tenant.objects.filter(slug__startswith="bench-serving-").order_by("pk"):
        with tenant_context(tenant.pk):
            version = lifecycle.active_version(tenant.pk)
        if version is None:
            continue
        _, raw_key = create_api_key(tenant, name="bench", scopes=["recommend"])
        kind = "movielens" if "MovieLens" in tenant.name else "shop"
        found[kind] = BenchTenant(tenant.pk, raw_key, version.pk, n_items=version.n_items)
    if "shop" not in found:
        raise SystemExit("no kept bench shop with an active version: run with --keep first")
    return found.get("movielens"), found["shop"]


# --- who to ask -------------------------------------------------------------------------------------------


def _customers_with_history(tenant_id: int, limit: int, seed: int) -> list[str]:
    """External ids of customers with events (the model knows them), shuffled."""
    from django.db import connection

    from tenants.context import tenant_context

    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.external_id FROM recs_customer c WHERE c.tenant_id = %s AND EXISTS"
            " (SELECT 1 FROM recs_event e WHERE e.tenant_id = c.tenant_id AND e.customer_id = c.id)",
            [tenant_id],
        )
        ids = [row[0] for row in cursor.fetchall()]
    random.Random(seed).shuffle(ids)
    return ids[:limit]


def _products_with_events(tenant_id: int, limit: int, seed: int) -> list[str]:
    from django.db import connection

    from tenants.context import tenant_context

    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.external_id FROM recs_product p WHERE p.tenant_id = %s AND p.id IN"
            " (SELECT DISTINCT product_id FROM recs_event WHERE tenant_id = %s) ORDER BY p.id",
            [tenant_id, tenant_id],
        )
        ids = [row[0] for row in cursor.fetchall()]
    random.Random(seed).shuffle(ids)
    return ids[:limit]


def _get(path: str, api_key: str) -> bytes:
    return _load.build_request("GET", path, headers={"Authorization": f"Bearer {api_key}"})


def _recommend_requests(bench: BenchTenant, customers: list[str]) -> list[bytes]:
    return [_get(f"/v1/recommendations?customer_id={c}&k=10", bench.api_key) for c in customers]


def _similar_requests(bench: BenchTenant, products: list[str]) -> list[bytes]:
    return [_get(f"/v1/products/{p}/similar?k=10", bench.api_key) for p in products]


def _precompute(server, bench: BenchTenant, customers: list[str], requests: list[bytes]) -> tuple[int, float, str]:
    """The batch precompute's own writer (serving.answers), as the post-activation task calls it; where
    that module is missing, the answers are cached by asking for them once over HTTP instead."""
    from tenants.context import tenant_context

    started = time.perf_counter()
    try:
        from serving.answers import precompute_recommendations

        with tenant_context(bench.tenant_id):
            written = precompute_recommendations(bench.tenant_id, customers, k=10)
        return written, time.perf_counter() - started, "precompute"
    except Exception as exc:  # reported in the figures; the phase still measures cache hits
        _log(f"the batch precompute failed ({type(exc).__name__}: {exc}); caching the answers over HTTP")
        result = _load.run_closed_loop(server.address, requests, concurrency=CLIENTS)
        return result.statuses.get(200, 0), time.perf_counter() - started, f"http-warmed ({type(exc).__name__})"


# --- the latency phases --------------------------------------------------------------------------------------


def _phase(server, requests: list[bytes], expect: int = 200) -> tuple[_load.LoadResult, float]:
    """One closed-loop run; returns the result and the server workers' CPU seconds it took."""
    pids = server.worker_pids()
    before = sum(map(_load.cpu_seconds, pids))
    result = _load.run_closed_loop(server.address, requests, concurrency=CLIENTS, max_seconds=300)
    cpu_s = sum(map(_load.cpu_seconds, pids)) - before
    if set(result.statuses) != {expect}:
        raise RuntimeError(f"expected {expect}, got {dict(result.statuses)}")
    return result, cpu_s


def bench_latency(server, shop: BenchTenant, n_requests: int, movielens: BenchTenant | None) -> dict:
    rounds = 2
    per_round = -(-n_requests // rounds)
    warmup = min(200, max(20, n_requests // 4))
    customers = _customers_with_history(shop.tenant_id, 2 * (warmup + rounds * per_round), seed=1)
    if len(customers) < 2 * (warmup + rounds * per_round):
        raise RuntimeError(f"only {len(customers)} customers with events; lower --requests or raise --customers")
    uncached_customers = customers[: warmup + rounds * per_round]
    cached_customers = customers[warmup + rounds * per_round:]
    products = _products_with_events(shop.tenant_id, warmup + rounds * per_round, seed=2)
    if len(products) < warmup + rounds * per_round:
        raise RuntimeError(f"only {len(products)} products with events")

    noop = [_load.build_request("GET", "/healthz")] * (warmup + rounds * per_round)
    uncached = _recommend_requests(shop, uncached_customers)
    cached = _recommend_requests(shop, cached_customers)
    similar = _similar_requests(shop, products)

    # A --reuse run would find the answers a kept run cached: a new rules generation makes every cached
    # answer of a shop unreachable, so the uncached phases miss and the cached one is this precompute's.
    from serving.cache import bump_rules_generation

    for tenant in (shop, movielens):
        if tenant is not None:
            bump_rules_generation(tenant.tenant_id)
    _log(f"precomputing {len(cached_customers):,} answers through the batch precompute")
    written, precompute_s, source = _precompute(server, shop, cached_customers, cached)
    if written != len(cached_customers):
        raise RuntimeError(f"precompute wrote {written} of {len(cached_customers)} answers")

    # Warm-up: the first request of each worker loads the model (memory-mapped index) and the code paths.
    for name, requests in (("no-op", noop), ("uncached", uncached), ("cached", cached), ("similar", similar)):
        _phase(server, requests[:warmup])
        _log(f"warm-up {name} done")
    phases = {"noop": noop, "uncached": uncached, "cached": cached, "similar": similar}
    totals = {name: (_load.LoadResult(), [0.0]) for name in phases}
    for r in range(rounds):
        part = slice(warmup + r * per_round, warmup + (r + 1) * per_round)
        for name, requests in phases.items():
            got, cpu_s = _phase(server, requests[part])
            total, cpu = totals[name]
            total.latencies_ms += got.latencies_ms
            total.wall_s += got.wall_s
            cpu[0] += cpu_s
            _log(f"round {r + 1} {name}: p50 {got.percentile(50):.1f} ms, p99 {got.percentile(99):.1f} ms, "
                 f"{got.rate:.0f} req/s")

    # The cached answers are the precomputed ones: same items as the precompute wrote.
    check = _load.run_closed_loop(server.address, cached[warmup:warmup + 20], concurrency=1, keep_bodies=True)
    if any(json.loads(body)["reason"] in ("no_active_model",) for body in check.bodies):
        raise RuntimeError("the shop has no active model on the server")

    figures: dict = {"cached_source": source, "precompute_answers": written, "precompute_s": round(precompute_s, 2),
                     "precompute_per_s": round(written / precompute_s, 1)}
    for name, (result, cpu) in totals.items():
        figures[f"{name}_p50_ms"] = round(result.percentile(50), 2)
        figures[f"{name}_p99_ms"] = round(result.percentile(99), 2)
        figures[f"{name}_rps"] = round(result.rate, 1)
        figures[f"{name}_server_cpu_ms_per_request"] = round(1000 * cpu[0] / result.count, 2)
    figures["requests_per_phase"] = totals["noop"][0].count
    figures["cached_p99_vs_noop"] = round(figures["cached_p99_ms"] / figures["noop_p99_ms"], 2)
    # The same work costs twice the CPU on some days of this shared machine: against the no-op's CPU in the
    # same run, an uncached answer's cost compares across runs and sessions.
    if figures["noop_server_cpu_ms_per_request"] > 0:
        figures["uncached_cpu_vs_noop_cpu"] = round(
            figures["uncached_server_cpu_ms_per_request"] / figures["noop_server_cpu_ms_per_request"], 2)
    figures["throughput_rps"] = figures["uncached_rps"]

    if movielens is not None:
        ml_customers = _customers_with_history(movielens.tenant_id, 600, seed=3)
        ml = _recommend_requests(movielens, ml_customers)
        _phase(server, ml[:100])
        got, _ = _phase(server, ml[100:])
        figures["movielens_uncached_p50_ms"] = round(got.percentile(50), 2)
        figures["movielens_uncached_p99_ms"] = round(got.percentile(99), 2)
        figures["movielens_uncached_rps"] = round(got.rate, 1)
    return figures


# --- ANN quality ----------------------------------------------------------------------------------------------


def _query_vectors(bench: BenchTenant, n_queries: int) -> tuple:
    """Customer queries exactly as the funnel builds them, and item queries (similar products)."""
    import numpy as np

    from recs.models import Customer
    from serving.prepare import customer_queries
    from serving.registry_cache import served_model
    from tenants.context import tenant_context

    with tenant_context(bench.tenant_id):
        model = served_model(bench.tenant_id)
        external = _customers_with_history(bench.tenant_id, n_queries, seed=4)
        pks = list(Customer.objects.for_tenant(bench.tenant_id).filter(external_id__in=external)
                   .values_list("pk", flat=True))
        queries = customer_queries(bench.tenant_id, model.retrieval, model.product_pks, model.customer_pks, pks)
        retrieval = model.retrieval
        embeddings = np.ascontiguousarray(retrieval.item_embeddings, dtype=np.float32)
        rng = np.random.default_rng(5)
        item_queries = embeddings[rng.choice(len(embeddings), size=min(n_queries, len(embeddings)), replace=False)]
        return embeddings, queries, item_queries, model.index_params, model.index


def _recall(index, queries, exact) -> float:
    import numpy as np

    _, ids = index.search(queries, 100)
    return float(np.mean([len(np.intersect1d(a, b)) / 100 for a, b in zip(ids, exact, strict=True)]))


def _ivf_curve(index, queries, exact, n_items: int, nprobes, item_queries=None, item_exact=None) -> list[dict]:
    """Recall@100 / scanned share / single-query latency per nprobe for the customer queries (the
    recommendation path); the item queries' (similar products) recall at the same nprobe beside it."""
    import faiss

    ivf = faiss.extract_index_ivf(index)
    rows = []
    for nprobe in nprobes:
        if nprobe > ivf.nlist:
            break
        ivf.nprobe = nprobe
        faiss.cvar.indexIVF_stats.reset()
        recall = _recall(index, queries, exact)
        scanned = faiss.cvar.indexIVF_stats.ndis / (len(queries) * n_items)
        item_recall = None
        if item_queries is not None:
            faiss.cvar.indexIVF_stats.reset()
            item_recall = round(_recall(index, item_queries, item_exact), 4)
            item_scanned = round(faiss.cvar.indexIVF_stats.ndis / (len(item_queries) * n_items), 4)
        faiss.omp_set_num_threads(1)  # one query per request: latency of a single-threaded search
        latencies = []
        for q in queries[:200]:
            started = time.perf_counter_ns()
            index.search(q[None, :], 100)
            latencies.append((time.perf_counter_ns() - started) / 1e6)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        rows.append({"nprobe": nprobe, "recall100": round(recall, 4), "scanned": round(scanned, 4),
                     "p50_ms": round(_load.percentile(latencies, 50), 3),
                     "p99_ms": round(_load.percentile(latencies, 99), 3)})
        if item_recall is not None:
            rows[-1].update({"items_recall100": item_recall, "items_scanned": item_scanned})
        _log(f"ann nlist {ivf.nlist} nprobe {nprobe}: recall@100 {recall:.4f}, scanned {scanned:.2%}; "
             f"item queries {item_recall}")
        if recall >= 0.999 and scanned > SCAN_BUDGET:
            break
    return rows


def _operating_point(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["recall100"] >= RECALL_TARGET and r["scanned"] <= SCAN_BUDGET), None)


def bench_ann(bench: BenchTenant, n_queries: int) -> dict:
    import faiss
    import numpy as np

    from serving import index as item_index

    embeddings, customer_q, item_q, served_params, served_index = _query_vectors(bench, n_queries)
    queries = np.ascontiguousarray(customer_q, dtype=np.float32)
    item_q = np.ascontiguousarray(item_q, dtype=np.float32)
    n, dim = embeddings.shape
    started = time.perf_counter()
    exact_index = faiss.IndexFlatIP(dim)
    exact_index.add(embeddings)
    _, exact = exact_index.search(queries, 100)
    exact_s = time.perf_counter() - started
    _, item_exact = exact_index.search(item_q, 100)
    faiss.omp_set_num_threads(1)
    single = []
    for q in queries[:100]:
        t0 = time.perf_counter_ns()
        exact_index.search(q[None, :], 100)
        single.append((time.perf_counter_ns() - t0) / 1e6)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    del exact_index
    chosen = item_index.choose_params(n, dim, exact_max_items=0)  # the IVF parameters serving would use
    figures: dict = {"ann_queries": len(queries), "ann_exact_search_s": round(exact_s, 2),
                     "ann_exact_single_query_p50_ms": round(_load.percentile(single, 50), 2),
                     "served_index": served_params, "ann_curves": {},
                     # the served index at its (tuned) nprobe, on these queries rather than the tuning's own
                     "served_recall100": round(_recall(served_index, queries, exact), 4)}
    best = None
    for nlist in (chosen["nlist"], 2 * chosen["nlist"]):
        if nlist != chosen["nlist"] and best is not None:
            break  # serving's own choice meets the targets: no need to try finer lists
        started = time.perf_counter()
        index, _ = item_index.build_index(embeddings, {**chosen, "nlist": nlist})
        build_s = time.perf_counter() - started
        rows = _ivf_curve(index, queries, exact, n, NPROBES, item_q, item_exact)
        point = _operating_point(rows)
        figures["ann_curves"][str(nlist)] = {"build_s": round(build_s, 1), "rows": rows}
        if point is not None and (best is None or point["scanned"] < best[1]["scanned"]):
            best = (nlist, point)
        del index
    default_rows = figures["ann_curves"][str(chosen["nlist"])]["rows"]
    default_point = next((r for r in default_rows if r["nprobe"] == chosen["nprobe"]), None)
    figures["ann_default"] = {"nlist": chosen["nlist"], "nprobe": chosen["nprobe"], **(default_point or {})}
    if best is not None:
        nlist, point = best
        figures.update({"ann_nlist": nlist, "ann_nprobe": point["nprobe"], "ann_recall100": point["recall100"],
                        "ann_scanned_fraction": point["scanned"], "ann_search_p99_ms": point["p99_ms"],
                        "ann_items_recall100": point.get("items_recall100")})
    else:  # nothing met both targets: report the best recall within the scan budget
        within = [r for rows in figures["ann_curves"].values() for r in rows["rows"] if r["scanned"] <= SCAN_BUDGET]
        top = max(within, key=lambda r: r["recall100"])
        figures.update({"ann_nlist": None, "ann_nprobe": top["nprobe"], "ann_recall100": top["recall100"],
                        "ann_scanned_fraction": top["scanned"], "ann_search_p99_ms": top["p99_ms"],
                        "ann_items_recall100": top.get("items_recall100")})
    return figures


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    # The index build job runs in this process (no serving worker here); the post-activation precompute is
    # switched off for the bench process so the uncached phase is uncached; the cached phase precomputes.
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ["RECSVC_PRECOMPUTE_MAX_CUSTOMERS"] = "0"
    os.environ.setdefault("RECSVC_RECS_CACHE_SECONDS", "3600")
    _load.bootstrap_django()
    from django.conf import settings

    from demo.synthetic import ShopSpec

    if not settings.IS_POSTGRES or not settings.REDIS_URL:
        raise SystemExit("the serving benchmark needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    customers = args.customers or max(10_000, args.items // 25)
    events = args.events or max(200_000, 2 * args.items)
    spec = ShopSpec(n_customers=customers, n_products=args.items, n_events=events, seed=21)
    if not args.reuse:
        _remove_stale_bench_tenants()
    figures: dict = {"catalog_size": args.items, "shop_customers": customers, "shop_events_target": events,
                     "shop_hyperparameters": SHOP_PARAMS, "clients": CLIENTS, "cores": os.cpu_count(),
                     "price_per_core_hour_usd": args.price_per_core_hour}
    tenants: list[BenchTenant] = []
    try:
        movielens = None
        if args.reuse:
            movielens, shop = _kept_tenants()
            tenants = [t for t in (movielens, shop) if t is not None]  # removed at the end unless --keep
            figures["catalog_size"] = shop.n_items
        else:
            if not args.skip_movielens:
                movielens = load_movielens_tenant()
                tenants.append(movielens)
                figures.update({"movielens_load_s": round(movielens.load_s, 1),
                                "movielens_train_s": round(movielens.train_s, 1),
                                "movielens_items": movielens.n_items})
            shop = load_shop_tenant(spec)
            tenants.append(shop)
            figures.update({"shop_load_s": round(shop.load_s, 1), "shop_train_s": round(shop.train_s, 1),
                            "shop_trained_items": shop.n_items})
        from tenants.context import tenant_context
        from training.registry.models import ModelVersion

        with tenant_context(shop.tenant_id):
            version = ModelVersion.objects.for_tenant(shop.tenant_id).get(pk=shop.version_id)
        figures["shop_index"] = version.metrics.get("index")
        figures["shop_ndcg10"] = version.metrics.get("ndcg@10")
        figures["shop_events"] = version.n_events

        if not args.skip_ann:
            _log("ANN quality")
            figures.update(bench_ann(shop, args.queries))

        # The web process sizes its own compute pools (config/wsgi.py), so the server runs as deployed.
        server_env = {"RECSVC_RATE_LIMIT_PER_MINUTE": "1000000000", "DJANGO_DEBUG": "0"}
        with _load.gunicorn(workers=args.workers, worker_class=args.worker_class, threads=args.threads,
                            env=server_env) as server:
            figures["server"] = server.description
            figures.update(_load.database_settings())
            figures["load_generator"] = _load.LOAD_GENERATOR
            figures.update(bench_latency(server, shop, args.requests, movielens))
        per_core = figures["throughput_rps"] / (os.cpu_count() or 1)
        figures["uncached_rps_per_core"] = round(per_core, 1)
        figures["cost_per_1k_usd"] = round(args.price_per_core_hour / 3600 / per_core * 1000, 6)
        server_cpu_s = figures["uncached_server_cpu_ms_per_request"] / 1000
        figures["cost_per_1k_usd_server_cpu_only"] = round(args.price_per_core_hour / 3600 * server_cpu_s * 1000, 6)
    finally:
        print(json.dumps(figures, sort_keys=True, default=str), file=sys.stderr)  # kept if the clean-up fails
        if not args.keep:
            for bench in tenants:
                _log(f"removing bench tenant {bench.tenant_id}")
                _delete_tenant(bench.tenant_id)
    _report(figures)
    return 0


def _report(figures: dict) -> None:
    def fmt(key: str, unit: str = "") -> str:
        value = figures.get(key)
        return "-" if value is None else (f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}")

    _load.print_table(f"Serving at {CLIENTS} concurrent clients ({fmt('server')})", [
        ("synthetic catalog", fmt("catalog_size", " products")),
        ("no-op /healthz p50 / p99", f"{fmt('noop_p50_ms')} / {fmt('noop_p99_ms')} ms"),
        ("uncached recommendations p50 / p99", f"{fmt('uncached_p50_ms')} / {fmt('uncached_p99_ms')} ms"),
        ("cached (precomputed) p50 / p99", f"{fmt('cached_p50_ms')} / {fmt('cached_p99_ms')} ms"),
        ("cached p99 / no-op p99", fmt("cached_p99_vs_noop")),
        ("similar products p50 / p99", f"{fmt('similar_p50_ms')} / {fmt('similar_p99_ms')} ms"),
        ("throughput no-op / uncached / cached / similar",
         f"{fmt('noop_rps')} / {fmt('uncached_rps')} / {fmt('cached_rps')} / {fmt('similar_rps')} req/s"),
        ("server CPU per uncached request (/ no-op's)",
         f"{fmt('uncached_server_cpu_ms_per_request')} ms ({fmt('uncached_cpu_vs_noop_cpu')})"),
        ("MovieLens uncached p50 / p99",
         f"{fmt('movielens_uncached_p50_ms')} / {fmt('movielens_uncached_p99_ms')} ms"),
        ("precompute", f"{fmt('precompute_answers')} answers in {fmt('precompute_s')} s"),
    ])
    rows = []
    for nlist, curve in (figures.get("ann_curves") or {}).items():
        for r in curve["rows"]:
            rows.append((f"nlist {nlist} nprobe {r['nprobe']}",
                         f"recall@100 {r['recall100']:.4f}  scanned {r['scanned']:.2%}  "
                         f"search p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms  "
                         f"(item queries: recall@100 {r.get('items_recall100')})"))
    _load.print_table("ANN: IVF vs exact top-100 on the trained item embeddings", rows)
    _load.print_table("Operating point and cost", [
        ("chosen nlist / nprobe", f"{fmt('ann_nlist')} / {fmt('ann_nprobe')}"),
        ("recall@100 / scanned", f"{fmt('ann_recall100')} / {fmt('ann_scanned_fraction')}"),
        ("serving/index.py default", json.dumps(figures.get("ann_default"))),
        ("served index: nprobe (tuned) / recall@100 here",
         f"{(figures.get('served_index') or {}).get('nprobe', 'n/a')} / {fmt('served_recall100')}"),
        ("training: shop / MovieLens", f"{fmt('shop_train_s')} s / {fmt('movielens_train_s')} s"),
        ("uncached throughput per core", fmt("uncached_rps_per_core", " req/s")),
        ("price", f"${figures.get('price_per_core_hour_usd')} per vCPU-hour"),
        ("cost per 1,000 uncached requests", f"${fmt('cost_per_1k_usd')}"),
    ])
    print(json.dumps({k: v for k, v in figures.items() if k != "ann_curves"}, sort_keys=True, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
