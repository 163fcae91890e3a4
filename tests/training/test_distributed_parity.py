"""Two processes train what one process trains: on the data-parallel plan (every table replicated, gradients
averaged) the 2-process pipeline under torchrun ends with the one-process retrieval embeddings and ranker, up to
the order of floating-point sums (the retrieval softmax sees the whole batch's positives on every process, the
id-dropout draws and the starting values are one process's)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.celery_worker import REPO
from tests.training.conftest import make_tenant
from tests.training.distributed_job import PARAMS
from training.inference import TrainedPipeline
from training.pipeline import train_pipeline


@pytest.mark.slow
def test_two_processes_on_the_data_parallel_plan_train_the_one_process_pipeline(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "tests.training.distributed_job", str(tmp_path), "--shard-min-bytes", str(1 << 30)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    plans = json.loads((tmp_path / "rank0.json").read_text())["plans"]
    assert {t["sharding_type"] for p in plans for t in p["tables"].values()} == {"data_parallel"}
    two = TrainedPipeline.load(tmp_path / "rank0")
    train, items = make_tenant(n_customers=120, n_items=90, events_per_customer=20)
    one = train_pipeline(train, items, seed=0, **PARAMS)
    # Unit vectors: a different batch split, negative pool, starting value or feature order moves them by tenths.
    np.testing.assert_allclose(two.retrieval.item_embeddings, one.retrieval.item_embeddings, atol=1e-4)
    # The ranker reads features of those embeddings, so its inputs differ in the last float digits, and Adam moves
    # a weight whose gradient is about zero by +-lr a step whatever the gradient's sign: single weights drift
    # apart by a few lr while each tensor as a whole stays put (about 0.5% of its norm at most; another seed moves
    # each by more than its own norm).
    for name, value in one.ranker.state.items():
        moved = two.ranker.state[name].numpy() - value.numpy()
        drift = np.linalg.norm(moved) / max(np.linalg.norm(value.numpy()), 1e-6)
        assert drift < 0.05, (name, drift)
    auc = [[e["holdout_auc"] for e in p.ranker.metrics["epochs"]] for p in (one, two)]
    np.testing.assert_allclose(auc[1], auc[0], atol=5e-4)
