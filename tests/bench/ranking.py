"""Latency of the served ranker alone: `serving.ranking.score_candidates` over 300 retrieval candidates.

    DATABASE_URL=postgres://recsvc@127.0.0.1:5432/<db> REDIS_URL=redis://127.0.0.1:6379/<n> \\
        python tests/bench/ranking.py [--movielens] [--candidates 300] [--requests 300] [--threads 1]

Loads a tiny synthetic shop (and with --movielens the MovieLens demo data) into fresh tenants through
the ingestion functions, trains and activates a version through the registry (artifacts in a temporary
directory), then for distinct customers in turn times one `score_candidates` call: the customer's
aggregate query, the snapshot gather, the taste features and one ranker forward pass. Retrieval and the
history read happen before the clock starts; `in_process_no_db` repeats the calls with the customer's
aggregate answered from memory (score_candidates minus its one database round trip). BENCH_PROFILE=1
prints a cProfile of the calls first. The tenants are removed at the end. The LAST line is JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load


def _percentiles(samples: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n": len(ms)}


def measure(tenant_id: int, n_candidates: int, n_requests: int) -> dict:
    import numpy as np

    from serving import index as item_index
    from serving import online_features, ranking, registry_cache
    from serving.funnel import recent_history

    model = registry_cache.served_model(tenant_id)
    k = min(n_candidates, model.n_items)
    customers = model.customer_pks[: n_requests]
    prepared = []
    for pk in customers:
        pks, weights = recent_history(tenant_id, int(pk), None, model.retrieval.history_len)
        items = model.item_indices(pks)
        items, weights = items[items >= 0], weights[items >= 0]
        history = ranking.customer_history(model, items, weights)
        query = model.retrieval.embed_customers(np.array([model.customer_index(int(pk))]), history)
        scores, ids = item_index.search(model.index, query, k)
        prepared.append((int(pk), items, weights, ids[0], scores[0]))
    state = online_features.online_features(tenant_id, model)
    for pk, items, weights, cand, scores in prepared[:20]:  # warm-up (lazy model build, caches)
        ranking.score_candidates(tenant_id, model, pk, items, weights, cand, scores)
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for pk, items, weights, cand, scores in prepared:
            ranking.score_candidates(tenant_id, model, pk, items, weights, cand, scores)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    total, customer_q, forward_free = [], [], []
    for pk, items, weights, cand, scores in prepared:
        started = time.perf_counter()
        ranking.score_candidates(tenant_id, model, pk, items, weights, cand, scores)
        total.append(time.perf_counter() - started)
        started = time.perf_counter()
        online_features.customer_activity(tenant_id, pk)
        customer_q.append(time.perf_counter() - started)
        started = time.perf_counter()
        ranking.online_inputs(tenant_id, model, state, pk, items, weights, cand, scores)
        forward_free.append(time.perf_counter() - started)
    # The same calls with the customer's aggregate answered in memory: the in-process share (features and
    # the forward pass), i.e. score_candidates minus its one database round trip.
    activity = {pk: online_features.customer_activity(tenant_id, pk) for pk, *_ in prepared}
    real = online_features.customer_activity
    online_features.customer_activity = lambda tenant, pk, before=None: activity[pk]
    in_process = []
    try:
        for pk, items, weights, cand, scores in prepared:
            started = time.perf_counter()
            ranking.score_candidates(tenant_id, model, pk, items, weights, cand, scores)
            in_process.append(time.perf_counter() - started)
    finally:
        online_features.customer_activity = real
    pk, items, weights, cand, scores = prepared[0]
    return {
        "in_process_no_db": _percentiles(in_process),
        "items": model.n_items, "candidates": k,
        "source": ranking.score(tenant_id, model, pk, items, weights, cand, scores).source,
        "score_candidates": _percentiles(total),
        "customer_query": _percentiles(customer_q),
        "dense_features_incl_query": _percentiles(forward_free),
        "snapshot_mb": round(state.snapshot.columns.nbytes / 1e6, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", action="store_true", help="also the MovieLens demo tenant (minutes)")
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a serving worker's setting)")
    args = parser.parse_args(argv)
    # Training queues the index build and activation as a task: run it here, no worker needed.
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    _load.bootstrap_django()
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    import torch
    from django.conf import settings

    from demo.load import load_movielens, load_synthetic
    from demo.synthetic import ShopSpec
    from tenants.context import tenant_context
    from tenants.models import Tenant
    from training.jobs import run_training
    from training.registry.models import ModelVersion

    torch.set_num_threads(args.threads)
    settings.RECSVC_ARTIFACT_DIR = Path(tempfile.mkdtemp(prefix="bench-ranking-"))
    tiny = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
            "num_candidates": 50}
    shops = [("tiny shop", lambda t: load_synthetic(t, ShopSpec(n_customers=400, n_products=300, n_events=12_000,
                                                                seed=3)), tiny)]
    if args.movielens:
        shops.append(("movielens", load_movielens, {}))
    results = {}
    for name, load, params in shops:
        tenant_id = Tenant.objects.create(name=f"bench ranking {name}", slug=f"bench-ranking-{time.time_ns()}").pk
        try:
            with tenant_context(tenant_id):
                started = time.perf_counter()
                load(tenant_id)
                version = run_training(ModelVersion.objects.create(tenant_id=tenant_id, hyperparameters=params))
                assert version.status == ModelVersion.Status.ACTIVE, version.status_reason
                setup_s = time.perf_counter() - started
                results[name] = {**measure(tenant_id, args.candidates, args.requests), "setup_s": round(setup_s, 1)}
                print(name, json.dumps(results[name]), flush=True)
        finally:
            with tenant_context(tenant_id):
                Tenant.objects.filter(pk=tenant_id).delete()
    print(json.dumps({"torch_threads": args.threads, **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
