"""Quality benchmark: the evaluation protocol (docs/training.md) end to end through the product's own data path.

    python tests/bench/quality.py            # ALS grid-tuned on validation (about 2 minutes more)
    python tests/bench/quality.py --quick    # ALS with the stored validated parameters
    python tests/bench/quality.py --through-api [--quick] [--database NAME]
                                             # served answers over HTTP, as a shop receives them

Loads the MovieLens demo data into a fresh tenant through the ingestion functions (PostgreSQL, row-level
security on), reads it back with `training.datasets.load_tenant_dataset` (what a training run reads),
then runs `training.cli_eval.evaluate_protocol`: per customer the last 20% of interactions by time are
test, the served pipeline (two-tower retrieval + DLRM ranker), retrieval alone, most-popular and ALS
(implicit, tuned on a validation split carved out of train) are trained on the rest and scored on
test with seen items excluded. The tenant is removed at the end. The LAST line is one JSON object.

--through-api (tests/bench/_quality_api.py) sends the same train split over the public HTTP API into a
fresh tenant of a scratch database (PostgreSQL, Redis, gunicorn as deployed, a real Celery worker),
trains through POST /v1/training/runs, asks GET /v1/recommendations?k=100 per evaluated customer and
scores the answers exactly as received; tuned ALS and the cold-start figures come from the training
functions on the same arrays. About 10 minutes on 2 cores (the ALS grid included).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ALS with stored validated params, no grid")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (--through-api: sent with the run)")
    parser.add_argument("--through-api", action="store_true", help="served answers over HTTP (see above)")
    parser.add_argument("--database", help="--through-api: scratch database name (created, then dropped)")
    args = parser.parse_args(argv)
    if args.through_api:
        return through_api(args)
    _load.bootstrap_django()
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)

    from demo.load import load_movielens
    from tenants.context import tenant_context
    from tenants.models import Tenant
    from training.cli_eval import evaluate_protocol, format_table
    from training.datasets import load_tenant_dataset

    tenant_id = Tenant.objects.create(name="bench quality", slug=f"bench-quality-{int(time.time())}").pk
    try:
        with tenant_context(tenant_id):
            started = time.perf_counter()
            load_movielens(tenant_id)
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            dataset = load_tenant_dataset(tenant_id)
            read_s = time.perf_counter() - started
        result = evaluate_protocol(dataset.interactions, dataset.items, seed=args.seed, tune_als_grid=not args.quick)
    finally:
        with tenant_context(tenant_id):
            Tenant.objects.filter(pk=tenant_id).delete()
    print(format_table(result))
    print(f"data path: MovieLens loaded through the ingestion API functions in {load_s:.1f} s, "
          f"read back for training in {read_s:.1f} s ({len(dataset.interactions)} interactions)")
    rows = result["rows"]
    served = rows["two-tower + DLRM (served)"]
    als = next(v for k, v in rows.items() if k.startswith("ALS"))
    figures = {
        "ndcg10": served["ndcg@10"],
        "recall10": served["recall@10"],
        "hr10": served["hr@10"],
        "recall100": served["recall@100"],
        "coverage10": served["coverage@10"],
        "ranker_auc": result["ranker"]["auc"],
        "train_s": served["train_s"],
        "train_cpu_s": served.get("cpu_s"),
        "retrieval_ndcg10": rows["two-tower retrieval alone"]["ndcg@10"],
        "als_ndcg10": als["ndcg@10"],
        "pop_ndcg10": rows["most popular"]["ndcg@10"],
        "load_s": load_s,
        "interactions": len(dataset.interactions),
    }
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


def through_api(args: argparse.Namespace) -> int:
    from tests.bench import _quality_api

    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    result = _quality_api.run(args)
    served, als, pop, cold = result["served"], result["als"], result["popular"], result["cold"]
    columns = ("ndcg@10", "recall@10", "hr@10", "recall@100", "coverage@10")
    head = f"{'model (same split, train items excluded)':<46}" + "".join(f"{c:>12}" for c in columns)
    print(head)
    print("-" * len(head))
    for name, row in (("served over HTTP, scored as received", served), (f"ALS {result['als_params']}", als),
                      ("most popular", pop)):
        print(f"{name[:46]:<46}" + "".join(f"{row[c]:>12.4f}" for c in columns))
    print()
    print(f"timestamps shifted by {result['shift_days']:.1f} days: the last sent rating is "
          f"{_quality_api.SHIFT_MARGIN_S} s before now (served as a live shop)")
    print(f"sent over HTTP: catalog {result['catalog_s']:.1f} s, ratings {result['events_s']:.1f} s (bulk, "
          f"{_quality_api.EVENTS_PER_REQUEST} a request); POST /v1/training/runs to active: {result['train_s']:.1f} s; "
          f"median answer {result['latency_ms_p50']:.1f} ms")
    print(f"consumed items in the served top 10: {served['consumed_in_top10']:.3f} per customer; answers with "
          f"fewer than 100 items: {served['short_answers']}")
    run_metrics = result["run_metrics"]
    nan = float("nan")
    print(f"the run in the worker: {run_metrics.get('train_seconds', nan):.1f} s, "
          f"{run_metrics.get('train_cpu_seconds', nan):.1f} s of CPU (the evaluated pipeline and the served models: "
          "retrieval three times, the ranker twice)")
    print(f"the run's own evaluation (its train split's last 20%, decides activation): NDCG@10 "
          f"{run_metrics.get('ndcg@10', nan):.4f}, Recall@100 {run_metrics.get('recall@100', nan):.4f}")
    now, own = result["offline_now"], result["offline_own_time"]
    print(f"the served version scored offline by training's inference: asked at the moment the API was asked, "
          f"top-100 overlap with the served answers {result['served_offline_overlap100']:.4f} (NDCG@10 "
          f"{now['ndcg@10']:.4f}, Recall@100 {now['recall@100']:.4f}); asked just after each customer's own last "
          f"event, as the protocol does, NDCG@10 {own['ndcg@10']:.4f}, Recall@100 {own['recall@100']:.4f}")
    print(f"cold start (offline, training functions; {cold['cold_items']} products held out of every training "
          f"event, {cold['held_out_interactions']} held-out interactions of {cold['customers']} customers), "
          f"Recall@100 over the whole catalog: content tower {cold['recall100']:.4f}, random embeddings "
          f"{cold['random_recall100']:.4f}, most popular {cold['popular_recall100']:.4f}")
    figures = {
        "served_ndcg10": served["ndcg@10"], "served_recall10": served["recall@10"],
        "served_recall100": served["recall@100"], "served_coverage10": served["coverage@10"],
        "als_ndcg10": als["ndcg@10"], "als_recall10": als["recall@10"], "als_recall100": als["recall@100"],
        "als_coverage10": als["coverage@10"], "pop_ndcg10": pop["ndcg@10"],
        "consumed_in_top10": served["consumed_in_top10"],
        "cold_items_recall100": cold["recall100"], "cold_items_popular_recall100": cold["popular_recall100"],
        "cold_items_random_recall100": cold["random_recall100"], "train_s": result["train_s"],
        "train_cpu_s": run_metrics.get("train_cpu_seconds"),
        "run_ndcg10": run_metrics.get("ndcg@10"), "timestamp_shift_days": result["shift_days"],
        "short_answers": served["short_answers"],
        "served_offline_overlap100": result["served_offline_overlap100"],
        "offline_own_time_ndcg10": own["ndcg@10"], "offline_own_time_recall100": own["recall@100"],
    }
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
