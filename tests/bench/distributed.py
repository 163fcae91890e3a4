"""Distributed training and serving from shards, measured (issue 23). Run: `python tests/bench/distributed.py`.

1. Ranker AUC and retrieval NDCG@10 on MovieLens (its temporal split), the same pipeline, data and epochs on
   one process (the plain trainers) and on two under torchrun (gloo; DistributedModelParallel with the
   planner's plan at the service's default settings, and once more with every table sharded), plus training
   examples per second.
2. A 1M x 64 table (256 MB) stored as row shards and looked up from a fresh process with a 64 MB budget: its
   peak resident memory above its start.
3. ANN over 1M clustered unit vectors (d 64: a 1M x 64 float32 catalog is 256 MB, which two shared cores
   index in minutes) split across 2 FAISS IVF slices, each served by its own shard server process
   (`python -m serving.shard_server`, on loopback) and searched by the scatter-gather client
   (serving/shard_client.py): recall@100 against exact search over the whole catalog, p99 latency of one query
   (client to merged answer, over the authenticated protocol), share of items scanned; and the same slices in
   one process (`faiss.IndexShards`) for comparison.
`--only training` runs part 1 alone (`--seeds N`: each seed on 1 and 2 processes, figures averaged), `--only serving`
part 2, `--only ann` part 3. Prints the figures, then as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
EPOCHS = {"retrieval_params": {"epochs": 5}, "ranker_params": {"epochs": 3}}


def _movielens():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from demo.movielens import load_movielens
    from training.data import temporal_split
    from training.movielens import movielens_arrays

    ml = movielens_arrays(load_movielens())
    train, test = temporal_split(ml.interactions)
    return train, test, ml.items


def _quality(pipeline, train, test, items) -> dict[str, float]:
    from training.evaluation import evaluate_topk, relevant_sets
    from training.pipeline import recommend

    customers, _ = relevant_sets(train, test)
    topk, _ = recommend(pipeline, train, items, customers, k=100)
    ranker = pipeline.ranker.metrics
    best = ranker["epochs"][ranker["best_epoch"]]
    return {"auc": best["holdout_auc"], "ndcg10": evaluate_topk(topk, customers, train, test)["ndcg@10"],
            "ranker_examples_per_s": ranker["examples"] * len(ranker["epochs"]) / ranker["train_seconds"],
            "seconds": pipeline.metrics["train_seconds"]}


def worker(out: Path, shard_min_bytes: int, seed: int) -> None:
    """Under torchrun: the same pipeline, sharded; rank 0 writes its figures."""
    import torch
    import torch.distributed as dist

    from training.distributed.parallel import ShardedTraining
    from training.pipeline import train_pipeline
    from training.trainers.common import training_in_parallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    train, test, items = _movielens()
    parallel = ShardedTraining(device=torch.device("cpu"), memory_bytes=1 << 30, shard_min_bytes=shard_min_bytes)
    with training_in_parallel(parallel):
        pipeline = train_pipeline(train, items, seed=seed, **EPOCHS)
    if dist.get_rank() == 0:
        figures = _quality(pipeline, train, test, items)
        figures["plan"] = {k: v["sharding_type"] for p in parallel.plans for k, v in p["tables"].items()}
        out.write_text(json.dumps(figures))
    dist.destroy_process_group()


def two_processes(shard_min_bytes: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "tests.bench.distributed", "--worker", str(out), "--shard-min-bytes", str(shard_min_bytes),
                   "--seed", str(seed)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(done.stderr[-4000:])
        return json.loads(out.read_text())


_RSS = """
import json, sys
import numpy as np, psutil
from serving.shards import ShardedTable
process = psutil.Process(); baseline = process.memory_info().rss
table = ShardedTable(sys.argv[1], int(sys.argv[2])); rng = np.random.default_rng(0); peak = 0
for _ in range(300):
    table.take(rng.integers(0, table.shape[0], 1024)).sum(); peak = max(peak, process.memory_info().rss - baseline)
