"""Training throughput benchmark: a synthetic shop (demo/synthetic.py, deterministic) trained with the
project's own trainers, two-tower retrieval then the DLRM ranker on stacked examples, as a training run's
first two stages do (training/pipeline.py: retrieval on the first part of every history, the ranker on
what those customers did next).

    python tests/bench/training.py                    # 1,000,000 customers, 100,000 products, 10M events
    python tests/bench/training.py --customers 20000 --products 5000 --events 300000     # about a minute

The events are generated straight into the training arrays in memory, not through PostgreSQL: at this
size the database path is the ingestion benchmark's business and would dominate (docs/benchmarks.md measures a
streaming import of 9,992,608 events at 465-530 s, before `load_tenant_dataset` reads them back). Item
attributes get a history: `--price-changes` of the products change price once inside the event range, so
the ranker's examples read prices point-in-time (training/item_versions.py) as a real run does.

Printed: wall time per stage, examples/s per model (whole trainer call, and the SGD loop alone from the
trainers' progress reports), peak RSS (getrusage) and RSS after each stage (psutil when installed). The
machine is shared: figures are noisy, quote medians of several runs. The LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

# The stated hyper-parameters (the production defaults of training/pipeline.py, except epochs, batch
# sizes and candidates, scaled for a 10M-event shop on a CPU; every one is a flag).
# Retrieval batch 1024 as in production: the in-batch softmax is quadratic in the batch (at 4096 it took
# 70% of a step and ran at a third of the examples/s).
RETRIEVAL = {"dim": 64, "hidden": 128, "epochs": 1, "batch_size": 1024, "lr": 3e-3, "temperature": 0.1,
             "history_len": 50, "recency_decay": 0.9}
RANKER = {"epochs": 1, "batch_size": 2048, "lr": 1e-3, "sparse_features": ("category", "brand", "price_bucket")}


def rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


class Stages:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.rss: dict[str, float | None] = {}

    def run(self, name: str, fn, *args, **kwargs):
        # CPU seconds beside wall seconds: on a shared machine the wall clock also counts other people's work.
        started, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - started, 2)
        self.cpu_seconds[name] = round(time.process_time() - cpu, 2)
        self.rss[name] = None if (r := rss_mb()) is None else round(r)
        print(f"  {name:<28} {self.seconds[name]:>9.2f} s  (cpu {self.cpu_seconds[name]:>9.2f} s)   "
              f"rss {self.rss[name]} MB   peak {peak_rss_mb():.0f} MB", flush=True)
        return out


class SgdClock:
    """Times the SGD loop of a trainer from its progress reports (first and last step seen)."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("stage") != self.stage or "step" not in event:
            return
        now = (time.perf_counter(), int(event["step"]))
        if self.first is None:
            self.first = now
        self.last = now

    def examples_per_s(self, batch_size: int) -> float | None:
        if self.first is None or self.last is None or self.last[1] <= self.first[1]:
            return None
        return (self.last[1] - self.first[1]) * batch_size / (self.last[0] - self.first[0])


def generate(spec):
    """The shop's catalog and its events as (customer, product, ts, type) arrays."""
    from demo.synthetic import generate_catalog, iter_event_chunks

    catalog = generate_catalog(spec)
    cols: dict[str, list[np.ndarray]] = {"customer_idx": [], "product_idx": [], "ts": [], "event_type": []}
    for chunk in iter_event_chunks(spec, catalog, chunk_size=1_000_000):
        for name in cols:
            cols[name].append(getattr(chunk, name))
    return catalog, {name: np.concatenate(parts) for name, parts in cols.items()}


