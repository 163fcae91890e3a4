"""Distributed training: the same trainers on 2 processes under torchrun (gloo), TorchRec's
DistributedModelParallel with the planner's plan, the state gathered into the one-process format; through the
Celery training task for a shop chosen by the settings; a process killed mid-run fails the run and leaves the
active version serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from django.db import connection
from rest_framework.test import APIClient

from demo.load import load_synthetic
from demo.synthetic import ShopSpec
from recs.models import Event
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tests.celery_worker import REPO
from tests.factories import TenantFactory
from tests.training.conftest import make_tenant
from tests.training.distributed_job import PARAMS
from training.distributed import launch, planning
from training.distributed.worker import PLAN_FILE
from training.inference import TrainedPipeline
from training.pipeline import train_pipeline
from training.registry import lifecycle, storage
from training.registry.models import ModelVersion
from training.tasks import train_model_version

TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
        "num_candidates": 50}
LONG = {"retrieval": {"dim": 16, "epochs": 60, "batch_size": 128}, "ranker": {"epochs": 20, "batch_size": 128},
        "num_candidates": 50}


def _torchrun(out: Path, types: str, shard_min_bytes: int) -> list[dict]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "tests.training.distributed_job", str(out), "--types", types,
               "--shard-min-bytes", str(shard_min_bytes)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_row_wise_needs_cuda_and_is_refused_on_cpu():
    with pytest.raises(ValueError, match="row_wise"):
        planning.model_parallel_types(torch.device("cpu"), ("row_wise",))
    assert "row_wise" in planning.model_parallel_types(torch.device("cuda"))
    assert set(planning.model_parallel_types(torch.device("cpu"))) == {"table_wise", "column_wise", "table_column_wise"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("types", "shard_min_bytes", "expected"),
    [("column_wise", 0, {"column_wise"}), ("table_wise,table_column_wise", 0, {"table_wise", "table_column_wise"}),
     ("", 1 << 30, {"data_parallel"})],
)
def test_two_processes_train_the_pipeline_into_the_one_process_format(tmp_path, types, shard_min_bytes, expected):
    ranks = _torchrun(tmp_path, types, shard_min_bytes)
    # Every process ends with the same gathered state (what follows the training runs on every process).
    assert ranks[0]["item_embeddings_sum"] == ranks[1]["item_embeddings_sum"]
    assert ranks[0]["ranker_state_sum"] == ranks[1]["ranker_state_sum"]
    plans = ranks[0]["plans"]
    assert [p["model"] for p in plans] == ["TwoTowerRetrievalTask", "Ranker", "TwoTowerRetrievalTask"]
    chosen = {t["sharding_type"] for p in plans for t in p["tables"].values()}
    assert chosen <= expected and chosen
    if types == "column_wise":  # the tables' column shards are spread over both processes
        placements = {s["placement"] for p in plans for t in p["tables"].values() for s in t["shards"]}
        assert placements == {"rank:0/cpu", "rank:1/cpu"}
    # The artifacts load as one process's do, with the same tensors by name and shape.
    sharded = TrainedPipeline.load(tmp_path / "rank0")
    train, items = make_tenant(n_customers=120, n_items=90, events_per_customer=20)
    alone = train_pipeline(train, items, seed=0, **PARAMS)
    for mine, theirs in [(sharded.retrieval.customer_tower_state, alone.retrieval.customer_tower_state),
                         (sharded.retrieval.item_tower_state, alone.retrieval.item_tower_state),
                         (sharded.ranker.state, alone.ranker.state)]:
        assert {k: tuple(v.shape) for k, v in mine.items()} == {k: tuple(v.shape) for k, v in theirs.items()}
    assert sharded.retrieval.item_embeddings.shape == alone.retrieval.item_embeddings.shape
    # Trained, not left at its initial values: the held-out AUC is as far above chance as alone.
    assert sharded.ranker.metrics["epochs"][-1]["holdout_auc"] > 0.6


# --- through the Celery task, with a database -----------------------------------------------------------------


@pytest.fixture
def shop(all_tenants, settings):
    tenant = TenantFactory(name="Shop D", slug="shop-distributed")
    with tenant_context(tenant.pk):
        load_synthetic(tenant.pk, ShopSpec(n_customers=150, n_products=300, n_events=6_000, seed=3))
    settings.RECSVC_DISTRIBUTED_SHOPS = [tenant.slug]
    settings.RECSVC_TRAINING_PROCESSES = 2
    settings.RECSVC_SHARD_TABLE_MIN_BYTES = 16 * 1024  # the id tables are sharded, the small ones replicated
    return tenant


def _queued(tenant, hyperparameters: dict) -> ModelVersion:
    return ModelVersion.objects.create(tenant=tenant, hyperparameters=hyperparameters)


def _rank_processes() -> dict[int, psutil.Process]:
    out = {}
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "training.distributed.worker" in " ".join(child.cmdline()):
                out[int(child.environ().get("RANK", -1))] = child
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_chosen_shop_trains_on_two_processes_and_a_killed_process_fails_the_next_run(shop):
    first = _queued(shop, TINY)
    assert train_model_version(shop.pk, first.pk) == ModelVersion.Status.ACTIVE
    first.refresh_from_db()
    assert first.metrics["training_processes"] == 2 and 0.0 <= first.metrics["ndcg@10"] <= 1.0
    folder = storage.local_path(first.artifact_uri)
    plan = json.loads((folder / PLAN_FILE).read_text())
    assert plan["world_size"] == 2 and plan["backend"] == "gloo"
    types = {t["sharding_type"] for m in plan["models"] for t in m["tables"].values()}
    assert "data_parallel" in types and types & {"table_wise", "column_wise", "table_column_wise"}
    TrainedPipeline.load(folder)  # the usual artifacts, read the usual way

    second = _queued(shop, LONG)
    outcome: list[str] = []

    def train() -> None:
        try:
            outcome.append(train_model_version(shop.pk, second.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=train)
    thread.start()
    deadline = time.monotonic() + 180
    killed = False
    while thread.is_alive() and not killed:
        assert time.monotonic() < deadline, "the run never got under way"
        second.refresh_from_db()
        ranks = _rank_processes()
        if second.progress.get("phase") == "evaluation" and second.progress.get("percent", 0) > 6 and 1 in ranks:
            ranks[1].send_signal(signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    thread.join(120)
    assert killed and not thread.is_alive()
    second.refresh_from_db()
    assert outcome == [ModelVersion.Status.FAILED] and second.status == ModelVersion.Status.FAILED
    assert second.status_reason, "the run says why it failed"
    assert lifecycle.active_version(shop.pk).pk == first.pk  # the trained version still serves
    assert not _rank_processes(), "no training process is left behind"
    # ... and answers: a recommendation through the API comes from it.
    _, raw_key = create_api_key(shop, name="after the kill", scopes=["recommend"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    with tenant_context(shop.pk):
        customer = Event.objects.for_tenant(shop.pk).values_list("customer__external_id", flat=True).first()
    answer = api.get("/v1/recommendations", {"customer_id": customer})
    assert answer.status_code == 200, answer.content
    assert answer.json()["model_version"] == first.pk


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_its_own_processes_start_as_the_cluster_job_does(shop):
    """deploy/k8s's multi-node Job: torchrun with a c10d rendezvous (one node here) and `TENANT new`, no
    Celery task: rank 0 starts the run claimed, trains it on both processes and activates it; a second start
    while a run is in flight is refused without a version."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2", "--max-restarts=0",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=test-job",
               "-m", "training.distributed.worker", str(shop.pk), "new", "--hyperparameters", json.dumps(TINY)]
    done = subprocess.run(command, cwd=REPO, env=launch._environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (version,) = ModelVersion.objects.for_tenant(shop.pk)
    assert f"version {version.pk}" in done.stdout
    assert version.status == ModelVersion.Status.ACTIVE and version.trigger == "cli" and version.attempts == 1
    assert version.hyperparameters["retrieval"]["dim"] == 16
    assert version.metrics["training_processes"] == 2
    assert json.loads((storage.local_path(version.artifact_uri) / PLAN_FILE).read_text())["world_size"] == 2

    waiting = _queued(shop, TINY)
    again = subprocess.run(command, cwd=REPO, env=launch._environment(), capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and f"version {waiting.pk} is queued" in again.stderr
    assert sorted(ModelVersion.objects.for_tenant(shop.pk).values_list("pk", flat=True)) == [version.pk, waiting.pk]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_on_too_little_data_fails_with_the_reason_and_every_process_exits_cleanly(shop, settings):
    settings.RECSVC_MIN_TRAINING_EVENTS = 1_000_000
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0",
               "-m", "training.distributed.worker", str(shop.pk), "new", "--hyperparameters", json.dumps(TINY)]
    done = subprocess.run(command, cwd=REPO, env=launch._environment(), capture_output=True, text=True, timeout=600)
    (version,) = ModelVersion.objects.for_tenant(shop.pk)
    assert version.status == ModelVersion.Status.FAILED
    assert "at least 1000000 are needed" in version.status_reason
    # Rank 0 reports the failed run (exit 1); rank 1 leaves without training (or is stopped by torchrun once rank
    # 0 has left, whichever comes first) and never aborts at exit (SIGABRT, exit code -6).
    assert done.returncode != 0 and "(exitcode: 1) local_rank: 0" in done.stderr, done.stderr[-3000:]
    assert "terminate called" not in done.stderr and "exitcode: -6" not in done.stderr, done.stderr[-3000:]