print(json.dumps({"peak": peak, "baseline": baseline}))
"""


def serving_memory(rows: int, dim: int, budget: int) -> dict:
    from serving.shards import rows_per_shard, write_row_shards

    with tempfile.TemporaryDirectory() as folder:
        matrix = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
        write_row_shards(matrix, folder, rows_per_shard(dim, budget))
        table_bytes = matrix.nbytes
        del matrix
        done = subprocess.run([sys.executable, "-c", _RSS, folder, str(budget)], cwd=REPO, capture_output=True,
                              text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {"table_bytes": table_bytes, "process_budget_bytes": budget, "serving_peak_rss_bytes": measured["peak"],
            "serving_baseline_rss_bytes": measured["baseline"]}


def sharded_ann(n: int, dim: int, shards: int, nlist: int, nprobe: int, queries: int = 300) -> dict:
    import faiss

    from serving.shard_client import ShardClient
    from serving.shards import write_index_slices

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4096, dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n + queries)]
    x += 0.25 * rng.standard_normal(x.shape).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items, q = x[:n], x[n:]
    exact = faiss.IndexFlatIP(dim)
    exact.add(items)
    _, truth = exact.search(q, 100)
    del exact
    built = []

    def ivf(part: np.ndarray):
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        index.train(part[np.random.default_rng(1).choice(len(part), min(len(part), 100 * nlist), replace=False)])
        index.add(part)
        index.nprobe = nprobe
        built.append(index)
        return index, {"kind": "ivf_flat", "nlist": nlist, "nprobe": nprobe, "n_items": len(part), "dim": dim}

    def recall(found: list[np.ndarray]) -> float:
        return float(np.mean([len(set(a) & set(b)) / 100 for a, b in zip(found, truth, strict=True)]))

    secret = "bench-" + os.urandom(16).hex()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        write_index_slices(items, Path(root) / "catalog", shards, ivf)
        build_s = time.perf_counter() - started
        env = {**os.environ, "RECSVC_ANN_SHARD_SECRET": secret}
        servers, addresses = [], []
        try:
            for i in range(shards):
                server = subprocess.Popen(
                    [sys.executable, "-m", "serving.shard_server", "--root", root, "--shard", str(i), "--of",
                     str(shards), "--port", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True)
                servers.append(server)
                addresses.append(f"127.0.0.1:{int(server.stdout.readline().split()[1])}")
            client = ShardClient(addresses, secret.encode(), timeout_s=5.0)
            for row in q[:20]:  # each server maps its slice on its first search
                client.search("catalog", row[None], 100)
            latencies, found, missing = [], [], 0
            for row in q:
                t = time.perf_counter()
                hits = client.search("catalog", row[None], 100)
                latencies.append((time.perf_counter() - t) * 1000)
                found.append(hits.ids[0])
                missing += len(hits.missing)
            client.close()
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)
    local = faiss.IndexShards(dim, False, True)  # the same slices in this process, for comparison
    for sub in built:
        local.add_shard(sub)
    local_latencies, local_found = [], []
    for row in q:
        t = time.perf_counter()
        local_found.append(local.search(row[None], 100)[1][0])
        local_latencies.append((time.perf_counter() - t) * 1000)
    scanned = 0
    for sub in built:  # items in the lists each query probes, over the whole catalog
        _, lists = sub.quantizer.search(q, nprobe)
        sizes = np.array([sub.invlists.list_size(i) for i in range(nlist)])
        scanned += sizes[lists].sum()
    return {"sharded_ann_recall100": recall(found), "sharded_ann_p99_ms": float(np.percentile(latencies, 99)),
            "sharded_ann_p50_ms": float(np.percentile(latencies, 50)),
            "sharded_ann_scanned_fraction": float(scanned / (len(q) * n)), "sharded_ann_shards": shards,
            "sharded_ann_shard_processes": shards, "sharded_ann_missing_answers": missing,
            "sharded_ann_items": n, "sharded_ann_dim": dim, "sharded_ann_nlist_per_shard": nlist,
            "sharded_ann_nprobe": nprobe, "sharded_ann_build_s": round(build_s, 1),
            "sharded_ann_inprocess_recall100": recall(local_found),
            "sharded_ann_inprocess_p99_ms": float(np.percentile(local_latencies, 99))}


def training_parity(seeds: int = 1) -> dict:
    """Part 1: the pipeline on 1 process and on 2 (default plan) for each seed, then on 2 with every table
    sharded (seed 0). Two processes add their gradients in another order than one, and the difference grows
    over training as a change of seed's does, so with several seeds the figures are means over seeds and the
    spread of one process's AUC across seeds is given beside them."""
    import torch

    from training.pipeline import train_pipeline

    torch.set_num_threads(1)
    train, test, items = _movielens()
    alone, pair = [], []
    for seed in range(seeds):
        alone.append(_quality(train_pipeline(train, items, seed=seed, **EPOCHS), train, test, items))
        print(f"seed {seed}, 1 process:", alone[-1])
        pair.append(two_processes(64 << 20, seed))
        print(f"seed {seed}, 2 processes, default plan:", pair[-1])
    sharded = two_processes(0, 0)
    print("seed 0, 2 processes, every table sharded:", sharded)

    def mean(runs: list[dict], key: str) -> float:
        return float(np.mean([r[key] for r in runs]))

    return {
        "seeds": seeds,
        "auc_1proc": mean(alone, "auc"), "auc_2proc": mean(pair, "auc"),
        "auc_abs_diff": abs(mean(alone, "auc") - mean(pair, "auc")),
        "auc_abs_diff_per_seed": [abs(a["auc"] - b["auc"]) for a, b in zip(alone, pair, strict=True)],
        "auc_1proc_seed_std": float(np.std([a["auc"] for a in alone], ddof=1)) if seeds > 1 else None,
        "ndcg10_1proc": mean(alone, "ndcg10"), "ndcg10_2proc": mean(pair, "ndcg10"),
        "ndcg10_abs_diff": abs(mean(alone, "ndcg10") - mean(pair, "ndcg10")),
        "ndcg10_abs_diff_per_seed": [abs(a["ndcg10"] - b["ndcg10"]) for a, b in zip(alone, pair, strict=True)],
        "ndcg10_1proc_seed_std": float(np.std([a["ndcg10"] for a in alone], ddof=1)) if seeds > 1 else None,
        "auc_2proc_all_sharded": sharded["auc"], "ndcg10_2proc_all_sharded": sharded["ndcg10"],
        "plan_2proc": sorted(set(pair[0]["plan"].values())),
        "plan_2proc_all_sharded": sorted(set(sharded["plan"].values())),
        "examples_per_s_1proc": mean(alone, "ranker_examples_per_s"),
        "examples_per_s_2proc": mean(pair, "ranker_examples_per_s"),
        "per_process_efficiency": mean(pair, "ranker_examples_per_s") / (2 * mean(alone, "ranker_examples_per_s")),
        "pipeline_seconds_1proc": mean(alone, "seconds"), "pipeline_seconds_2proc": mean(pair, "seconds"),
        "pipeline_seconds_2proc_all_sharded": sharded["seconds"],
    }


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=Path)
    parser.add_argument("--shard-min-bytes", type=int, default=64 << 20)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0, help="(--worker) the pipeline's seed")
    parser.add_argument("--seeds", type=int, default=1, help="part 1: pipeline seeds, each on 1 and 2 processes")
    parser.add_argument("--only", choices=["ann", "serving", "training"], help="run one part alone")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.shard_min_bytes, args.seed)
        return
    if args.only == "ann":
        ann = sharded_ann(args.items, 64, 2, 2048, 64)
        print("sharded ANN:", ann)
        print(json.dumps({"commit": _commit(), **ann}))
        return
    if args.only == "serving":
        memory = serving_memory(1_000_000, 64, 64 << 20)
        print("serving from shards:", memory)
        print(json.dumps({"commit": _commit(), **memory}))
        return
    training = training_parity(args.seeds)
    if args.only == "training":
        print(json.dumps({"commit": _commit(), **training}))
        return
    memory = serving_memory(1_000_000, 64, 64 << 20)
    print("serving from shards:", memory)
    ann = sharded_ann(args.items, 64, 2, 2048, 64)
    print("sharded ANN:", ann)
    result = {**training, **memory, **ann}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