def interactions_from(events: dict[str, np.ndarray], n_customers: int, n_products: int):
    """Weighted preference events, as `training.datasets.weighted_events` makes them (impressions out)."""
    from demo.synthetic import EVENT_TYPES
    from recs.models.events import BUILTIN_EVENT_WEIGHTS
    from training.data import Interactions

    weight_of_type = np.array([BUILTIN_EVENT_WEIGHTS.get(name, 0.0) for name in EVENT_TYPES], dtype=np.float32)
    weight = weight_of_type[events["event_type"]]
    keep = weight > 0
    return Interactions(
        customer=events["customer_idx"][keep], item=events["product_idx"][keep], ts=events["ts"][keep],
        weight=weight[keep], n_customers=n_customers, n_items=n_products,
    )  # fmt: skip


def item_features(catalog, price_change_share: float, seed: int):
    """Current item features and an attribute history: a share of products changed price once."""
    from training.datasets import item_features_with_history

    spec = catalog.spec
    records = list(catalog.iter_product_records())
    products = [(i, r["title"], r["category_path"], r["brand"], r["price"], r["tags"]) for i, r in enumerate(records)]
    rng = np.random.default_rng(seed + 7)
    changed = np.flatnonzero(rng.random(len(products)) < price_change_share)
    when = rng.integers(spec.start_ts, spec.end_ts, len(changed))
    factor = rng.choice([0.5, 0.7, 1.5, 2.5], len(changed))
    versions = []
    for i, t, f in zip(changed.tolist(), when.tolist(), factor.tolist(), strict=True):
        pk, title, path, brand, price, tags = products[i]
        versions.append((pk, spec.start_ts, title, path, brand, round(price * f, 2), tags))  # the old price
        versions.append((pk, t, title, path, brand, price, tags))  # today's price since t
    return item_features_with_history(products, np.arange(len(products), dtype=np.int64), versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a training worker uses 1)")
    parser.add_argument("--retrieval-epochs", type=int, default=RETRIEVAL["epochs"])
    parser.add_argument("--retrieval-batch", type=int, default=RETRIEVAL["batch_size"])
    parser.add_argument("--dim", type=int, default=RETRIEVAL["dim"])
    parser.add_argument("--ranker-epochs", type=int, default=RANKER["epochs"])
    parser.add_argument("--ranker-batch", type=int, default=RANKER["batch_size"])
    parser.add_argument("--candidates", type=int, default=100, help="retrieval candidates per ranker query")
    parser.add_argument("--ranker-customers", type=int, default=50_000,
                        help="customers whose next events make the ranker's stacked examples (a sample)")
    parser.add_argument("--retrieval-examples", type=int, default=None,
                        help="train retrieval on a random sample of this many events (the step cost at full "
                             "catalog size is measured; a full epoch is extrapolated)")
    parser.add_argument("--price-changes", type=float, default=0.1, help="share of products that changed price")
    args = parser.parse_args(argv)
    _load.bootstrap_django(migrate=False)  # imports only: nothing here touches the database
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)

    from demo.synthetic import ShopSpec
    from training.data import validation_split
    from training.trainers.ranker import train_ranker
    from training.trainers.two_tower import train_two_tower

    spec = ShopSpec(n_customers=args.customers, n_products=args.products, n_events=args.events, seed=args.seed)
    retrieval_params = {**RETRIEVAL, "epochs": args.retrieval_epochs, "batch_size": args.retrieval_batch,
                        "dim": args.dim}
    ranker_params = {**RANKER, "epochs": args.ranker_epochs, "batch_size": args.ranker_batch}
    print(f"synthetic shop: {args.customers:,} customers, {args.products:,} products, ~{args.events:,} events "
          f"(seed {args.seed}); torch threads {args.threads}; cpus {os.cpu_count()}")
    print(f"retrieval {retrieval_params}\nranker {ranker_params}, {args.candidates} candidates, "
          f"{args.ranker_customers:,} customers sampled", flush=True)
    stages = Stages()
    wall = time.perf_counter()
    catalog, raw = stages.run("generate shop", generate, spec)
    n_raw = len(raw["ts"])
    events = stages.run("interactions", interactions_from, raw, args.customers, args.products)
    del raw
    items, versions = stages.run("item features + history", item_features, catalog, args.price_changes, args.seed)
    inner, future = stages.run("split", validation_split, events, 0.2)
    rng = np.random.default_rng(args.seed)
    with_future = np.flatnonzero(np.bincount(future.customer, minlength=future.n_customers) > 0)
    sample = rng.choice(with_future, min(args.ranker_customers, len(with_future)), replace=False)
    future = future.take(np.flatnonzero(np.isin(future.customer, sample)))

    retrieval_train = inner
    if args.retrieval_examples is not None and args.retrieval_examples < len(inner):
        retrieval_train = inner.take(np.sort(rng.choice(len(inner), args.retrieval_examples, replace=False)))
    clock_r = SgdClock("retrieval")
    retrieval = stages.run("train retrieval", train_two_tower, retrieval_train, items, **retrieval_params,
                           seed=args.seed, progress=clock_r, num_threads=args.threads)
    clock_k = SgdClock("ranker")
    ranker = stages.run("train ranker", train_ranker, inner, future, items, retrieval, item_versions=versions,
                        num_candidates=args.candidates, **ranker_params, seed=args.seed, progress=clock_k,
                        num_threads=args.threads)
    wall_s = time.perf_counter() - wall

    r_examples = len(retrieval_train) * retrieval_params["epochs"]
    k_examples = int(ranker.metrics["examples"]) * ranker_params["epochs"]
    result = {
        "customers": args.customers, "products": args.products, "events_generated": n_raw,
        "interactions": len(events), "retrieval_examples": len(retrieval_train), "inner_events": len(inner),
        "ranker_queries": len(sample), "ranker_examples": int(ranker.metrics["examples"]),
        "item_versions": versions.n_versions,
        "retrieval_examples_per_s": round(r_examples / stages.seconds["train retrieval"]),
        "retrieval_sgd_examples_per_s": _round(clock_r.examples_per_s(retrieval_params["batch_size"])),
        "ranker_examples_per_s": round(k_examples / stages.seconds["train ranker"]),
        "retrieval_examples_per_cpu_s": round(r_examples / max(stages.cpu_seconds["train retrieval"], 1e-9)),
        "ranker_examples_per_cpu_s": round(k_examples / max(stages.cpu_seconds["train ranker"], 1e-9)),
        "ranker_sgd_examples_per_s": _round(clock_k.examples_per_s(ranker_params["batch_size"])),
        "ranker_holdout_auc": ranker.metrics["epochs"][-1].get("holdout_auc"),
        "stage_seconds": stages.seconds, "stage_cpu_seconds": stages.cpu_seconds, "stage_rss_mb": stages.rss,
        "wall_s": round(wall_s, 1), "peak_rss_mb": round(peak_rss_mb()),
        "threads": args.threads, "retrieval_params": retrieval_params,
        "ranker_params": {**ranker_params, "sparse_features": list(ranker_params["sparse_features"]),
                          "num_candidates": args.candidates},
    }  # fmt: skip
    result["retrieval_full_epoch_s_estimate"] = round(len(inner) / result["retrieval_examples_per_s"])
    print(f"retrieval: {result['retrieval_examples_per_s']:,} examples/s over the whole call "
          f"({result['retrieval_sgd_examples_per_s']} in the SGD loop) on {len(retrieval_train):,} events; "
          f"one epoch over all {len(inner):,}: ~{result['retrieval_full_epoch_s_estimate']:,} s")
    print(f"ranker:    {result['ranker_examples_per_s']:,} examples/s over the whole call, candidate retrieval "
          f"and features included ({result['ranker_sgd_examples_per_s']} in the SGD loop); "
          f"holdout AUC {result['ranker_holdout_auc']}")
    print(f"wall {wall_s:.1f} s, peak RSS {result['peak_rss_mb']} MB")
    print(json.dumps(result))
    return 0


def _round(x: float | None) -> int | None:
    return None if x is None else round(x)


if __name__ == "__main__":
    sys.exit(main())
