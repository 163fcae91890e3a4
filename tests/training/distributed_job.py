"""Run by tests/training/test_distributed.py under torchrun (not a test module): the retrieval + ranker pipeline
on a tiny synthetic shop, every table sharded by the planner (`--types`), each rank writing what it ended with."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from tests.training.conftest import make_tenant
from training.distributed.parallel import ShardedTraining
from training.pipeline import train_pipeline
from training.trainers.common import training_in_parallel

PARAMS = {
    "retrieval_params": {"dim": 16, "hidden": 32, "epochs": 2, "batch_size": 128, "sampled_negatives": 16},
    "ranker_params": {"epochs": 2, "batch_size": 256, "sparse_features": ("item_id", "history", "category")},
    "num_candidates": 30,
}


def run(out: Path, types: tuple[str, ...], shard_min_bytes: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    train, items = make_tenant(n_customers=120, n_items=90, events_per_customer=20)
    parallel = ShardedTraining(
        device=torch.device("cpu"), memory_bytes=64 << 20, shard_min_bytes=shard_min_bytes, sharding_types=types
    )
    with training_in_parallel(parallel):
        pipeline = train_pipeline(train, items, seed=0, **PARAMS)
    pipeline.save(out / f"rank{rank}")
    summary = {
        "plans": parallel.plans,
        "item_embeddings_sum": float(np.abs(pipeline.retrieval.item_embeddings).sum()),
        "ranker_state_sum": float(sum(v.float().abs().sum() for v in pipeline.ranker.state.values())),
        "ranker_metrics": {k: v for k, v in pipeline.ranker.metrics.items() if isinstance(v, (int, float))},
    }
    (out / f"rank{rank}.json").write_text(json.dumps(summary))
    dist.destroy_process_group()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--types", default="")
    parser.add_argument("--shard-min-bytes", type=int, default=0)
    args = parser.parse_args()
    run(args.out, tuple(t for t in args.types.split(",") if t), args.shard_min_bytes)
