"""Quality benchmark: the evaluation protocol (docs/training.md) end to end through the product's own data path.

    python tests/bench/quality.py            # ALS grid-tuned on validation (about 2 minutes more)
    python tests/bench/quality.py --quick    # ALS with the stored validated parameters

Loads the MovieLens demo data into a fresh tenant through the ingestion functions (PostgreSQL, row-level
security on), reads it back with `training.datasets.load_tenant_dataset` (what a training run reads),
then runs `training.cli_eval.evaluate_protocol`: per customer the last 20% of interactions by time are
test, the served pipeline (two-tower retrieval + DLRM ranker), retrieval alone, most-popular and ALS
(implicit, tuned on a validation split carved out of train) are trained on the rest and scored on
test with seen items excluded. The tenant is removed at the end. The LAST line is one JSON object.
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
