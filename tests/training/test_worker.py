"""Training in a real Celery worker process: a run started over the API trains and activates; a worker killed
mid-run (SIGKILL) never half-activates, the served version stays, and the run ends failed ("worker lost").

What the design guarantees after a kill: the message was not acknowledged (acks_late), but the run is not
resumed by the broker within the test (Redis redelivers only after its visibility timeout, an hour). The
reaper marks the run failed once its heartbeat is `RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S` old; a failed run
is final, so when the message is redelivered later the task skips it (a new run is a new version).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from demo.load import load_synthetic
from demo.synthetic import ShopSpec
from tenants.context import tenant_context
from tests.celery_worker import REPO, _wait_until_ready, url_of_test_database
from tests.factories import TenantFactory
from training.registry import lifecycle, reaper, storage
from training.registry.models import ModelVersion
from training.tasks import train_model_version

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TINY = {"retrieval": {"dim": 16, "epochs": 1, "batch_size": 512}, "ranker": {"epochs": 1, "batch_size": 512},
        "num_candidates": 50}
# Long enough a run that it is surely killed in the middle (it never gets to finish).
LONG = {"retrieval": {"dim": 16, "epochs": 60, "batch_size": 128}, "ranker": {"epochs": 20, "batch_size": 128},
        "num_candidates": 50}
WAIT_S = 240


@pytest.fixture
def tenant(all_tenants):
    # tests/training/conftest.py's `tenant` is an array fixture; the API personas need shop A back.
    shop = TenantFactory(name="Shop A", slug="shop-a")
    with tenant_context(shop.pk):
        load_synthetic(shop.pk, ShopSpec(n_customers=150, n_products=300, n_events=6_000, seed=3))
    return shop


def _deadline_passed(deadline: float, what: str) -> None:
    assert time.monotonic() < deadline, f"gave up waiting for {what}"


def test_a_run_started_over_the_api_trains_in_the_worker_and_activates(celery_worker, api, tenant):
    response = api.post("/v1/training/runs", {"hyperparameters": TINY}, format="json")
    assert response.status_code == 202, response.content
    url = f"/v1/models/{response.json()['id']}"

    seen: list[dict] = []
    deadline = time.monotonic() + WAIT_S
    while True:
        body = api.get(url).json()
        seen.append(body)
        # "ready" while the serving job builds the index is the moment before activation: not the end yet.
        waiting = body["status_reason"] in ("", "index build queued (activation follows)")
        if body["status"] in {"active", "failed"} or (body["status"] == "ready" and not waiting):
            break
        _deadline_passed(deadline, "the run to finish")
        time.sleep(0.05)

    try:
        assert body["status"] == "active", body["status_reason"]
        percents = [b["progress"]["percent"] for b in seen]
        assert percents == sorted(percents), "progress only moves forward"
        assert any(0 < b["progress"]["percent"] < 100 for b in seen if b["status"] == "training"), percents
        curve_lengths = [len(b["curve"]) for b in seen]
        assert curve_lengths == sorted(curve_lengths), "the loss curve only grows"
        assert body["progress"]["percent"] == 100.0 and len(body["curve"]) > curve_lengths[0]
        assert {p["stage"] for p in body["curve"]} == {"retrieval", "ranker"}
        assert 0.0 <= body["metrics"]["ndcg@10"] <= 1.0 and body["timings"]["finished_at"]
        assert lifecycle.active_version(tenant.pk).pk == body["id"]
    finally:
        version = ModelVersion.objects.for_tenant(tenant).get(pk=body["id"])
        if version.artifact_uri:  # written by the shared worker wherever its RECSVC_ARTIFACT_DIR points
            folder = storage.local_path(version.artifact_uri)
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the tenant's folder, if nothing else is in it


# --- a worker killed mid-run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def doomed_worker(queue: str, artifact_dir: Path, log: Path) -> Iterator[subprocess.Popen]:
    """A worker of its own on a private queue (the session's shared worker must survive this test)."""
    nodename = f"recsvc-doomed-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url_of_test_database(connection.settings_dict["NAME"]),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "RECSVC_ARTIFACT_DIR": str(artifact_dir),
        "RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S": "5",  # beats every second
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-P", "solo", "-n", nodename,
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_until_ready(process, nodename, log)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _task_result_in_log(log: Path, task_id: str, deadline: float) -> str:
    """What the worker logged as the task's return value (there is no result backend)."""
    marker = f"[{task_id}] succeeded in "
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line.rsplit(": ", 1)[-1].strip()
        _deadline_passed(deadline, f"task {task_id} in the worker log")
        time.sleep(0.2)


def test_a_worker_killed_mid_run_leaves_the_active_version_serving_and_the_run_failed(
    celery_worker, tenant, settings, tmp_path
):
    settings.RECSVC_ARTIFACT_DIR = tmp_path  # the same folder as the doomed worker's
    settings.RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S = 5
    serving = ModelVersion.objects.create(tenant=tenant, status="active", metrics={"ndcg@10": 0.01})
    run = ModelVersion.objects.create(tenant=tenant, hyperparameters=LONG)
    queue = f"doomed-{uuid.uuid4().hex[:8]}"

    with doomed_worker(queue, tmp_path, tmp_path / "doomed.log") as worker:
        train_model_version.apply_async((tenant.pk, run.pk), queue=queue)
        deadline = time.monotonic() + WAIT_S
        while True:  # mid-run: training for real, with loss points stored
            run.refresh_from_db()
            assert run.status in {"queued", "training"}, (run.status, run.status_reason)
            if run.status == "training" and run.curve:
                break
            _deadline_passed(deadline, "the run to start training")
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    run.refresh_from_db()
    assert run.status == "training" and run.activated_at is None
    assert lifecycle.active_version(tenant.pk) == serving

    # Nothing beats for a dead worker: the reaper (the beat task) marks the run failed.
    deadline = time.monotonic() + WAIT_S
    while not reaper.reap_lost_runs():
        _deadline_passed(deadline, "the reaper to find the lost run")
        time.sleep(0.5)
    run.refresh_from_db()
    assert run.status == "failed" and run.status_reason.startswith("worker lost"), run.status_reason
    assert not storage.version_dir(tenant.pk, run.pk).exists()
    assert lifecycle.active_version(tenant.pk) == serving

    # The same message delivered again (as the broker eventually does) is skipped by a live worker.
    redelivered = train_model_version.apply_async((tenant.pk, run.pk))
    assert _task_result_in_log(celery_worker.log_path, redelivered.id, time.monotonic() + WAIT_S) == "'skipped'"
    run.refresh_from_db()
    assert run.status == "failed" and run.attempts == 1
    assert lifecycle.active_version(tenant.pk) == serving
    assert ModelVersion.objects.for_tenant(tenant).filter(status="active").count() == 1
